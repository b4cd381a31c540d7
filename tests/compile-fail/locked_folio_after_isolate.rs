// SPDX-License-Identifier: GPL-2.0

//! Misuse: drop the `LockedFolio` after `OldFolios::read()` took it into
//! its `Place`: the folio would be unlocked (and a reference put) while
//! the place, and then the isolated folio, still count on the lock and the
//! reference (unlocked, it could be truncated and reused, and the place's
//! index be wrong), then unlocked and put again by the rollback.
//! Guard: `OldFolios::read(&self, folio: LockedFolio)` consumes the locked
//! folio (the lock moves into the `Place`, then into the set of old folios
//! by `isolate`, or is dropped with the refusal).
//! expect: E0382
//! expect-msg: use of moved value: `locked`

use crate::mm::{LockedFolio, OldFolios};

fn misuse(old: &mut OldFolios<'_>, locked: LockedFolio) {
    let Ok(place) = old.read(locked).place else {
        return;
    };
    if old.isolate(place).is_ok() {
        drop(locked);
    }
}
