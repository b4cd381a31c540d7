// SPDX-License-Identifier: GPL-2.0

//! Misuse: build a `PmdAddr` from an unaligned address without the check
//! (`PmdAddr::new`) or the mask (`PmdAddr::containing`), then index a
//! table with it.
//! Guard: `PmdAddr`'s field is private to the mm layer.
//! expect: E0423
//! expect-msg: cannot initialize a tuple struct which contains private fields

use crate::mm::pgtable::{PmdAddr, PmdRef};
use crate::mm::VmaRef;

fn misuse(vma: &VmaRef) -> bool {
    PmdRef::find(vma, PmdAddr(0x1234)).is_some()
}
