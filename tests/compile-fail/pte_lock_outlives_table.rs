// SPDX-License-Identifier: GPL-2.0

//! Misuse: keep a PTE table's lock after the table was unmapped
//! (`pte_unmap()` ends the RCU read section that keeps a retracted table,
//! and the lock in its ptdesc, from being freed): a spin_unlock() on freed
//! memory.
//! Guard: `PteLocked` borrows the mapped `PteTable` it was taken from.
//! expect: E0505
//! expect-msg: cannot move out of `table` because it is borrowed

use crate::mm::pgtable::{PmdAddr, PmdRef};
use crate::mm::VmaRef;

fn misuse(vma: &VmaRef, addr: PmdAddr) {
    let Some(pmd) = PmdRef::find(vma, addr) else {
        return;
    };
    let Some(table) = pmd.map() else {
        return;
    };
    let Some(ptl) = table.lock() else {
        return;
    };
    drop(table);
    drop(ptl);
}
