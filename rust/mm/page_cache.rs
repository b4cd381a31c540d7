// SPDX-License-Identifier: GPL-2.0

//! The page cache of a file: [`AddressSpace`] (and [`ShmemMapping`], what
//! only shmem can do), an xarray cursor whose locked form ([`XaLocked`])
//! loads typed entries ([`Entry`]: internal entries are their own
//! variant, never a folio), the lockless cursor of the scan
//! ([`RcuCursor`]), the i_mmap lock ([`IMmapRead`]) through which the
//! mapping's VMAs are reached, the shmem charge of holes ([`HoleCharge`]),
//! and the last two states of a collapse's commit: the holes filled with
//! retry entries under the lock held to the end ([`HolesFilled`]), then
//! the multi-index store ([`HolesFilled::commit`]). The page cache is only
//! changed through them, in that order.
//!
//! `kernel::xarray` owns its entries and has no `XA_STATE` cursor nor a
//! multi-index store, so it does not fit the page cache: this is the
//! module's own.

use super::folio::{
    CommittedFolio, CopiedFolio, Folio, FolioScan, IsolatedExtent, LockedFolio, ReplacedFolios,
};
use super::vma::IMmapVmas;
use super::{HPAGE_PMD_NR, HPAGE_PMD_ORDER};
use crate::ffi::bindings;
use core::ffi::c_void;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::sync::rcu;
use kernel::types::Opaque;

/// A file's page cache (`struct address_space`).
///
/// # Invariants
///
/// Valid for the lifetime of the reference: the holder keeps a reference
/// on a file of this mapping.
#[repr(transparent)]
pub(crate) struct AddressSpace(Opaque<bindings::address_space>);

impl AddressSpace {
    /// # Safety
    ///
    /// `ptr` is a live mapping for `'a` (e.g. `file->f_mapping` of a file
    /// the caller holds a reference on for `'a`).
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::address_space) -> &'a Self {
        // SAFETY: Transparent wrapper; validity per contract.
        unsafe { &*ptr.cast() }
    }

    pub(super) fn as_raw(&self) -> *mut bindings::address_space {
        self.0.get()
    }

    /// The inode number of the file (for injection scopes).
    pub(crate) fn ino(&self) -> u64 {
        // SAFETY: Live mapping (type invariant); reads `host->i_ino`.
        unsafe { bindings::krs_mapping_ino(self.as_raw()) as u64 }
    }

    /// A cursor at `index`, for entries of `order` (`XA_STATE_ORDER`).
    pub(crate) fn cursor(&self, index: usize, order: u32) -> XaCursor<'_> {
        let mut xas = bindings::xa_state::default();
        // SAFETY: Live mapping (type invariant); only initialises `xas`.
        unsafe { bindings::krs_xas_init(&mut xas, self.as_raw(), index, order) };
        // INVARIANT: Initialised on this mapping, borrowed for the cursor.
        XaCursor { xas, mapping: self }
    }

    /// The cursor collapse_file() works with: at `index`, for entries of
    /// `order`, and with `mapping_set_update()` (outside shmem and DAX, the
    /// nodes it creates or empties are accounted as shadow nodes, which the
    /// workingset shrinker reclaims).
    pub(crate) fn collapse_cursor(&self, index: usize, order: u32) -> XaCursor<'_> {
        let mut cursor = self.cursor(index, order);
        // SAFETY: Live mapping (type invariant); sets the cursor's update
        // callback and list_lru, both the kernel's and static.
        unsafe { bindings::krs_mapping_set_update(&mut cursor.xas, self.as_raw()) };
        cursor
    }

    c_reads! { pub(crate), as_raw;
        /// `mapping_can_writeback()`.
        fn can_writeback -> bool = krs_mapping_can_writeback;
        /// `inode_is_open_for_write(mapping->host)`.
        fn open_for_write -> bool = krs_mapping_open_for_write;
    }

    /// `filemap_flush()`: starts writeback of every dirty folio, without
    /// waiting. May sleep.
    pub(crate) fn flush(&self) {
        // SAFETY: Live mapping (type invariant). It may sleep: no spinlock
        // may be held (a convention, see the lock order in `mm`).
        unsafe { bindings::krs_filemap_flush(self.as_raw()) };
    }

    /// `filemap_write_and_wait_range()` over the bytes `[start, end]`:
    /// writes back and waits. May sleep (I/O).
    pub(crate) fn write_and_wait(&self, start: usize, end: usize) {
        let (s, e) = (start as i64, end as i64);
        // SAFETY: Live mapping (type invariant). It may sleep (a
        // convention: no spinlock held, see the lock order in `mm`).
        unsafe { bindings::krs_filemap_write_and_wait_range(self.as_raw(), s, e) };
    }

    /// A lockless cursor at `index` (RCU held for its lifetime).
    pub(crate) fn rcu_cursor(&self, index: usize) -> RcuCursor<'_> {
        let cursor = self.cursor(index, 0);
        // INVARIANT: The cursor's state, on this mapping; RCU taken here.
        RcuCursor {
            xas: cursor.xas,
            _rcu: rcu::read_lock(),
            _mapping: PhantomData,
        }
    }

    /// `i_mmap_lock_read()`.
    pub(crate) fn i_mmap_read(&self) -> IMmapRead<'_> {
        // SAFETY: Live mapping (type invariant).
        unsafe { bindings::krs_i_mmap_lock_read(self.as_raw()) };
        // INVARIANT: Just locked.
        IMmapRead(self)
    }

    /// `filemap_lock_folio()`: the folio at `index`, locked, if any.
    pub(crate) fn lock_folio(&self, index: usize) -> Option<LockedFolio> {
        // SAFETY: Live mapping (type invariant).
        let folio = unsafe { bindings::krs_filemap_lock_folio(self.as_raw(), index) };
        // SAFETY: filemap_lock_folio() handed over the lock and a reference.
        NonNull::new(folio).map(|f| unsafe { LockedFolio::from_raw(f) })
    }

    /// `shmem_mapping()`: this is a shmem (tmpfs) mapping.
    pub(crate) fn as_shmem(&self) -> Option<&ShmemMapping> {
        // SAFETY: Live mapping (type invariant); only reads it.
        let shmem = unsafe { bindings::krs_shmem_mapping(self.as_raw()) };
        // SAFETY: `ShmemMapping` is a transparent wrapper of
        // `AddressSpace`; its invariant (a shmem mapping) was just checked.
        shmem.then(|| unsafe { &*core::ptr::from_ref(self).cast::<ShmemMapping>() })
    }
}

/// The page cache of a shmem (tmpfs) file: what only shmem can do to it.
///
/// # Invariants
///
/// `shmem_mapping()` is true for it (its host is a shmem inode, which
/// `SHMEM_I()` may be applied to).
#[repr(transparent)]
pub(crate) struct ShmemMapping(AddressSpace);

impl core::ops::Deref for ShmemMapping {
    type Target = AddressSpace;

    fn deref(&self) -> &AddressSpace {
        &self.0
    }
}

impl ShmemMapping {
    /// `shmem_get_folio(SGP_NOALLOC)`: swaps in, or instantiates a
    /// fallocated page; the folio comes back locked. May sleep.
    pub(crate) fn shmem_get_folio(&self, index: usize) -> Option<LockedFolio> {
        let mut folio = core::ptr::null_mut();
        // SAFETY: A live shmem mapping (type invariants); returns a locked,
        // referenced folio or an error.
        if unsafe { bindings::krs_shmem_get_folio(self.as_raw(), index, &mut folio) } != 0 {
            return None;
        }
        // SAFETY: shmem_get_folio() handed over the lock and a reference.
        NonNull::new(folio).map(|f| unsafe { LockedFolio::from_raw(f) })
    }

    /// `shmem_charge()` of `nr` holes (which also raises `nrpages`).
    pub(crate) fn shmem_charge(&self, nr: usize) -> Option<HoleCharge<'_>> {
        // SAFETY: A live shmem mapping (type invariants): shmem_charge()
        // applies SHMEM_I() to its host.
        if !unsafe { bindings::krs_shmem_charge(self.as_raw(), nr as isize) } {
            return None;
        }
        // INVARIANT: `nr` pages were just charged.
        Some(HoleCharge { mapping: self, nr })
    }
}

/// `shmem_charge()` of the holes, which also raised `mapping->nrpages`.
/// `Drop` undoes both (rollback); a committed collapse keeps it
/// ([`HoleCharge::keep`]).
///
/// # Invariants
///
/// `nr` pages are charged to `mapping` by us.
#[must_use = "dropping it uncharges the holes"]
pub(crate) struct HoleCharge<'a> {
    mapping: &'a ShmemMapping,
    nr: usize,
}

impl HoleCharge<'_> {
    /// The holes now belong to the huge folio: keep the charge. Only the
    /// commit ([`HolesFilled::commit`]) does.
    fn keep(self) {
        core::mem::forget(self);
    }
}

impl Drop for HoleCharge<'_> {
    fn drop(&mut self) {
        {
            // The same xa_lock as the collapse's own state takes; no
            // xa_lock is held when a charge is dropped (its owner drops
            // the locked cursor first).
            let mut cursor = self.mapping.cursor(0, 0);
            let _xa = cursor.lock();
            // SAFETY: Under the xa_lock, as collapse_file()'s rollback does.
            unsafe { bindings::krs_mapping_sub_nrpages(self.mapping.as_raw(), self.nr) };
        }
        // SAFETY: A shmem mapping (`ShmemMapping`); returns exactly what
        // `shmem_charge` took (type invariant).
        unsafe { bindings::krs_shmem_uncharge(self.mapping.as_raw(), self.nr as isize) };
    }
}

/// `i_mmap_lock_read()`; `Drop` unlocks.
///
/// # Invariants
///
/// We hold the mapping's i_mmap lock for reading.
#[must_use = "dropping it unlocks i_mmap"]
pub(crate) struct IMmapRead<'a>(&'a AddressSpace);

impl IMmapRead<'_> {
    /// `vma_interval_tree_foreach(vma, &mapping->i_mmap, first, last)`:
    /// the VMAs mapping any page of `[first, last]`, valid while the lock
    /// is held.
    pub(crate) fn vmas(&self, first: usize, last: usize) -> IMmapVmas<'_> {
        // SAFETY: The i_mmap lock is held for the borrow (type invariant),
        // which is what the iterator's lifetime is tied to.
        unsafe { IMmapVmas::new(self.0.as_raw(), first, last) }
    }
}

impl Drop for IMmapRead<'_> {
    fn drop(&mut self) {
        // SAFETY: We hold the read lock (type invariant).
        unsafe { bindings::krs_i_mmap_unlock_read(self.0.as_raw()) }
    }
}

/// A page-cache entry at the cursor, under the xa_lock. Every kind of
/// slot `xas_load()` can return has its variant: a `&Folio` is only made
/// from an entry that is neither a value nor an internal entry.
pub(crate) enum Entry<'g> {
    /// A hole.
    None,
    /// A folio (valid while the xa_lock is held).
    Folio(&'g Folio),
    /// A value entry: a shmem swap entry, or a regular file's shadow
    /// entry (the workingset's record of an evicted folio).
    Value,
    /// An internal entry (`xa_is_internal()`): `XA_RETRY_ENTRY`, a sibling
    /// of a multi-index entry, or any other. Never a folio.
    Internal,
}

/// The raw kinds of an xarray slot, as the C predicates tell them.
enum Slot {
    Null,
    Value,
    Retry,
    Sibling,
    OtherInternal,
    /// A pointer entry: in the page cache, a folio.
    Pointer(NonNull<c_void>),
}

/// The slot of `entry`, whose kind the xarray's predicates gave
/// (`krs_xa_kind()`, as the helpers that load an entry return it).
fn classify(kind: bindings::krs_xa_kind, entry: *mut c_void) -> Slot {
    match kind {
        bindings::krs_xa_kind_KRS_XA_VALUE => Slot::Value,
        bindings::krs_xa_kind_KRS_XA_RETRY => Slot::Retry,
        bindings::krs_xa_kind_KRS_XA_SIBLING => Slot::Sibling,
        bindings::krs_xa_kind_KRS_XA_INTERNAL => Slot::OtherInternal,
        bindings::krs_xa_kind_KRS_XA_POINTER => match NonNull::new(entry) {
            Some(ptr) => Slot::Pointer(ptr),
            None => Slot::Null,
        },
        _ => Slot::Null,
    }
}

/// `struct xa_state` over the page cache of one mapping.
///
/// # Invariants
///
/// `xas` was initialised on `mapping`'s `i_pages`, which lives for `'a`.
pub(crate) struct XaCursor<'a> {
    xas: bindings::xa_state,
    mapping: &'a AddressSpace,
}

impl<'a> XaCursor<'a> {
    /// `xas_lock_irq()`.
    pub(crate) fn lock(&mut self) -> XaLocked<'_, 'a> {
        // SAFETY: `xas` was initialised on a live mapping (type invariant).
        unsafe { bindings::krs_xas_lock_irq(&mut self.xas) };
        // INVARIANT: Just locked.
        XaLocked(self)
    }

    /// `xas_nomem(GFP_KERNEL)` after a failed store: allocates the node it
    /// asked for; false if it could not. May sleep (no lock is held: the
    /// locked form borrows the cursor mutably).
    pub(crate) fn nomem(&mut self) -> bool {
        // SAFETY: Our state; no xa_lock held (see above).
        unsafe { bindings::krs_xas_nomem(&mut self.xas) }
    }
}

/// The page cache's xa_lock, irqs off, over a cursor; `Drop` unlocks.
///
/// # Invariants
///
/// We hold the xa_lock of the xarray the cursor walks.
#[must_use = "dropping it unlocks the page cache"]
pub(crate) struct XaLocked<'c, 'a>(&'c mut XaCursor<'a>);

impl<'c, 'a> XaLocked<'c, 'a> {
    fn xas(&mut self) -> *mut bindings::xa_state {
        &mut self.0.xas
    }

    /// `xas_set()` then `xas_load()`: the entry at `index` (a multi-index
    /// entry's canonical slot: `xas_load()` resolves siblings).
    pub(crate) fn load_at(&mut self, index: usize) -> Entry<'_> {
        let mut entry = core::ptr::null_mut();
        // SAFETY: Under the xa_lock (type invariant), on our state.
        let kind = unsafe { bindings::krs_xas_load_at(self.xas(), index, &mut entry) };
        match classify(kind, entry) {
            Slot::Null => Entry::None,
            Slot::Value => Entry::Value,
            Slot::Retry | Slot::Sibling | Slot::OtherInternal => Entry::Internal,
            // SAFETY: A pointer entry of the page cache is a folio, which
            // cannot be freed while the xa_lock is held (type invariant),
            // i.e. while `self` is borrowed.
            Slot::Pointer(p) => Entry::Folio(unsafe { Folio::from_raw(p.as_ptr().cast()) }),
        }
    }

    /// `xas_next_entry(max)` is not null: some entry up to `max`.
    pub(crate) fn any_up_to(&mut self, max: usize) -> bool {
        // SAFETY: Under the xa_lock, on our state.
        !unsafe { bindings::krs_xas_next_entry(self.xas(), max) }.is_null()
    }

    /// `xas_create_range()`: slots for every index of the cursor's range;
    /// `Err` when a node is missing (then unlock and [`XaCursor::nomem`]).
    pub(crate) fn create_range(&mut self) -> Result<(), ()> {
        // SAFETY: Under the xa_lock, on our state.
        unsafe { bindings::krs_xas_create_range(self.xas()) };
        self.error()
    }

    fn error(&mut self) -> Result<(), ()> {
        // SAFETY: Reads our state.
        match unsafe { bindings::krs_xas_error(self.xas()) } {
            false => Ok(()),
            true => Err(()),
        }
    }

    /// Drops the lock and hands the cursor back.
    pub(crate) fn unlock(self) -> &'c mut XaCursor<'a> {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped: the reference moves out once.
        let cursor = unsafe { core::ptr::read(&this.0) };
        // SAFETY: We hold the lock (type invariant).
        unsafe { bindings::krs_xas_unlock_irq(&mut cursor.xas) };
        cursor
    }

    /// The hole re-check of collapse_file(), with this lock held from here
    /// to the commit: stores `XA_RETRY_ENTRY` in every hole of `old`'s
    /// extent (every slot `xas_next()` finds null; folios, siblings and
    /// values are left alone, as upstream's loop leaves them), so nothing
    /// can be faulted or read into a hole meanwhile. `old`'s folios are
    /// locked and cover `old.covered()` pages of the extent, so the rest
    /// must be holes now: if they are not all holes, some were filled
    /// since the scan (`FillError::Filled`). A regular file's extent, all
    /// folios, is not walked. The returned state owns the lock, the old
    /// folios and the shmem charge of the holes; its `Drop` is the
    /// rollback (the retry entries cleared, the lock dropped, the charge
    /// and the old folios given back), [`HolesFilled::commit`] the commit.
    pub(crate) fn fill_holes<'m>(
        mut self,
        old: IsolatedExtent<'m>,
        charge: Option<HoleCharge<'m>>,
    ) -> Result<HolesFilled<'c, 'a, 'm>, FillError> {
        let charged_elsewhere = charge
            .as_ref()
            .is_some_and(|c| !core::ptr::eq::<AddressSpace>(&**c.mapping, old.mapping()));
        if !core::ptr::eq(self.0.mapping, old.mapping()) || charged_elsewhere {
            return Err(FillError::Filled);
        }
        let start = old.start();
        let walk = old.covered() < HPAGE_PMD_NR;
        if walk {
            // SAFETY: Under the xa_lock (type invariant), on our state.
            unsafe { bindings::krs_xas_set(self.xas(), start) };
        }
        let mut filled = HolesFilled {
            xa: self,
            holes: 0,
            charge,
            old,
        };
        if walk {
            for _ in 0..HPAGE_PMD_NR {
                let mut entry = core::ptr::null_mut();
                // SAFETY: Under the xa_lock (owned by `filled`).
                let kind = unsafe { bindings::krs_xas_next_kind(filled.xa.xas(), &mut entry) };
                if let Slot::Null = classify(kind, entry) {
                    // SAFETY: Under the xa_lock, at a hole of the extent.
                    if !unsafe { bindings::krs_xas_store_retry(filled.xa.xas()) } {
                        return Err(FillError::StoreFailed);
                    }
                    filled.holes += 1;
                }
            }
        }
        if filled.holes + filled.old.covered() != HPAGE_PMD_NR {
            return Err(FillError::Filled);
        }
        // INVARIANT: Every slot of the extent holds a locked folio of `old`
        // or a retry entry stored above, under the lock `filled` owns.
        Ok(filled)
    }
}

impl Drop for XaLocked<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: We hold the lock (type invariant).
        unsafe { bindings::krs_xas_unlock_irq(&mut self.0.xas) }
    }
}

/// Why the holes could not all be filled with retry entries.
pub(crate) enum FillError {
    /// `xas_store()` failed (`SCAN_STORE_FAILED`).
    StoreFailed,
    /// A slot the old folios do not cover is not a hole any more: filled
    /// since the scan (`SCAN_PAGE_FILLED`).
    Filled,
}

/// The extent ready for the commit: the xa_lock held, every hole holding a
/// retry entry, the old folios isolated (flushed) and the holes charged.
/// `Drop` is the rollback, in collapse_file()'s order: the retry entries
/// cleared and the lock dropped, the charge given back, the old folios put
/// back (the fields drop in that order).
///
/// # Invariants
///
/// `xa` is locked; every slot of `old`'s extent holds a locked folio of
/// `old` or a retry entry we stored (`holes` of them) under this hold.
#[must_use = "dropping it rolls the collapse back"]
pub(crate) struct HolesFilled<'c, 'a, 'm> {
    xa: XaLocked<'c, 'a>,
    holes: usize,
    charge: Option<HoleCharge<'m>>,
    old: IsolatedExtent<'m>,
}

impl<'c, 'a, 'm> HolesFilled<'c, 'a, 'm> {
    /// The retry entries stored: the holes found under the lock.
    pub(crate) fn holes(&self) -> usize {
        self.holes
    }

    /// The commit of collapse_file(): `new` is published (stats,
    /// uptodate, the page cache's references, dirty for shmem, the LRU)
    /// and stored as one multi-index entry over the extent, the lock is
    /// dropped, the charge kept. Returns the new folio, still locked and
    /// now in the page cache, and the old folios, now out of it. Refused
    /// (a rollback) when the charge does not match the holes.
    pub(crate) fn commit(
        mut self,
        new: CopiedFolio,
    ) -> Result<(CommittedFolio<'m>, ReplacedFolios<'m>), ()> {
        // The new folio was made for this extent of this mapping, and the
        // charge is for these holes.
        let charged = self.charge.as_ref().map_or(0, |c| c.nr);
        if charged != self.holes || !new.is_for(self.old.mapping(), self.old.start()) {
            return Err(());
        }
        let start = self.old.start();
        let folio = new.publish();
        // SAFETY: Under the xa_lock (type invariant), over the extent whose
        // every slot is ours (ditto); the folio holds the references the
        // page cache's entries own (published above).
        unsafe {
            bindings::krs_xas_set_order(self.xa.xas(), start, HPAGE_PMD_ORDER);
            bindings::krs_xas_store(self.xa.xas(), folio.as_ptr().cast());
        }
        if self.xa.error().is_err() {
            // Cannot happen (xas_create_range() made every node; upstream
            // warns and goes on). The page cache still holds the old
            // folios, so they are rolled back; the new folio, published
            // with the page cache's references, is leaked rather than
            // freed while something might reach it.
            warn_on_once!(true);
            return Err(());
        }
        // The retry entries are gone: replaced by the folio.
        self.holes = 0;
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped: each field moves out once.
        let (xa, charge, old) = unsafe {
            (
                core::ptr::read(&this.xa),
                core::ptr::read(&this.charge),
                core::ptr::read(&this.old),
            )
        };
        drop(xa);
        if let Some(charge) = charge {
            // The holes now belong to the huge folio.
            charge.keep();
        }
        // INVARIANT: Stored in `old`'s mapping at `start`, still locked.
        let committed = CommittedFolio {
            folio,
            mapping: old.mapping(),
            start,
        };
        Ok((committed, old.replaced()))
    }
}

impl Drop for HolesFilled<'_, '_, '_> {
    fn drop(&mut self) {
        if self.holes == 0 {
            return;
        }
        let start = self.old.start();
        // SAFETY: Under the xa_lock (type invariant), on our state.
        unsafe { bindings::krs_xas_set(self.xa.xas(), start) };
        for _ in 0..HPAGE_PMD_NR {
            let mut entry = core::ptr::null_mut();
            // SAFETY: Under the xa_lock; a retry entry in the extent is one
            // we stored (none is visible outside one lock hold).
            unsafe {
                let kind = bindings::krs_xas_next_kind(self.xa.xas(), &mut entry);
                if kind == bindings::krs_xa_kind_KRS_XA_RETRY {
                    bindings::krs_xas_store(self.xa.xas(), core::ptr::null_mut());
                }
            }
        }
    }
}

/// A page-cache entry seen locklessly.
pub(crate) enum RcuEntry {
    /// No entry up to the limit.
    End,
    /// A retry or zero entry: look on (`xas_retry()` reset the cursor).
    Retry,
    /// Another internal entry (`xas_find()` skips siblings, so none is
    /// expected): skipped, never a folio.
    Skip,
    /// A value (swap) entry of `1 << order` pages.
    Value { order: u32 },
    /// A folio being freed, or no longer the entry once referenced: the
    /// cursor was reset, look again at the same index (`xas_find()`).
    Again,
    /// A folio: what the scan's checks read of it while it was referenced
    /// (the reference is put again).
    Folio(FolioScan),
}

/// A lockless cursor (`collapse_scan_file()`'s walk under RCU).
///
/// # Invariants
///
/// `xas` was initialised on a mapping borrowed for `'a`; the RCU read lock
/// is held for the cursor's lifetime.
pub(crate) struct RcuCursor<'a> {
    xas: bindings::xa_state,
    _rcu: rcu::Guard,
    _mapping: PhantomData<&'a AddressSpace>,
}

impl RcuCursor<'_> {
    /// One step of the walk up to `max`, in one helper call: `xas_find()`
    /// (`find`: the first step, and after [`RcuEntry::Again`]) or
    /// `xas_next_entry()`, then `xas_retry()`; a folio is referenced
    /// (`folio_try_get()`), checked to still be the entry (`xas_reload()`),
    /// read and put.
    pub(crate) fn step(&mut self, find: bool, max: usize) -> RcuEntry {
        let mut folio = bindings::krs_folio_scan::default();
        let mut order = 0;
        // The helper touches a folio before it holds a reference only in
        // `folio_try_get()`, which is made for that: RCU and the memmap
        // keep the `struct folio` memory valid (it may be freed and reused
        // meanwhile, which the reference count and `xas_reload()` detect).
        // SAFETY: Under RCU (type invariant), on our state; every read
        // past `folio_try_get()` is under the reference it took.
        let kind = unsafe {
            bindings::krs_xas_scan_next(&mut self.xas, max, find, &mut folio, &mut order)
        };
        match kind {
            bindings::krs_scan_kind_KRS_SCAN_RETRY => RcuEntry::Retry,
            bindings::krs_scan_kind_KRS_SCAN_SKIP => RcuEntry::Skip,
            bindings::krs_scan_kind_KRS_SCAN_VALUE => RcuEntry::Value { order },
            bindings::krs_scan_kind_KRS_SCAN_AGAIN => RcuEntry::Again,
            bindings::krs_scan_kind_KRS_SCAN_FOLIO => RcuEntry::Folio(FolioScan::from_raw(&folio)),
            _ => RcuEntry::End,
        }
    }

    /// The index the cursor is at.
    pub(crate) fn index(&self) -> usize {
        self.xas.xa_index
    }
}
