// SPDX-License-Identifier: GPL-2.0

//! Misuse: make up a folio's place in the extent (its index and size)
//! instead of reading it under the folio's lock: the copy would put its
//! pages at the wrong offset, or past the new folio, and the accounting
//! that proves every slot of the extent is ours would be wrong.
//! Guard: `Place`'s fields are private to the folio module; only
//! `OldFolios::place` (which reads them under the lock and checks them)
//! makes one, and `isolate` checks it is this folio's.
//! expect: E0451
//! expect-msg: of struct `Place`
//! (The part of the message both supported rustc versions print: 1.97
//! names the three private fields in one error, 1.85 in one error each.)

use crate::mm::folio::Place;
use crate::mm::{LockedFolio, OldFolios};

fn misuse(old: &mut OldFolios<'_>, locked: LockedFolio) {
    let place = Place {
        folio: core::ptr::NonNull::dangling(),
        index: 0,
        nr: 512,
    };
    let _ = old.isolate(locked, place);
}
