// SPDX-License-Identifier: GPL-2.0

//! Misuse: hand a file from `fget()` to another thread (a work item, the
//! scanner): the writer may hold an `fdget_pos()` on that very file (`fd=`
//! can name the debugfs file being written), whose `f_pos` lock rule
//! requires the file to stay on this thread.
//! Guard: `fget` returns an `ARef<LocalFile>`, which is not `Send`.
//! expect: E0277
//! expect-msg: cannot be shared between threads safely

use crate::mm::vma::fget;

fn needs_send<T: Send>(_: T) {}

fn misuse(fd: u32) {
    if let Some(file) = fget(fd) {
        needs_send(file);
    }
}
