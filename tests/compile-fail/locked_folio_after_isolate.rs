// SPDX-License-Identifier: GPL-2.0

//! Misuse: drop the `LockedFolio` after `isolate_lru()` turned it into an
//! `IsolatedFolio`: the folio would be unlocked (and a reference put) while
//! the isolated folio still counts on the lock and the reference, then
//! unlocked and put again by its rollback.
//! Guard: `LockedFolio::isolate_lru(self)` consumes the locked folio (the
//! lock moves into the `IsolatedFolio`, or comes back in `Err`).
//! expect: E0382
//! expect-msg: use of moved value: `locked`

use crate::mm::LockedFolio;

fn misuse(locked: LockedFolio) {
    if let Ok(isolated) = locked.isolate_lru() {
        drop(locked);
        drop(isolated);
    }
}
