// SPDX-License-Identifier: GPL-2.0

//! Folios: a borrowed [`Folio`], references on it (`ARef<Folio>`), and the
//! states a collapse moves the old and the new folios through, each a type
//! whose `Drop` undoes what it holds, each step consuming the state before
//! it (the page-cache steps are in `page_cache`):
//!
//! - old folios: [`LockedFolio`] → [`OldFolios::isolate`] (an
//!   [`IsolatedFolio`] exists only inside [`OldFolios`], which owns the TLB
//!   flush its unmapping deferred) → [`OldFolios::finish`] (flushed:
//!   [`IsolatedExtent`]) → the commit → [`ReplacedFolios`] (retired);
//! - the new folio: [`UnchargedFolio`] → [`NewFolio`] →
//!   [`NewFolio::copy_from`] ([`CopiedFolio`]) → the commit →
//!   [`CommittedFolio`].

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
        /// `folio_nid()`.
        fn nid -> i32 = krs_folio_nid;
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
    /// Only [`OldFolios::isolate`] calls it: an isolated folio lives in the
    /// set that owns its deferred TLB flush.
    fn isolate_lru(self, index: usize, nr: usize) -> Result<IsolatedFolio, LockedFolio> {
        // SAFETY: The folio is locked and referenced (type invariant).
        if !unsafe { bindings::krs_folio_isolate_lru(self.as_raw()) } {
            return Err(self);
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped: its reference moves out once.
        let folio = unsafe { core::ptr::read(&this.0) };
        // INVARIANT: Locked (ours), isolated (just now), and referenced;
        // `index` and `nr` read by the caller under the lock.
        Ok(IsolatedFolio { folio, index, nr })
    }
}

impl LockedFolio {
    /// The folio as a PMD-order one, if it is (`folio_order() ==
    /// HPAGE_PMD_ORDER`; stable: it is locked).
    pub(crate) fn as_pmd_order(&self) -> Option<&PmdFolio> {
        let pmd_order = self.is_pmd_order();
        // SAFETY: `PmdFolio` is a transparent `LockedFolio`; its invariant
        // (checked above) holds while the folio is locked (`self` borrowed).
        pmd_order.then(|| unsafe { &*core::ptr::from_ref(self).cast::<PmdFolio>() })
    }
}

/// A locked folio of PMD order: its pages `0..HPAGE_PMD_NR` are all its own
/// (`folio_page(folio, i)` stays inside it for any PTE index).
///
/// # Invariants
///
/// `folio_order() == HPAGE_PMD_ORDER`.
#[repr(transparent)]
pub(crate) struct PmdFolio(LockedFolio);

impl Deref for PmdFolio {
    type Target = LockedFolio;

    fn deref(&self) -> &LockedFolio {
        &self.0
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
/// isolation holds one more reference, besides the `ARef`'s). `index` and
/// `nr` are its `folio->index` and page count (stable: it is locked).
#[must_use = "dropping it puts the folio back on the LRU"]
pub(crate) struct IsolatedFolio {
    folio: ARef<Folio>,
    index: usize,
    nr: usize,
}

impl Deref for IsolatedFolio {
    type Target = Folio;

    fn deref(&self) -> &Folio {
        &self.folio
    }
}

impl IsolatedFolio {
    /// `folio->index`, read once when it was isolated.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// `folio_nr_pages()`, read once when it was isolated.
    pub(crate) fn nr_pages(&self) -> usize {
        self.nr
    }

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
    /// flush is deferred into the current task's batch. An `IsolatedFolio`
    /// is only reachable inside an [`OldFolios`], which flushes that batch
    /// before any of its folios goes back or is copied. May sleep.
    pub(crate) fn unmap(&self) {
        // SAFETY: Locked folio (type invariant).
        unsafe { bindings::krs_folio_unmap(self.as_raw()) }
    }

    /// Gives up the folio without the rollback, for the success path:
    /// the caller takes over the lock, the isolation and our reference.
    fn into_raw(self) -> NonNull<bindings::folio> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped: its reference moves out once.
        let folio = unsafe { core::ptr::read(&this.folio) };
        ARef::into_raw(folio).cast()
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

/// `try_to_unmap_flush()`: the current task's deferred TLB flush for pages
/// unmapped with `TTU_BATCH_FLUSH` (`current->tlb_ubc`). Waits for other
/// CPUs: must not be called with a spinlock held (a convention: the
/// callers below hold none of this layer's spinlock guards).
fn flush_unmap_batch() {
    // SAFETY: Flushes the current task's batch; no preconditions.
    unsafe { bindings::krs_try_to_unmap_flush() }
}

/// Old folios of one extent, locked and isolated: the part of
/// [`OldFolios`], [`IsolatedExtent`] and [`ReplacedFolios`] they share.
///
/// # Invariants
///
/// Each folio is of `mapping` (checked while it was locked, which keeps
/// it so), lies inside `[start, start + HPAGE_PMD_NR)`, and they are in
/// index order without overlap: the last one ends at or below `next`;
/// `covered` is the sum of their page counts.
struct Isolated<'m> {
    folios: KVec<IsolatedFolio>,
    mapping: &'m AddressSpace,
    start: usize,
    next: usize,
    covered: usize,
}

impl Drop for Isolated<'_> {
    fn drop(&mut self) {
        // Before the folios (the field) are unlocked and put back: upstream
        // flushes on every exit of the scan loop ("Do it anyway, to clear
        // the state"), because a CPU may still hold a writable TLB entry
        // for an old page, and that page must not go back to the LRU (to be
        // swapped out, migrated or freed) while such a write can land.
        if !self.folios.is_empty() {
            flush_unmap_batch();
        }
    }
}

/// Why a folio cannot join the old folios.
pub(crate) enum IsolateError {
    /// Not (any more) in this mapping's page cache (`folio_mapping()`:
    /// truncated).
    NotInMapping,
    /// Outside the extent, or overlapping a folio already isolated: the
    /// page cache changed where the walk had been (or the place was found
    /// for another folio).
    OutOfPlace,
    /// `folio_isolate_lru()` failed (`SCAN_DEL_PAGE_LRU`).
    NotLru,
}

/// Where a locked folio goes among the old folios: its index and size,
/// read under its lock by [`OldFolios::place`], for [`OldFolios::isolate`].
pub(crate) struct Place {
    folio: NonNull<bindings::folio>,
    index: usize,
    nr: usize,
}

/// The old folios of an extent being collapsed, isolated so far, in index
/// order, and the TLB flush that unmapping them deferred. `Drop` flushes
/// first, then puts every folio back (rollback). [`OldFolios::finish`]
/// flushes and ends the isolation.
pub(crate) struct OldFolios<'m>(Isolated<'m>);

impl<'m> OldFolios<'m> {
    /// Room for the folios of the extent at `start` (a multiple of
    /// `HPAGE_PMD_NR`) of `mapping`.
    pub(crate) fn new(mapping: &'m AddressSpace, start: usize) -> Result<Self> {
        if start % HPAGE_PMD_NR != 0 {
            return Err(EINVAL);
        }
        // INVARIANT: No folio yet.
        Ok(Self(Isolated {
            folios: KVec::with_capacity(HPAGE_PMD_NR, GFP_KERNEL)?,
            mapping,
            start,
            next: start,
            covered: 0,
        }))
    }

    /// The place of `folio` in the extent (`folio_mapping()`, index and
    /// size in one call): refused unless it is in this mapping, inside the
    /// extent and after the last folio isolated.
    pub(crate) fn place(&self, folio: &LockedFolio) -> Result<Place, IsolateError> {
        let o = &self.0;
        let mut index = 0;
        // SAFETY: A locked folio (`LockedFolio`); only reads it.
        let nr =
            unsafe { bindings::krs_folio_place(folio.as_raw(), o.mapping.as_raw(), &mut index) };
        if nr == 0 {
            return Err(IsolateError::NotInMapping);
        }
        if index < o.next || index + nr > o.start + HPAGE_PMD_NR {
            return Err(IsolateError::OutOfPlace);
        }
        Ok(Place {
            folio: NonNull::from(&*folio.0).cast(),
            index,
            nr,
        })
    }

    /// `folio_isolate_lru()` of the next folio of the extent, which joins
    /// the old folios; refused (and unlocked) unless `place` is its place,
    /// still after the last folio isolated.
    pub(crate) fn isolate(
        &mut self,
        folio: LockedFolio,
        place: Place,
    ) -> Result<&IsolatedFolio, IsolateError> {
        let o = &mut self.0;
        let Place { index, nr, .. } = place;
        if place.folio.as_ptr() != folio.as_raw() || index < o.next {
            return Err(IsolateError::OutOfPlace);
        }
        let isolated = folio
            .isolate_lru(index, nr)
            .map_err(|_| IsolateError::NotLru)?;
        o.folios
            .push_within_capacity(isolated)
            .map_err(|_| IsolateError::OutOfPlace)?;
        // INVARIANT: In place (checked), of the mapping; locked, so it stays.
        o.next = index + nr;
        o.covered += nr;
        o.folios.last().ok_or(IsolateError::OutOfPlace)
    }

    /// The folio isolated last.
    pub(crate) fn last(&self) -> Option<&IsolatedFolio> {
        self.0.folios.last()
    }

    /// The end of the scan loop: `try_to_unmap_flush()` ("If collapse is
    /// successful, flush must be done now before copying"), and no more
    /// folios.
    pub(crate) fn finish(self) -> IsolatedExtent<'m> {
        flush_unmap_batch();
        IsolatedExtent(self.0)
    }
}

/// The old folios once the isolation is over and its TLB flush done: they
/// can be copied; none can be unmapped any more. `Drop` puts them back.
pub(crate) struct IsolatedExtent<'m>(Isolated<'m>);

impl<'m> IsolatedExtent<'m> {
    /// No folio (an extent of holes).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.folios.is_empty()
    }

    /// Pages of the extent the folios cover.
    pub(crate) fn covered(&self) -> usize {
        self.0.covered
    }

    pub(super) fn mapping(&self) -> &'m AddressSpace {
        self.0.mapping
    }

    pub(super) fn start(&self) -> usize {
        self.0.start
    }

    /// Once the new folio replaced them in the page cache.
    pub(super) fn replaced(mut self) -> ReplacedFolios<'m> {
        let folios = core::mem::take(&mut self.0.folios);
        ReplacedFolios {
            folios,
            shmem: self.0.mapping.as_shmem().is_some(),
            _mapping: PhantomData,
        }
    }
}

/// The old folios after the commit: out of the page cache, still locked
/// and isolated. They can only be retired (`Drop` retires them too: they
/// must never go back to the LRU).
///
/// # Invariants
///
/// Each folio was replaced in its page cache by the committed folio: we
/// own its lock, its isolation, our reference and the `nr_pages`
/// references the page cache held.
pub(crate) struct ReplacedFolios<'m> {
    folios: KVec<IsolatedFolio>,
    shmem: bool,
    _mapping: PhantomData<&'m AddressSpace>,
}

impl ReplacedFolios<'_> {
    /// The end of collapse_file(): every folio dropped from the stats,
    /// unlocked, and every reference we and the page cache held put, in
    /// batches.
    pub(crate) fn retire(self) {}
}

impl Drop for ReplacedFolios<'_> {
    fn drop(&mut self) {
        let mut batch = [core::ptr::null_mut::<bindings::folio>(); RETIRE_BATCH];
        let mut n = 0;
        for folio in self.folios.drain_all() {
            batch[n] = folio.into_raw().as_ptr();
            n += 1;
            if n == RETIRE_BATCH {
                // SAFETY: `n` folios given up by `into_raw` (type invariant).
                unsafe { retire(&batch[..n], self.shmem) };
                n = 0;
            }
        }
        if n > 0 {
            // SAFETY: As above.
            unsafe { retire(&batch[..n], self.shmem) };
        }
    }
}

/// Old folios retired per helper call (its stats are summed over each).
const RETIRE_BATCH: usize = 64;

/// Retires `folios`: the helper unlocks each and puts 2 + nr_pages
/// references.
///
/// # Safety
///
/// Each folio was given up by [`IsolatedFolio::into_raw`] (we own its
/// lock, its isolation and our reference) and was replaced in its page
/// cache (we own the `nr_pages` references the page cache held).
unsafe fn retire(folios: &[*mut bindings::folio], shmem: bool) {
    let nr = u32::try_from(folios.len()).unwrap_or(0);
    // SAFETY: `nr` folios (the slice's length), each as the contract says.
    unsafe { bindings::krs_old_folios_retire(folios.as_ptr().cast_mut(), nr, shmem) };
}

/// Entries of a [`NodeLoad`]: `MAX_NUMNODES`.
const MAX_NUMNODES: usize = bindings::krs_limits_KRS_MAX_NUMNODES as usize;

/// `collapse_control.node_load`: how many folios of the extent the scan
/// found on each node, cleared before each scan (`collapse_scan_file()`).
pub(crate) struct NodeLoad(KBox<[u32; MAX_NUMNODES]>);

impl NodeLoad {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(KBox::zeroed(GFP_KERNEL)?))
    }

    /// `memset(cc->node_load, 0, ...)`.
    pub(crate) fn clear(&mut self) {
        self.0.fill(0);
    }

    /// `cc->node_load[folio_nid(folio)]++`.
    pub(crate) fn add(&mut self, folio: &Folio) {
        let nid = usize::try_from(folio.nid()).unwrap_or(usize::MAX);
        if let Some(n) = self.0.get_mut(nid) {
            *n = n.saturating_add(1);
        }
    }

    /// `collapse_find_target_node()`: the first node with the most folios
    /// (node 0 when the scan saw none), and that count, which makes
    /// `alloc_nmask` (every online node with that many).
    pub(crate) fn target(&self) -> (i32, u32) {
        let (mut target, mut max) = (0, 0);
        for (nid, &n) in self.0.iter().enumerate() {
            if n > max {
                (target, max) = (nid, n);
            }
        }
        (i32::try_from(target).unwrap_or(0), max)
    }
}

/// The flags a huge folio is allocated and charged with
/// (`alloc_charge_folio()`'s `gfp`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AllocGfp {
    /// `GFP_TRANSHUGE`: direct reclaim and compaction (MADV_COLLAPSE, and
    /// khugepaged with its `defrag` knob set).
    Transhuge,
    /// `GFP_TRANSHUGE_LIGHT` (khugepaged with `defrag` off).
    Light,
}

/// A huge folio just allocated (`alloc_charge_folio()`), not yet charged.
///
/// # Invariants
///
/// A PMD-order folio whose only reference is ours. If `zeroed`, every byte
/// of it is zero (the allocator's `__GFP_ZERO` contract).
#[must_use = "dropping it frees the folio"]
pub(crate) struct UnchargedFolio {
    folio: NonNull<bindings::folio>,
    gfp: AllocGfp,
    node: i32,
    zeroed: bool,
}

impl UnchargedFolio {
    /// `__folio_alloc(gfp, HPAGE_PMD_ORDER, node, &alloc_nmask)` on the
    /// node `load` picks (`collapse_find_target_node()`), counting
    /// `THP_COLLAPSE_ALLOC` or `THP_COLLAPSE_ALLOC_FAILED`. Where the
    /// allocator zeroes the folio anyway (`init_on_alloc`, Debian's
    /// default), `__GFP_ZERO` is added, which costs nothing more and makes
    /// the zeroes a guarantee: the holes need not be cleared again.
    pub(crate) fn alloc(gfp: AllocGfp, load: &NodeLoad) -> Option<Self> {
        let (node, max) = load.target();
        let mut zeroed = false;
        // SAFETY: `load.0` holds KRS_MAX_NUMNODES entries, as the helper
        // reads; it checks `node` itself; `zeroed` is written.
        let folio = unsafe {
            bindings::krs_folio_alloc_pmd(
                gfp == AllocGfp::Light,
                node,
                load.0.as_ptr(),
                max,
                &mut zeroed,
            )
        };
        // INVARIANT: A fresh folio: its one reference is ours; `zeroed`
        // only when allocated with __GFP_ZERO.
        Some(Self {
            folio: NonNull::new(folio)?,
            gfp,
            node,
            zeroed,
        })
    }

    /// The node it was asked for (the target node).
    pub(crate) fn node(&self) -> i32 {
        self.node
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
    ) -> Result<NewFolio, ()> {
        let this = ManuallyDrop::new(self);
        let (folio, light, zeroed) = (this.folio, this.gfp == AllocGfp::Light, this.zeroed);
        let mm = mm.map_or(core::ptr::null_mut(), |m| m.as_raw());
        // SAFETY: We own the only reference (type invariant); a null mm
        // charges the current task's memcg, as mem_cgroup_charge() allows.
        if unsafe { bindings::krs_folio_memcg_charge(folio.as_ptr(), mm, light) } != 0 {
            // SAFETY: Drops our only reference.
            unsafe { bindings::krs_folio_put(folio.as_ptr()) };
            return Err(());
        }
        let shmem = mapping.as_shmem().is_some();
        // SAFETY: The folio is ours alone: locking it with
        // __folio_set_locked and setting index and mapping is what
        // collapse_file() does before publishing it.
        unsafe { bindings::krs_new_folio_init(folio.as_ptr(), mapping.as_raw(), index, shmem) };
        // INVARIANT: Charged, locked, ours alone, never published.
        Ok(NewFolio {
            folio,
            shmem,
            mapping: mapping.as_raw(),
            index,
            zeroed,
        })
    }
}

impl Drop for UnchargedFolio {
    fn drop(&mut self) {
        // SAFETY: Our only reference (type invariant).
        unsafe { bindings::krs_folio_put(self.folio.as_ptr()) }
    }
}

/// The huge folio being filled: charged, locked, `mapping` and `index`
/// set. `Drop` frees it (rollback).
///
/// # Invariants
///
/// A PMD-order folio, locked and referenced by us, and never published:
/// no one else can reach it. Its `mapping` and `index` were set to
/// `mapping` and `index` (compared, never dereferenced, here); `shmem`:
/// that mapping is shmem's. `zeroed`: every page not yet written by
/// [`NewFolio::copy_from`] is zero.
#[must_use = "dropping it frees the new folio"]
pub(crate) struct NewFolio {
    folio: NonNull<bindings::folio>,
    shmem: bool,
    mapping: *const bindings::address_space,
    index: usize,
    zeroed: bool,
}

impl NewFolio {
    fn as_raw(&self) -> *mut bindings::folio {
        self.folio.as_ptr()
    }

    /// `folio_pfn()` of the new folio.
    pub(crate) fn pfn(&self) -> usize {
        // SAFETY: Ours (type invariant).
        unsafe { bindings::krs_folio_pfn(self.as_raw()) }
    }

    /// The copy of collapse_file(): every page of every old folio into its
    /// place (`copy_mc_highpage()`), every hole zeroed (`clear_highpage()`),
    /// in index order. The old folios are locked, so they won't change any
    /// more, and `old`'s TLB flush is done. On a poisoned source page
    /// (`SCAN_COPY_MC`) the folio comes back unchanged in state.
    pub(crate) fn copy_from(self, old: &IsolatedExtent<'_>) -> Result<CopiedFolio, NewFolio> {
        let start = old.start();
        let mut dst = 0usize;
        for folio in old.0.folios.iter() {
            // `Isolated`'s invariant: in the extent, in order, no overlap.
            let at = folio.index() - start;
            self.zero_pages(dst, at - dst);
            if !self.copy_folio(at, folio) {
                return Err(self);
            }
            dst = at + folio.nr_pages();
        }
        self.zero_pages(dst, HPAGE_PMD_NR - dst);
        // INVARIANT: Every page written.
        Ok(CopiedFolio(self))
    }

    /// `copy_mc_highpage()` of every page of `src` into the pages from
    /// `dst` on; false on a poisoned page (or if `src` does not fit).
    fn copy_folio(&self, dst: usize, src: &IsolatedFolio) -> bool {
        let nr = src.nr_pages();
        if dst.checked_add(nr).is_none_or(|end| end > HPAGE_PMD_NR) {
            return false;
        }
        // SAFETY: `[dst, dst + nr)` is in the new folio (checked; `src` is
        // locked, so its size holds); the new folio is ours alone.
        let copied = unsafe { bindings::krs_copy_mc_folio(self.as_raw(), dst, src.as_raw()) };
        copied == nr
    }

    /// `clear_highpage()` of pages `[dst, dst + nr)` (holes), unless the
    /// folio is known to be zero there already (allocated with
    /// `__GFP_ZERO`: collapse_file() clears them a second time).
    fn zero_pages(&self, dst: usize, nr: usize) {
        if self.zeroed {
            return;
        }
        if nr == 0 || dst.checked_add(nr).is_none_or(|end| end > HPAGE_PMD_NR) {
            return;
        }
        // SAFETY: The pages are in range (checked); the new folio is ours.
        unsafe { bindings::krs_zero_pages(self.as_raw(), dst, nr) }
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

/// The new folio with every page written: ready to be published. `Drop`
/// frees it (rollback).
#[must_use = "dropping it frees the new folio"]
pub(crate) struct CopiedFolio(NewFolio);

impl CopiedFolio {
    /// It was made for page `index` of `mapping`.
    pub(super) fn is_for(&self, mapping: &AddressSpace, index: usize) -> bool {
        core::ptr::eq(self.0.mapping, mapping.as_raw()) && self.0.index == index
    }

    /// Before the store: the stats, uptodate, the page cache's references
    /// (512), dirty for shmem, and the LRU, as collapse_file() does. The
    /// caller stores it in the page cache (which then owns those
    /// references) under the xa_lock it holds.
    pub(super) fn publish(self) -> NonNull<bindings::folio> {
        let new = ManuallyDrop::new(self);
        // SAFETY: Locked and ours (`NewFolio`'s invariant): no one sees it
        // until it is stored; `ManuallyDrop`: not freed.
        unsafe { bindings::krs_new_folio_publish(new.0.as_raw(), new.0.shmem) };
        new.0.folio
    }
}

/// The new huge folio once stored in the page cache, still locked (faults
/// wait on its lock while the page tables are retracted). `Drop` unlocks.
///
/// # Invariants
///
/// Locked by us; stored in `mapping` at `start`, which holds references on
/// it.
#[must_use = "dropping it unlocks the folio"]
pub(crate) struct CommittedFolio<'m> {
    pub(super) folio: NonNull<bindings::folio>,
    pub(super) mapping: &'m AddressSpace,
    pub(super) start: usize,
}

impl<'m> CommittedFolio<'m> {
    /// The page cache it is in.
    pub(crate) fn mapping(&self) -> &'m AddressSpace {
        self.mapping
    }

    /// Its first page's index.
    pub(crate) fn start(&self) -> usize {
        self.start
    }
}

impl Drop for CommittedFolio<'_> {
    fn drop(&mut self) {
        // SAFETY: We hold the lock (type invariant); the page cache's
        // references keep it alive.
        unsafe { bindings::krs_folio_unlock(self.folio.as_ptr()) }
    }
}
