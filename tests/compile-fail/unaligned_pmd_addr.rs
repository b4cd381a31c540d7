// SPDX-License-Identifier: GPL-2.0

//! Misuse: look up a PMD (and so map its PTE table) at an address that is
//! not PMD-aligned: entry `i < 512` of the mapped table would then be
//! `pte_index(addr) + i`, past the end of the table page.
//! Guard: `PmdRef::find` takes a `PmdAddr`, aligned by construction.
//! expect: E0308
//! expect-msg: expected `PmdAddr`, found `usize`

use crate::mm::pgtable::PmdRef;
use crate::mm::VmaRef;

fn misuse(vma: &VmaRef, addr: usize) -> bool {
    PmdRef::find(vma, addr).is_some()
}
