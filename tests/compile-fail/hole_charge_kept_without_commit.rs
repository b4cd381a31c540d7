// SPDX-License-Identifier: GPL-2.0

//! Misuse: keep the shmem charge of the holes (and the raised `nrpages`)
//! without committing the folio that fills them: the inode's block
//! accounting and the mapping's page count would stay raised for pages
//! that do not exist, and a later uncharge would underflow them.
//! Guard: `HoleCharge::keep` is private to the page-cache module; only
//! `HolesFilled::commit` keeps the charge, in the same step as the store.
//! expect: E0624
//! expect-msg: method `keep` is private

use crate::mm::page_cache::ShmemMapping;

fn misuse(shmem: &ShmemMapping, holes: usize) {
    if let Some(charge) = shmem.shmem_charge(holes) {
        charge.keep();
    }
}
