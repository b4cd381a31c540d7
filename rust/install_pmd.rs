// SPDX-License-Identifier: GPL-2.0

//! `try_collapse_pte_mapped_thp()` and `set_huge_pmd()`: once the page cache
//! holds a huge folio, replace the requesting mm's PTE table over it by one
//! PMD mapping it. Runs under the mmap lock (read), re-taken after the
//! page-cache collapse and revalidated by the caller.

use crate::guards::{LockedFolio, MmapRead, NotifierRange, PteMap, SpinGuard};
use crate::pmd;
use crate::result::ScanResult;
use crate::sys::bindings;
use crate::vma::{Vma, HPAGE_PMD_NR, HPAGE_PMD_ORDER, HPAGE_PMD_SIZE};
use core::ptr::NonNull;

const PAGE_SIZE: u64 = 4096;

/// Maps the huge folio at `addr` (2 MiB aligned) of the mm by a PMD.
pub(crate) fn try_collapse_pte_mapped_thp(lock: &MmapRead<'_>, haddr: u64) -> ScanResult {
    let mm = lock.mm();
    // SAFETY: The mmap lock is held for the lifetime of `lock`.
    let vma = match unsafe { Vma::from_raw(bindings::krs_vma_lookup(mm, haddr as usize)) } {
        Some(v) => v,
        None => return ScanResult::VmaCheck,
    };
    // First check the VMA, in case page tables are being torn down.
    if vma.file().is_null() || !vma.contains(haddr, haddr + HPAGE_PMD_SIZE) {
        return ScanResult::VmaCheck;
    }
    // Fast check before locking the folio: already PMD-mapped?
    // SAFETY: mmap lock held.
    if unsafe { pmd::find(mm, haddr) }.1 == ScanResult::PmdMapped {
        return ScanResult::PmdMapped;
    }
    // The page cache is huge now; a fault in a suitably aligned VMA would
    // map it by a PMD whatever the sysfs settings, so force as upstream.
    if !vma.allows_forced_collapse() {
        return ScanResult::VmaCheck;
    }
    // Keep the PTE table of uffd-wp VMAs: it holds the markers.
    if vma.uffd_wp() {
        return ScanResult::PteUffdWp;
    }
    // SAFETY: The VMA's file is live (mmap lock held); filemap_lock_folio
    // returns a locked, referenced folio or null.
    let folio = unsafe {
        let mapping = bindings::krs_file_mapping(vma.file());
        bindings::krs_filemap_lock_folio(mapping, vma.pgoff_of(haddr) as usize)
    };
    let folio = match NonNull::new(folio) {
        // SAFETY: Lock and reference transferred by filemap_lock_folio.
        Some(f) => unsafe { LockedFolio::from_raw(f) },
        None => return ScanResult::PageNull,
    };
    // SAFETY: Locked and referenced.
    if unsafe { bindings::krs_folio_order(folio.as_ptr()) } != HPAGE_PMD_ORDER {
        return ScanResult::PageCompound;
    }
    // SAFETY: mmap lock held.
    let (pmd, state) = unsafe { pmd::find(mm, haddr) };
    match state {
        ScanResult::Succeed => {}
        // All PTEs were removed and the PMD cleared: just map the PMD.
        ScanResult::NoPteTable => return set_huge_pmd(vma, haddr, pmd, &folio),
        other => return other,
    }
    if let Err(r) = check_ptes(vma, haddr, pmd, &folio) {
        return r;
    }
    match clear_and_retract(vma, haddr, pmd, &folio) {
        Ok(()) => set_huge_pmd(vma, haddr, pmd, &folio),
        Err(r) => r,
    }
}

/// Step 1: every mapped PTE maps the matching subpage of `folio`.
fn check_ptes(
    vma: Vma<'_>,
    haddr: u64,
    pmd: *mut bindings::pmd_t,
    folio: &LockedFolio,
) -> Result<(), ScanResult> {
    let mut ptl = core::ptr::null_mut();
    // SAFETY: mmap lock and folio lock held: the table cannot go away.
    let pte = unsafe { bindings::krs_pte_offset_map_lock(vma.mm(), pmd, haddr as usize, &mut ptl) };
    // SAFETY: A mapped table, from pte_offset_map_lock.
    let map = unsafe { PteMap::from_raw(NonNull::new(pte).ok_or(ScanResult::Fail)?) };
    // SAFETY: pte_offset_map_lock() took `ptl`; the guard, declared after
    // the map, releases it before the unmap (pte_unmap_unlock order).
    let _ptl = unsafe { SpinGuard::adopt(ptl) };
    for i in 0..HPAGE_PMD_NR {
        // A uprobe, a debugger or MAP_PRIVATE CoW may have changed the
        // table, but then the page is not a subpage of our folio.
        // SAFETY: The PTE lock is held, the folio locked.
        unsafe { subpage_at(vma, haddr, &map, i, folio)? };
    }
    Ok(())
}

/// PTE `i` of `map` (the table over `haddr`): `None` if empty, the page if
/// it maps subpage `i` of `folio`; `SCAN_PTE_NON_PRESENT` if swapped or
/// migrating, `SCAN_FAIL` if it maps anything else.
///
/// # Safety
///
/// The caller holds the PTE lock of `map` and the lock of `folio`.
unsafe fn subpage_at(
    vma: Vma<'_>,
    haddr: u64,
    map: &PteMap,
    i: usize,
    folio: &LockedFolio,
) -> Result<Option<*mut bindings::page>, ScanResult> {
    // SAFETY: Under the PTE lock (function contract).
    match unsafe { bindings::krs_pte_kind(map.entry(i)) } {
        0 => return Ok(None),
        k if k < 0 => return Err(ScanResult::PteNonPresent),
        _ => {}
    }
    let addr = haddr + i as u64 * PAGE_SIZE;
    // SAFETY: Under the PTE lock; the folio is locked (function contract).
    let (page, want) = unsafe {
        (
            bindings::krs_pte_page(vma.as_ptr(), addr as usize, map.entry(i)),
            bindings::krs_folio_page(folio.as_ptr(), i),
        )
    };
    if page == want {
        Ok(Some(page))
    } else {
        Err(ScanResult::Fail)
    }
}

/// Steps 2-4: clear the PTEs and their rmap, fix the counts, and remove
/// the emptied table, inside an MMU-notifier range.
fn clear_and_retract(
    vma: Vma<'_>,
    haddr: u64,
    pmd: *mut bindings::pmd_t,
    folio: &LockedFolio,
) -> Result<(), ScanResult> {
    let mm = vma.mm();
    let range = NotifierRange::start(mm, haddr, haddr + HPAGE_PMD_SIZE);
    // UFFDIO_COPY into a private VMA inserts an as-if-CoWed PTE without
    // looking up the page cache, so the folio lock does not stop it: for
    // such VMAs take the PMD lock now and keep the PTE lock until the
    // table is gone.
    let mut pml = if vma.uffd_armed() && !vma.is_shared() {
        // SAFETY: pmd_lock() of a live table (mmap lock held).
        Some(unsafe { SpinGuard::lock(bindings::krs_pmd_lockptr(mm, pmd)) })
    } else {
        None
    };
    let mut pgt_pmd = bindings::pmd_t::default();
    let mut ptl = core::ptr::null_mut();
    // SAFETY: mmap lock and folio lock held.
    let pte = unsafe {
        bindings::krs_pte_offset_map_rw_nolock(mm, pmd, haddr as usize, &mut pgt_pmd, &mut ptl)
    };
    // SAFETY: A mapped table from pte_offset_map_rw_nolock.
    let map = unsafe { PteMap::from_raw(NonNull::new(pte).ok_or(ScanResult::Fail)?) };
    let mut pte_lock = lock_ptl(&pml, ptl);
    // SAFETY: Lockless read of the PMD entry, compared under the PTE lock.
    if !unsafe { bindings::krs_pmd_same(pgt_pmd, bindings::krs_pmdp_get_lockless(pmd)) } {
        return Err(ScanResult::Fail);
    }

    // Step 2: clear the table and adjust the rmap.
    let mut cleared = Cleared {
        mm,
        folio: folio.as_ptr(),
        nr: 0,
        flush: true,
    };
    for i in 0..HPAGE_PMD_NR {
        let addr = haddr + i as u64 * PAGE_SIZE;
        // The PTE lock was dropped after step 1 for the notifier: the
        // folio lock stops new PTEs of it, not CoW copies, swap-out or
        // migration of the existing ones, so check again.
        // SAFETY: The PTE lock is held, the folio locked.
        let Some(page) = (unsafe { subpage_at(vma, haddr, &map, i, folio)? }) else {
            continue;
        };
        // Must clear the entry, or a racing truncate may re-remove it; the
        // TLB flush waits for pmdp_collapse_flush().
        // SAFETY: A present PTE of `folio` under the PTE lock.
        unsafe {
            bindings::krs_pte_clear_rmap(
                vma.as_ptr(),
                addr as usize,
                map.entry(i),
                folio.as_ptr(),
                page,
            )
        };
        cleared.nr += 1;
    }
    if pml.is_none() {
        pte_lock = None;
    }
    // Step 3: refcount and mm counters (also what `cleared` would do).
    cleared.flush = false;
    drop(cleared);

    // Step 4: remove the empty table.
    if pml.is_none() {
        // SAFETY: pmd_lock() of a live table.
        let lock = unsafe { SpinGuard::lock(bindings::krs_pmd_lockptr(mm, pmd)) };
        pml = Some(lock);
        pte_lock = lock_ptl(&pml, ptl);
        if pte_lock.is_some() {
            // SAFETY: Under the PMD and PTE locks.
            if !unsafe { bindings::krs_pmd_same(pgt_pmd, bindings::krs_pmdp_get_lockless(pmd)) } {
                // SAFETY: `mm` is live (mmap lock held).
                unsafe { bindings::krs_flush_tlb_mm(mm) };
                return Err(ScanResult::Fail);
            }
        }
    }
    // SAFETY: PMD and PTE locks held, the table is empty.
    let pgt = unsafe { bindings::krs_pmdp_collapse_flush(vma.as_ptr(), haddr as usize, pmd) };
    // SAFETY: No preconditions.
    unsafe { bindings::krs_pmdp_get_lockless_sync() };
    drop(pte_lock);
    drop(map);
    drop(pml);
    drop(range);
    // SAFETY: `pgt` was just removed from `mm`; freed after RCU readers.
    unsafe { bindings::krs_free_retracted_table(mm, haddr as usize, pgt) };
    crate::stats::count_retracted();
    Ok(())
}

/// Step 5: `set_huge_pmd()`.
fn set_huge_pmd(
    vma: Vma<'_>,
    haddr: u64,
    pmd: *mut bindings::pmd_t,
    folio: &LockedFolio,
) -> ScanResult {
    // SAFETY: mmap lock and folio lock held; `pmd` may be null (allocated
    // then, as upstream).
    match unsafe { bindings::krs_set_huge_pmd(vma.as_ptr(), haddr as usize, pmd, folio.as_ptr()) } {
        0 => ScanResult::Succeed,
        _ => ScanResult::Fail,
    }
}

/// Takes the PTE lock `ptl`, nested when the PMD lock is held and differs;
/// `None` when the held PMD lock is the same lock.
fn lock_ptl(pml: &Option<SpinGuard>, ptl: *mut bindings::spinlock_t) -> Option<SpinGuard> {
    match pml {
        // SAFETY: The PTE lock of a table mapped by the caller.
        None => Some(unsafe { SpinGuard::lock(ptl) }),
        // SAFETY: As above, nested in the held PMD lock.
        Some(l) if l.as_ptr() != ptl => Some(unsafe { SpinGuard::lock_nested(ptl) }),
        Some(_) => None,
    }
}

/// PTEs cleared in step 2: the folio references and file rss they held
/// are given back when this drops (step 3, or the abort path, which also
/// flushes the TLB).
struct Cleared {
    mm: *mut bindings::mm_struct,
    folio: *mut bindings::folio,
    nr: usize,
    flush: bool,
}

impl Drop for Cleared {
    fn drop(&mut self) {
        if self.nr == 0 {
            return;
        }
        // SAFETY: `mm` is live and `folio` locked by the caller; `nr` PTEs
        // mapping it were cleared, each holding one reference and one rss.
        unsafe {
            if self.flush {
                bindings::krs_flush_tlb_mm(self.mm);
            }
            bindings::krs_folio_ref_sub(self.folio, self.nr as i32);
            bindings::krs_add_mm_counter_file(self.mm, self.folio, -(self.nr as i64) as isize);
        }
    }
}
