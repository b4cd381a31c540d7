// SPDX-License-Identifier: GPL-2.0

//! Misuse: compare (or clear) a table's PTEs against a folio smaller than
//! a PMD: `folio_page(folio, i)` for `i` up to 511 would point past the
//! folio's own pages, and a PTE mapping a neighbouring folio's page could
//! be taken for one of its pages and its rmap dropped on the wrong folio.
//! Guard: the table's comparisons take a `PmdFolio`, which only
//! `LockedFolio::as_pmd_order()` makes, after checking the order.
//! expect: E0308
//! expect-msg: expected `&PmdFolio`, found `&LockedFolio`

use crate::mm::pgtable::{PteIndex, PteLocked, Subpage};
use crate::mm::{LockedFolio, VmaRef};

fn misuse(ptl: &PteLocked<'_, '_, VmaRef>, folio: &LockedFolio) -> bool {
    PteIndex::all().all(|i| matches!(ptl.check(i, folio), Subpage::None))
}
