// SPDX-License-Identifier: GPL-2.0

//! Guards: every lock, reference and MMU-notifier range the collapse takes
//! is one of these, and its `Drop` releases it, so no path can leave one
//! held. They wrap raw kernel pointers that the collapse code never touches
//! directly.
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
//! Exceptions: `shmem_get_folio()` (swap-in) runs with no spinlock held and
//! returns a locked folio; `retract_page_tables()` takes no mmap lock at all
//! (the new folio's lock keeps PTEs from being refaulted, and the
//! retractable checks are repeated under the PTE lock).

use crate::sys::bindings;
use core::ptr::NonNull;

/// One reference on a folio; `Drop` puts it.
pub(crate) struct FolioRef(NonNull<bindings::folio>);

impl FolioRef {
    /// # Safety
    ///
    /// `folio` is a valid folio and the caller transfers one reference on it.
    pub(crate) unsafe fn from_raw(folio: NonNull<bindings::folio>) -> Self {
        Self(folio)
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::folio {
        self.0.as_ptr()
    }

    fn into_raw(self) -> NonNull<bindings::folio> {
        let ptr = self.0;
        core::mem::forget(self);
        ptr
    }
}

impl Drop for FolioRef {
    fn drop(&mut self) {
        // SAFETY: We own one reference (type invariant).
        unsafe { bindings::krs_folio_put(self.as_ptr()) }
    }
}

/// A locked folio we hold a reference on; `Drop` unlocks, then puts.
pub(crate) struct LockedFolio(FolioRef);

impl LockedFolio {
    /// # Safety
    ///
    /// `folio` is locked by the caller, who transfers the lock and one
    /// reference (e.g. what `shmem_get_folio()` returns).
    pub(crate) unsafe fn from_raw(folio: NonNull<bindings::folio>) -> Self {
        // SAFETY: The caller transfers a reference.
        Self(unsafe { FolioRef::from_raw(folio) })
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::folio {
        self.0.as_ptr()
    }

    /// `folio_isolate_lru()`; on failure the locked folio comes back.
    pub(crate) fn isolate_lru(self) -> Result<IsolatedFolio, LockedFolio> {
        // SAFETY: The folio is locked and referenced.
        if unsafe { bindings::krs_folio_isolate_lru(self.as_ptr()) } {
            let folio = self.into_raw();
            Ok(IsolatedFolio(folio))
        } else {
            Err(self)
        }
    }

    fn into_raw(self) -> NonNull<bindings::folio> {
        // SAFETY: `self.0` is read once and `self` forgotten: no double drop.
        let folio = unsafe { core::ptr::read(&self.0) };
        core::mem::forget(self);
        folio.into_raw()
    }
}

impl Drop for LockedFolio {
    fn drop(&mut self) {
        // SAFETY: We hold the lock (type invariant); the reference is put
        // by the `FolioRef` field afterwards.
        unsafe { bindings::krs_folio_unlock(self.as_ptr()) }
    }
}

/// A locked, referenced folio isolated from the LRU, i.e. one of the old
/// folios of a collapse. `Drop` is the rollback path (unlock, put back on
/// the LRU, put); [`IsolatedFolio::retire`] is the success path.
pub(crate) struct IsolatedFolio(NonNull<bindings::folio>);

impl IsolatedFolio {
    pub(crate) fn as_ptr(&self) -> *mut bindings::folio {
        self.0.as_ptr()
    }

    /// After a successful collapse: drop it from the stats and free it
    /// (our pin, the isolation reference and the page cache's references).
    pub(crate) fn retire(self, shmem: bool) {
        // SAFETY: The folio is locked, isolated and out of the page cache;
        // `krs_old_folio_retire` unlocks it and puts 2 + nr_pages refs,
        // exactly what we own. `self` is forgotten so Drop does not run.
        unsafe { bindings::krs_old_folio_retire(self.as_ptr(), shmem) };
        core::mem::forget(self);
    }
}

impl Drop for IsolatedFolio {
    fn drop(&mut self) {
        // SAFETY: Type invariant: locked, isolated (one LRU reference) and
        // pinned (one reference). Same order as collapse_file()'s rollback.
        unsafe {
            bindings::krs_folio_unlock(self.as_ptr());
            bindings::krs_folio_putback_lru(self.as_ptr());
            bindings::krs_folio_put(self.as_ptr());
        }
    }
}

/// `struct xa_state` of the page cache being collapsed.
pub(crate) struct XaState(bindings::xa_state);

impl XaState {
    /// `XA_STATE_ORDER(xas, &mapping->i_pages, index, order)`.
    pub(crate) fn new(mapping: *mut bindings::address_space, index: u64, order: u32) -> Self {
        let mut xas = bindings::xa_state::default();
        // SAFETY: `mapping` is a live address_space (callers hold a file
        // reference); this only initialises `xas`.
        unsafe { bindings::krs_xas_init(&mut xas, mapping, index as usize, order) };
        Self(xas)
    }

    pub(crate) fn raw(&mut self) -> *mut bindings::xa_state {
        &mut self.0
    }

    /// The index the state is at (`xas.xa_index`).
    pub(crate) fn index(&self) -> u64 {
        self.0.xa_index as u64
    }

    pub(crate) fn lock_irq(&mut self) -> XaLockIrq<'_> {
        XaLockIrq::lock(self)
    }
}

/// The page cache's xa_lock, irqs off; `Drop` unlocks.
pub(crate) struct XaLockIrq<'a>(&'a mut XaState);

impl<'a> XaLockIrq<'a> {
    /// Takes the xa_lock of the xarray `xas` walks.
    pub(crate) fn lock(xas: &'a mut XaState) -> Self {
        // SAFETY: `xas` was initialised on a live mapping's page cache.
        unsafe { bindings::krs_xas_lock_irq(xas.raw()) };
        Self(xas)
    }

    pub(crate) fn xas(&mut self) -> *mut bindings::xa_state {
        self.0.raw()
    }

    /// Drops the lock and hands the state back.
    pub(crate) fn unlock(self) -> &'a mut XaState {
        // SAFETY: Reads the reference once and forgets `self`, so the
        // unlock below is the only one.
        let xas = unsafe { core::ptr::read(&self.0) };
        core::mem::forget(self);
        // SAFETY: We hold the lock (type invariant).
        unsafe { bindings::krs_xas_unlock_irq(xas.raw()) };
        xas
    }
}

impl Drop for XaLockIrq<'_> {
    fn drop(&mut self) {
        // SAFETY: We hold the lock (type invariant).
        unsafe { bindings::krs_xas_unlock_irq(self.0.raw()) }
    }
}

/// `i_mmap_lock_read()`; `Drop` unlocks.
pub(crate) struct IMmapRead(*mut bindings::address_space);

impl IMmapRead {
    pub(crate) fn lock(mapping: *mut bindings::address_space) -> Self {
        // SAFETY: `mapping` is live (callers hold a file reference).
        unsafe { bindings::krs_i_mmap_lock_read(mapping) };
        Self(mapping)
    }
}

impl Drop for IMmapRead {
    fn drop(&mut self) {
        // SAFETY: We hold the read lock (type invariant).
        unsafe { bindings::krs_i_mmap_unlock_read(self.0) }
    }
}

/// An mm we hold an `mmget()` reference on; `Drop` is `mmput()`.
pub(crate) struct MmRef(NonNull<bindings::mm_struct>);

impl MmRef {
    /// # Safety
    ///
    /// The caller transfers one `mm_users` reference on `mm`.
    pub(crate) unsafe fn from_raw(mm: NonNull<bindings::mm_struct>) -> Self {
        Self(mm)
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::mm_struct {
        self.0.as_ptr()
    }

    pub(crate) fn read_lock(&self) -> MmapRead<'_> {
        // SAFETY: The mm is live while we hold `mm_users`.
        unsafe { bindings::krs_mmap_read_lock(self.as_ptr()) };
        MmapRead(self)
    }
}

impl Drop for MmRef {
    fn drop(&mut self) {
        // SAFETY: We own one `mm_users` reference (type invariant).
        unsafe { bindings::krs_mmput(self.as_ptr()) }
    }
}

/// The mmap lock, read side; `Drop` unlocks.
pub(crate) struct MmapRead<'a>(&'a MmRef);

impl MmapRead<'_> {
    pub(crate) fn mm(&self) -> *mut bindings::mm_struct {
        self.0.as_ptr()
    }
}

impl Drop for MmapRead<'_> {
    fn drop(&mut self) {
        // SAFETY: We hold the read lock (type invariant).
        unsafe { bindings::krs_mmap_read_unlock(self.0.as_ptr()) }
    }
}

/// A file reference (`get_file`/`fget`); `Drop` is `fput()`.
pub(crate) struct FileRef(NonNull<bindings::file>);

impl FileRef {
    /// # Safety
    ///
    /// The caller transfers one reference on `file`.
    pub(crate) unsafe fn from_raw(file: NonNull<bindings::file>) -> Self {
        Self(file)
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::file {
        self.0.as_ptr()
    }

    pub(crate) fn mapping(&self) -> *mut bindings::address_space {
        // SAFETY: The file is live while referenced.
        unsafe { bindings::krs_file_mapping(self.as_ptr()) }
    }

    pub(crate) fn is_shmem(&self) -> bool {
        // SAFETY: The file is live while referenced.
        unsafe { bindings::krs_file_is_shmem(self.as_ptr()) }
    }

    /// A shmem file whose THP policy allows a PMD-sized folio for a forced
    /// collapse (`shmem_allowable_huge_orders(..., shmem_huge_force)`).
    pub(crate) fn shmem_pmd_allowed(&self) -> bool {
        // SAFETY: The file is live while referenced.
        unsafe { bindings::krs_file_shmem_pmd_allowed(self.as_ptr()) }
    }
}

impl Drop for FileRef {
    fn drop(&mut self) {
        // SAFETY: We own one reference (type invariant).
        unsafe { bindings::krs_fput(self.as_ptr()) }
    }
}

/// A spinlock of the page tables (PMD lock or PTE lock); `Drop` unlocks.
pub(crate) struct SpinGuard(*mut bindings::spinlock_t);

impl SpinGuard {
    /// # Safety
    ///
    /// `lock` is a page-table lock that stays valid while held (the mmap
    /// lock, or the i_mmap lock plus the PMD lock, keeps the table alive).
    pub(crate) unsafe fn lock(lock: *mut bindings::spinlock_t) -> Self {
        // SAFETY: Valid lock per the function's contract.
        unsafe { bindings::krs_spin_lock(lock) };
        Self(lock)
    }

    /// `spin_lock_nested(lock, SINGLE_DEPTH_NESTING)`: the PTE lock inside
    /// a held PMD lock.
    ///
    /// # Safety
    ///
    /// As for [`SpinGuard::lock`], and the PMD lock is held.
    pub(crate) unsafe fn lock_nested(lock: *mut bindings::spinlock_t) -> Self {
        // SAFETY: Valid lock per the function's contract.
        unsafe { bindings::krs_spin_lock_nested(lock) };
        Self(lock)
    }

    /// Takes over a lock the caller already holds (e.g. the one
    /// `pte_offset_map_lock()` took).
    ///
    /// # Safety
    ///
    /// The caller holds `lock` and hands its release to the guard.
    pub(crate) unsafe fn adopt(lock: *mut bindings::spinlock_t) -> Self {
        Self(lock)
    }

    /// The lock held, for comparing the PMD and PTE locks.
    pub(crate) fn as_ptr(&self) -> *mut bindings::spinlock_t {
        self.0
    }
}

impl Drop for SpinGuard {
    fn drop(&mut self) {
        // SAFETY: We hold the lock (type invariant).
        unsafe { bindings::krs_spin_unlock(self.0) }
    }
}

/// A mapped PTE table (`pte_offset_map*()`); `Drop` is `pte_unmap()`.
/// Its lock, if any, is a separate [`SpinGuard`] declared after it, so the
/// lock is released first, as `pte_unmap_unlock()` does.
pub(crate) struct PteMap(NonNull<bindings::pte_t>);

impl PteMap {
    /// # Safety
    ///
    /// `pte` was returned by a `pte_offset_map*()` call not yet unmapped.
    pub(crate) unsafe fn from_raw(pte: NonNull<bindings::pte_t>) -> Self {
        Self(pte)
    }

    /// The entry for page `i` of the table's 2 MiB.
    pub(crate) fn entry(&self, i: usize) -> *mut bindings::pte_t {
        // SAFETY: A PTE table has PTRS_PER_PTE (512) entries; callers pass
        // i < 512.
        unsafe { self.0.as_ptr().add(i) }
    }
}

impl Drop for PteMap {
    fn drop(&mut self) {
        // SAFETY: Mapped by `pte_offset_map*()` (type invariant).
        unsafe { bindings::krs_pte_unmap(self.0.as_ptr()) }
    }
}

/// An MMU-notifier range (MMU_NOTIFY_CLEAR) between
/// `invalidate_range_start` and `_end`; `Drop` ends it.
pub(crate) struct NotifierRange(bindings::mmu_notifier_range);

impl NotifierRange {
    /// Starts invalidation of `[start, end)` of `mm`. May sleep.
    pub(crate) fn start(mm: *mut bindings::mm_struct, start: u64, end: u64) -> Self {
        let mut range = bindings::mmu_notifier_range::default();
        // SAFETY: `mm` is live: callers hold the mmap lock, or the i_mmap
        // lock on a mapping with a VMA of `mm` (which keeps the mm from
        // being freed). The notifiers only use `range` during each call.
        unsafe { bindings::krs_mmu_notifier_start(&mut range, mm, start as usize, end as usize) };
        crate::stats::count_notifier_range();
        Self(range)
    }
}

impl Drop for NotifierRange {
    fn drop(&mut self) {
        // SAFETY: Started in `start` (type invariant), ended only here.
        unsafe { bindings::krs_mmu_notifier_end(&mut self.0) }
    }
}

/// `rcu_read_lock()`; `Drop` unlocks.
pub(crate) struct RcuRead(());

impl RcuRead {
    pub(crate) fn lock() -> Self {
        // SAFETY: No preconditions.
        unsafe { bindings::krs_rcu_read_lock() };
        Self(())
    }
}

impl Drop for RcuRead {
    fn drop(&mut self) {
        // SAFETY: Paired with the lock in `lock` (type invariant).
        unsafe { bindings::krs_rcu_read_unlock() }
    }
}
