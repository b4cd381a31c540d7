// SPDX-License-Identifier: GPL-2.0

//! Misuse: isolate a folio from the LRU outside the set of old folios, then
//! unmap it: its TLB flush, deferred into the task's batch, would belong to
//! no one, and the folio could go back to the LRU (and be freed) while a
//! CPU still writes through a stale TLB entry.
//! Guard: `LockedFolio::isolate_lru` is private to the folio module; a
//! folio is isolated only by `OldFolios::isolate`, whose `Drop` flushes.
//! expect: E0624
//! expect-msg: method `isolate_lru` is private

use crate::mm::LockedFolio;

fn misuse(folio: LockedFolio) {
    if let Ok(isolated) = folio.isolate_lru() {
        isolated.unmap();
    }
}
