// SPDX-License-Identifier: GPL-2.0

//! Control: the same calls as the compile-fail cases, used as
//! `collapse_file()` uses them: the folio is used and locked while the
//! xa_lock is held, `nomem()` runs on the cursor `unlock()` handed back, and
//! only the `IsolatedFolio` is used after `isolate_lru()`. It must build.

use crate::mm::{AddressSpace, Entry, LockedFolio};

fn correct_use(mapping: &AddressSpace, index: usize) -> Option<usize> {
    let mut cursor = mapping.cursor(index, 0);
    let mut xa = cursor.lock();
    if xa.create_range().is_err() {
        let cursor = xa.unlock();
        cursor.nomem();
        return None;
    }
    let locked: LockedFolio = match xa.load_at(index) {
        Entry::Folio(folio) if folio.is_uptodate() => folio.trylock()?,
        _ => return None,
    };
    let cursor = xa.unlock();
    let _ = cursor;
    let isolated = locked.isolate_lru().ok()?;
    Some(isolated.nr_pages())
}
