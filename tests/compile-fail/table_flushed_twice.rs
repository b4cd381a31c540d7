// SPDX-License-Identifier: GPL-2.0

//! Misuse: take the same empty table out of the mm twice: the second
//! pmdp_collapse_flush() reads a cleared PMD, and the table (or whatever
//! `pmd_pgtable()` of a none entry points to) would be freed twice.
//! Guard: `PteLocked::empty(self)` and `EmptyTable::collapse_flush(self)`
//! consume the lock and the proof.
//! expect: E0382
//! expect-msg: use of moved value: `empty`

use crate::mm::pgtable::{PmdAddr, PmdRef};
use crate::mm::VmaRef;

fn misuse(vma: &VmaRef, addr: PmdAddr) {
    let Some(pmd) = PmdRef::find(vma, addr) else {
        return;
    };
    let Some(table) = pmd.map() else {
        return;
    };
    let pml = pmd.lock();
    let Some(ptl) = pml.lock_table(&table) else {
        return;
    };
    let Ok(empty) = ptl.empty() else {
        return;
    };
    empty.collapse_flush().free_deferred();
    empty.collapse_flush().free_deferred();
}
