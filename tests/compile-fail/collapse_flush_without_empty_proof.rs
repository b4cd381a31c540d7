// SPDX-License-Identifier: GPL-2.0

//! Misuse: take a PTE table out of the mm (`pmdp_collapse_flush()`) with
//! only the PMD lock held and without having read its entries: the table,
//! freed after RCU, may still map pages (their references and rmap leak,
//! the pages stay reachable through a freed table).
//! Guard: `collapse_flush` is a method of `EmptyTable` only, which only
//! `PteLocked::empty()` makes; the PMD lock guard has no such method.
//! expect: E0599
//! expect-msg: no method named `collapse_flush` found

use crate::mm::pgtable::{PmdAddr, PmdRef};
use crate::mm::VmaRef;

fn misuse(vma: &VmaRef, addr: PmdAddr) {
    let Some(pmd) = PmdRef::find(vma, addr) else {
        return;
    };
    let pml = pmd.lock();
    pml.collapse_flush().free_deferred();
}
