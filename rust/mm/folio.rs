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

    c_reads! { pub(crate), as_raw;
        /// `folio->index`.
        fn index -> usize = krs_folio_index;
        /// `folio_test_uptodate()`.
        fn is_uptodate -> bool = krs_folio_test_uptodate;
        /// `folio_test_dirty()`.
        fn is_dirty -> bool = krs_folio_test_dirty;
        /// `folio_test_writeback()`.
        fn is_writeback -> bool = krs_folio_test_writeback;
        /// `folio_ref_count()`.
        fn ref_count -> i32 = krs_folio_ref_count;
    }

    /// `folio_mapping(folio) == mapping`: still in that page cache.
    pub(crate) fn belongs_to(&self, mapping: &AddressSpace) -> bool {
        // SAFETY: A valid folio (type invariant); only reads it.
        unsafe { bindings::krs_folio_mapping(self.as_raw()) == mapping.as_raw() }
    }

    /// `folio_trylock()` and a reference (`folio_get()`, in the same
    /// helper call): the folio, locked, or `None`.
    pub(crate) fn trylock(&self) -> Option<LockedFolio> {
        // SAFETY: Valid folio (type invariant); on success the helper took
        // the lock and a reference, both handed over.
        if !unsafe { bindings::krs_folio_trylock_get(self.as_raw()) } {
            return None;
        }
        // SAFETY: The reference just taken is handed over.
        let folio = unsafe { ARef::from_raw(NonNull::from(self)) };
        // INVARIANT: We just took the lock.
        Some(LockedFolio(folio))
    }
}

/// What `collapse_scan_file()`'s checks read of a folio it found under RCU,
/// read while a reference was held (`folio_try_get()`, the entry
/// re-checked by `xas_reload()`) and put again: plain values, racy as the
/// scan is (the collapse checks everything again under the locks).
#[derive(Clone, Copy)]
pub(crate) struct FolioScan {
    /// `folio_order() == HPAGE_PMD_ORDER`.
    pub(crate) pmd_order: bool,
    /// `folio_nid()`.
    pub(crate) nid: i32,
    /// `folio_test_lru()`.
    pub(crate) lru: bool,
    /// `folio_expected_ref_count()`: the page cache's and the mappings'.
    pub(crate) expected_ref_count: i32,
    /// `folio_ref_count()` (our reference included).
    pub(crate) ref_count: i32,
    /// `folio_nr_pages()`.
    pub(crate) nr_pages: usize,
    /// `folio_pfn()`.
    pub(crate) pfn: usize,
}

impl FolioScan {
    pub(super) fn from_raw(s: &bindings::krs_folio_scan) -> Self {
        Self {
            pmd_order: s.order == HPAGE_PMD_ORDER,
            nid: s.nid,
            lru: s.lru,
            expected_ref_count: s.expected_ref_count,
            ref_count: s.ref_count,
            nr_pages: s.nr_pages,
            pfn: s.pfn,
        }
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

    /// collapse_file()'s steps on the locked folio, in one helper call:
    /// `folio_isolate_lru()` (on failure the locked folio comes back),
    /// then `filemap_release_folio()` (drops private data such as buffers;
    /// may sleep), then, if `folio_mapped()`, `try_to_unmap(folio,
    /// TTU_IGNORE_MLOCK | TTU_BATCH_FLUSH)` (may sleep): the TLB flush is
    /// deferred into the current task's batch. The isolated folio comes
    /// back with whether its private data was released (when not, it was
    /// not unmapped). Only [`OldFolios::isolate`] calls it: an isolated
    /// folio lives in the set that owns its deferred TLB flush.
    fn isolate_unmap(self, index: usize, nr: usize) -> Result<(IsolatedFolio, bool), LockedFolio> {
        // The helper may sleep: no spinlock may be held, a convention of
        // this layer (its only caller, `OldFolios::isolate`, is called
        // between the xa_lock's scopes), checked by the debug kernel's
        // might_sleep(), not by a type.
        // SAFETY: The folio is locked and referenced (type invariant).
        let done = unsafe { bindings::krs_folio_isolate_unmap(self.as_raw()) };
        if done == bindings::krs_isolate_KRS_ISOLATE_NOT_LRU {
            return Err(self);
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped: its reference moves out once.
        let folio = unsafe { core::ptr::read(&this.0) };
        // INVARIANT: Locked (ours), isolated (just now), and referenced;
        // `index` and `nr` read by the caller under the lock.
        let released = done == bindings::krs_isolate_KRS_ISOLATE_DONE;
        Ok((IsolatedFolio { folio, index, nr }, released))
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
    /// Isolated, but `filemap_release_folio()` failed
    /// (`SCAN_PAGE_HAS_PRIVATE`): put back at once, never unmapped, as
    /// upstream's `folio_putback_lru()` before `out_unlock`.
    HasPrivate,
}

/// Where a locked folio goes among the old folios: the folio itself (its
/// lock held, so it stays in the mapping at that index), its index and
/// size read under that lock by [`OldFolios::read`], and the set it was
/// read for (its mapping and extent), for [`OldFolios::isolate`], which
/// refuses a place read for another set. Dropping it unlocks the folio.
pub(crate) struct Place {
    folio: LockedFolio,
    mapping: NonNull<AddressSpace>,
    start: usize,
    index: usize,
    nr: usize,
}

/// What collapse_file()'s checks read of a folio it locked, in one helper
/// call ([`OldFolios::read`]): its state, and its place among the old
/// folios. The lock keeps all but `dirty` and `writeback` stable, which
/// the engine checks again once the folio is unmapped.
pub(crate) struct LockedRead {
    /// `folio_test_uptodate()`.
    pub(crate) uptodate: bool,
    /// `folio_order() == HPAGE_PMD_ORDER`.
    pub(crate) pmd_order: bool,
    /// `folio_test_dirty()`.
    pub(crate) dirty: bool,
    /// `folio_test_writeback()`.
    pub(crate) writeback: bool,
    /// Its place: refused unless it is in the mapping, inside the extent
    /// and after the last folio isolated.
    pub(crate) place: Result<Place, IsolateError>,
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

    /// The reads of collapse_file()'s checks on `folio` (uptodate, order,
    /// `folio_mapping()`, index, size, dirty, writeback in one call), and
    /// its place in the extent, which holds the folio (and its lock) from
    /// here: refused (the folio unlocked and put) unless it is in this
    /// mapping, inside the extent and after the last folio isolated.
    pub(crate) fn read(&self, folio: LockedFolio) -> LockedRead {
        let o = &self.0;
        let mut s = bindings::krs_folio_locked::default();
        // SAFETY: A locked folio (`LockedFolio`); only reads it into `s`.
        unsafe { bindings::krs_folio_locked_read(folio.as_raw(), o.mapping.as_raw(), &mut s) };
        let (index, nr) = (s.index, s.nr_pages);
        let place = if !s.in_mapping {
            Err(IsolateError::NotInMapping)
        } else if index < o.next || index.saturating_add(nr) > o.start + HPAGE_PMD_NR {
            Err(IsolateError::OutOfPlace)
        } else {
            Ok(Place {
                folio,
                mapping: NonNull::from(o.mapping),
                start: o.start,
                index,
                nr,
            })
        };
        LockedRead {
            uptodate: s.uptodate,
            pmd_order: s.order == HPAGE_PMD_ORDER,
            dirty: s.dirty,
            writeback: s.writeback,
            place,
        }
    }

    /// `folio_isolate_lru()` of the next folio of the extent, which joins
    /// the old folios, then `filemap_release_folio()` and, if it is
    /// mapped, `try_to_unmap()` with the TLB flush deferred to this set
    /// (one helper call: [`LockedFolio::isolate_unmap`]). Refused (and
    /// unlocked) unless `place` was read for this set and is still after
    /// the last folio isolated. A folio whose private data could not be
    /// released is put back at once ([`IsolateError::HasPrivate`]): the
    /// helper stopped before unmapping it, so no deferred flush covers it,
    /// and every folio of the set stays isolated, released and unmapped.
    pub(crate) fn isolate(&mut self, place: Place) -> Result<&IsolatedFolio, IsolateError> {
        let o = &mut self.0;
        let Place {
            folio,
            mapping,
            start,
            index,
            nr,
        } = place;
        // Read for this set (its mapping and extent: the folio, locked
        // since, is still there), and after what was isolated since.
        if mapping != NonNull::from(o.mapping) || start != o.start || index < o.next {
            return Err(IsolateError::OutOfPlace);
        }
        // Room first: once unmapped, the folio must be in the set whose
        // `Drop` flushes before it goes back.
        if o.folios.len() >= o.folios.capacity() {
            return Err(IsolateError::OutOfPlace);
        }
        let (isolated, released) = folio
            .isolate_unmap(index, nr)
            .map_err(|_| IsolateError::NotLru)?;
        if !released {
            // Upstream: folio_putback_lru(), then out_unlock.
            drop(isolated);
            return Err(IsolateError::HasPrivate);
        }
        if let Err(lost) = o.folios.push_within_capacity(isolated) {
            // Cannot happen (room checked above); flush before it goes back.
            flush_unmap_batch();
            drop(lost);
            return Err(IsolateError::OutOfPlace);
        }
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

/// `collapse_control.node_load`: how many folios of the extent the scan
/// found on each node, cleared before each scan (`collapse_scan_file()`).
///
/// Upstream's array has `MAX_NUMNODES` entries (1024 on Debian's kernels:
/// 4 KiB, cleared by a `memset()` before each scan and walked whole by
/// `collapse_find_target_node()`); node ids only go up to `nr_node_ids`
/// (`folio_nid()`, `for_each_online_node()`), so this one has that many
/// entries, and keeps the target as the counts grow and the nodes counted
/// as a range: the clear and the target touch only those. Every other
/// entry upstream's would have is zero, which is what its loops find there.
///
/// # Invariants
///
/// `counts` has `nr_node_ids` entries (at most `MAX_NUMNODES`); every entry
/// outside `[lo, hi]` is zero (all of them when `lo > hi`); `target` is the
/// first node with the most folios, `max` (0 and 0 when none was counted).
pub(crate) struct NodeLoad {
    counts: KVec<u32>,
    lo: usize,
    hi: usize,
    target: usize,
    max: u32,
}

impl NodeLoad {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Reads a variable set at boot; no preconditions.
        let nodes = unsafe { bindings::krs_nr_node_ids() } as usize;
        let mut counts = KVec::with_capacity(nodes, GFP_KERNEL)?;
        counts.resize(nodes, 0, GFP_KERNEL)?;
        // INVARIANT: All zero; nothing counted.
        Ok(Self {
            counts,
            lo: usize::MAX,
            hi: 0,
            target: 0,
            max: 0,
        })
    }

    /// `memset(cc->node_load, 0, ...)`: the nodes counted since the last
    /// clear are all the non-zero entries.
    pub(crate) fn clear(&mut self) {
        if let Some(counted) = self.counts.get_mut(self.lo..=self.hi) {
            counted.fill(0);
        }
        // INVARIANT: All zero again.
        (self.lo, self.hi, self.target, self.max) = (usize::MAX, 0, 0, 0);
    }

    /// `cc->node_load[folio_nid(folio)]++`, for a folio on `nid`.
    pub(crate) fn add(&mut self, nid: i32) {
        let nid = usize::try_from(nid).unwrap_or(usize::MAX);
        let Some(n) = self.counts.get_mut(nid) else {
            return;
        };
        *n = n.saturating_add(1);
        let n = *n;
        // INVARIANT: `nid` is now inside the range; the first node with
        // the most folios is this one if it now has more than the target
        // had, or as many with a lower id.
        (self.lo, self.hi) = (self.lo.min(nid), self.hi.max(nid));
        if n > self.max || (n == self.max && nid < self.target) {
            (self.target, self.max) = (nid, n);
        }
    }

    /// `collapse_find_target_node()`: the first node with the most folios
    /// (node 0 when the scan saw none), and that count, which makes
    /// `alloc_nmask` (every online node with that many).
    pub(crate) fn target(&self) -> (i32, u32) {
        (i32::try_from(self.target).unwrap_or(0), self.max)
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
        let nodes = u32::try_from(load.counts.len()).unwrap_or(0);
        // SAFETY: `load.counts` holds `nodes` entries, all the helper reads;
        // it checks `node` itself; `zeroed` is written.
        let folio = unsafe {
            bindings::krs_folio_alloc_pmd(
                gfp == AllocGfp::Light,
                node,
                load.counts.as_ptr(),
                nodes,
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
        let mut batch = CopyBatch::new();
        let mut dst = 0usize;
        for folio in old.0.folios.iter() {
            // `Isolated`'s invariant: in the extent, in order, no overlap.
            let at = folio.index() - start;
            if at != dst {
                // A run of holes: copy what comes before it first.
                if !self.copy_batch(&mut batch) {
                    return Err(self);
                }
                self.zero_pages(dst, at - dst);
            }
            if batch.is_full() && !self.copy_batch(&mut batch) {
                return Err(self);
            }
            if !batch.push(at, folio) {
                return Err(self);
            }
            dst = at + folio.nr_pages();
        }
        if !self.copy_batch(&mut batch) {
            return Err(self);
        }
        self.zero_pages(dst, HPAGE_PMD_NR - dst);
        // INVARIANT: Every page written.
        Ok(CopiedFolio(self))
    }

    /// `copy_mc_highpage()` of every page of each folio of `batch` into
    /// the pages from its place on (one helper call for the batch), which
    /// is emptied; false on a poisoned page (or if a folio does not fit).
    fn copy_batch(&self, batch: &mut CopyBatch<'_>) -> bool {
        let n = core::mem::take(&mut batch.n);
        if n == 0 {
            return true;
        }
        for i in 0..n {
            let fits = batch.at[i]
                .checked_add(batch.nr[i])
                .is_some_and(|end| end <= HPAGE_PMD_NR);
            if !fits {
                return false;
            }
        }
        // SAFETY: Each `[at, at + nr)` is in the new folio (checked above;
        // each source is locked among the old folios `batch` borrows, so
        // its size holds); the new folio is ours alone.
        let copied = unsafe {
            bindings::krs_copy_mc_folios(self.as_raw(), batch.src.as_ptr(), batch.at.as_ptr(), n)
        };
        copied == n
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

/// Old folios copied per helper call.
const COPY_BATCH: usize = 32;

/// Old folios to copy in one helper call, each with its place in the new
/// folio and its size, borrowed from the old folios (locked and isolated:
/// their size holds).
struct CopyBatch<'a> {
    src: [*mut bindings::folio; COPY_BATCH],
    at: [usize; COPY_BATCH],
    nr: [usize; COPY_BATCH],
    n: usize,
    _old: PhantomData<&'a IsolatedFolio>,
}

impl<'a> CopyBatch<'a> {
    fn new() -> Self {
        Self {
            src: [core::ptr::null_mut(); COPY_BATCH],
            at: [0; COPY_BATCH],
            nr: [0; COPY_BATCH],
            n: 0,
            _old: PhantomData,
        }
    }

    fn is_full(&self) -> bool {
        self.n == COPY_BATCH
    }

    /// Adds `folio`, to be copied to page `at` on; false if full (the
    /// caller copies a full batch first).
    fn push(&mut self, at: usize, folio: &'a IsolatedFolio) -> bool {
        let i = self.n;
        if i >= COPY_BATCH {
            return false;
        }
        (self.src[i], self.at[i], self.nr[i]) = (folio.as_raw(), at, folio.nr_pages());
        self.n += 1;
        true
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
