// SPDX-License-Identifier: GPL-2.0

//! Misuse: drop the PMD lock while the PTE lock nested in it is still held
//! (or, with split PTE locks off, still "held" through the PMD lock, which
//! is the same lock): the table could be retracted and freed under a lock
//! holder that believes the PMD stable.
//! Guard: `PmdLocked::lock_table(&'l self, ..)` returns a `PteLocked<'l, ..>`
//! borrowing the PMD lock guard.
//! expect: E0505
//! expect-msg: cannot move out of `pml` because it is borrowed

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
    drop(pml);
    let _ = ptl.empty().is_ok();
}
