// SPDX-License-Identifier: GPL-2.0

//! Folios: a borrowed [`Folio`], references on it (`ARef<Folio>`), and the
//! states a collapse moves the old and the new folios through, each a type
//! whose `Drop` undoes what it holds: [`LockedFolio`] → [`IsolatedFolio`]
//! (gathered in [`OldFolios`], which owns the TLB flush their unmapping
//! deferred), and [`NewFolio`] → [`CommittedFolio`].

use super::page_cache::AddressSpace;
use super::{Mm, HPAGE_PMD_NR, HPAGE_PMD_ORDER};
use crate::ffi::bindings;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::Deref;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::aref::{ARef, AlwaysRefCounted};
use kernel::types::Opaque;

/// A folio (`struct folio`).
///
/// # Invariants
///
/// A `&Folio` is valid for its lifetime: the holder owns a reference on it,
/// or holds a lock under which it cannot be freed (the page cache's
/// xa_lock, or a locked folio).
#[repr(transparent)]
pub(crate) struct Folio(Opaque<bindings::folio>);

// SAFETY: `folio_get()` and `folio_put()` keep the folio alive while a
// reference exists, and the last put frees it.
unsafe impl AlwaysRefCounted for Folio {
    fn inc_ref(&self) {
        // SAFETY: The folio is valid (type invariant).
        unsafe { bindings::krs_folio_get(self.as_raw()) }
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives up one reference it owns.
        unsafe { bindings::krs_folio_put(obj.cast().as_ptr()) }
    }
}

impl Folio {
    /// # Safety
    ///
    /// `ptr` is a valid folio and stays so for `'a` (a reference is held,
    /// or a lock that keeps it from being freed).
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::folio) -> &'a Self {
        // SAFETY: `Folio` is a transparent wrapper; validity per contract.
        unsafe { &*ptr.cast() }
    }

    pub(super) fn as_raw(&self) -> *mut bindings::folio {
        self.0.get()
    }

    /// `folio_order()`.
    pub(crate) fn order(&self) -> u32 {
        // SAFETY: Valid folio (type invariant); reads its flags.
        unsafe { bindings::krs_folio_order(self.as_raw()) }
    }

    /// `folio_order() == HPAGE_PMD_ORDER`.
    pub(crate) fn is_pmd_order(&self) -> bool {
        self.order() == HPAGE_PMD_ORDER
    }

    /// `folio_nr_pages()`.
    pub(crate) fn nr_pages(&self) -> usize {
        // SAFETY: A valid folio (type invariant); only reads it.
        let nr = unsafe { bindings::krs_folio_nr_pages(self.as_raw()) };
        usize::try_from(nr).unwrap_or(0)
    }

    c_reads! { pub(crate), as_raw;
        /// `folio_pfn()`.
        fn pfn -> usize = krs_folio_pfn;
        /// `folio->index`.
        fn index -> usize = krs_folio_index;
        /// `folio_test_uptodate()`.
        fn is_uptodate -> bool = krs_folio_test_uptodate;
        /// `folio_test_lru()`.
        fn is_lru -> bool = krs_folio_test_lru;
        /// `folio_test_dirty()`.
        fn is_dirty -> bool = krs_folio_test_dirty;
        /// `folio_test_writeback()`.
        fn is_writeback -> bool = krs_folio_test_writeback;
        /// `folio_ref_count()`.
        fn ref_count -> i32 = krs_folio_ref_count;
        /// `folio_expected_ref_count()`: the page cache's and the mappings'.
        fn expected_ref_count -> i32 = krs_folio_expected_ref_count;
    }

    /// `folio_mapping(folio) == mapping`: still in that page cache.
    pub(crate) fn belongs_to(&self, mapping: &AddressSpace) -> bool {
        // SAFETY: A valid folio (type invariant); only reads it.
        unsafe { bindings::krs_folio_mapping(self.as_raw()) == mapping.as_raw() }
    }

    /// `folio_trylock()` and a reference: the folio, locked, or `None`.
    pub(crate) fn trylock(&self) -> Option<LockedFolio> {
        // SAFETY: Valid folio (type invariant).
        if !unsafe { bindings::krs_folio_trylock(self.as_raw()) } {
            return None;
        }
        // INVARIANT: We just took the lock; `ARef::from` takes a reference.
        Some(LockedFolio(ARef::from(self)))
    }
}

/// A folio seen in the page cache under RCU only: nothing may be read from
/// it until [`SpeculativeFolio::try_get`] took a reference.
///
/// # Invariants
///
/// The pointer was loaded from the page cache under the RCU read lock held
/// for `'rcu`: its `struct folio` memory stays valid (it may be freed and
/// reused as a folio, which `folio_try_get()` detects).
pub(crate) struct SpeculativeFolio<'rcu>(NonNull<bindings::folio>, PhantomData<&'rcu ()>);

impl SpeculativeFolio<'_> {
    /// # Safety
    ///
    /// As the type invariant, for the lifetime chosen.
    pub(super) unsafe fn new(ptr: NonNull<bindings::folio>) -> Self {
        Self(ptr, PhantomData)
    }

    /// `folio_try_get()`: a reference, unless the folio is being freed.
    pub(crate) fn try_get(&self) -> Option<ARef<Folio>> {
        // SAFETY: Under RCU the memory is valid (type invariant), and
        // folio_try_get() fails on a folio whose count reached zero.
        if !unsafe { bindings::krs_folio_try_get(self.0.as_ptr()) } {
            return None;
        }
        // SAFETY: folio_try_get() gave us the reference we hand over.
        Some(unsafe { ARef::from_raw(self.0.cast()) })
    }
}

/// A locked folio we hold a reference on; `Drop` unlocks, then puts.
///
/// # Invariants
///
/// The folio is locked by us.
#[must_use = "dropping it unlocks the folio"]
pub(crate) struct LockedFolio(ARef<Folio>);

impl Deref for LockedFolio {
    type Target = Folio;

    fn deref(&self) -> &Folio {
        &self.0
    }
}

impl LockedFolio {
    /// # Safety
    ///
    /// `ptr` is a folio locked by the caller, who hands over the lock and
    /// one reference (as `shmem_get_folio()` and `filemap_lock_folio()`
    /// return them).
    pub(super) unsafe fn from_raw(ptr: NonNull<bindings::folio>) -> Self {
        // INVARIANT: The caller hands over the lock.
        // SAFETY: The caller hands over a reference.
        Self(unsafe { ARef::from_raw(ptr.cast()) })
    }

    /// `folio_isolate_lru()`; on failure the locked folio comes back.
    pub(crate) fn isolate_lru(self) -> Result<IsolatedFolio, LockedFolio> {
        // SAFETY: The folio is locked and referenced (type invariant).
        if !unsafe { bindings::krs_folio_isolate_lru(self.as_raw()) } {
            return Err(self);
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped: its reference moves out once.
        let folio = unsafe { core::ptr::read(&this.0) };
        // INVARIANT: Locked (ours), isolated (just now), and referenced.
        Ok(IsolatedFolio(folio))
    }
}

impl Drop for LockedFolio {
    fn drop(&mut self) {
        // SAFETY: We hold the lock (type invariant); the reference is put
        // by the `ARef` field afterwards.
        unsafe { bindings::krs_folio_unlock(self.as_raw()) }
    }
}

/// A locked, referenced folio isolated from the LRU: one of the old folios
/// of a collapse. `Drop` is the rollback (unlock, put back on the LRU,
/// put); [`IsolatedFolio::retire`] the success path.
///
/// # Invariants
///
/// The folio is locked by us and isolated from the LRU by us (the
/// isolation holds one more reference, besides the `ARef`'s).
#[must_use = "dropping it puts the folio back on the LRU"]
pub(crate) struct IsolatedFolio(ARef<Folio>);

impl Deref for IsolatedFolio {
    type Target = Folio;

    fn deref(&self) -> &Folio {
        &self.0
    }
}

impl IsolatedFolio {
    /// `filemap_release_folio()`: drops private data (buffers); false if
    /// it cannot be dropped. May sleep.
    pub(crate) fn release_private(&self) -> bool {
        // SAFETY: Locked folio (type invariant).
        unsafe { bindings::krs_folio_release(self.as_raw()) }
    }

    /// `folio_mapped()`.
    pub(crate) fn is_mapped(&self) -> bool {
        // SAFETY: Locked folio (type invariant).
        unsafe { bindings::krs_folio_mapped(self.as_raw()) }
    }

    /// `try_to_unmap(folio, TTU_IGNORE_MLOCK | TTU_BATCH_FLUSH)`: the TLB
    /// flush is deferred into the current task's batch, which `batch`'s
    /// owner flushes before any old folio goes back (see [`OldFolios`]).
    pub(crate) fn unmap(&self, _batch: &UnmapBatch) {
        // SAFETY: Locked folio (type invariant); try_to_unmap may sleep.
        unsafe { bindings::krs_folio_unmap(self.as_raw()) }
    }

    /// Gives up the folio without the rollback, for the success path:
    /// the caller takes over the lock, the isolation and our reference.
    fn into_raw(self) -> *mut bindings::folio {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped: its reference moves out once.
        let folio = unsafe { core::ptr::read(&this.0) };
        ARef::into_raw(folio).cast().as_ptr()
    }
}

impl Drop for IsolatedFolio {
    fn drop(&mut self) {
        // SAFETY: Locked and isolated (type invariant): unlock, then give
        // the isolation reference back through the LRU, in the order of
        // collapse_file()'s rollback; the `ARef` puts our own after.
        unsafe {
            bindings::krs_folio_unlock(self.as_raw());
            bindings::krs_folio_putback_lru(self.as_raw());
        }
    }
}

/// The current task's deferred TLB flush for pages unmapped with
/// `TTU_BATCH_FLUSH` (`current->tlb_ubc`). Only [`OldFolios`] makes one,
/// and flushes it; not `Send`: the batch is per task.
pub(crate) struct UnmapBatch(PhantomData<*mut ()>);

impl UnmapBatch {
    /// `try_to_unmap_flush()`. Waits for other CPUs (no spinlock may be
    /// held, which holds here: no spinlock guard of this layer is alive in
    /// the callers).
    fn flush(&self) {
        // SAFETY: Flushes the current task's batch; no preconditions.
        unsafe { bindings::krs_try_to_unmap_flush() }
    }
}

/// The old folios isolated so far, in index order, and the TLB flush that
/// unmapping them deferred.
///
/// `Drop` flushes first, then puts every folio back (rollback): upstream
/// flushes on every exit of the scan loop ("Do it anyway, to clear the
/// state"), because a CPU may still hold a writable TLB entry for an old
/// page, and that page must not go back to the LRU (to be swapped out,
/// migrated or freed) while such a write can still land in it.
pub(crate) struct OldFolios {
    folios: KVec<IsolatedFolio>,
    batch: UnmapBatch,
}

impl OldFolios {
    /// Room for one extent's folios.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            folios: KVec::with_capacity(HPAGE_PMD_NR, GFP_KERNEL)?,
            batch: UnmapBatch(PhantomData),
        })
    }

    /// The batch a folio's unmapping defers its flush into.
    pub(crate) fn batch(&self) -> &UnmapBatch {
        &self.batch
    }

    /// Appends a folio (never allocates: the capacity is one extent).
    pub(crate) fn push(&mut self, folio: IsolatedFolio) -> Result<(), IsolatedFolio> {
        self.folios.push_within_capacity(folio).map_err(|e| e.0)
    }

    /// `try_to_unmap_flush()`: flushes what was batched so far.
    pub(crate) fn flush_tlb(&self) {
        self.batch.flush();
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &IsolatedFolio> {
        self.folios.iter()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.folios.is_empty()
    }

    /// The success path: flushed, then every folio retired: dropped from
    /// the stats, unlocked, and every reference we and the page cache held
    /// put (the folios were replaced in the page cache), in batches.
    pub(crate) fn retire_all(mut self, shmem: bool) {
        self.flush_tlb();
        let mut batch = [core::ptr::null_mut::<bindings::folio>(); RETIRE_BATCH];
        let mut n = 0;
        for folio in self.folios.drain_all() {
            batch[n] = folio.into_raw();
            n += 1;
            if n == RETIRE_BATCH {
                retire(&batch[..n], shmem);
                n = 0;
            }
        }
        if n > 0 {
            retire(&batch[..n], shmem);
        }
    }
}

/// Old folios retired per helper call (its stats are summed over each).
const RETIRE_BATCH: usize = 64;

/// Retires `folios`, each given up by [`IsolatedFolio::into_raw`]: the
/// helper unlocks each and puts 2 + nr_pages references, what we (the
/// `ARef` and the isolation) and the old page-cache entries held.
fn retire(folios: &[*mut bindings::folio], shmem: bool) {
    let nr = u32::try_from(folios.len()).unwrap_or(0);
    // SAFETY: `nr` folios (the slice's length), each locked, isolated, ours
    // (`into_raw`) and out of the page cache.
    unsafe { bindings::krs_old_folios_retire(folios.as_ptr().cast_mut(), nr, shmem) };
}

impl Drop for OldFolios {
    fn drop(&mut self) {
        // Before the folios (the field) are unlocked and put back.
        self.batch.flush();
    }
}

/// A huge folio just allocated (`alloc_charge_folio()`), not yet charged.
///
/// # Invariants
///
/// A PMD-order folio whose only reference is ours.
#[must_use = "dropping it frees the folio"]
pub(crate) struct UnchargedFolio(NonNull<bindings::folio>);

impl UnchargedFolio {
    /// `__folio_alloc(GFP_TRANSHUGE, HPAGE_PMD_ORDER)` on the local node,
    /// counting `THP_COLLAPSE_ALLOC` or `THP_COLLAPSE_ALLOC_FAILED`.
    pub(crate) fn alloc() -> Option<Self> {
        // SAFETY: Allocation has no preconditions.
        let folio = NonNull::new(unsafe { bindings::krs_folio_alloc_pmd() })?;
        // INVARIANT: A fresh folio: its one reference is ours.
        Some(Self(folio))
    }

    /// Counts `THP_COLLAPSE_ALLOC_FAILED`, for a failure injected in place
    /// of the allocation.
    pub(crate) fn count_alloc_failed() {
        // SAFETY: Bumps a vm event counter; no preconditions.
        unsafe { bindings::krs_count_collapse_alloc_failed() }
    }

    /// `mem_cgroup_charge()` to `mm`'s memcg (the current task's when
    /// `None`), then the set-up at the top of collapse_file(): locked,
    /// swap-backed for shmem, `index` and `mapping` set. On a failed charge
    /// the folio is freed.
    pub(crate) fn charge(
        self,
        mm: Option<&Mm>,
        mapping: &AddressSpace,
        index: usize,
        shmem: bool,
    ) -> Result<NewFolio, ()> {
        let folio = ManuallyDrop::new(self).0;
        let mm = mm.map_or(core::ptr::null_mut(), |m| m.as_raw());
        // SAFETY: We own the only reference (type invariant); a null mm
        // charges the current task's memcg, as mem_cgroup_charge() allows.
        if unsafe { bindings::krs_folio_memcg_charge(folio.as_ptr(), mm) } != 0 {
            // SAFETY: Drops our only reference.
            unsafe { bindings::krs_folio_put(folio.as_ptr()) };
            return Err(());
        }
        // SAFETY: The folio is ours alone: locking it with
        // __folio_set_locked and setting index and mapping is what
        // collapse_file() does before publishing it.
        unsafe { bindings::krs_new_folio_init(folio.as_ptr(), mapping.as_raw(), index, shmem) };
        // INVARIANT: Charged, locked, ours alone, never published.
        Ok(NewFolio(folio))
    }
}

impl Drop for UnchargedFolio {
    fn drop(&mut self) {
        // SAFETY: Our only reference (type invariant).
        unsafe { bindings::krs_folio_put(self.0.as_ptr()) }
    }
}

/// The huge folio being filled: charged, locked, `mapping` and `index`
/// set. `Drop` frees it (rollback).
///
/// # Invariants
///
/// Locked and referenced by us, and never published: no one else can
/// reach it.
#[must_use = "dropping it frees the new folio"]
pub(crate) struct NewFolio(NonNull<bindings::folio>);

impl NewFolio {
    pub(super) fn as_raw(&self) -> *mut bindings::folio {
        self.0.as_ptr()
    }

    /// `folio_pfn()` of the new folio.
    pub(crate) fn pfn(&self) -> usize {
        // SAFETY: Ours (type invariant).
        unsafe { bindings::krs_folio_pfn(self.as_raw()) }
    }

    /// `copy_mc_highpage()` of every page of `src` into the pages of the
    /// new folio from `dst` on; `Err` when a source page is poisoned (or
    /// `src` does not fit).
    pub(crate) fn copy_folio_from(&self, dst: usize, src: &IsolatedFolio) -> Result<(), ()> {
        let nr = src.nr_pages();
        if dst.checked_add(nr).is_none_or(|end| end > HPAGE_PMD_NR) {
            return Err(());
        }
        // SAFETY: `[dst, dst + nr)` is in range (checked; `src` is locked, so
        // its size holds); the new folio is ours: nothing changes under us.
        let copied = unsafe { bindings::krs_copy_mc_folio(self.as_raw(), dst, src.as_raw()) };
        if copied == nr {
            Ok(())
        } else {
            Err(())
        }
    }

    /// `clear_highpage()` of pages `[dst, dst + nr)` (holes).
    pub(crate) fn zero_pages(&self, dst: usize, nr: usize) {
        if nr == 0 || dst.checked_add(nr).is_none_or(|end| end > HPAGE_PMD_NR) {
            return;
        }
        // SAFETY: The pages are in range (checked); the new folio is ours.
        unsafe { bindings::krs_zero_pages(self.as_raw(), dst, nr) }
    }

    /// Before the store: the stats, uptodate, the page cache's references
    /// (512), dirty for shmem, and the LRU, as collapse_file() does.
    pub(crate) fn publish(&self, shmem: bool) {
        // SAFETY: Locked and ours (type invariant): no one sees it yet.
        unsafe { bindings::krs_new_folio_publish(self.as_raw(), shmem) }
    }

    /// After the store: the page cache owns it; it stays locked until the
    /// returned value is dropped or unlocked.
    pub(crate) fn into_page_cache(self) -> CommittedFolio {
        let this = ManuallyDrop::new(self);
        // INVARIANT: Still locked by us; the page cache holds references.
        CommittedFolio(this.0)
    }
}

impl Drop for NewFolio {
    fn drop(&mut self) {
        // SAFETY: Never published (type invariant): only we reference it.
        unsafe {
            bindings::krs_new_folio_clear_mapping(self.as_raw());
            bindings::krs_folio_unlock(self.as_raw());
            bindings::krs_folio_put(self.as_raw());
        }
    }
}

/// The new huge folio once stored in the page cache, still locked (faults
/// wait on its lock while the page tables are retracted). `Drop` unlocks.
///
/// # Invariants
///
/// Locked by us; the page cache holds references on it.
#[must_use = "dropping it unlocks the folio"]
pub(crate) struct CommittedFolio(NonNull<bindings::folio>);

impl Drop for CommittedFolio {
    fn drop(&mut self) {
        // SAFETY: We hold the lock (type invariant); the page cache's
        // references keep it alive.
        unsafe { bindings::krs_folio_unlock(self.0.as_ptr()) }
    }
}
