// SPDX-License-Identifier: GPL-2.0

//! `try_collapse_pte_mapped_thp()` and `set_huge_pmd()`: once the page cache
//! holds a huge folio, replace the requesting mm's PTE table over it by one
//! PMD mapping it. Runs under the mmap lock (read), re-taken after the
//! page-cache collapse and revalidated by the caller.

#![forbid(unsafe_code)]

use crate::abi::result::ScanResult;
use crate::mm::pgtable::{
    map_huge_new, NotifierRange, PmdAddr, PmdRef, PteIndex, PteLocked, Subpage,
};
use crate::mm::{FileExt, LockedFolio, MmapRead, VmaExt, VmaRef};

/// Maps the huge folio at `haddr` of the mm by a PMD.
pub(crate) fn try_collapse_pte_mapped_thp(lock: &MmapRead<'_>, haddr: PmdAddr) -> ScanResult {
    let Some(vma) = lock.vma_lookup(haddr.get()) else {
        return ScanResult::VmaCheck;
    };
    // First check the VMA, in case page tables are being torn down.
    let Some(file) = vma.vm_file() else {
        return ScanResult::VmaCheck;
    };
    if !vma.contains(haddr.get(), haddr.end()) {
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
    // Keep the PTE table of uffd-wp (and RWP) VMAs: it holds the markers.
    if vma.uffd_protected() {
        return ScanResult::PteUffd;
    }
    let Some(folio) = file.mapping().lock_folio(vma.pgoff_of(haddr.get())) else {
        return ScanResult::PageNull;
    };
    if !folio.is_pmd_order() {
        return ScanResult::PageCompound;
    }
    let pmd = PmdRef::find(vma, haddr);
    match pmd.as_ref().map(|p| ScanResult::from(p.state())) {
        Some(ScanResult::Succeed) => {}
        // All PTEs were removed and the PMD cleared: just map the PMD.
        None | Some(ScanResult::NoPteTable) => {
            return installed(match &pmd {
                Some(pmd) => pmd.map_huge(&folio),
                None => map_huge_new(vma, haddr, &folio),
            })
        }
        Some(other) => return other,
    }
    let Some(pmd) = pmd else {
        return ScanResult::Fail;
    };
    if let Err(r) = check_ptes(&pmd, &folio) {
        return r;
    }
    match clear_and_retract(&pmd, &folio) {
        Ok(()) => installed(pmd.map_huge(&folio)),
        Err(r) => r,
    }
}

/// Step 1: every mapped PTE maps the matching subpage of `folio`.
fn check_ptes(pmd: &PmdRef<'_, VmaRef>, folio: &LockedFolio) -> Result<(), ScanResult> {
    // The mmap lock and the folio lock are held: the table cannot go away.
    let table = pmd.map().ok_or(ScanResult::Fail)?;
    let ptl = table.lock().ok_or(ScanResult::Fail)?;
    for i in PteIndex::all() {
        // A uprobe, a debugger or MAP_PRIVATE CoW may have changed the
        // table, but then the page is not a subpage of our folio.
        match ptl.check(i, folio) {
            Subpage::None | Subpage::Mapped(()) => {}
            Subpage::NonPresent => return Err(ScanResult::PteNonPresent),
            Subpage::Other => return Err(ScanResult::Fail),
        }
    }
    Ok(())
}

/// Steps 2-4: clear the PTEs and their rmap, fix the counts, and remove
/// the emptied table, inside an MMU-notifier range.
fn clear_and_retract(pmd: &PmdRef<'_, VmaRef>, folio: &LockedFolio) -> Result<(), ScanResult> {
    let vma = pmd.vma();
    let mm = vma.vm_mm();
    let range = NotifierRange::start(mm, pmd.addr());
    crate::stats::count_notifier_range();
    // UFFDIO_COPY into a private VMA inserts an as-if-CoWed PTE without
    // looking up the page cache, so the folio lock does not stop it: for
    // such VMAs take the PMD lock now and keep the PTE lock until the
    // table is gone.
    let early_pml = (vma.uffd_armed() && !vma.is_shared()).then(|| pmd.lock());
    let table = pmd.map().ok_or(ScanResult::Fail)?;
    let retracted = match &early_pml {
        Some(pml) => {
            let ptl = pml.lock_table(&table).ok_or(ScanResult::Fail)?;
            // Step 2 and 3 under the PTE lock, then step 4 under both.
            clear_ptes(&ptl, folio)?;
            let empty = ptl.empty().map_err(|_| ScanResult::Fail)?;
            empty.collapse_flush()
        }
        None => {
            {
                let ptl = table.lock().ok_or(ScanResult::Fail)?;
                // Step 2: clear the table and adjust the rmap, under the
                // PTE lock; step 3: refcount and mm counters.
                clear_ptes(&ptl, folio)?;
            }
            // Step 4: remove the empty table, under the PMD and PTE locks.
            let pml = pmd.lock();
            let Some(ptl) = pml.lock_table(&table) else {
                crate::mm::pgtable::flush_tlb_mm(mm);
                return Err(ScanResult::Fail);
            };
            let empty = ptl.empty().map_err(|_| ScanResult::Fail)?;
            empty.collapse_flush()
        }
    };
    drop(table);
    drop(early_pml);
    drop(range);
    retracted.free_deferred();
    crate::stats::count_retracted();
    Ok(())
}

/// Steps 2 and 3: clears every PTE mapping a subpage of `folio` and its
/// rmap; then the references and rss they held are given back (on a
/// failure too, with a TLB flush, as upstream's abort path).
fn clear_ptes(ptl: &PteLocked<'_, '_, VmaRef>, folio: &LockedFolio) -> Result<(), ScanResult> {
    let mut cleared = ptl.clearing(folio);
    for i in PteIndex::all() {
        // The PTE lock was dropped after step 1 for the notifier: the folio
        // lock stops new PTEs of it, not CoW copies, swap-out or migration
        // of the existing ones, so check again.
        match cleared.entry(i) {
            Subpage::None => {}
            // Must clear the entry, or a racing truncate may re-remove it;
            // the TLB flush waits for pmdp_collapse_flush().
            Subpage::Mapped(pte) => pte.clear(),
            Subpage::NonPresent => return Err(ScanResult::PteNonPresent),
            Subpage::Other => return Err(ScanResult::Fail),
        }
    }
    cleared.done();
    Ok(())
}

/// Step 5's result: `set_huge_pmd()` mapped it, or not.
fn installed(r: Result<(), ()>) -> ScanResult {
    match r {
        Ok(()) => ScanResult::Succeed,
        Err(()) => ScanResult::Fail,
    }
}
