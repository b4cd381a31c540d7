// SPDX-License-Identifier: GPL-2.0

//! `retract_page_tables()`: after a collapse, free the now-empty PTE tables
//! of every VMA mapping the extent, so the huge folio can be mapped by a
//! PMD on the next fault. Takes the i_mmap lock (read) only, never an mmap
//! lock: the new folio's lock, still held by the caller, keeps faults from
//! refilling the tables.

#![forbid(unsafe_code)]

use crate::abi::inject_cmd::Point;
use crate::ffi::trace::{self, Retract};
use crate::inject::{self, Target};
use crate::mm::folio::CommittedFolio;
use crate::mm::pgtable::{NotifierRange, PmdAddr, PmdRef, PmdState};
use crate::mm::task::MmExt;
use crate::mm::vma::IMmapVma;
use crate::mm::{VmaExt, PAGE_SHIFT};

/// Retract the page tables mapping the committed huge folio `new` in every
/// VMA of its mapping where that is safe. `new` is still locked: faults on
/// the extent wait on its lock, so an emptied table stays empty.
pub(crate) fn retract_page_tables(new: &CommittedFolio<'_>) {
    let (mapping, pgoff) = (new.mapping(), new.start());
    let immap = mapping.i_mmap_read();
    for vma in immap.vmas(pgoff, pgoff) {
        retract_one(vma, pgoff, Target::of(mapping));
    }
}

/// The loop body of `retract_page_tables()` for one VMA, with its event.
fn retract_one(vma: IMmapVma<'_>, pgoff: usize, target: Target<'_>) {
    let addr = vma.vm_start() + ((pgoff - vma.pgoff()) << PAGE_SHIFT);
    let result = try_retract(&vma, addr, target);
    trace::retract(vma.vm_mm(), addr, result);
}

fn try_retract(vma: &IMmapVma<'_>, addr: usize, target: Target<'_>) -> Retract {
    let Some(addr) = PmdAddr::new(addr) else {
        return Retract::NotPmdAligned;
    };
    if vma.vm_end() < addr.end() {
        return Retract::NotPmdAligned;
    }
    let Some(pmd) = PmdRef::find(vma, addr) else {
        return Retract::NoPteTable;
    };
    if pmd.state() != PmdState::Table {
        return Retract::NoPteTable;
    }
    let mm = vma.vm_mm();
    if mm.exiting() {
        return Retract::MmExiting;
    }
    if !vma.is_retractable() {
        return Retract::NotRetractable;
    }

    // PTEs were notified when unmapped; now for the PMD (seed 002).
    let range = NotifierRange::start(mm, addr);
    crate::stats::count_notifier_range();
    inject::hit(Point::RetractVma, target);
    let pml = pmd.lock();
    // The new folio's lock blocks faults, so even if the old empty table
    // was freed and a new one installed, it is empty too: re-checking that
    // the PMD still points to a table is enough (no pmd_same()).
    if pml.state() != PmdState::Table {
        return Retract::ChangedUnderPtl;
    }
    // Mapped under the PMD lock, so it is the table the PMD points to.
    let Some(table) = pmd.map() else {
        return Retract::ChangedUnderPtl;
    };
    let Some(ptl) = pml.lock_table(&table) else {
        return Retract::ChangedUnderPtl;
    };
    // No mmap lock is held, so a racing UFFDIO_COPY or madvise() may have
    // inserted PTEs or markers since the first check (seed 002's private
    // shmem case). Under the PTE lock, repeating the check settles it.
    if !vma.is_retractable() {
        return Retract::NotRetractableUnderPtl;
    }
    // Only a table that maps nothing may be freed: read under both locks.
    let Ok(empty) = ptl.empty() else {
        return Retract::NotEmpty;
    };
    let retracted = empty.collapse_flush();
    drop(table);
    drop(pml);
    drop(range);
    // Freed after RCU readers (pte_free_defer), with no lock held.
    retracted.free_deferred();
    crate::stats::count_retracted();
    Retract::Retracted
}
