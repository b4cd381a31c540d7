// SPDX-License-Identifier: GPL-2.0

//! Misuse: charge holes to a mapping that is not shmem's: shmem_charge()
//! applies SHMEM_I() to the host inode, which on ext4 or XFS is another
//! structure (its fields written at the wrong offsets).
//! Guard: `shmem_charge` is a method of `ShmemMapping` only, obtained from
//! `AddressSpace::as_shmem()`, which checks `shmem_mapping()`.
//! expect: E0599
//! expect-msg: no method named `shmem_charge` found

use crate::mm::AddressSpace;

fn misuse(mapping: &AddressSpace) {
    let _ = mapping.shmem_charge(1);
}
