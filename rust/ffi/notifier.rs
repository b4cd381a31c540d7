// SPDX-License-Identifier: GPL-2.0

//! A recording MMU notifier for the selftests (debugfs `notifier`): it
//! registers on one process's mm and logs every `invalidate_range_start`
//! and `_end` (event, range), so a test can check that retraction issues
//! one `MMU_NOTIFY_CLEAR` per VMA covering exactly its 2 MiB, paired with
//! an end (seed 002).
//!
//! The log is a fixed array written with atomics: the callbacks may run in
//! contexts that cannot sleep or take our locks.

use crate::ffi::bindings;
use crate::mm::task::{self, MmExt};
use crate::mm::{Mm, MmWithUser};
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering, Ordering::SeqCst};
use kernel::prelude::*;
use kernel::sync::aref::ARef;

const CAPACITY: usize = 4096;

/// One callback: bit 63 set for an end, low bits the event; start; end.
struct Record {
    kind: AtomicU64,
    start: AtomicU64,
    end: AtomicU64,
}

static LOG: [Record; CAPACITY] = [const {
    Record {
        kind: AtomicU64::new(0),
        start: AtomicU64::new(0),
        end: AtomicU64::new(0),
    }
}; CAPACITY];
/// Records claimed so far (may exceed CAPACITY: the excess is dropped).
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// Records fully written (the reader shows only those).
static DONE: AtomicUsize = AtomicUsize::new(0);
static PID: AtomicU64 = AtomicU64::new(0);

kernel::sync::global_lock! {
    // SAFETY: `CURRENT` is initialised once, by `init` (`STATE` lets one
    // caller through), and locked only once `STATE` says it is ready.
    unsafe(uninit) static CURRENT: Mutex<Option<Registered>> = None;
}

/// `CURRENT`'s initialisation: `UNINIT`, then `INITIALISING` for the one
/// `init` that won, then `READY` (with `Release`, after `CURRENT.init()`).
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
const UNINIT: u8 = 0;
const INITIALISING: u8 = 1;
const READY: u8 = 2;

/// Initialises the lock serialising `start` and `stop`: two writers must
/// not both register (one registration would never be unregistered, and
/// its ops would point into the module after rmmod). Module init calls it
/// before the debugfs files exist; a second call does nothing.
pub(crate) fn init() {
    if STATE
        .compare_exchange(UNINIT, INITIALISING, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    // SAFETY: Once (only the caller that moved `STATE` off `UNINIT` gets
    // here), and before any lock (`start`/`stop` wait for `READY`).
    unsafe { CURRENT.init() };
    STATE.store(READY, Ordering::Release);
}

/// Whether `init` has run: `start` and `stop` lock `CURRENT` only then.
fn ready() -> bool {
    STATE.load(Ordering::Acquire) == READY
}

/// The registration in place, owned by [`CURRENT`].
///
/// # Invariants
///
/// A `KBox::into_raw` allocation, registered on its `mm`, which it holds
/// with an `mmgrab`.
struct Registered(NonNull<Registration>);

// SAFETY: The pointer is only used under the `CURRENT` mutex, from any
// task: the registration belongs to no thread.
unsafe impl Send for Registered {}

impl Registered {
    /// `mmu_notifier_register()` of a new registration on `mm`.
    fn register(mm: &MmWithUser) -> Result<Self> {
        let reg = KBox::new(
            Registration {
                mn: bindings::mmu_notifier {
                    ops: &OPS,
                    ..Default::default()
                },
                // mmgrab: the struct must outlive the registration.
                mm: ARef::from(&**mm),
            },
            GFP_KERNEL,
        )?;
        let reg = KBox::into_raw(reg);
        // SAFETY: `reg` is a stable heap allocation (ours until freed
        // below or in `unregister`); `mm` is live (mm_users, held by the
        // caller's `ARef<MmWithUser>`).
        let ret = unsafe { bindings::mmu_notifier_register(&mut (*reg).mn, mm.as_raw()) };
        if ret != 0 {
            // SAFETY: Not registered: ours alone again; dropping it drops
            // the mmgrab.
            drop(unsafe { KBox::from_raw(reg) });
            return Err(Error::from_errno(ret));
        }
        // SAFETY: `KBox::into_raw` never returns null.
        let reg = unsafe { NonNull::new_unchecked(reg) };
        // INVARIANT: Registered on its mm, which it holds with mmgrab.
        Ok(Registered(reg))
    }

    /// Unregisters and frees it.
    fn unregister(self) {
        let reg = self.0.as_ptr();
        // SAFETY: From `KBox::into_raw`, registered on its `mm`, held with
        // mmgrab (type invariant); unregistering waits for running
        // callbacks, after which it is freed (dropping the mmgrab).
        unsafe {
            bindings::mmu_notifier_unregister(&mut (*reg).mn, (*reg).mm.as_raw());
            drop(KBox::from_raw(reg));
        }
    }
}

const END_BIT: u64 = 1 << 63;

/// A registered notifier; `mn` first so callbacks can cast back.
#[repr(C)]
struct Registration {
    mn: bindings::mmu_notifier,
    mm: ARef<Mm>,
}

/// Logs one callback.
///
/// # Safety
///
/// `range` is valid for the call (the notifier core passes it).
unsafe fn record(range: *const bindings::mmu_notifier_range, end: bool) {
    let i = NEXT.fetch_add(1, SeqCst);
    if i >= CAPACITY {
        return;
    }
    // SAFETY: Valid for the call (the function's contract).
    let (event, start, stop) = unsafe { ((*range).event, (*range).start, (*range).end) };
    let r = &LOG[i];
    r.kind
        .store(u64::from(event) | if end { END_BIT } else { 0 }, SeqCst);
    r.start.store(start as u64, SeqCst);
    r.end.store(stop as u64, SeqCst);
    DONE.fetch_add(1, SeqCst);
}

/// `invalidate_range_start`: log it; never blocks, never fails.
///
/// # Safety
///
/// Called by the MMU-notifier core with a valid range.
unsafe extern "C" fn on_start(
    _mn: *mut bindings::mmu_notifier,
    range: *const bindings::mmu_notifier_range,
) -> i32 {
    // SAFETY: The core's range, valid for the call (our contract).
    unsafe { record(range, false) };
    0
}

/// `invalidate_range_end`: log it.
///
/// # Safety
///
/// Called by the MMU-notifier core with a valid range.
unsafe extern "C" fn on_end(
    _mn: *mut bindings::mmu_notifier,
    range: *const bindings::mmu_notifier_range,
) {
    // SAFETY: The core's range, valid for the call (our contract).
    unsafe { record(range, true) };
}

static OPS: bindings::mmu_notifier_ops = bindings::mmu_notifier_ops {
    invalidate_range_start: Some(on_start),
    invalidate_range_end: Some(on_end),
    // SAFETY: All other callbacks absent (null) is valid for the core.
    ..unsafe { core::mem::zeroed() }
};

/// Empties the log.
pub(crate) fn clear() {
    NEXT.store(0, SeqCst);
    DONE.store(0, SeqCst);
}

/// Unregisters the current notifier, if any.
pub(crate) fn stop() {
    // Before `init`, nothing can have registered.
    if !ready() {
        return;
    }
    let mut current = CURRENT.lock();
    if let Some(reg) = current.take() {
        reg.unregister();
    }
    PID.store(0, SeqCst);
}

/// Registers on `pid`'s mm (replacing any registration), log emptied. A
/// pid that cannot be inspected leaves the current registration alone.
/// The whole replacement runs under [`CURRENT`]'s lock.
pub(crate) fn start(pid: u32) -> Result {
    if !ready() {
        return Err(EAGAIN);
    }
    let mut current = CURRENT.lock();
    let mm = task::pid_mm(pid)?;
    // As pid= of `collapse` (process_madvise(2)): another process's mm
    // also needs CAP_SYS_NICE.
    if mm.remote_without_cap_sys_nice() {
        return Err(EPERM);
    }
    if let Some(reg) = current.take() {
        reg.unregister();
    }
    PID.store(0, SeqCst);
    clear();
    let reg = Registered::register(&mm)?;
    *current = Some(reg);
    PID.store(u64::from(pid), SeqCst);
    Ok(())
}

fn event_name(e: u64) -> &'static str {
    match e as u32 {
        bindings::mmu_notifier_event_MMU_NOTIFY_UNMAP => "MMU_NOTIFY_UNMAP",
        bindings::mmu_notifier_event_MMU_NOTIFY_CLEAR => "MMU_NOTIFY_CLEAR",
        bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_VMA => "MMU_NOTIFY_PROTECTION_VMA",
        bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_PAGE => "MMU_NOTIFY_PROTECTION_PAGE",
        bindings::mmu_notifier_event_MMU_NOTIFY_SOFT_DIRTY => "MMU_NOTIFY_SOFT_DIRTY",
        bindings::mmu_notifier_event_MMU_NOTIFY_RELEASE => "MMU_NOTIFY_RELEASE",
        bindings::mmu_notifier_event_MMU_NOTIFY_MIGRATE => "MMU_NOTIFY_MIGRATE",
        bindings::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE => "MMU_NOTIFY_EXCLUSIVE",
        _ => "MMU_NOTIFY_UNKNOWN",
    }
}

/// The `notifier` file.
pub(crate) fn show(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let claimed = NEXT.load(SeqCst);
    let n = DONE.load(SeqCst).min(CAPACITY);
    writeln!(
        f,
        "pid={} events={} dropped={}",
        PID.load(SeqCst),
        n,
        claimed.saturating_sub(CAPACITY)
    )?;
    for r in LOG.iter().take(n) {
        let kind = r.kind.load(SeqCst);
        writeln!(
            f,
            "{} event={} start={:#x} end={:#x}",
            if kind & END_BIT != 0 { "end" } else { "start" },
            event_name(kind & !END_BIT),
            r.start.load(SeqCst),
            r.end.load(SeqCst)
        )?;
    }
    Ok(())
}
