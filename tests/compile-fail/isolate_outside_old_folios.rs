// SPDX-License-Identifier: GPL-2.0

//! Misuse: isolate a folio from the LRU outside the set of old folios, then
//! unmap it: its TLB flush, deferred into the task's batch, would belong to
//! no one, and the folio could go back to the LRU (and be freed) while a
//! CPU still writes through a stale TLB entry.
//! Guard: `LockedFolio::isolate_unmap` (isolate, release, unmap in one
//! helper call) is private to the folio module; a folio is isolated only
//! by `OldFolios::isolate`, whose `Drop` flushes.
//! expect: E0624
//! expect-msg: method `isolate_unmap` is private

use crate::mm::LockedFolio;

fn misuse(folio: LockedFolio) {
    if let Ok((isolated, _released)) = folio.isolate_unmap(0, 1) {
        drop(isolated);
    }
}
