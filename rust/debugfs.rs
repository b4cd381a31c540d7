// SPDX-License-Identifier: GPL-2.0

//! The module's debugfs directory, `/sys/kernel/debug/khugepaged_rs/`.
//! Every file is removed when [`Files`] is dropped, i.e. on `rmmod`.
//! The ABI is documented in `Documentation/ABI/testing/debugfs-khugepaged_rs`.

use crate::status::Status;
use kernel::{
    debugfs::{Dir, File},
    prelude::*,
};

/// Owns the directory and its files.
pub(crate) struct Files {
    _status: Pin<KBox<File<Status>>>,
    _dir: Dir,
}

impl Files {
    pub(crate) fn new(status: Status) -> Result<Self> {
        let dir = Dir::new(c"khugepaged_rs");
        let status = KBox::pin_init(
            dir.read_callback_file(c"status", status, &|s: &Status, f| s.show(f)),
            GFP_KERNEL,
        )?;
        Ok(Self {
            _status: status,
            _dir: dir,
        })
    }
}
