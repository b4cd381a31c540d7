// SPDX-License-Identifier: GPL-2.0

//! Page tables: a PMD entry of an mm ([`PmdRef`]), its lock and the PTE
//! lock nested inside it ([`SpinGuard`]), a mapped PTE table with
//! bounds-checked entries ([`PteTable`]), the PTEs cleared while
//! installing a PMD ([`ClearedPtes`]), a table taken out of an mm that can
//! only be freed deferred ([`RetractedTable`]), the MMU-notifier range
//! around such changes ([`NotifierRange`]), and `set_huge_pmd()`.

use super::folio::{Folio, LockedFolio};
use super::vma::VmaAccess;
use super::{Mm, VmaRef, HPAGE_PMD_NR, PAGE_SIZE};
use crate::ffi::bindings;
use core::marker::PhantomData;
use core::ptr::NonNull;

/// What a PMD entry holds, as `check_pmd_state()` classifies it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PmdState {
    /// `pmd_none`.
    None,
    /// A PMD migration entry.
    Migration,
    /// Another non-present entry.
    NotPresent,
    /// Maps a huge page.
    Huge,
    /// `pmd_bad()`: not a valid table pointer.
    Bad,
    /// Points to a PTE table.
    Table,
}

/// A PMD entry of an mm.
///
/// # Invariants
///
/// `pmd` points into the live page tables of `mm` for `'a`: the caller
/// holds, for `'a`, the mmap lock of `mm`, or the i_mmap lock of a mapping
/// with a VMA of `mm` covering the address (the borrow of that VMA).
pub(crate) struct PmdRef<'a> {
    pmd: NonNull<bindings::pmd_t>,
    mm: &'a Mm,
}

impl<'a> PmdRef<'a> {
    /// `mm_find_pmd()`: the PMD over `addr` in `vma`'s mm, if the upper
    /// levels exist.
    pub(crate) fn find<V: VmaAccess + ?Sized>(vma: &'a V, addr: usize) -> Option<Self> {
        let mm: &'a Mm = super::vma::VmaExt::vm_mm(vma);
        // SAFETY: The VMA's lock is held while it is borrowed (`VmaAccess`),
        // which keeps the upper levels of its mm's tables alive.
        let pmd = NonNull::new(unsafe { bindings::krs_mm_find_pmd(mm.as_raw(), addr) })?;
        // INVARIANT: Found in `mm`'s tables under the VMA's lock, for 'a.
        Some(Self { pmd, mm })
    }

    fn raw(&self) -> *mut bindings::pmd_t {
        self.pmd.as_ptr()
    }

    /// `check_pmd_state()`: read locklessly (`pmdp_get_lockless`), as
    /// upstream does; under the PMD lock it is stable.
    pub(crate) fn state(&self) -> PmdState {
        // SAFETY: A live PMD entry (type invariant).
        match unsafe { bindings::krs_pmd_state(self.raw()) } {
            bindings::krs_pmd_state_KRS_PMD_NONE => PmdState::None,
            bindings::krs_pmd_state_KRS_PMD_MIGRATION => PmdState::Migration,
            bindings::krs_pmd_state_KRS_PMD_NOT_PRESENT => PmdState::NotPresent,
            bindings::krs_pmd_state_KRS_PMD_HUGE => PmdState::Huge,
            bindings::krs_pmd_state_KRS_PMD_BAD => PmdState::Bad,
            _ => PmdState::Table,
        }
    }

    /// `pmd_lock()`.
    pub(crate) fn lock(&self) -> SpinGuard<'_> {
        // SAFETY: The PMD lock of a live PMD (type invariant).
        let lock = unsafe { bindings::krs_pmd_lockptr(self.mm.as_raw(), self.raw()) };
        // SAFETY: A valid lock while the tables live (type invariant).
        unsafe { SpinGuard::lock(lock) }
    }

    /// The PTE lock of the table this PMD points to, nested inside the
    /// held PMD lock `pml`; `None` when it is the same lock (split PTE
    /// locks off), or when the PMD no longer points to a table.
    pub(crate) fn lock_pte_nested(&self, pml: &SpinGuard<'_>) -> Option<SpinGuard<'_>> {
        if self.state() != PmdState::Table {
            return None;
        }
        // SAFETY: Under the PMD lock the entry points to a table (checked).
        let ptl = unsafe { bindings::krs_pte_lockptr(self.mm.as_raw(), self.raw()) };
        // SAFETY: That table's lock, valid while the PMD lock is held.
        (ptl != pml.0).then(|| unsafe { SpinGuard::lock_nested(ptl) })
    }

    /// `pmdp_collapse_flush()` and `pmdp_get_lockless_sync()`: takes the
    /// (empty) table out of the mm and flushes the TLB.
    pub(crate) fn collapse_flush<V: VmaAccess + ?Sized>(
        &self,
        vma: &V,
        addr: usize,
        _pml: &SpinGuard<'_>,
    ) -> RetractedTable<'a> {
        // SAFETY: The PMD lock is held (the guard, borrowed) and the caller
        // checked under it (and the PTE lock) that the table maps nothing
        // that must stay; `vma` covers `addr`.
        let pmd = unsafe { bindings::krs_pmdp_collapse_flush(vma.vma_ptr(), addr, self.raw()) };
        // SAFETY: No preconditions.
        unsafe { bindings::krs_pmdp_get_lockless_sync() };
        // INVARIANT: Just removed from `mm`.
        RetractedTable {
            mm: self.mm,
            addr,
            pmd,
        }
    }

    /// `pte_offset_map_lock()`: the table mapped and its PTE lock held.
    pub(crate) fn map_lock(&self, addr: usize) -> Option<(PteTable<'_>, SpinGuard<'_>)> {
        let mut ptl = core::ptr::null_mut();
        // SAFETY: A live PMD (type invariant); returns a mapped table and
        // takes `ptl`, or null.
        let pte = unsafe {
            bindings::krs_pte_offset_map_lock(self.mm.as_raw(), self.raw(), addr, &mut ptl)
        };
        // INVARIANT: Mapped by pte_offset_map_lock().
        let table = PteTable(NonNull::new(pte)?, PhantomData);
        // SAFETY: pte_offset_map_lock() took `ptl`; the guard, returned
        // after the table, is dropped first (pte_unmap_unlock order).
        Some((table, unsafe { SpinGuard::adopt(ptl) }))
    }

    /// `pte_offset_map_rw_nolock()`: the table mapped, the PMD value it
    /// was mapped from (to compare under the lock) and its PTE lock, not
    /// taken.
    pub(crate) fn map_nolock(&self, addr: usize) -> Option<(PteTable<'_>, PmdValue, PteLock<'_>)> {
        let mut val = bindings::pmd_t::default();
        let mut ptl = core::ptr::null_mut();
        // SAFETY: A live PMD (type invariant).
        let pte = unsafe {
            bindings::krs_pte_offset_map_rw_nolock(
                self.mm.as_raw(),
                self.raw(),
                addr,
                &mut val,
                &mut ptl,
            )
        };
        // INVARIANT: Mapped by pte_offset_map_rw_nolock().
        let table = PteTable(NonNull::new(pte)?, PhantomData);
        let ptl = PteLock(NonNull::new(ptl)?, PhantomData);
        Some((table, PmdValue(val), ptl))
    }

    /// `pmd_same(val, pmdp_get_lockless(pmd))`.
    pub(crate) fn still(&self, val: &PmdValue) -> bool {
        // SAFETY: A live PMD (type invariant).
        unsafe { bindings::krs_pmd_same(val.0, bindings::krs_pmdp_get_lockless(self.raw())) }
    }
}

/// A PMD value read when a table was mapped.
pub(crate) struct PmdValue(bindings::pmd_t);

/// The PTE lock of a mapped table, not taken yet.
pub(crate) struct PteLock<'t>(NonNull<bindings::spinlock_t>, PhantomData<&'t ()>);

impl PteLock<'_> {
    /// Takes it, nested when the PMD lock `pml` is held and is another
    /// lock; `None` when `pml` is this very lock.
    pub(crate) fn lock(&self, pml: Option<&SpinGuard<'_>>) -> Option<SpinGuard<'_>> {
        let ptl = self.0.as_ptr();
        match pml {
            // SAFETY: The lock of a table mapped for 't (the table keeps it).
            None => Some(unsafe { SpinGuard::lock(ptl) }),
            // SAFETY: The lock of a table mapped for 't, nested inside the
            // held PMD lock.
            Some(l) if l.0 != ptl => Some(unsafe { SpinGuard::lock_nested(ptl) }),
            Some(_) => None,
        }
    }
}

/// A page-table spinlock (PMD or PTE lock); `Drop` unlocks.
///
/// # Invariants
///
/// We hold the lock, which stays valid for `'t`.
#[must_use = "dropping it unlocks the page-table lock"]
pub(crate) struct SpinGuard<'t>(*mut bindings::spinlock_t, PhantomData<&'t ()>);

impl SpinGuard<'_> {
    /// # Safety
    ///
    /// `lock` is a page-table lock valid for the guard's lifetime.
    unsafe fn lock(lock: *mut bindings::spinlock_t) -> Self {
        // SAFETY: Valid lock (function contract).
        unsafe { bindings::krs_spin_lock(lock) };
        // INVARIANT: Just taken.
        Self(lock, PhantomData)
    }

    /// `spin_lock_nested(lock, SINGLE_DEPTH_NESTING)`.
    ///
    /// # Safety
    ///
    /// As for [`SpinGuard::lock`], and the PMD lock is held.
    unsafe fn lock_nested(lock: *mut bindings::spinlock_t) -> Self {
        // SAFETY: Valid lock (function contract).
        unsafe { bindings::krs_spin_lock_nested(lock) };
        // INVARIANT: Just taken.
        Self(lock, PhantomData)
    }

    /// # Safety
    ///
    /// The caller holds `lock` and hands its release over.
    unsafe fn adopt(lock: *mut bindings::spinlock_t) -> Self {
        // INVARIANT: Held, per contract.
        Self(lock, PhantomData)
    }
}

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: We hold the lock (type invariant).
        unsafe { bindings::krs_spin_unlock(self.0) }
    }
}

/// What a PTE of a table maps, compared with a folio's pages.
pub(crate) enum Subpage {
    /// `pte_none`.
    None,
    /// Swapped or migrating (`SCAN_PTE_NON_PRESENT`).
    NonPresent,
    /// A page that is not the expected subpage of the folio.
    Other,
    /// The expected subpage.
    Mapped(PageRef),
}

/// A page mapped by a PTE, as found under its lock.
pub(crate) struct PageRef(NonNull<bindings::page>);

/// A mapped PTE table (`pte_offset_map*()`); `Drop` is `pte_unmap()`.
///
/// # Invariants
///
/// Mapped by `pte_offset_map*()` and not yet unmapped; the table has
/// `HPAGE_PMD_NR` entries.
pub(crate) struct PteTable<'t>(NonNull<bindings::pte_t>, PhantomData<&'t ()>);

impl PteTable<'_> {
    /// Entry `i`, bounds-checked.
    fn entry(&self, i: usize) -> Option<*mut bindings::pte_t> {
        // SAFETY: `i` < the table's length (checked); same allocation.
        (i < HPAGE_PMD_NR).then(|| unsafe { self.0.as_ptr().add(i) })
    }

    /// PTE `i` of the table over `haddr` in `vma`, compared with page `i`
    /// of `folio`. The caller holds the table's PTE lock (`_ptl`).
    pub(crate) fn subpage(
        &self,
        vma: &VmaRef,
        haddr: usize,
        i: usize,
        folio: &LockedFolio,
        _ptl: &SpinGuard<'_>,
    ) -> Subpage {
        let Some(pte) = self.entry(i) else {
            return Subpage::Other;
        };
        // SAFETY: A mapped entry under its lock.
        match unsafe { bindings::krs_pte_kind(pte) } {
            0 => return Subpage::None,
            k if k < 0 => return Subpage::NonPresent,
            _ => {}
        }
        let addr = haddr + i * PAGE_SIZE;
        // SAFETY: Under the PTE lock and the mmap lock (the `VmaRef`); the
        // folio is locked and `i` < 512 = its pages (a PMD-order folio, or
        // `folio_page` of a smaller one is never equal to a mapped page).
        let (page, want) = unsafe {
            (
                bindings::krs_pte_page(vma.as_ptr(), addr, pte),
                bindings::krs_folio_page(folio.as_raw(), i),
            )
        };
        match NonNull::new(page) {
            Some(p) if page == want => Subpage::Mapped(PageRef(p)),
            _ => Subpage::Other,
        }
    }

    /// Clears PTE `i` (mapping `page` of `folio`) and drops its rmap; the
    /// reference and rss it held are given back by `cleared`.
    pub(crate) fn clear(
        &self,
        vma: &VmaRef,
        haddr: usize,
        i: usize,
        page: PageRef,
        cleared: &mut ClearedPtes<'_>,
        _ptl: &SpinGuard<'_>,
    ) {
        let Some(pte) = self.entry(i) else {
            return;
        };
        // SAFETY: A present PTE mapping `page` of the locked folio (found
        // by `subpage` under the same PTE lock, still held).
        unsafe {
            bindings::krs_pte_clear_rmap(
                vma.as_ptr(),
                haddr + i * PAGE_SIZE,
                pte,
                cleared.folio.as_raw(),
                page.0.as_ptr(),
            )
        };
        cleared.nr += 1;
    }
}

impl Drop for PteTable<'_> {
    fn drop(&mut self) {
        // SAFETY: Mapped and not yet unmapped (type invariant).
        unsafe { bindings::krs_pte_unmap(self.0.as_ptr()) }
    }
}

/// PTEs of `folio` cleared while installing a PMD: the folio references
/// and file rss they held are given back when this drops; an abandoned
/// installation also flushes the TLB ([`ClearedPtes::done`] skips that:
/// the PMD flush follows).
pub(crate) struct ClearedPtes<'a> {
    mm: &'a Mm,
    folio: &'a Folio,
    nr: usize,
    flush: bool,
}

impl<'a> ClearedPtes<'a> {
    pub(crate) fn new(mm: &'a Mm, folio: &'a Folio) -> Self {
        Self {
            mm,
            folio,
            nr: 0,
            flush: true,
        }
    }

    /// Step 3 of `try_collapse_pte_mapped_thp()`: the references and
    /// counters, without a TLB flush (the table's flush does it).
    pub(crate) fn done(mut self) {
        self.flush = false;
    }
}

impl Drop for ClearedPtes<'_> {
    fn drop(&mut self) {
        if self.nr == 0 {
            return;
        }
        let nr = i32::try_from(self.nr).unwrap_or(i32::MAX);
        // SAFETY: `mm` is live and `folio` locked by the caller; `nr` PTEs
        // mapping it were cleared, each holding one reference and one rss.
        unsafe {
            if self.flush {
                bindings::krs_flush_tlb_mm(self.mm.as_raw());
            }
            bindings::krs_folio_ref_sub(self.folio.as_raw(), nr);
            bindings::krs_add_mm_counter_file(
                self.mm.as_raw(),
                self.folio.as_raw(),
                -(nr as isize),
            );
        }
    }
}

/// `flush_tlb_mm()`.
pub(crate) fn flush_tlb_mm(mm: &Mm) {
    // SAFETY: A live mm (a reference proves it).
    unsafe { bindings::krs_flush_tlb_mm(mm.as_raw()) }
}

/// A PTE table taken out of an mm by `pmdp_collapse_flush()`. It can only
/// be freed after RCU readers (`pte_free_defer()`), which its `Drop` does
/// with the accounting (`mm_dec_nr_ptes`, page-table check).
///
/// # Invariants
///
/// `pmd` is the entry just removed from `mm` at `addr`; nothing else owns
/// the table.
#[must_use = "dropping it frees the table (after RCU)"]
pub(crate) struct RetractedTable<'a> {
    mm: &'a Mm,
    addr: usize,
    pmd: bindings::pmd_t,
}

impl RetractedTable<'_> {
    /// Frees it (deferred past RCU readers).
    pub(crate) fn free_deferred(self) {}
}

impl Drop for RetractedTable<'_> {
    fn drop(&mut self) {
        // SAFETY: The table was removed from `mm` and is ours (type
        // invariant); pte_free_defer() frees it after RCU readers.
        unsafe { bindings::krs_free_retracted_table(self.mm.as_raw(), self.addr, self.pmd) }
    }
}

/// An MMU-notifier range (`MMU_NOTIFY_CLEAR`) between
/// `invalidate_range_start` and `_end`; `Drop` ends it.
///
/// # Invariants
///
/// Started on `mm`, which stays allocated for `'a`.
#[must_use = "dropping it ends the range"]
pub(crate) struct NotifierRange<'a>(bindings::mmu_notifier_range, PhantomData<&'a Mm>);

impl<'a> NotifierRange<'a> {
    /// Starts invalidation of `[start, end)` of `mm`. May sleep.
    pub(crate) fn start(mm: &'a Mm, start: usize, end: usize) -> Self {
        let mut range = bindings::mmu_notifier_range::default();
        // SAFETY: `mm` is allocated (a reference); the notifiers only use
        // `range` during each call, and it is ended before it moves again
        // (the core keeps no pointer to it between start and end).
        unsafe { bindings::krs_mmu_notifier_start(&mut range, mm.as_raw(), start, end) };
        // INVARIANT: Just started on `mm`.
        Self(range, PhantomData)
    }
}

impl Drop for NotifierRange<'_> {
    fn drop(&mut self) {
        // SAFETY: Started in `start` (type invariant), ended only here.
        unsafe { bindings::krs_mmu_notifier_end(&mut self.0) }
    }
}

/// `set_huge_pmd()`: maps `folio` at `haddr` of `vma` by a PMD (allocating
/// the PMD level when `pmd` is `None`). The caller holds the mmap lock (the
/// `VmaRef`) and the folio lock.
pub(crate) fn set_huge_pmd(
    vma: &VmaRef,
    haddr: usize,
    pmd: Option<&PmdRef<'_>>,
    folio: &LockedFolio,
) -> Result<(), ()> {
    let pmd = pmd.map_or(core::ptr::null_mut(), |p| p.raw());
    // SAFETY: The mmap lock and the folio lock are held (see above); a
    // null PMD is allocated by the helper, as upstream.
    match unsafe { bindings::krs_set_huge_pmd(vma.as_ptr(), haddr, pmd, folio.as_raw()) } {
        0 => Ok(()),
        _ => Err(()),
    }
}
