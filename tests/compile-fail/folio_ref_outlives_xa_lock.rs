// SPDX-License-Identifier: GPL-2.0

//! Misuse: keep the `&Folio` of an `Entry::Folio` loaded under the xa_lock
//! and use it after `unlock()`, when nothing keeps the folio from being
//! truncated, freed and reused (a use-after-free of `struct folio`).
//! Guard: `XaLocked::load_at(&mut self)` returns `Entry<'_>` borrowing the
//! lock guard, and `unlock(self)` cannot move the guard while it is borrowed.
//! (Letting the guard go out of scope instead gives E0597.)
//! expect: E0505
//! expect-msg: cannot move out of `xa` because it is borrowed

use crate::mm::{AddressSpace, Entry};

fn misuse(mapping: &AddressSpace, index: usize) -> usize {
    let mut cursor = mapping.cursor(index, 0);
    let mut xa = cursor.lock();
    let Entry::Folio(folio) = xa.load_at(index) else {
        return 0;
    };
    xa.unlock();
    folio.index()
}
