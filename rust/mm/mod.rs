// SPDX-License-Identifier: GPL-2.0

//! The mm layer: safe types over the kernel's memory management, owning
//! every raw kernel pointer and every FFI call the collapse makes. Each type
//! declares its invariants (`# Invariants`) and establishes them where it is
//! built (`// INVARIANT:`); the collapse engine (`crate::collapse`) is safe
//! Rust on top of it.
//!
//! What comes from the kernel crate: [`MmWithUser`] / [`Mm`] (an mm and its
//! references), `MmapReadGuard` (the mmap lock, wrapped by [`MmapRead`] to
//! add `find_vma()`), [`VmaRef`] (a VMA under the mmap lock), `ARef` /
//! `AlwaysRefCounted` (folio and file references), [`File`], `Opaque`,
//! `kernel::sync::rcu`, and the page-size constants of `kernel::page`. 7.2
//! has no folio, page-cache cursor or page-table abstraction, so those are
//! the module's own (`folio`, `page_cache`, `pgtable`).
//!
//! # Lock order
//!
//! Written once, here; mirrors mm/khugepaged.c:
//!
//! 1. mmap lock (read) — only around VMA lookups and PMD installation;
//!    dropped for the page-cache work, then the VMA is revalidated.
//! 2. folio locks — the old small folios (in index order: trylocked when
//!    found in the page cache; a swap entry or a folio not uptodate is
//!    brought in by `shmem_get_folio()`, which returns it locked with a
//!    sleeping lock) and the new huge folio, held from the scan until the
//!    collapse commits or rolls back; they keep faults and truncation out.
//! 3. i_mmap lock (read) — for the hole re-check and for retraction.
//! 4. xa_lock (irq) of the page cache — nested inside i_mmap.
//! 5. MMU-notifier range — started before, ended after the PMD lock.
//! 6. PMD lock, then the PTE lock nested inside it when they differ.
//!
//! Which of these locks the types enforce: each guard is obtained from the
//! object it locks and borrows it (the PMD lock from its `PmdRef`, the PTE
//! lock from its mapped table and the PMD lock it nests in), so none
//! outlives its lock or names another. The order itself, and "no spinlock
//! held" before a call that may sleep (marked "May sleep"), are
//! conventions, kept by the engine's structure and checked at run time by
//! lockdep and might_sleep() on the debug kernel.
//!
//! Exceptions: `shmem_get_folio()` (swap-in) runs with no spinlock held and
//! returns a locked folio; `retract_page_tables()` takes no mmap lock at all
//! (the new folio's lock keeps PTEs from being refaulted, and the
//! retractable checks are repeated under the PTE lock).

// With `ffi`, the only module where the crate root's `deny(unsafe_code)`
// is lifted.
#![allow(unsafe_code)]

/// Methods that read one thing of an object through a C helper taking the
/// object's pointer (`self.$ptr()`), which the type's invariant (or trait
/// contract) keeps valid while `self` is borrowed.
macro_rules! c_reads {
    ($vis:vis, $ptr:ident; $($(#[$doc:meta])* fn $name:ident -> $ty:ty = $helper:ident;)*) => {$(
        $(#[$doc])*
        $vis fn $name(&self) -> $ty {
            // SAFETY: `self.$ptr()` is valid while `self` is borrowed (the
            // type's invariant); the helper only reads it.
            unsafe { bindings::$helper(self.$ptr()) }
        }
    )*};
}

pub(crate) mod folio;
pub(crate) mod kthread;
pub(crate) mod page_cache;
pub(crate) mod pgtable;
pub(crate) mod task;
pub(crate) mod vma;

use crate::ffi::bindings;

pub(crate) use crate::abi::{HPAGE_PMD_NR, HPAGE_PMD_ORDER, HPAGE_PMD_SIZE, PAGE_SHIFT, PAGE_SIZE};
pub(crate) use kernel::fs::file::LocalFile;
pub(crate) use kernel::fs::File;
pub(crate) use kernel::mm::virt::VmaRef;
pub(crate) use kernel::mm::{Mm, MmWithUser};

// The pure parts' sizes are the kernel's.
const _: () =
    assert!(PAGE_SIZE == kernel::page::PAGE_SIZE && PAGE_SHIFT == kernel::page::PAGE_SHIFT);

pub(crate) use folio::{LockedFolio, NewFolio, OldFolios};
pub(crate) use page_cache::{AddressSpace, Entry, XaCursor};
pub(crate) use vma::{FileExt, MmapRead, Tva, VmaExt};

/// khugepaged's sysfs knobs a `mode=khugepaged` collapse follows
/// (`/sys/kernel/mm/transparent_hugepage/khugepaged/`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KhugepagedKnobs {
    /// `max_ptes_none`: at most this many of an extent's 512 pages absent.
    pub(crate) max_ptes_none: usize,
    /// `max_ptes_swap`: at most this many swapped out.
    pub(crate) max_ptes_swap: usize,
    /// `defrag`: allocate with direct reclaim and compaction.
    pub(crate) defrag: bool,
    /// `pages_to_scan`: pages a pass scans.
    pub(crate) pages_to_scan: u32,
    /// `scan_sleep_millisecs`: the sleep between passes.
    pub(crate) scan_sleep_millisecs: u32,
    /// `alloc_sleep_millisecs`: the sleep after a failed allocation.
    pub(crate) alloc_sleep_millisecs: u32,
}

/// Reads khugepaged's knobs now (each a `READ_ONCE()` of its variable).
pub(crate) fn khugepaged_knobs() -> KhugepagedKnobs {
    let mut k = bindings::krs_khugepaged_knobs::default();
    // SAFETY: Fills `k`; reads the kernel's variables.
    unsafe { bindings::krs_khugepaged_knobs(&mut k) };
    KhugepagedKnobs {
        max_ptes_none: k.max_ptes_none as usize,
        max_ptes_swap: k.max_ptes_swap as usize,
        defrag: k.defrag,
        pages_to_scan: k.pages_to_scan,
        scan_sleep_millisecs: k.scan_sleep_millisecs,
        alloc_sleep_millisecs: k.alloc_sleep_millisecs,
    }
}

/// The vm events `collapse_scan_file()` counts when a threshold stops it.
#[derive(Clone, Copy)]
pub(crate) enum ScanEvent {
    /// `THP_SCAN_EXCEED_NONE_PTE`.
    ExceedNonePte,
    /// `THP_SCAN_EXCEED_SWAP_PTE`.
    ExceedSwapPte,
}

/// `count_vm_event()` of `event`.
pub(crate) fn count_scan_event(event: ScanEvent) {
    // SAFETY: Bumps a per-CPU vm event counter; no preconditions.
    unsafe {
        match event {
            ScanEvent::ExceedNonePte => bindings::krs_count_scan_exceed_none(),
            ScanEvent::ExceedSwapPte => bindings::krs_count_scan_exceed_swap(),
        }
    }
}

/// `lru_add_drain_all()`: drains every CPU's LRU caches. May sleep.
pub(crate) fn lru_add_drain_all() {
    // It sleeps, so it must not be called under a spinlock: a convention
    // (as in the kernel crate, might_sleep() rules are not carried by
    // types; the debug kernel's might_sleep() checks them at run time), kept
    // by its callers: no spinlock held, at most the mmap lock (read), as
    // madvise_collapse() holds it when it drains.
    // SAFETY: No memory-safety precondition.
    unsafe { bindings::krs_lru_add_drain_all() }
}

/// `lru_add_drain()`: drains this CPU's LRU caches.
pub(crate) fn lru_add_drain() {
    // SAFETY: No preconditions.
    unsafe { bindings::krs_lru_add_drain() }
}

/// `cond_resched()`.
pub(crate) fn cond_resched() {
    // SAFETY: No preconditions; called between extents with no lock held.
    unsafe { bindings::krs_cond_resched() }
}

/// Runs `f` inside a block plug (`blk_start_plug()` .. `blk_finish_plug()`),
/// as madvise(2) runs every advice (madvise_do_behavior()). Block I/O
/// submitted meanwhile (collapse_file()'s readahead) is held in the task's
/// plug until the plug is full (`BLK_MAX_REQUEST_COUNT` requests), the task
/// sleeps, or `f` returns: a folio whose read is still plugged stays locked,
/// and the collapse finds it so (SCAN_PAGE_LOCK) as MADV_COLLAPSE does. A
/// plug nested in another one is a no-op.
pub(crate) fn with_blk_plug<R>(f: impl FnOnce() -> R) -> R {
    let mut plug = core::mem::MaybeUninit::<bindings::blk_plug>::uninit();
    // SAFETY: `plug` is writable memory that blk_start_plug() initializes;
    // it stays at this address until blk_finish_plug() below takes it out
    // of `current->plug` (this frame outlives `f`, and `plug` is not moved).
    unsafe { bindings::blk_start_plug(plug.as_mut_ptr()) };
    let r = f();
    // SAFETY: The plug started above, in this task, and still in place.
    unsafe { bindings::blk_finish_plug(plug.as_mut_ptr()) };
    r
}

/// `TASK_SIZE` of the current task.
pub(crate) fn task_size() -> usize {
    // SAFETY: No preconditions.
    unsafe { bindings::krs_task_size() }
}
