// SPDX-License-Identifier: GPL-2.0

//! Misuse: drop the `LockedFolio` after `OldFolios::isolate()` took it in:
//! the folio would be unlocked (and a reference put) while the isolated
//! folio still counts on the lock and the reference, then unlocked and put
//! again by the rollback.
//! Guard: `OldFolios::isolate(&mut self, folio: LockedFolio, ..)` consumes
//! the locked folio (the lock moves into the set of old folios, or is
//! dropped with the error).
//! expect: E0382
//! expect-msg: use of moved value: `locked`

use crate::mm::{LockedFolio, OldFolios};

fn misuse(old: &mut OldFolios<'_>, locked: LockedFolio) {
    let Ok(place) = old.read(&locked).place else {
        return;
    };
    if old.isolate(locked, place).is_ok() {
        drop(locked);
    }
}
