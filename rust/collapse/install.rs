// SPDX-License-Identifier: GPL-2.0

//! `try_collapse_pte_mapped_thp()` and `set_huge_pmd()`: once the page cache
//! holds a huge folio, replace the requesting mm's PTE table over it by one
//! PMD mapping it. Runs under the mmap lock (read), re-taken after the
//! page-cache collapse and revalidated by the caller.

#![forbid(unsafe_code)]

use crate::abi::result::ScanResult;
use crate::mm::pgtable::{
    set_huge_pmd, ClearedPtes, NotifierRange, PmdRef, PteTable, SpinGuard, Subpage,
};
use crate::mm::{FileExt, LockedFolio, MmapRead, VmaExt, VmaRef, HPAGE_PMD_NR, HPAGE_PMD_SIZE};

/// Maps the huge folio at `haddr` (2 MiB aligned) of the mm by a PMD.
pub(crate) fn try_collapse_pte_mapped_thp(lock: &MmapRead<'_>, haddr: usize) -> ScanResult {
    let Some(vma) = lock.vma_lookup(haddr) else {
        return ScanResult::VmaCheck;
    };
    // First check the VMA, in case page tables are being torn down.
    let Some(file) = vma.vm_file() else {
        return ScanResult::VmaCheck;
    };
    if !vma.contains(haddr, haddr + HPAGE_PMD_SIZE) {
        return ScanResult::VmaCheck;
    }
    // Fast check before locking the folio: already PMD-mapped?
    if let Some(pmd) = PmdRef::find(vma, haddr) {
        if ScanResult::from(pmd.state()) == ScanResult::PmdMapped {
            return ScanResult::PmdMapped;
        }
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
    let Some(folio) = file.mapping().lock_folio(vma.pgoff_of(haddr)) else {
        return ScanResult::PageNull;
    };
    if !folio.is_pmd_order() {
        return ScanResult::PageCompound;
    }
    let pmd = PmdRef::find(vma, haddr);
    match pmd.as_ref().map(|p| ScanResult::from(p.state())) {
        Some(ScanResult::Succeed) => {}
        // All PTEs were removed and the PMD cleared: just map the PMD.
        None | Some(ScanResult::NoPteTable) => return install(vma, haddr, pmd.as_ref(), &folio),
        Some(other) => return other,
    }
    let Some(pmd) = pmd else {
        return ScanResult::Fail;
    };
    if let Err(r) = check_ptes(vma, haddr, &pmd, &folio) {
        return r;
    }
    match clear_and_retract(vma, haddr, &pmd, &folio) {
        Ok(()) => install(vma, haddr, Some(&pmd), &folio),
        Err(r) => r,
    }
}

/// Step 1: every mapped PTE maps the matching subpage of `folio`.
fn check_ptes(
    vma: &VmaRef,
    haddr: usize,
    pmd: &PmdRef<'_>,
    folio: &LockedFolio,
) -> Result<(), ScanResult> {
    // The mmap lock and the folio lock are held: the table cannot go away.
    let (table, ptl) = pmd.map_lock(haddr).ok_or(ScanResult::Fail)?;
    for i in 0..HPAGE_PMD_NR {
        // A uprobe, a debugger or MAP_PRIVATE CoW may have changed the
        // table, but then the page is not a subpage of our folio.
        match table.subpage(vma, haddr, i, folio, &ptl) {
            Subpage::None | Subpage::Mapped(_) => {}
            Subpage::NonPresent => return Err(ScanResult::PteNonPresent),
            Subpage::Other => return Err(ScanResult::Fail),
        }
    }
    Ok(())
}

/// Steps 2-4: clear the PTEs and their rmap, fix the counts, and remove
/// the emptied table, inside an MMU-notifier range.
fn clear_and_retract(
    vma: &VmaRef,
    haddr: usize,
    pmd: &PmdRef<'_>,
    folio: &LockedFolio,
) -> Result<(), ScanResult> {
    let mm = vma.vm_mm();
    let range = NotifierRange::start(mm, haddr, haddr + HPAGE_PMD_SIZE);
    crate::stats::count_notifier_range();
    // UFFDIO_COPY into a private VMA inserts an as-if-CoWed PTE without
    // looking up the page cache, so the folio lock does not stop it: for
    // such VMAs take the PMD lock now and keep the PTE lock until the
    // table is gone.
    let early_pml = (vma.uffd_armed() && !vma.is_shared()).then(|| pmd.lock());
    let (table, pgt_pmd, ptl) = pmd.map_nolock(haddr).ok_or(ScanResult::Fail)?;
    let pte_lock = ptl.lock(early_pml.as_ref());
    if !pmd.still(&pgt_pmd) {
        return Err(ScanResult::Fail);
    }

    // Step 2: clear the table and adjust the rmap, under the PTE lock: the
    // nested one, or the PMD lock when they are one.
    let mut cleared = ClearedPtes::new(mm, folio);
    let held = pte_lock
        .as_ref()
        .or(early_pml.as_ref())
        .ok_or(ScanResult::Fail)?;
    clear_ptes(vma, haddr, &table, folio, &mut cleared, held)?;
    let pte_lock = if early_pml.is_none() {
        drop(pte_lock);
        None
    } else {
        pte_lock
    };
    // Step 3: refcount and mm counters (the table's flush follows).
    cleared.done();

    // Step 4: remove the empty table, under the PMD and PTE locks.
    let (pml, pte_lock) = match early_pml {
        Some(pml) => (pml, pte_lock),
        None => {
            let pml = pmd.lock();
            let pte_lock = ptl.lock(Some(&pml));
            if pte_lock.is_some() && !pmd.still(&pgt_pmd) {
                crate::mm::pgtable::flush_tlb_mm(mm);
                return Err(ScanResult::Fail);
            }
            (pml, pte_lock)
        }
    };
    let retracted = pmd.collapse_flush(vma, haddr, &pml);
    drop(pte_lock);
    drop(table);
    drop(pml);
    drop(range);
    retracted.free_deferred();
    crate::stats::count_retracted();
    Ok(())
}

/// Step 2: clears every PTE mapping a subpage of `folio` and its rmap; the
/// references and rss they held are given back by `cleared`.
fn clear_ptes(
    vma: &VmaRef,
    haddr: usize,
    table: &PteTable<'_>,
    folio: &LockedFolio,
    cleared: &mut ClearedPtes<'_>,
    ptl: &SpinGuard<'_>,
) -> Result<(), ScanResult> {
    for i in 0..HPAGE_PMD_NR {
        // The PTE lock was dropped after step 1 for the notifier: the folio
        // lock stops new PTEs of it, not CoW copies, swap-out or migration
        // of the existing ones, so check again.
        match table.subpage(vma, haddr, i, folio, ptl) {
            Subpage::None => {}
            // Must clear the entry, or a racing truncate may re-remove it;
            // the TLB flush waits for pmdp_collapse_flush().
            Subpage::Mapped(page) => table.clear(vma, haddr, i, page, cleared, ptl),
            Subpage::NonPresent => return Err(ScanResult::PteNonPresent),
            Subpage::Other => return Err(ScanResult::Fail),
        }
    }
    Ok(())
}

/// Step 5: `set_huge_pmd()`.
fn install(
    vma: &VmaRef,
    haddr: usize,
    pmd: Option<&PmdRef<'_>>,
    folio: &LockedFolio,
) -> ScanResult {
    match set_huge_pmd(vma, haddr, pmd, folio) {
        Ok(()) => ScanResult::Succeed,
        Err(()) => ScanResult::Fail,
    }
}
