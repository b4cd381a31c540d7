// SPDX-License-Identifier: GPL-2.0

//! Misuse: keep a PTE found under the PTE lock and clear it after the
//! clearing (and its account of references) is over: the cleared PTE's
//! reference and rss would never be given back, and the lock that made
//! the finding true may be gone.
//! Guard: `MappedPte<'r, ..>` borrows its `ClearedPtes`, which `done(self)`
//! consumes.
//! expect: E0505
//! expect-msg: cannot move out of `cleared` because it is borrowed

use crate::mm::folio::PmdFolio;
use crate::mm::pgtable::{PteIndex, PteLocked, Subpage};
use crate::mm::VmaRef;

fn misuse(ptl: &PteLocked<'_, '_, VmaRef>, folio: &PmdFolio, i: PteIndex) {
    let mut cleared = ptl.clearing(folio);
    let Subpage::Mapped(pte) = cleared.entry(i) else {
        return;
    };
    cleared.done();
    pte.clear();
}
