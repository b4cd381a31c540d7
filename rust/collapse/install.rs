// SPDX-License-Identifier: GPL-2.0

//! `try_collapse_pte_mapped_thp()` and `set_huge_pmd()`: once the page cache
//! holds a huge folio, replace the requesting mm's PTE table over it by one
//! PMD mapping it (MADV_COLLAPSE), or only retract the table, leaving the
//! PMD to the next fault (khugepaged: `install_pmd == false`). Runs under
//! the mmap lock (read), re-taken after the page-cache collapse and
//! revalidated by the caller.

#![forbid(unsafe_code)]

use super::control::Pmd;
use crate::abi::result::ScanResult;
use crate::mm::folio::PmdFolio;
use crate::mm::pgtable::{
    map_huge_new, NotifierRange, PmdAddr, PmdRef, PteIndex, PteLocked, Subpage,
};
use crate::mm::{FileExt, MmapRead, Tva, VmaExt, VmaRef};

/// What [`try_collapse_pte_mapped_thp`] did. Upstream returns
/// `SCAN_SUCCEED` for the first three ([`PmdOutcome::upstream`]), also
/// when nothing was done at all.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PmdOutcome {
    /// `set_huge_pmd()` mapped the folio ([`Pmd::Install`]).
    Mapped,
    /// The PTE table over the folio was retracted; the PMD comes with the
    /// next fault ([`Pmd::AtNextFault`]).
    Retracted,
    /// No PTE table (retracted earlier, or never faulted in): nothing was
    /// done; the PMD comes with the next fault ([`Pmd::AtNextFault`]).
    NoTable,
    /// Anything else upstream returns (`SCAN_PMD_MAPPED` included).
    Other(ScanResult),
}

impl PmdOutcome {
    /// `try_collapse_pte_mapped_thp()`'s return value.
    pub(crate) fn upstream(self) -> ScanResult {
        match self {
            PmdOutcome::Mapped | PmdOutcome::Retracted | PmdOutcome::NoTable => ScanResult::Succeed,
            PmdOutcome::Other(r) => r,
        }
    }
}

/// Maps the huge folio at `haddr` of the mm by a PMD (`pmd` is
/// [`Pmd::Install`]), or retracts the PTE table mapping it so that the
/// next fault maps it by a PMD ([`Pmd::AtNextFault`]).
pub(crate) fn try_collapse_pte_mapped_thp(
    lock: &MmapRead<'_>,
    haddr: PmdAddr,
    pmd_install: Pmd,
) -> PmdOutcome {
    use PmdOutcome::Other;
    let Some(vma) = lock.vma_lookup(haddr.get()) else {
        return Other(ScanResult::VmaCheck);
    };
    // First check the VMA, in case page tables are being torn down.
    let Some(file) = vma.vm_file() else {
        return Other(ScanResult::VmaCheck);
    };
    if !vma.contains(haddr.get(), haddr.end()) {
        return Other(ScanResult::VmaCheck);
    }
    // Fast check before locking the folio: already PMD-mapped?
    if let Some(pmd) = PmdRef::find(vma, haddr) {
        if ScanResult::from(pmd.state()) == ScanResult::PmdMapped {
            return Other(ScanResult::PmdMapped);
        }
    }
    // The page cache is huge now; a fault in a suitably aligned VMA would
    // map it by a PMD whatever the sysfs settings, so force as upstream.
    if !vma.allows_collapse(Tva::Forced) {
        return Other(ScanResult::VmaCheck);
    }
    // Keep the PTE table of uffd-wp (and RWP) VMAs: it holds the markers.
    if vma.uffd_protected() {
        return Other(ScanResult::PteUffd);
    }
    let Some(locked) = file.mapping().lock_folio(vma.pgoff_of(haddr.get())) else {
        return Other(ScanResult::PageNull);
    };
    let Some(folio) = locked.as_pmd_order() else {
        return Other(ScanResult::PageCompound);
    };
    let pmd = PmdRef::find(vma, haddr);
    match pmd.as_ref().map(|p| ScanResult::from(p.state())) {
        Some(ScanResult::Succeed) => {}
        // All PTEs were removed and the PMD cleared: skip the PTE checks
        // and just update the PMD mapping (or leave it to the next fault).
        None | Some(ScanResult::NoPteTable) => {
            return match pmd_install {
                Pmd::AtNextFault => PmdOutcome::NoTable,
                Pmd::Install => installed(match &pmd {
                    Some(pmd) => pmd.map_huge(folio),
                    None => map_huge_new(vma, haddr, folio),
                }),
            };
        }
        Some(other) => return Other(other),
    }
    let Some(pmd) = pmd else {
        return Other(ScanResult::Fail);
    };
    if let Err(r) = check_ptes(&pmd, folio) {
        return Other(r);
    }
    match clear_and_retract(&pmd, folio) {
        // Step 5: install the PMD entry, or not.
        Ok(()) => match pmd_install {
            Pmd::AtNextFault => PmdOutcome::Retracted,
            Pmd::Install => installed(pmd.map_huge(folio)),
        },
        Err(r) => Other(r),
    }
}

/// Step 1: every mapped PTE maps the matching subpage of `folio`.
fn check_ptes(pmd: &PmdRef<'_, VmaRef>, folio: &PmdFolio) -> Result<(), ScanResult> {
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
fn clear_and_retract(pmd: &PmdRef<'_, VmaRef>, folio: &PmdFolio) -> Result<(), ScanResult> {
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
fn clear_ptes(ptl: &PteLocked<'_, '_, VmaRef>, folio: &PmdFolio) -> Result<(), ScanResult> {
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
fn installed(r: Result<(), ()>) -> PmdOutcome {
    match r {
        Ok(()) => PmdOutcome::Mapped,
        Err(()) => PmdOutcome::Other(ScanResult::Fail),
    }
}
