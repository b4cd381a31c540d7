// SPDX-License-Identifier: GPL-2.0

//! Misuse: make up a folio's place in the extent (its index and size)
//! instead of reading it under the folio's lock: the copy would put its
//! pages at the wrong offset, or past the new folio, and the accounting
//! that proves every slot of the extent is ours would be wrong.
//! Guard: `Place`'s fields are private to the folio module; only
//! `OldFolios::read` (which reads them under the lock and checks them)
//! makes one, holding the locked folio, and `isolate` refuses a place read
//! for another set (another mapping or extent).
//! expect: E0451
//! expect-msg: of struct `Place`
//! (The part of the message both supported rustc versions print: 1.97
//! names the private fields in one error, 1.85 in one error each.)

use crate::mm::folio::Place;
use crate::mm::{LockedFolio, OldFolios};

fn misuse(old: &mut OldFolios<'_>, locked: LockedFolio) {
    let place = Place {
        folio: locked,
        mapping: core::ptr::NonNull::dangling(),
        start: 0,
        index: 0,
        nr: 512,
    };
    let _ = old.isolate(place);
}
