// SPDX-License-Identifier: GPL-2.0

//! Misuse: hold two handles to the same mapped PTE and clear both: the
//! second clear would drop an rmap and a folio reference the PTE no longer
//! holds (mapcount and refcount underflow).
//! Guard: `ClearedPtes::entry(&mut self, ..)` hands out a `MappedPte` that
//! borrows the clearing mutably: one handle at a time, and a PTE read
//! again after its clear is found none.
//! expect: E0499
//! expect-msg: cannot borrow `cleared` as mutable more than once at a time

use crate::mm::folio::PmdFolio;
use crate::mm::pgtable::{PteIndex, PteLocked, Subpage};
use crate::mm::VmaRef;

fn misuse(ptl: &PteLocked<'_, '_, VmaRef>, folio: &PmdFolio, i: PteIndex) {
    let mut cleared = ptl.clearing(folio);
    let first = cleared.entry(i);
    let second = cleared.entry(i);
    if let (Subpage::Mapped(a), Subpage::Mapped(b)) = (first, second) {
        a.clear();
        b.clear();
    }
}
