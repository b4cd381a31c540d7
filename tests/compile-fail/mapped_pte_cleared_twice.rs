// SPDX-License-Identifier: GPL-2.0

//! Misuse: clear the same PTE twice: its rmap and its folio reference
//! would be dropped twice (a mapcount and refcount underflow: the folio
//! freed while mapped elsewhere).
//! Guard: `MappedPte::clear(self)` consumes the handle.
//! expect: E0382
//! expect-msg: use of moved value: `pte`

use crate::mm::folio::PmdFolio;
use crate::mm::pgtable::{PteIndex, PteLocked, Subpage};
use crate::mm::VmaRef;

fn misuse(ptl: &PteLocked<'_, '_, VmaRef>, folio: &PmdFolio) {
    let mut cleared = ptl.clearing(folio);
    for i in PteIndex::all() {
        if let Subpage::Mapped(pte) = cleared.entry(i) {
            pte.clear();
            pte.clear();
        }
    }
    cleared.done();
}
