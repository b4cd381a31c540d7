// SPDX-License-Identifier: GPL-2.0

//! Misuse: after `unlock()` handed the cursor back, load from the page cache
//! through the same `XaLocked` again, reading and trusting xarray slots (and
//! the folios in them) with the xa_lock no longer held.
//! Guard: `XaLocked::unlock(self)` consumes the lock guard; the moved value
//! cannot be used again.
//! expect: E0382
//! expect-msg: borrow of moved value: `xa`

use crate::mm::{AddressSpace, Entry};

fn misuse(mapping: &AddressSpace, index: usize) -> bool {
    let mut cursor = mapping.cursor(index, 0);
    let mut xa = cursor.lock();
    let cursor = xa.unlock();
    cursor.nomem();
    matches!(xa.load_at(index), Entry::Folio(_))
}
