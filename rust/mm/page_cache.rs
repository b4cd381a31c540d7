// SPDX-License-Identifier: GPL-2.0

//! The page cache of a file: [`AddressSpace`], an xarray cursor whose
//! locked form ([`XaLocked`]) loads typed entries ([`Entry`]) and stores
//! retry entries or the new multi-index folio, the lockless cursor of the
//! scan ([`RcuCursor`]), the i_mmap lock ([`IMmapRead`]) through which the
//! mapping's VMAs are reached, and the shmem charge of holes
//! ([`HoleCharge`]).
//!
//! `kernel::xarray` owns its entries and has no `XA_STATE` cursor nor a
//! multi-index store, so it does not fit the page cache: this is the
//! module's own.

use super::folio::{Folio, LockedFolio, NewFolio, SpeculativeFolio};
use super::vma::IMmapVmas;
use super::HPAGE_PMD_ORDER;
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
        XaCursor {
            xas,
            _mapping: PhantomData,
        }
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
        // SAFETY: Live mapping (type invariant); no spinlock held (callers
        // hold no guard of this layer's spinlocks).
        unsafe { bindings::krs_filemap_flush(self.as_raw()) };
    }

    /// `filemap_write_and_wait_range()` over the bytes `[start, end]`:
    /// writes back and waits. May sleep (I/O).
    pub(crate) fn write_and_wait(&self, start: usize, end: usize) {
        let (s, e) = (start as i64, end as i64);
        // SAFETY: Live mapping (type invariant); no spinlock held.
        unsafe { bindings::krs_filemap_write_and_wait_range(self.as_raw(), s, e) };
    }

    /// A lockless cursor at `index` (RCU held for its lifetime).
    pub(crate) fn rcu_cursor(&self, index: usize) -> RcuCursor<'_> {
        let cursor = self.cursor(index, 0);
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

    /// `shmem_get_folio(SGP_NOALLOC)`: swaps in, or instantiates a
    /// fallocated page; the folio comes back locked. May sleep.
    pub(crate) fn shmem_get_folio(&self, index: usize) -> Option<LockedFolio> {
        let mut folio = core::ptr::null_mut();
        // SAFETY: A live shmem mapping (type invariant; callers only ask
        // shmem mappings); returns a locked, referenced folio or an error.
        if unsafe { bindings::krs_shmem_get_folio(self.as_raw(), index, &mut folio) } != 0 {
            return None;
        }
        // SAFETY: shmem_get_folio() handed over the lock and a reference.
        NonNull::new(folio).map(|f| unsafe { LockedFolio::from_raw(f) })
    }

    /// `filemap_lock_folio()`: the folio at `index`, locked, if any.
    pub(crate) fn lock_folio(&self, index: usize) -> Option<LockedFolio> {
        // SAFETY: Live mapping (type invariant).
        let folio = unsafe { bindings::krs_filemap_lock_folio(self.as_raw(), index) };
        // SAFETY: filemap_lock_folio() handed over the lock and a reference.
        NonNull::new(folio).map(|f| unsafe { LockedFolio::from_raw(f) })
    }

    /// `shmem_charge()` of `nr` holes (which also raises `nrpages`).
    pub(crate) fn shmem_charge(&self, nr: usize) -> Option<HoleCharge<'_>> {
        // SAFETY: A live shmem mapping (type invariant; callers only
        // charge shmem mappings).
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
    mapping: &'a AddressSpace,
    nr: usize,
}

impl HoleCharge<'_> {
    /// The holes now belong to the huge folio: keep the charge.
    pub(crate) fn keep(self) {
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
        // SAFETY: Returns exactly what `shmem_charge` took (invariant).
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

/// A page-cache entry at the cursor, under the xa_lock.
pub(crate) enum Entry<'g> {
    /// A hole.
    None,
    /// A folio (valid while the xa_lock is held).
    Folio(&'g Folio),
    /// A value entry: a shmem swap entry, or a regular file's shadow
    /// entry (the workingset's record of an evicted folio).
    Value,
    /// `XA_RETRY_ENTRY` (placed over holes by a collapse in progress).
    Retry,
}

/// `struct xa_state` over the page cache of one mapping.
pub(crate) struct XaCursor<'a> {
    xas: bindings::xa_state,
    _mapping: PhantomData<&'a AddressSpace>,
}

impl<'a> XaCursor<'a> {
    /// `xas_lock_irq()`.
    pub(crate) fn lock(&mut self) -> XaLocked<'_, 'a> {
        // SAFETY: `xas` was initialised on a live mapping (borrowed for the
        // cursor's lifetime).
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

    fn entry(&mut self, entry: *mut c_void) -> Entry<'_> {
        if entry.is_null() {
            Entry::None
        // SAFETY: Only compares a constant.
        } else if entry == unsafe { bindings::krs_xa_retry_entry() } {
            Entry::Retry
        // SAFETY: Only inspects the entry's tag bits.
        } else if unsafe { bindings::krs_xa_is_value(entry) } {
            Entry::Value
        } else {
            // SAFETY: A page-cache folio cannot be freed while the xa_lock
            // is held (type invariant), for as long as `self` is borrowed.
            Entry::Folio(unsafe { Folio::from_raw(entry.cast()) })
        }
    }

    /// `xas_set()` then `xas_load()`: the entry at `index`.
    pub(crate) fn load_at(&mut self, index: usize) -> Entry<'_> {
        // SAFETY: Under the xa_lock (type invariant), on our state.
        let entry = unsafe {
            bindings::krs_xas_set(self.xas(), index);
            bindings::krs_xas_load(self.xas())
        };
        self.entry(entry)
    }

    /// `xas_set()`: moves the cursor.
    pub(crate) fn set(&mut self, index: usize) {
        // SAFETY: Under the xa_lock, on our state.
        unsafe { bindings::krs_xas_set(self.xas(), index) }
    }

    /// `xas_next()`: the entry at the next index.
    pub(crate) fn next(&mut self) -> Entry<'_> {
        // SAFETY: Under the xa_lock, on our state.
        let entry = unsafe { bindings::krs_xas_next(self.xas()) };
        self.entry(entry)
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

    /// `xas_store(XA_RETRY_ENTRY)` at the cursor.
    pub(crate) fn store_retry(&mut self) -> Result<(), ()> {
        // SAFETY: Under the xa_lock, on our state; a retry entry is what
        // collapse_file() stores over holes.
        unsafe { bindings::krs_xas_store(self.xas(), bindings::krs_xa_retry_entry()) };
        self.error()
    }

    /// `xas_store(NULL)` at the cursor (undoing a retry entry).
    pub(crate) fn store_none(&mut self) {
        // SAFETY: Under the xa_lock, on our state.
        unsafe { bindings::krs_xas_store(self.xas(), core::ptr::null_mut()) }
    }

    /// `xas_set_order(start, HPAGE_PMD_ORDER)` and `xas_store(folio)`: the
    /// multi-index entry replacing the extent's small folios.
    pub(crate) fn store_folio(&mut self, start: usize, folio: &NewFolio) -> Result<(), ()> {
        // SAFETY: Under the xa_lock, on our state; the new folio is locked
        // and published (its page-cache references taken) by the caller.
        unsafe {
            bindings::krs_xas_set_order(self.xas(), start, HPAGE_PMD_ORDER);
            bindings::krs_xas_store(self.xas(), folio.as_raw().cast());
        }
        self.error()
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
}

impl Drop for XaLocked<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: We hold the lock (type invariant).
        unsafe { bindings::krs_xas_unlock_irq(&mut self.0.xas) }
    }
}

/// A page-cache entry seen locklessly.
pub(crate) enum RcuEntry<'r> {
    /// No entry up to the limit.
    End,
    /// A retry or zero entry: look again (`xas_retry()` reset the cursor).
    Retry,
    /// A value (swap) entry of `1 << order` pages.
    Value { order: u32 },
    /// A folio, to be referenced before use.
    Folio(SpeculativeFolio<'r>),
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
    fn entry(&mut self, entry: *mut c_void) -> RcuEntry<'_> {
        let Some(ptr) = NonNull::new(entry) else {
            return RcuEntry::End;
        };
        // SAFETY: Under RCU (type invariant), on our state.
        if unsafe { bindings::krs_xas_retry(&mut self.xas, entry) } {
            return RcuEntry::Retry;
        }
        // SAFETY: Only inspects the entry's tag bits.
        if unsafe { bindings::krs_xa_is_value(entry) } {
            // SAFETY: Reads our state (the order of the entry just loaded).
            let order = unsafe { bindings::krs_xas_get_order(&mut self.xas) };
            return RcuEntry::Value { order };
        }
        // SAFETY: Loaded from the page cache under RCU, held while `self`
        // is borrowed (type invariant).
        RcuEntry::Folio(unsafe { SpeculativeFolio::new(ptr.cast()) })
    }

    /// `xas_find(max)`: the first entry from the cursor on.
    pub(crate) fn find(&mut self, max: usize) -> RcuEntry<'_> {
        // SAFETY: Under RCU (type invariant), on our state.
        let entry = unsafe { bindings::krs_xas_find(&mut self.xas, max) };
        self.entry(entry)
    }

    /// `xas_next_entry(max)`.
    pub(crate) fn next_entry(&mut self, max: usize) -> RcuEntry<'_> {
        // SAFETY: Under RCU, on our state.
        let entry = unsafe { bindings::krs_xas_next_entry(&mut self.xas, max) };
        self.entry(entry)
    }

    /// `xas_reset()`: the next `find` walks from the current index again.
    pub(crate) fn reset(&mut self) {
        // SAFETY: Under RCU, on our state.
        unsafe { bindings::krs_xas_reset(&mut self.xas) }
    }

    /// `xas_reload() == folio`: the entry is still that folio.
    pub(crate) fn still_holds(&mut self, folio: &Folio) -> bool {
        // SAFETY: Under RCU, on our state.
        unsafe { bindings::krs_xas_reload(&mut self.xas) == folio.as_raw().cast() }
    }

    /// The index the cursor is at.
    pub(crate) fn index(&self) -> usize {
        self.xas.xa_index
    }
}
