// SPDX-License-Identifier: GPL-2.0

//! Misuse: install a PMD mapping in a VMA reached through the i_mmap tree,
//! without its mm's mmap lock: set_huge_pmd() would race with munmap() and
//! page-table teardown of that mm.
//! Guard: `map_huge` exists only on `PmdRef<'_, VmaRef>` (a VMA under the
//! mmap lock), not on `PmdRef<'_, IMmapVma>`.
//! expect: E0599
//! expect-msg: no method named `map_huge` found

use crate::mm::folio::PmdFolio;
use crate::mm::pgtable::{PmdAddr, PmdRef};
use crate::mm::vma::IMmapVma;

fn misuse(vma: &IMmapVma<'_>, addr: PmdAddr, folio: &PmdFolio) {
    if let Some(pmd) = PmdRef::find(vma, addr) {
        let _ = pmd.map_huge(folio);
    }
}
