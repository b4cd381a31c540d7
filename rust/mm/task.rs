// SPDX-License-Identifier: GPL-2.0

//! The target of a request (the writer's mm, or another process's as
//! `process_madvise(2)` gets it), what the collapse asks of an mm, and the
//! scheduler calls of the injection points.

use super::{Mm, MmWithUser};
use crate::ffi::bindings;
use core::ptr::NonNull;
use core::sync::atomic::AtomicU32;
use kernel::error::Error;
use kernel::sync::aref::ARef;

/// The current task's mm (`get_task_mm(current)`), if it has one.
pub(crate) fn current_mm() -> Option<ARef<MmWithUser>> {
    // SAFETY: Returns current's mm with an mm_users reference, or null.
    let mm = NonNull::new(unsafe { bindings::krs_current_mm_get() })?;
    // SAFETY: The mm_users reference is handed over.
    Some(unsafe { ARef::from_raw(mm.cast()) })
}

/// Process `pid`'s mm, as `process_madvise(2)` gets it: ESRCH for no such
/// process, `mm_access()`'s error (EACCES when the PTRACE_MODE_READ check
/// with the writer's fs credentials fails).
pub(crate) fn pid_mm(pid: u32) -> Result<ARef<MmWithUser>, Error> {
    let pid = i32::try_from(pid).map_err(|_| kernel::error::code::ESRCH)?;
    let mut err = 0;
    // SAFETY: Returns an mm with an mm_users reference, or null and the
    // errno in `err`.
    let mm = unsafe { bindings::krs_pid_mm_get(pid, &mut err) };
    match NonNull::new(mm) {
        // SAFETY: The mm_users reference is handed over.
        Some(mm) => Ok(unsafe { ARef::from_raw(mm.cast()) }),
        None => Err(Error::from_errno(err)),
    }
}

/// What the collapse asks of an mm.
pub(crate) trait MmExt {
    /// `mm_users == 0`: the process is exiting (`collapse_test_exit()`).
    fn exiting(&self) -> bool;
    /// `MMF_DISABLE_THP_COMPLETELY` (prctl(PR_SET_THP_DISABLE)).
    fn thp_disabled(&self) -> bool;
    /// Not the writer's own mm, and the writer lacks CAP_SYS_NICE (the
    /// last check of `process_madvise(2)`).
    fn remote_without_cap_sys_nice(&self) -> bool;
}

impl MmExt for Mm {
    fn exiting(&self) -> bool {
        // SAFETY: An allocated mm (a reference proves it); reads a counter.
        unsafe { bindings::krs_mm_exiting(self.as_raw()) }
    }
    fn thp_disabled(&self) -> bool {
        // SAFETY: An allocated mm (a reference proves it); tests a flag.
        unsafe { bindings::krs_mm_thp_disabled(self.as_raw()) }
    }
    fn remote_without_cap_sys_nice(&self) -> bool {
        // SAFETY: Compares with current's mm and checks a capability.
        unsafe { bindings::krs_remote_mm_needs_nice(self.as_raw()) }
    }
}

/// The current task's tgid (as seen from its pid namespace).
pub(crate) fn current_tgid() -> u64 {
    // SAFETY: No preconditions.
    let tgid = unsafe { bindings::krs_current_tgid() };
    u64::try_from(tgid).unwrap_or(0)
}

/// Sleeps (interruptibly) until `gen` differs from `seen`, at most
/// `timeout_ms`; true when it changed. Woken by [`wake_waiters`].
pub(crate) fn wait_for_change(gen: &AtomicU32, seen: u32, timeout_ms: u32) -> bool {
    // SAFETY: `gen` is a live atomic for the call, read with READ_ONCE by
    // the helper's wait condition; it sleeps on the module's wait queue.
    unsafe { bindings::krs_inject_wait(gen.as_ptr(), seen, timeout_ms) }
}

/// Wakes every task sleeping in [`wait_for_change`].
pub(crate) fn wake_waiters() {
    // SAFETY: No preconditions.
    unsafe { bindings::krs_inject_wake() }
}

/// `msleep()`.
pub(crate) fn msleep(ms: u32) {
    // SAFETY: No preconditions.
    unsafe { bindings::krs_msleep(ms) }
}
