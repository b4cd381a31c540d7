// SPDX-License-Identifier: GPL-2.0

//! Misuse: make the emptiness proof by hand for a table whose entries were
//! never read (under a PTE lock taken without the PMD lock), and free it.
//! Guard: `EmptyTable`'s field is private to the mm layer: only
//! `PteLocked::empty()`, which reads every entry under both locks, makes
//! one.
//! expect: E0451
//! expect-msg: field `ptl` of struct `EmptyTable` is private

use crate::mm::pgtable::{EmptyTable, PmdAddr, PmdRef};
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
    EmptyTable { ptl }.collapse_flush().free_deferred();
}
