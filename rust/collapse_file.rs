// SPDX-License-Identifier: GPL-2.0

//! `collapse_file()`: replace the 512 small folios of one 2 MiB page-cache
//! extent of a shmem file by one huge folio, or change nothing.
//!
//! The state of a collapse in progress is owned by typed values whose
//! `Drop` is the rollback: the new folio ([`NewFolio`]), the old folios
//! isolated so far with their deferred TLB flush ([`OldFolios`]) and the
//! shmem charge for the holes ([`HoleCharge`]). Every failure returns early and drops them, in the
//! order collapse_file()'s `rollback:` label undoes things; the success
//! path consumes them explicitly.

use crate::guards::{IMmapRead, IsolatedFolio, LockedFolio, XaLockIrq, XaState};
use crate::inject::{self, Target};
use crate::inject_cmd::Point;
use crate::result::ScanResult;
use crate::retract::retract_page_tables;
use crate::sys::bindings;
use crate::vma::{Vma, HPAGE_PMD_NR, HPAGE_PMD_ORDER};
use core::ptr::NonNull;
use kernel::prelude::*;

/// What one collapse did.
#[derive(Clone, Copy)]
pub(crate) struct Outcome {
    pub(crate) result: ScanResult,
    /// Small pages copied into the huge folio.
    pub(crate) copied: usize,
    /// Holes filled with zeroes.
    pub(crate) holes: usize,
}

impl Outcome {
    fn failed(result: ScanResult) -> Self {
        Self {
            result,
            copied: 0,
            holes: 0,
        }
    }
}

/// The huge folio being filled: allocated, charged, locked, `mapping` and
/// `index` set. `Drop` frees it (rollback).
struct NewFolio(NonNull<bindings::folio>);

impl NewFolio {
    /// `alloc_charge_folio()` for MADV_COLLAPSE, then the set-up at the
    /// top of collapse_file().
    fn alloc(
        mm: *mut bindings::mm_struct,
        mapping: *mut bindings::address_space,
        start: u64,
        shmem: bool,
    ) -> Result<Self, ScanResult> {
        if inject::hit(Point::Alloc, Target::of(mapping)) {
            // Counted as a real allocation failure is (THP_COLLAPSE_ALLOC_FAILED).
            // SAFETY: Bumps a vm event counter; no preconditions.
            unsafe { bindings::krs_count_collapse_alloc_failed() };
            return Err(ScanResult::AllocHugePageFail);
        }
        // SAFETY: Allocation has no preconditions.
        let folio = NonNull::new(unsafe { bindings::krs_folio_alloc_pmd() })
            .ok_or(ScanResult::AllocHugePageFail)?;
        // SAFETY: We own the only reference to the fresh folio; `mm` may be
        // null (charge the current task's memcg), as mem_cgroup_charge allows.
        let charged = !inject::hit(Point::Charge, Target::of(mapping))
            // SAFETY: See above.
            && unsafe { bindings::krs_folio_memcg_charge(folio.as_ptr(), mm) } == 0;
        if !charged {
            // SAFETY: Drops our only reference.
            unsafe { bindings::krs_folio_put(folio.as_ptr()) };
            return Err(ScanResult::CgroupChargeFail);
        }
        // SAFETY: The folio is ours alone: locking it with __folio_set_locked
        // and setting index/mapping is what collapse_file() does.
        unsafe { bindings::krs_new_folio_init(folio.as_ptr(), mapping, start as usize, shmem) };
        Ok(Self(folio))
    }

    fn as_ptr(&self) -> *mut bindings::folio {
        self.0.as_ptr()
    }
}

impl Drop for NewFolio {
    fn drop(&mut self) {
        // SAFETY: Never published (type invariant): only we reference it.
        unsafe {
            bindings::krs_new_folio_clear_mapping(self.as_ptr());
            bindings::krs_folio_unlock(self.as_ptr());
            bindings::krs_folio_put(self.as_ptr());
        }
    }
}

/// The old folios isolated so far, in index order, and the TLB flush that
/// `try_to_unmap(TTU_BATCH_FLUSH)` deferred while unmapping them.
///
/// `Drop` flushes first, then puts every folio back (rollback): upstream
/// flushes on every exit of the scan loop ("Do it anyway, to clear the
/// state"), because a CPU may still hold a writable TLB entry for an old
/// page, and that page must not go back to the LRU (to be swapped out,
/// migrated or freed) while such a write can still land in it.
struct OldFolios(KVec<IsolatedFolio>);

impl OldFolios {
    /// `try_to_unmap_flush()`: flushes the TLB entries batched so far.
    fn flush_tlb(&self) {
        // SAFETY: Flushes the current task's batch; may wait for other
        // CPUs, so no spinlock may be held: callers hold none.
        unsafe { bindings::krs_try_to_unmap_flush() };
    }
}

impl Drop for OldFolios {
    fn drop(&mut self) {
        // Before the folios (the field) are unlocked and put back.
        self.flush_tlb();
    }
}

/// `shmem_charge()` of the holes, which also raised `mapping->nrpages`.
/// `Drop` undoes both (rollback); a committed collapse forgets it.
struct HoleCharge {
    mapping: *mut bindings::address_space,
    nr: usize,
}

impl Drop for HoleCharge {
    fn drop(&mut self) {
        {
            // The same xa_lock as the collapse's own state takes; no
            // xa_lock is held when a charge is dropped.
            let mut xas = XaState::new(self.mapping, 0, 0);
            let _xa = xas.lock_irq();
            // SAFETY: Under the xa_lock, as collapse_file()'s rollback does.
            unsafe { bindings::krs_mapping_sub_nrpages(self.mapping, self.nr) };
        }
        // SAFETY: Returns exactly what `shmem_charge` took.
        unsafe { bindings::krs_shmem_uncharge(self.mapping, self.nr as isize) };
    }
}

/// `collapse_file()` for the shmem extent `[start, start + 512)` of
/// `mapping`; `mm` (possibly null) is charged for the new folio. The result
/// is `SCAN_SUCCEED` only when this call committed a new huge folio (the
/// page tables are then retracted; the `addr=` caller turns it into
/// `SCAN_PTE_MAPPED_HUGEPAGE`, as collapse_file() does for MADV_COLLAPSE,
/// and maps it by a PMD). `SCAN_PTE_MAPPED_HUGEPAGE` from here means a huge
/// folio was already in the page cache: nothing was collapsed.
pub(crate) fn collapse_file(
    mm: *mut bindings::mm_struct,
    mapping: *mut bindings::address_space,
    start: u64,
) -> Outcome {
    let end = start + HPAGE_PMD_NR as u64;
    let target = Target::of(mapping);
    let mut xas = XaState::new(mapping, start, HPAGE_PMD_ORDER);
    let new = match NewFolio::alloc(mm, mapping, start, true) {
        Ok(f) => f,
        Err(r) => return Outcome::failed(r),
    };
    let mut old = match KVec::<IsolatedFolio>::with_capacity(HPAGE_PMD_NR, GFP_KERNEL) {
        Ok(v) => OldFolios(v),
        Err(_) => return rollback(ScanResult::Fail),
    };

    // Make sure we have slots for all the pages in the range.
    let xa = loop {
        let mut xa = xas.lock_irq();
        // SAFETY: Under the xa_lock, on our state.
        unsafe { bindings::krs_xas_create_range(xa.xas()) };
        // SAFETY: Reads our state.
        let failed = unsafe { bindings::krs_xas_error(xa.xas()) };
        let injected = !failed && inject::hit(Point::XasNomem, target);
        if !failed && !injected {
            break xa;
        }
        let xas = xa.unlock();
        // SAFETY: Allocates the node the failed call asked for; no lock held.
        if injected || !unsafe { bindings::krs_xas_nomem(xas.raw()) } {
            return rollback(ScanResult::Fail);
        }
    };

    // On failure `old` drops on return: TLB flush, then the folios go back.
    let nr_none = match isolate_old_folios(xa, mapping, target, start, end, &mut old.0) {
        Ok(n) => n,
        Err(r) => return rollback(r),
    };
    old.flush_tlb();

    let charge = if nr_none > 0 {
        let charged = !inject::hit(Point::ShmemCharge, target)
            // SAFETY: `mapping` is a live shmem mapping.
            && unsafe { bindings::krs_shmem_charge(mapping, nr_none as isize) };
        if !charged {
            return rollback(ScanResult::Fail);
        }
        Some(HoleCharge {
            mapping,
            nr: nr_none,
        })
    } else {
        None
    };

    inject::hit(Point::BeforeCopy, target);
    // The old folios are locked, so they won't change any more.
    let copied = match copy_into(&new, &old.0, start, target) {
        Ok(n) => n,
        Err(r) => return rollback(r),
    };

    let mut xa = if nr_none > 0 {
        inject::hit(Point::BeforeRecheck, target);
        inject::hit(Point::BeforeStore, target);
        match fill_holes(&mut xas, mapping, start, end, nr_none) {
            Ok(xa) => xa,
            Err(r) => {
                crate::stats::count_rollback(r);
                drop(charge);
                return rollback_quiet(r);
            }
        }
    } else {
        inject::hit(Point::BeforeStore, target);
        xas.lock_irq()
    };

    // Commit: publish the new folio as one multi-index entry.
    // SAFETY: The new folio is locked and ours; the stats, refcount
    // (512 for the page cache), dirty bit and LRU add are collapse_file's.
    unsafe { bindings::krs_new_folio_publish(new.as_ptr(), true) };
    // SAFETY: Under xa_lock, on our state.
    unsafe {
        bindings::krs_xas_set_order(xa.xas(), start as usize, HPAGE_PMD_ORDER);
        bindings::krs_xas_store(xa.xas(), new.as_ptr().cast());
    }
    // SAFETY: Reads our state.
    warn_on_once!(unsafe { bindings::krs_xas_error(xa.xas()) });
    drop(xa);
    if let Some(c) = charge {
        // The holes now belong to the huge folio: keep the charge.
        core::mem::forget(c);
    }
    let new = core::mem::ManuallyDrop::new(new);

    // Remove PTE tables while the new folio is still locked: faults wait
    // on its lock, so the emptied tables cannot be refilled meanwhile.
    retract_page_tables(mapping, start);
    // SAFETY: The page cache owns the folio now; we only drop our lock.
    unsafe { bindings::krs_folio_unlock(new.as_ptr()) };

    for folio in old.0.drain_all() {
        folio.retire(true);
    }
    crate::stats::count_collapse(copied, nr_none);
    Outcome {
        result: ScanResult::Succeed,
        copied,
        holes: nr_none,
    }
}

/// A failed collapse: everything still owned by the caller's frame is
/// dropped on return (old folios put back, charge undone, new folio freed).
fn rollback(r: ScanResult) -> Outcome {
    crate::stats::count_rollback(r);
    Outcome::failed(r)
}

fn rollback_quiet(r: ScanResult) -> Outcome {
    Outcome::failed(r)
}

/// The scan loop of collapse_file() (shmem): lock, isolate and unmap every
/// present folio of the extent, count the holes. Enters with the xa_lock
/// held; returns `nr_none`, with no lock held either way.
fn isolate_old_folios(
    mut xa: XaLockIrq<'_>,
    mapping: *mut bindings::address_space,
    target: Target,
    start: u64,
    end: u64,
    old: &mut KVec<IsolatedFolio>,
) -> Result<usize, ScanResult> {
    let mut nr_none = 0usize;
    let mut index = start;
    while index < end {
        // SAFETY: Under the xa_lock, on our state.
        let entry = unsafe {
            bindings::krs_xas_set(xa.xas(), index as usize);
            bindings::krs_xas_load(xa.xas())
        };
        if entry.is_null() {
            // Stop if the extent has been truncated or hole-punched and is
            // now completely empty.
            if index == start {
                // SAFETY: Under the xa_lock, on our state.
                let rest = unsafe { bindings::krs_xas_next_entry(xa.xas(), (end - 1) as usize) };
                if rest.is_null() {
                    return Err(ScanResult::Truncated);
                }
            }
            nr_none += 1;
            index += 1;
            continue;
        }

        // SAFETY: Under the xa_lock, a page-cache folio cannot be freed.
        let needs_swapin = unsafe { bindings::krs_xa_is_value(entry) }
            || !unsafe { bindings::krs_folio_test_uptodate(entry.cast()) };
        let (folio, xas) = if needs_swapin {
            let xas = xa.unlock();
            // Swap in, or instantiate a fallocated page.
            let mut folio = core::ptr::null_mut();
            // SAFETY: No spinlock held; shmem_get_folio may sleep and
            // returns a locked, referenced folio.
            if unsafe { bindings::krs_shmem_get_folio(mapping, index as usize, &mut folio) } != 0 {
                return Err(ScanResult::Fail);
            }
            // SAFETY: Drains the per-CPU LRU caches to help isolation.
            unsafe { bindings::krs_lru_add_drain() };
            let folio = NonNull::new(folio).ok_or(ScanResult::Fail)?;
            // SAFETY: shmem_get_folio gave us the lock and a reference.
            (unsafe { LockedFolio::from_raw(folio) }, xas)
        } else {
            let folio: *mut bindings::folio = entry.cast();
            // SAFETY: Under the xa_lock the folio is live.
            if !unsafe { bindings::krs_folio_trylock(folio) } {
                return Err(ScanResult::PageLock);
            }
            // SAFETY: Locked and live: take our pin.
            unsafe { bindings::krs_folio_get(folio) };
            // SAFETY: We just took the lock and a reference.
            let locked = unsafe { LockedFolio::from_raw(NonNull::new_unchecked(folio)) };
            (locked, xa.unlock())
        };
        // The folio is locked, so the i_pages lock can be dropped without
        // racing with truncate.
        let isolated = check_and_isolate(folio, mapping)?;
        inject::hit(Point::ScanIndex, target);
        let relocked = XaLockIrq::lock(xas);
        // We control 2 + nr_pages references: our pin, the page cache's,
        // the LRU isolation's. Any other user must take the folio lock,
        // which we hold, so the count cannot grow behind our back.
        // SAFETY: We hold a reference.
        let (refs, nr) = unsafe {
            (
                bindings::krs_folio_ref_count(isolated.as_ptr()),
                bindings::krs_folio_nr_pages(isolated.as_ptr()) as usize,
            )
        };
        if refs != 2 + nr as i32 {
            drop(relocked);
            drop(isolated);
            return Err(ScanResult::PageCount);
        }
        old.push(isolated, GFP_ATOMIC)
            .map_err(|_| ScanResult::Fail)?;
        index += nr as u64;
        xa = relocked;
    }
    drop(xa);
    Ok(nr_none)
}

/// The checks between locking an old folio and re-taking the xa_lock:
/// uptodate, not already huge, still in this mapping, isolated from the
/// LRU, private data released, unmapped from every page table.
fn check_and_isolate(
    folio: LockedFolio,
    mapping: *mut bindings::address_space,
) -> Result<IsolatedFolio, ScanResult> {
    let f = folio.as_ptr();
    // SAFETY: We hold the folio's lock and a reference (also below).
    if !unsafe { bindings::krs_folio_test_uptodate(f) } {
        return Err(ScanResult::Fail);
    }
    // If the file was truncated then extended, or hole-punched, before we
    // locked the first folio, a THP might be there already.
    // SAFETY: See above.
    if unsafe { bindings::krs_folio_order(f) } == HPAGE_PMD_ORDER {
        return Err(ScanResult::PteMappedHugepage);
    }
    // SAFETY: See above.
    if unsafe { bindings::krs_folio_mapping(f) } != mapping {
        return Err(ScanResult::Truncated);
    }
    let isolated = folio.isolate_lru().map_err(|_| ScanResult::DelPageLru)?;
    // SAFETY: Locked, isolated folio; may sleep, no spinlock held.
    if !unsafe { bindings::krs_folio_release(isolated.as_ptr()) } {
        return Err(ScanResult::PageHasPrivate);
    }
    // SAFETY: Locked folio, no spinlock held.
    if unsafe { bindings::krs_folio_mapped(isolated.as_ptr()) } {
        // SAFETY: try_to_unmap on a locked folio.
        unsafe { bindings::krs_folio_unmap(isolated.as_ptr()) };
    }
    Ok(isolated)
}

/// Copies the old folios into the new one in index order and zeroes the
/// holes (`copy_mc_highpage`, `clear_highpage`). Returns pages copied.
fn copy_into(
    new: &NewFolio,
    old: &KVec<IsolatedFolio>,
    start: u64,
    target: Target,
) -> Result<usize, ScanResult> {
    // A poisoned source page, on request (as copy_mc_highpage reports it).
    if !old.is_empty() && inject::hit(Point::CopyMc, target) {
        return Err(ScanResult::CopyMc);
    }
    let mut dst = 0usize;
    let mut copied = 0usize;
    for folio in old.iter() {
        // SAFETY: `folio` is locked and pinned; `new` is ours (also below).
        let (index, nr) = unsafe {
            (
                bindings::krs_folio_index(folio.as_ptr()) as u64,
                bindings::krs_folio_nr_pages(folio.as_ptr()) as usize,
            )
        };
        while start + (dst as u64) < index {
            // SAFETY: See above; dst < 512.
            unsafe { bindings::krs_zero_page(new.as_ptr(), dst) };
            dst += 1;
        }
        for i in 0..nr {
            // SAFETY: See above; dst < 512, i < nr.
            if unsafe { bindings::krs_copy_mc_page(new.as_ptr(), dst, folio.as_ptr(), i) } > 0 {
                return Err(ScanResult::CopyMc);
            }
            dst += 1;
            copied += 1;
        }
    }
    while dst < HPAGE_PMD_NR {
        // SAFETY: See above.
        unsafe { bindings::krs_zero_page(new.as_ptr(), dst) };
        dst += 1;
    }
    Ok(copied)
}

/// Fill every hole with `XA_RETRY_ENTRY` under the i_mmap and xa locks,
/// then re-count: a hole filled since the scan (a fault, seed 000) means
/// `SCAN_PAGE_FILLED`; a VMA of the mapping with a MISSING userfaultfd
/// means `SCAN_EXCEED_NONE_PTE` (userspace may wait for that fault). On
/// failure the retry entries are cleared again. On success the xa_lock is
/// returned held, for the multi-index store.
fn fill_holes<'a>(
    xas: &'a mut XaState,
    mapping: *mut bindings::address_space,
    start: u64,
    end: u64,
    nr_none: usize,
) -> Result<XaLockIrq<'a>, ScanResult> {
    let immap = IMmapRead::lock(mapping);
    let mut xa = xas.lock_irq();
    let result = (|| {
        let mut check = 0usize;
        // SAFETY: Under the xa_lock, on our state (also the calls below).
        unsafe { bindings::krs_xas_set(xa.xas(), start as usize) };
        for _ in start..end {
            // SAFETY: See above.
            if unsafe { bindings::krs_xas_next(xa.xas()) }.is_null() {
                // SAFETY: See above.
                unsafe { bindings::krs_xas_store(xa.xas(), bindings::krs_xa_retry_entry()) };
                // SAFETY: See above.
                if unsafe { bindings::krs_xas_error(xa.xas()) } {
                    return Err(ScanResult::StoreFailed);
                }
                check += 1;
            }
        }
        if check != nr_none {
            return Err(ScanResult::PageFilled);
        }
        // Userfaultfds registered after this point cannot observe a
        // missing page: the retry entries are in place.
        // SAFETY: The i_mmap lock is held, so the tree and its VMAs are
        // stable while we walk it.
        let mut vma = unsafe { bindings::krs_vma_first(mapping, start as usize, end as usize) };
        // SAFETY: Each VMA is valid under the i_mmap lock.
        while let Some(v) = unsafe { Vma::from_raw(vma) } {
            if v.uffd_missing() {
                return Err(ScanResult::ExceedNonePte);
            }
            // SAFETY: See above.
            vma = unsafe { bindings::krs_vma_next(vma, start as usize, end as usize) };
        }
        Ok(())
    })();
    drop(immap);
    match result {
        Ok(()) => Ok(xa),
        Err(r) => {
            // SAFETY: Under the xa_lock, on our state (also the calls below).
            unsafe { bindings::krs_xas_set(xa.xas(), start as usize) };
            // SAFETY: Returns a constant.
            let retry = unsafe { bindings::krs_xa_retry_entry() };
            for _ in start..end {
                // SAFETY: See above.
                if unsafe { bindings::krs_xas_next(xa.xas()) } == retry {
                    // SAFETY: See above.
                    unsafe { bindings::krs_xas_store(xa.xas(), core::ptr::null_mut()) };
                }
            }
            drop(xa);
            Err(r)
        }
    }
}
