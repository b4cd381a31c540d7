// SPDX-License-Identifier: GPL-2.0

//! Misuse: map a huge folio by a PMD at an address that is not PMD-aligned
//! (do_set_pmd() would map 2 MiB that straddle two PMD ranges, or another
//! VMA).
//! Guard: `map_huge_new` takes a `PmdAddr`.
//! expect: E0308
//! expect-msg: expected `PmdAddr`, found `usize`

use crate::mm::folio::PmdFolio;
use crate::mm::pgtable::map_huge_new;
use crate::mm::{VmaExt, VmaRef};

fn misuse(vma: &VmaRef, folio: &PmdFolio) {
    let _ = map_huge_new(vma, vma.vm_start() + 4096, folio);
}
