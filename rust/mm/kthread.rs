// SPDX-License-Identifier: GPL-2.0

//! A kernel thread owned by a value: [`Kthread::run`] starts it, and
//! dropping the [`Kthread`] stops it and waits for it to return
//! (`kthread_stop_put()`), so the thread never outlives its owner. The
//! thread's function gets a [`KthreadCtx`], which only exists on that
//! thread: what only the thread itself may do (`kthread_should_stop()`,
//! freezing, its sleeps) is asked of it.

use crate::ffi::bindings;
use core::ffi::{c_int, c_void};
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::AtomicU32;
use kernel::prelude::*;
use kernel::sync::Arc;

/// What the thread runs: `main` with the shared `data`.
struct Start<T: Send + Sync + 'static> {
    main: fn(&KthreadCtx, &T),
    data: Arc<T>,
}

/// A running kernel thread; `Drop` stops it and waits for it.
///
/// # Invariants
///
/// `task` is a kthread created by [`Kthread::run`] running `trampoline`
/// on `*_start`, with a task reference of ours (`get_task_struct`); it
/// has not been stopped. `_start` is not freed before the thread returned.
#[must_use = "dropping it stops the thread"]
pub(crate) struct Kthread<T: Send + Sync + 'static> {
    task: NonNull<bindings::task_struct>,
    /// What the thread reads; freed after the thread returned.
    _start: KBox<Start<T>>,
}

// SAFETY: The handle only stops the thread and frees `start` (whose data
// is `Send + Sync`), from whichever task drops it.
unsafe impl<T: Send + Sync + 'static> Send for Kthread<T> {}
// SAFETY: A shared handle offers nothing (no method takes `&self`).
unsafe impl<T: Send + Sync + 'static> Sync for Kthread<T> {}

impl<T: Send + Sync + 'static> Kthread<T> {
    /// `kthread_run(main, data, name)`: a new kernel thread named `name`
    /// running `main(ctx, &data)`, woken at once. `main` should return
    /// when `ctx.should_stop()`; if it returns earlier, the thread waits
    /// for the stop.
    ///
    /// # Safety
    ///
    /// The returned value is dropped (never leaked) before the code of
    /// `main` can go away: in a module, before its exit function returns.
    pub(crate) unsafe fn run(
        main: fn(&KthreadCtx, &T),
        data: Arc<T>,
        name: &'static CStr,
    ) -> Result<Self> {
        let start = KBox::new(Start { main, data }, GFP_KERNEL)?;
        let arg = core::ptr::from_ref::<Start<T>>(&start)
            .cast_mut()
            .cast::<c_void>();
        let run: unsafe extern "C" fn(*mut c_void) -> c_int = trampoline::<T>;
        // SAFETY: `trampoline::<T>` reads `arg` as a `Start<T>`, allocated
        // until the thread returned (the handle owns it, stops the thread first).
        let task = unsafe { bindings::krs_kthread_run(Some(run), arg, name.as_char_ptr()) };
        let task = NonNull::new(task).ok_or(ENOMEM)?;
        // INVARIANT: Created, referenced, not stopped; `start` is ours.
        Ok(Self {
            task,
            _start: start,
        })
    }
}

impl<T: Send + Sync + 'static> Drop for Kthread<T> {
    fn drop(&mut self) {
        // kthread_stop_put() wakes it, waits until its function returned,
        // and drops the reference; `_start` is freed after (the field
        // drops once this returns).
        // SAFETY: Our kthread, with our task reference, not stopped yet
        // (type invariant).
        unsafe { bindings::krs_kthread_stop_put(self.task.as_ptr()) };
    }
}

/// The thread's side: proof of running on the kthread (it is neither
/// `Send` nor constructible elsewhere).
pub(crate) struct KthreadCtx(PhantomData<*const ()>);

/// The entry point C runs on the new thread.
///
/// # Safety
///
/// `arg` is the `Start<T>` given to [`Kthread::run`], alive until this
/// returns.
unsafe extern "C" fn trampoline<T: Send + Sync + 'static>(arg: *mut c_void) -> c_int {
    // SAFETY: Per the function contract.
    let start = unsafe { &*arg.cast::<Start<T>>() };
    let ctx = KthreadCtx(PhantomData);
    (start.main)(&ctx, &start.data);
    // The handle's kthread_stop_put() is what ends the thread.
    while !ctx.should_stop() {
        ctx.sleep(None, None);
    }
    0
}

impl KthreadCtx {
    /// `kthread_should_stop()`.
    pub(crate) fn should_stop(&self) -> bool {
        // SAFETY: On a kthread (type invariant).
        unsafe { bindings::krs_kthread_should_stop() }
    }

    /// `set_freezable()` and `set_user_nice(current, MAX_NICE)`, as
    /// khugepaged starts.
    pub(crate) fn set_freezable_nice(&self) {
        // SAFETY: On a kthread (type invariant).
        unsafe { bindings::krs_kthread_freezable_nice() }
    }

    /// `try_to_freeze()`: true when the thread was frozen (and is thawed
    /// now).
    pub(crate) fn try_to_freeze(&self) -> bool {
        // SAFETY: On a kthread (type invariant), with no lock held (a
        // convention: the callers are between passes).
        unsafe { bindings::krs_try_to_freeze() }
    }

    /// Sleeps, freezable, until woken with `gen` changed from `seen`
    /// ([`wake`]), the thread is asked to stop, or `ms` passed (`None`:
    /// no timeout). Returns the milliseconds slept.
    pub(crate) fn sleep(&self, woken: Option<(&AtomicU32, u32)>, ms: Option<u32>) -> u32 {
        let (gen, seen) = match woken {
            Some((gen, seen)) => (gen.as_ptr().cast_const(), seen),
            None => (core::ptr::null(), 0),
        };
        // SAFETY: On a kthread (type invariant); `gen` is null or a live
        // atomic, borrowed for the call.
        unsafe { bindings::krs_kthread_sleep(gen, seen, ms.unwrap_or(u32::MAX)) }
    }
}

/// Wakes a thread sleeping in [`KthreadCtx::sleep`] (after changing the
/// `gen` it watches).
pub(crate) fn wake() {
    // SAFETY: Wakes the helpers' wait queue; no preconditions.
    unsafe { bindings::krs_kthread_wake() }
}
