// SPDX-License-Identifier: GPL-2.0

//! Misuse: return the `&Folio` of an `Entry::Folio` out of the block that
//! holds the xa_lock, so that it is used after the guard's `Drop` unlocked,
//! when the folio may already be freed and reused.
//! Guard: `Entry<'_>` borrows the `XaLocked` it was loaded through, so it
//! cannot outlive the guard's scope.
//! expect: E0597
//! expect-msg: `xa` does not live long enough

use crate::mm::folio::Folio;
use crate::mm::{AddressSpace, Entry};

fn misuse(mapping: &AddressSpace, index: usize) -> usize {
    let mut cursor = mapping.cursor(index, 0);
    let folio: &Folio = {
        let mut xa = cursor.lock();
        match xa.load_at(index) {
            Entry::Folio(folio) => folio,
            _ => return 0,
        }
    };
    folio.index()
}
