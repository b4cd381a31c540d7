// SPDX-License-Identifier: GPL-2.0

//! `retract_page_tables()`: after a collapse, free the now-empty PTE tables
//! of every VMA mapping the extent, so the huge folio can be mapped by a
//! PMD on the next fault. Takes the i_mmap lock (read) only, never an mmap
//! lock: the new folio's lock, still held by the caller, keeps faults from
//! refilling the tables.

use crate::guards::{IMmapRead, NotifierRange, SpinGuard};
use crate::inject::{self, Target};
use crate::inject_cmd::Point;
use crate::pmd;
use crate::result::ScanResult;
use crate::sys::bindings;
use crate::vma::{Vma, HPAGE_PMD_SIZE, PAGE_SHIFT};

/// Retract the page tables mapping page `pgoff` (2 MiB aligned) of
/// `mapping` in every VMA where that is safe.
pub(crate) fn retract_page_tables(mapping: *mut bindings::address_space, pgoff: u64) {
    let _immap = IMmapRead::lock(mapping);
    // SAFETY: The i_mmap lock is held: the tree and its VMAs are stable.
    let mut raw = unsafe { bindings::krs_vma_first(mapping, pgoff as usize, pgoff as usize) };
    // SAFETY: Each VMA of the tree is valid while the i_mmap lock is held.
    while let Some(vma) = unsafe { Vma::from_raw(raw) } {
        retract_one(vma, pgoff, Target::of(mapping));
        // SAFETY: See above.
        raw = unsafe { bindings::krs_vma_next(raw, pgoff as usize, pgoff as usize) };
    }
}

/// The loop body of `retract_page_tables()` for one VMA.
fn retract_one(vma: Vma<'_>, pgoff: u64, target: Target) {
    let addr = vma.start() + ((pgoff - vma.pgoff()) << PAGE_SHIFT);
    if addr & (HPAGE_PMD_SIZE - 1) != 0 || vma.end() < addr + HPAGE_PMD_SIZE {
        return;
    }
    let mm = vma.mm();
    // SAFETY: `mm` has a VMA in the tree we hold the i_mmap lock of.
    let (pmd, state) = unsafe { pmd::find(mm, addr) };
    if state != ScanResult::Succeed {
        return;
    }
    // SAFETY: As above; reads mm_users.
    if unsafe { bindings::krs_mm_exiting(mm) } {
        return;
    }
    if !vma.is_retractable() {
        return;
    }

    // PTEs were notified when unmapped; now for the PMD (seed 002).
    let range = NotifierRange::start(mm, addr, addr + HPAGE_PMD_SIZE);
    inject::hit(Point::RetractVma, target);
    // SAFETY: The PMD lock of a live table (see above): pmd_lock().
    let pml = unsafe { SpinGuard::lock(bindings::krs_pmd_lockptr(mm, pmd)) };
    // The new folio's lock blocks faults, so even if the old empty table
    // was freed and a new one installed, it is empty too: re-checking that
    // the PMD still points to a table is enough (no pmd_same()).
    // SAFETY: Under the PMD lock.
    if unsafe { pmd::check_state(pmd) } != ScanResult::Succeed {
        return;
    }
    // SAFETY: The PMD points to a table (checked under the PMD lock).
    let ptl = unsafe { bindings::krs_pte_lockptr(mm, pmd) };
    let pte_lock = if ptl != pml.as_ptr() {
        // SAFETY: The PTE lock of that table, nested in the PMD lock.
        Some(unsafe { SpinGuard::lock_nested(ptl) })
    } else {
        None
    };
    // No mmap lock is held, so a racing UFFDIO_COPY or madvise() may have
    // inserted PTEs or markers since the first check (seed 002's private
    // shmem case). Under the PTE lock, repeating the check settles it.
    let pgt_pmd = if vma.is_retractable() {
        // SAFETY: PMD and PTE locks held; the table is empty of this
        // folio's PTEs (they were unmapped) and nothing else (checked).
        let pgt = unsafe { bindings::krs_pmdp_collapse_flush(vma.as_ptr(), addr as usize, pmd) };
        // SAFETY: No preconditions.
        unsafe { bindings::krs_pmdp_get_lockless_sync() };
        Some(pgt)
    } else {
        None
    };
    drop(pte_lock);
    drop(pml);
    drop(range);

    if let Some(pgt) = pgt_pmd {
        // SAFETY: `pgt` is the table just removed from `mm`; freeing it is
        // deferred past RCU readers (pte_free_defer).
        unsafe { bindings::krs_free_retracted_table(mm, addr as usize, pgt) };
        crate::stats::count_retracted();
    }
}
