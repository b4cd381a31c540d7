// SPDX-License-Identifier: GPL-2.0

//! Page tables, with the proofs in the types:
//!
//! - [`PmdAddr`]: a PMD-aligned address; every function that indexes a
//!   512-entry table takes one, so an entry index can never leave the table.
//! - [`PmdRef`]: a PMD entry of the mm of the VMA it was found in, over a
//!   [`PmdAddr`] that lies inside that VMA; it remembers both.
//! - [`PmdLocked`]: its PMD lock, borrowed from the `PmdRef`.
//! - [`PteTable`]: the PTE table the PMD points to, mapped
//!   (`pte_offset_map*()`), borrowed from its `PmdRef`; [`PteLocked`]: its
//!   PTE lock, borrowed from the mapped table (and, when nested, from the
//!   PMD lock it nests in), so a lock can outlive neither.
//! - [`ClearedPtes`] / [`MappedPte`]: a PTE found mapping page `i` of a
//!   folio remembers its table, its index and its folio, and can only clear
//!   that PTE.
//! - [`EmptyTable`]: only [`PteLocked::empty`] makes one, after reading every
//!   entry under the PTE lock nested in the PMD lock; it is what
//!   `pmdp_collapse_flush()` takes ([`EmptyTable::collapse_flush`]), so a
//!   table that maps a page is never freed.
//! - [`RetractedTable`], [`NotifierRange`], and PMD installation
//!   ([`PmdRef::map_huge`], [`map_huge_new`]), which checks the folio is the
//!   VMA's file folio at that address.

use super::folio::PmdFolio;
use super::vma::{VmaAccess, VmaExt};
use super::{FileExt, Mm, VmaRef, HPAGE_PMD_NR, HPAGE_PMD_SIZE, PAGE_SIZE};
use crate::ffi::bindings;
use core::marker::PhantomData;
use core::ptr::NonNull;

/// A PMD-aligned user address: the first byte a PMD entry maps.
///
/// # Invariants
///
/// A multiple of `HPAGE_PMD_SIZE`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct PmdAddr(usize);

impl PmdAddr {
    /// `addr` if it is PMD-aligned.
    pub(crate) fn new(addr: usize) -> Option<Self> {
        // INVARIANT: Checked.
        (addr & (HPAGE_PMD_SIZE - 1) == 0).then_some(Self(addr))
    }

    /// The PMD-aligned address at or below `addr` (`addr & HPAGE_PMD_MASK`).
    pub(crate) fn containing(addr: usize) -> Self {
        // INVARIANT: Masked.
        Self(addr & !(HPAGE_PMD_SIZE - 1))
    }

    pub(crate) fn get(self) -> usize {
        self.0
    }

    /// The end of the range the PMD maps (exclusive).
    pub(crate) fn end(self) -> usize {
        self.0.saturating_add(HPAGE_PMD_SIZE)
    }
}

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

/// A PMD entry of the mm of `vma`, over `addr`.
///
/// # Invariants
///
/// `addr` and `addr + HPAGE_PMD_SIZE` lie inside `vma`, and `pmd` is the
/// entry over `addr` in the page tables of `vma`'s mm. The entry stays
/// allocated for `'a`: the VMA's lock ([`VmaAccess`], held while `vma` is
/// borrowed) keeps the page-table levels above the PTE tables of its range
/// (only `free_pgtables()`, after the VMA has left the mm and the i_mmap
/// tree, frees those).
pub(crate) struct PmdRef<'a, V: VmaAccess + ?Sized> {
    pmd: NonNull<bindings::pmd_t>,
    vma: &'a V,
    addr: PmdAddr,
}

impl<'a, V: VmaAccess + ?Sized> PmdRef<'a, V> {
    /// `mm_find_pmd()`: the PMD over `addr` in `vma`'s mm, if the upper
    /// levels exist and the whole PMD range lies inside `vma`.
    pub(crate) fn find(vma: &'a V, addr: PmdAddr) -> Option<Self> {
        if !vma.contains(addr.get(), addr.end()) {
            return None;
        }
        // SAFETY: The VMA's lock is held while it is borrowed (`VmaAccess`),
        // which keeps the upper levels of its mm's tables over its range.
        let pmd = unsafe { bindings::krs_mm_find_pmd(vma.vm_mm().as_raw(), addr.get()) };
        // INVARIANT: In `vma` (checked) and found in its mm's tables.
        Some(Self {
            pmd: NonNull::new(pmd)?,
            vma,
            addr,
        })
    }

    fn raw(&self) -> *mut bindings::pmd_t {
        self.pmd.as_ptr()
    }

    fn mm(&self) -> &'a Mm {
        self.vma.vm_mm()
    }

    /// The VMA the PMD was found in.
    pub(crate) fn vma(&self) -> &'a V {
        self.vma
    }

    /// The address the PMD maps.
    pub(crate) fn addr(&self) -> PmdAddr {
        self.addr
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

    /// `pmd_lock()`: this PMD's lock.
    pub(crate) fn lock(&self) -> PmdLocked<'_, 'a, V> {
        // SAFETY: The PMD lock of a live PMD (type invariant).
        let lock = unsafe { bindings::krs_pmd_lockptr(self.mm().as_raw(), self.raw()) };
        // SAFETY: pmd_lockptr() returns the mm's page_table_lock or the
        // lock in the PMD table's ptdesc: never null.
        let lock = unsafe { NonNull::new_unchecked(lock) };
        // SAFETY: The lock lives as long as the PMD's table page (type
        // invariant), which outlives the guard (it borrows `self`).
        let guard = unsafe { SpinGuard::lock(lock) };
        // INVARIANT: This PMD's lock, just taken.
        PmdLocked { pmd: self, guard }
    }

    /// `pte_offset_map_rw_nolock()`: the PTE table the PMD points to,
    /// mapped, with the PMD value it was mapped from (compared again under
    /// the PTE lock, [`PteTable::lock`]); `None` when the PMD does not point
    /// to a table.
    pub(crate) fn map(&self) -> Option<PteTable<'_, 'a, V>> {
        let mut val = bindings::pmd_t::default();
        let mut ptl = core::ptr::null_mut();
        // SAFETY: A live PMD (type invariant); returns a mapped table (RCU
        // read lock taken) and its lock, or null.
        let pte = unsafe {
            bindings::krs_pte_offset_map_rw_nolock(
                self.mm().as_raw(),
                self.raw(),
                self.addr.get(),
                &mut val,
                &mut ptl,
            )
        };
        let pte = NonNull::new(pte)?;
        let ptl = match NonNull::new(ptl) {
            Some(ptl) => ptl,
            None => {
                // SAFETY: Mapped just above, unmapped once.
                unsafe { bindings::krs_pte_unmap(pte.as_ptr()) };
                return None;
            }
        };
        // INVARIANT: Mapped by pte_offset_map_rw_nolock() at `addr`, which is
        // PMD-aligned (`PmdAddr`): `pte` is entry 0 of the table.
        Some(PteTable {
            pte,
            ptl,
            val,
            pmd: self,
        })
    }
}

impl<'a> PmdRef<'a, VmaRef> {
    /// `set_huge_pmd()` over this PMD: maps `folio` by it. Under the mmap
    /// lock (the `VmaRef`) and the folio lock; refused unless `folio` is
    /// the folio of the VMA's file at this address.
    pub(crate) fn map_huge(&self, folio: &PmdFolio) -> Result<(), ()> {
        // SAFETY: The PMD is of this VMA's mm over `addr` (type invariant).
        unsafe { set_huge_pmd(self.vma, self.addr, self.raw(), folio) }
    }
}

/// `set_huge_pmd()` where the PMD level does not exist yet (allocated, as
/// upstream does). Refused as [`PmdRef::map_huge`] refuses.
pub(crate) fn map_huge_new(vma: &VmaRef, addr: PmdAddr, folio: &PmdFolio) -> Result<(), ()> {
    if !vma.contains(addr.get(), addr.end()) {
        return Err(());
    }
    // SAFETY: A null PMD: the helper allocates the levels in `vma`'s mm.
    unsafe { set_huge_pmd(vma, addr, core::ptr::null_mut(), folio) }
}

/// # Safety
///
/// `pmd` is null or the PMD over `addr` in `vma`'s mm.
unsafe fn set_huge_pmd(
    vma: &VmaRef,
    addr: PmdAddr,
    pmd: *mut bindings::pmd_t,
    folio: &PmdFolio,
) -> Result<(), ()> {
    let file = vma.vm_file().ok_or(())?;
    // The folio must be what a fault at `addr` would map: PMD-sized (the
    // type), in this VMA's file, at the page offset of `addr`.
    if !folio.belongs_to(file.mapping())
        || folio.index() != vma.pgoff_of(addr.get())
        || !vma.contains(addr.get(), addr.end())
    {
        return Err(());
    }
    // SAFETY: The mmap lock (the `VmaRef`) and the folio lock are held;
    // the folio is the file's at `addr` (checked), `pmd` per contract.
    match unsafe { bindings::krs_set_huge_pmd(vma.as_ptr(), addr.get(), pmd, folio.as_raw()) } {
        0 => Ok(()),
        _ => Err(()),
    }
}

/// A page-table spinlock held by us; `Drop` unlocks.
///
/// # Invariants
///
/// We hold `lock`, which stays valid for `'t`.
struct SpinGuard<'t>(NonNull<bindings::spinlock_t>, PhantomData<&'t ()>);

impl SpinGuard<'_> {
    /// # Safety
    ///
    /// `lock` is a page-table lock valid for the guard's lifetime.
    unsafe fn lock(lock: NonNull<bindings::spinlock_t>) -> Self {
        // SAFETY: Valid lock (function contract).
        unsafe { bindings::krs_spin_lock(lock.as_ptr()) };
        // INVARIANT: Just taken.
        Self(lock, PhantomData)
    }

    /// `spin_lock_nested(lock, SINGLE_DEPTH_NESTING)`.
    ///
    /// # Safety
    ///
    /// As for [`SpinGuard::lock`], and another page-table lock (the PMD
    /// lock) is held.
    unsafe fn lock_nested(lock: NonNull<bindings::spinlock_t>) -> Self {
        // SAFETY: Valid lock (function contract).
        unsafe { bindings::krs_spin_lock_nested(lock.as_ptr()) };
        // INVARIANT: Just taken.
        Self(lock, PhantomData)
    }
}

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: We hold the lock (type invariant).
        unsafe { bindings::krs_spin_unlock(self.0.as_ptr()) }
    }
}

/// The PMD lock of a [`PmdRef`], held; `Drop` unlocks.
///
/// # Invariants
///
/// `guard` holds the lock of `pmd`'s PMD.
#[must_use = "dropping it unlocks the PMD"]
pub(crate) struct PmdLocked<'p, 'a, V: VmaAccess + ?Sized> {
    pmd: &'p PmdRef<'a, V>,
    guard: SpinGuard<'p>,
}

impl<'p, 'a, V: VmaAccess + ?Sized> PmdLocked<'p, 'a, V> {
    /// The PMD entry, stable while the lock is held.
    pub(crate) fn state(&self) -> PmdState {
        self.pmd.state()
    }

    /// The PTE lock of `table`, nested inside this PMD lock (or this very
    /// lock, when split PTE locks are off), with the PMD checked to still
    /// point to the table `table` was mapped from (`pmd_same()`). `None`
    /// when `table` is not this PMD's, or the PMD changed.
    pub(crate) fn lock_table<'l>(
        &'l self,
        table: &'l PteTable<'_, 'a, V>,
    ) -> Option<PteLocked<'l, 'a, V>> {
        if table.pmd.pmd != self.pmd.pmd {
            return None;
        }
        let guard = if table.ptl == self.guard.0 {
            None
        } else {
            // SAFETY: The lock of a table mapped for 'l (the borrow of
            // `table`), nested inside this PMD lock, held for 'l.
            Some(unsafe { SpinGuard::lock_nested(table.ptl) })
        };
        // INVARIANT: `table`'s lock is held (taken above, or it is the PMD
        // lock, held for 'l by the borrow of `self`).
        let locked = PteLocked {
            table,
            _guard: guard,
            pml: Some(self),
        };
        locked.table.still_mapped().then_some(locked)
    }
}

/// A mapped PTE table (`pte_offset_map*()`) of a [`PmdRef`]; `Drop` is
/// `pte_unmap()`.
///
/// # Invariants
///
/// `pte` is entry 0 of the table `pmd` pointed to (the value `val`) when
/// it was mapped, mapped and not yet unmapped: the table's memory stays
/// valid (it is freed only after RCU readers, `pte_free_defer()`) and it
/// has `HPAGE_PMD_NR` entries. `ptl` is that table's PTE lock (stored in
/// the table's `struct ptdesc`, valid as long as the table memory is).
pub(crate) struct PteTable<'p, 'a, V: VmaAccess + ?Sized> {
    pte: NonNull<bindings::pte_t>,
    ptl: NonNull<bindings::spinlock_t>,
    val: bindings::pmd_t,
    pmd: &'p PmdRef<'a, V>,
}

impl<'p, 'a, V: VmaAccess + ?Sized> PteTable<'p, 'a, V> {
    /// `pmd_same(val, pmdp_get_lockless(pmd))`: the PMD still points to
    /// this table.
    fn still_mapped(&self) -> bool {
        // SAFETY: A live PMD (the `PmdRef`'s invariant).
        unsafe { bindings::krs_pmd_same(self.val, bindings::krs_pmdp_get_lockless(self.pmd.raw())) }
    }

    /// `spin_lock(ptl)`, with no PMD lock held, and the PMD checked to
    /// still point to this table (`pmd_same()`, as
    /// `pte_offset_map_lock()` and collapse_pte_mapped_thp() check it);
    /// `None` when it changed.
    pub(crate) fn lock(&self) -> Option<PteLocked<'_, 'a, V>> {
        // SAFETY: This table's lock, valid while it is mapped (type
        // invariant), which the borrow of `self` guarantees for the guard.
        let guard = unsafe { SpinGuard::lock(self.ptl) };
        // INVARIANT: Just taken.
        let locked = PteLocked {
            table: self,
            _guard: Some(guard),
            pml: None,
        };
        self.still_mapped().then_some(locked)
    }
}

impl<V: VmaAccess + ?Sized> Drop for PteTable<'_, '_, V> {
    fn drop(&mut self) {
        // SAFETY: Mapped and not yet unmapped (type invariant).
        unsafe { bindings::krs_pte_unmap(self.pte.as_ptr()) }
    }
}

/// An index into a PTE table (`0..HPAGE_PMD_NR`).
///
/// # Invariants
///
/// `< HPAGE_PMD_NR`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PteIndex(usize);

impl PteIndex {
    /// Every index of a table, in order.
    pub(crate) fn all() -> impl Iterator<Item = PteIndex> {
        // INVARIANT: The range ends at HPAGE_PMD_NR.
        (0..HPAGE_PMD_NR).map(PteIndex)
    }
}

/// The PTE lock of a mapped table, held: borrowed from the table, and from
/// the PMD lock it nests in when taken under it; `Drop` unlocks (unless it
/// is the PMD lock itself).
///
/// # Invariants
///
/// The PTE lock of `table` is held for `'l`: by `_guard`, or (when that is
/// `None`) by `pml`, when the PMD lock and the PTE lock are one lock.
#[must_use = "dropping it unlocks the PTE table"]
pub(crate) struct PteLocked<'l, 'a, V: VmaAccess + ?Sized> {
    table: &'l PteTable<'l, 'a, V>,
    _guard: Option<SpinGuard<'l>>,
    pml: Option<&'l PmdLocked<'l, 'a, V>>,
}

/// What a PTE of a table maps, compared with a PMD-order folio's pages.
pub(crate) enum Subpage<T> {
    /// `pte_none`.
    None,
    /// Swapped or migrating (`SCAN_PTE_NON_PRESENT`).
    NonPresent,
    /// A page that is not the expected subpage of the folio.
    Other,
    /// The expected subpage.
    Mapped(T),
}

impl<'l, 'a, V: VmaAccess + ?Sized> PteLocked<'l, 'a, V> {
    fn entry(&self, i: PteIndex) -> *mut bindings::pte_t {
        // SAFETY: `i` < HPAGE_PMD_NR (`PteIndex`), the number of entries
        // of the mapped table whose entry 0 `pte` is (`PteTable`).
        unsafe { self.table.pte.as_ptr().add(i.0) }
    }

    /// PTE `i`, compared with page `i` of `folio`; the page, when mapped.
    fn subpage(&self, i: PteIndex, folio: &PmdFolio) -> Subpage<NonNull<bindings::page>> {
        let pte = self.entry(i);
        // SAFETY: A mapped entry under its lock (type invariant).
        match unsafe { bindings::krs_pte_kind(pte) } {
            0 => return Subpage::None,
            k if k < 0 => return Subpage::NonPresent,
            _ => {}
        }
        let addr = self.table.pmd.addr.get() + i.0 * PAGE_SIZE;
        // SAFETY: Under the PTE lock, in the table of the VMA over `addr`
        // (the `PmdRef`); `folio` is of PMD order (`PmdFolio`), so page
        // `i` < 512 (`PteIndex`) is one of its pages.
        let (page, want) = unsafe {
            (
                bindings::krs_pte_page(self.table.pmd.vma.vma_ptr(), addr, pte),
                bindings::krs_folio_page(folio.as_raw(), i.0),
            )
        };
        match NonNull::new(page) {
            Some(p) if page == want => Subpage::Mapped(p),
            _ => Subpage::Other,
        }
    }

    /// PTE `i` compared with page `i` of `folio` (step 1 of
    /// `try_collapse_pte_mapped_thp()`: nothing is changed).
    pub(crate) fn check(&self, i: PteIndex, folio: &PmdFolio) -> Subpage<()> {
        match self.subpage(i, folio) {
            Subpage::None => Subpage::None,
            Subpage::NonPresent => Subpage::NonPresent,
            Subpage::Other => Subpage::Other,
            Subpage::Mapped(_) => Subpage::Mapped(()),
        }
    }

    /// Starts clearing the PTEs of `folio` in this table (step 2 of
    /// `try_collapse_pte_mapped_thp()`).
    pub(crate) fn clearing<'c>(&'c self, folio: &'c PmdFolio) -> ClearedPtes<'c, 'l, 'a, V> {
        ClearedPtes {
            ptl: self,
            folio,
            nr: 0,
            flush: true,
        }
    }

    /// Reads every entry of the table: an [`EmptyTable`], which keeps this
    /// lock, when none maps or refers to a page (each is `pte_none()` or a
    /// PTE marker, which holds nothing) and this lock nests in the table's
    /// PMD lock, which is then held too; otherwise the lock comes back.
    /// Consumed, so one table yields one proof, freed once.
    pub(crate) fn empty(self) -> Result<EmptyTable<'l, 'a, V>, Self> {
        if self.pml.is_none() {
            return Err(self);
        }
        // SAFETY: The table is mapped and locked (type invariant) and has
        // HPAGE_PMD_NR entries from `pte` (`PteTable`).
        if !unsafe { bindings::krs_pte_table_empty(self.table.pte.as_ptr()) } {
            return Err(self);
        }
        // INVARIANT: Checked under both locks, which it keeps.
        Ok(EmptyTable { ptl: self })
    }
}

/// PTEs of one PMD-order folio cleared in one locked table (step 2 of
/// `try_collapse_pte_mapped_thp()`); the folio references and file rss
/// they held are given back when this drops ([`ClearedPtes::done`]), and an
/// abandoned clearing also flushes the TLB (done skips it: the PMD flush
/// follows).
///
/// # Invariants
///
/// `nr` PTEs of `ptl`'s table, each mapping a page of `folio`, were cleared
/// with their rmap, under `ptl`.
pub(crate) struct ClearedPtes<'c, 'l, 'a, V: VmaAccess + ?Sized> {
    ptl: &'c PteLocked<'l, 'a, V>,
    folio: &'c PmdFolio,
    nr: usize,
    flush: bool,
}

/// A PTE found mapping the expected page of the folio being cleared: only
/// it can be cleared, once ([`MappedPte::clear`]); it borrows its
/// [`ClearedPtes`] mutably, so no other PTE handle (of this index or
/// another) exists meanwhile, and a PTE read again after its clear is
/// found none.
pub(crate) struct MappedPte<'r, 'c, 'l, 'a, V: VmaAccess + ?Sized> {
    cleared: &'r mut ClearedPtes<'c, 'l, 'a, V>,
    i: PteIndex,
    page: NonNull<bindings::page>,
}

impl<'c, 'l, 'a, V: VmaAccess + ?Sized> ClearedPtes<'c, 'l, 'a, V> {
    /// PTE `i`, compared with page `i` of the folio.
    pub(crate) fn entry(&mut self, i: PteIndex) -> Subpage<MappedPte<'_, 'c, 'l, 'a, V>> {
        match self.ptl.subpage(i, self.folio) {
            Subpage::None => Subpage::None,
            Subpage::NonPresent => Subpage::NonPresent,
            Subpage::Other => Subpage::Other,
            Subpage::Mapped(page) => Subpage::Mapped(MappedPte {
                cleared: self,
                i,
                page,
            }),
        }
    }

    /// Step 3: the references and counters, without a TLB flush (the
    /// table's flush does it).
    pub(crate) fn done(mut self) {
        self.flush = false;
    }
}

impl<V: VmaAccess + ?Sized> MappedPte<'_, '_, '_, '_, V> {
    /// Clears this PTE and drops its rmap; the reference and rss it held
    /// are given back by its [`ClearedPtes`].
    pub(crate) fn clear(self) {
        let c = self.cleared;
        let table = c.ptl.table;
        let addr = table.pmd.addr.get() + self.i.0 * PAGE_SIZE;
        // The PTE was found mapping `page`, page `i` of the locked folio, by
        // `ClearedPtes::entry` under the lock still held (`c` is borrowed).
        // SAFETY: A present PTE of the locked table mapping `page` (above);
        // cleared once (`self` is consumed).
        unsafe {
            bindings::krs_pte_clear_rmap(
                table.pmd.vma.vma_ptr(),
                addr,
                c.ptl.entry(self.i),
                c.folio.as_raw(),
                self.page.as_ptr(),
            )
        };
        // INVARIANT: One more PTE of the folio cleared.
        c.nr += 1;
    }
}

impl<V: VmaAccess + ?Sized> Drop for ClearedPtes<'_, '_, '_, V> {
    fn drop(&mut self) {
        let nr = self.nr;
        if nr == 0 {
            return;
        }
        let mm = self.ptl.table.pmd.mm();
        let nr = i32::try_from(nr).unwrap_or(i32::MAX);
        // SAFETY: `mm` is live (its VMA is borrowed) and `folio` locked;
        // `nr` PTEs mapping it were cleared (type invariant), each holding
        // one reference and one rss count.
        unsafe {
            if self.flush {
                bindings::krs_flush_tlb_mm(mm.as_raw());
            }
            bindings::krs_folio_ref_sub(self.folio.as_raw(), nr);
            bindings::krs_add_mm_counter_file(mm.as_raw(), self.folio.as_raw(), -(nr as isize));
        }
    }
}

/// Proof that a PTE table maps nothing: every entry was read under its
/// PTE lock, nested in the PMD lock, both still held (it owns the PTE
/// lock, which borrows the PMD lock).
///
/// # Invariants
///
/// `ptl` is nested in a held PMD lock (`ptl.pml` is `Some`), and every
/// entry of its table is none or a marker.
pub(crate) struct EmptyTable<'l, 'a, V: VmaAccess + ?Sized> {
    ptl: PteLocked<'l, 'a, V>,
}

impl<'a, V: VmaAccess + ?Sized> EmptyTable<'_, 'a, V> {
    /// `pmdp_collapse_flush()` and `pmdp_get_lockless_sync()`: takes the
    /// empty table out of the mm and flushes the TLB, then drops the PTE
    /// lock; the table is freed when the returned value drops. Consumed: a
    /// table is taken out once.
    pub(crate) fn collapse_flush(self) -> RetractedTable<'a> {
        let table = self.ptl.table;
        let pmd = table.pmd;
        // SAFETY: The PMD lock and the table's PTE lock are held (type
        // invariant), the table maps nothing (ditto), and the PMD over
        // `addr` lies in `vma` (`PmdRef`).
        let val = unsafe {
            bindings::krs_pmdp_collapse_flush(pmd.vma.vma_ptr(), pmd.addr.get(), pmd.raw())
        };
        // SAFETY: No preconditions.
        unsafe { bindings::krs_pmdp_get_lockless_sync() };
        // INVARIANT: Just removed from the VMA's mm; we own the table.
        RetractedTable {
            mm: pmd.mm(),
            addr: pmd.addr,
            pmd: val,
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
/// `pmd` is the entry just removed from `mm` at `addr`, pointing to an
/// empty table; nothing else owns the table.
#[must_use = "dropping it frees the table (after RCU)"]
pub(crate) struct RetractedTable<'a> {
    mm: &'a Mm,
    addr: PmdAddr,
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
        unsafe { bindings::krs_free_retracted_table(self.mm.as_raw(), self.addr.get(), self.pmd) }
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
    /// Starts invalidation of the PMD range at `addr` of `mm`. May sleep.
    pub(crate) fn start(mm: &'a Mm, addr: PmdAddr) -> Self {
        let mut range = bindings::mmu_notifier_range::default();
        // SAFETY: `mm` is allocated (a reference); the notifiers only use
        // `range` during each call, and it is ended before it moves again
        // (the core keeps no pointer to it between start and end).
        unsafe {
            bindings::krs_mmu_notifier_start(&mut range, mm.as_raw(), addr.get(), addr.end())
        };
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
