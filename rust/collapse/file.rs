// SPDX-License-Identifier: GPL-2.0

//! `collapse_file()`: replace the 512 small folios of one 2 MiB page-cache
//! extent of a file by one huge folio, or change nothing. Both branches of
//! upstream's function: shmem (holes are filled with zeroes, swapped-out
//! pages brought in) and regular files on filesystems with PMD-sized folios
//! (no holes: missing pages are read; dirty or writeback folios refused).
//!
//! The state of a collapse in progress is owned by typed values whose
//! `Drop` is the rollback, each step consuming the state before it (the mm
//! layer's typestate, `Documentation/design.rst`): the new folio
//! ([`NewFolio`], then a copied one), the old folios isolated so far with
//! their deferred TLB flush ([`OldFolios`], then flushed), the shmem charge
//! for the holes, and the holes filled with retry entries under the
//! xa_lock ([`HolesFilled`]). Every failure returns early and drops them,
//! in the order collapse_file()'s `rollback:` label undoes things (retry
//! entries, charge, old folios, new folio: the reverse of their creation);
//! the commit consumes them.

#![forbid(unsafe_code)]

use super::retract::retract_page_tables;
use crate::abi::inject_cmd::Point;
use crate::abi::result::ScanResult;
use crate::inject::{self, Target};
use crate::mm::folio::{AllocGfp, IsolateError, IsolatedExtent, NodeLoad, UnchargedFolio};
use crate::mm::page_cache::{FillError, HoleCharge, HolesFilled, ShmemMapping, XaLocked};
use crate::mm::{
    AddressSpace, Entry, FileExt, LocalFile, LockedFolio, Mm, NewFolio, OldFolios, VmaExt,
    XaCursor, HPAGE_PMD_NR, HPAGE_PMD_ORDER,
};

/// What one collapse did.
#[derive(Clone, Copy)]
pub(crate) struct Outcome {
    pub(crate) result: ScanResult,
    /// Small pages copied into the huge folio.
    pub(crate) copied: usize,
    /// Holes filled with zeroes.
    pub(crate) holes: usize,
    /// The pfn of the huge folio this collapse committed.
    pub(crate) hpfn: Option<usize>,
    /// The node the huge folio was asked for (`collapse_find_target_node()`),
    /// once one was allocated.
    pub(crate) node: Option<i32>,
}

impl Outcome {
    pub(crate) fn failed(result: ScanResult) -> Self {
        Self {
            result,
            copied: 0,
            holes: 0,
            hpfn: None,
            node: None,
        }
    }
}

/// How to allocate the huge folio: the request's flags, and the nodes the
/// scan found the old folios on.
#[derive(Clone, Copy)]
pub(crate) struct Alloc<'a> {
    pub(crate) gfp: AllocGfp,
    pub(crate) load: &'a NodeLoad,
}

/// The file being collapsed, and which branch of collapse_file() applies
/// (upstream's `is_shmem`: `shmem` is the mapping as shmem's).
#[derive(Clone, Copy)]
struct Source<'a> {
    file: &'a LocalFile,
    mapping: &'a AddressSpace,
    shmem: Option<&'a ShmemMapping>,
    target: Target<'a>,
}

/// `alloc_charge_folio()`, then the set-up at the top of collapse_file();
/// the `alloc` and `charge` fail points fail as the kernel would (and are
/// counted the same). Returns the target node with the result: one was
/// chosen when the allocation was tried.
fn alloc_new_folio(
    mm: Option<&Mm>,
    src: Source<'_>,
    start: usize,
    alloc: Alloc<'_>,
) -> (Option<i32>, Result<NewFolio, ScanResult>) {
    let target = src.target;
    if inject::hit(Point::Alloc, target) {
        UnchargedFolio::count_alloc_failed();
        return (None, Err(ScanResult::AllocHugePageFail));
    }
    let Some(folio) = UnchargedFolio::alloc(alloc.gfp, alloc.load) else {
        return (None, Err(ScanResult::AllocHugePageFail));
    };
    let node = Some(folio.node());
    if inject::hit(Point::Charge, target) {
        return (node, Err(ScanResult::CgroupChargeFail));
    }
    let new = folio
        .charge(mm, src.mapping, start)
        .map_err(|()| ScanResult::CgroupChargeFail);
    (node, new)
}

/// `collapse_file()` for the extent `[start, start + 512)` of `file`'s page
/// cache; `mm` (the current task's memcg when `None`) is charged for the
/// new folio. The result is `SCAN_SUCCEED` only when this call
/// committed a new huge folio (the page tables are then retracted; the
/// `addr=` caller turns it into `SCAN_PTE_MAPPED_HUGEPAGE`, as
/// collapse_file() does for MADV_COLLAPSE, and maps it by a PMD).
/// `SCAN_PTE_MAPPED_HUGEPAGE` from here means a huge folio was already in
/// the page cache: nothing was collapsed.
pub(crate) fn collapse_file(
    mm: Option<&Mm>,
    file: &LocalFile,
    start: usize,
    alloc: Alloc<'_>,
) -> Outcome {
    let mapping = file.mapping();
    let src = Source {
        file,
        mapping,
        shmem: mapping.as_shmem(),
        target: Target::of(mapping),
    };
    let mut node = None;
    let mut done = match collapse(mm, src, start, alloc, &mut node) {
        Ok(done) => {
            crate::stats::count_collapse(done.copied, done.holes);
            done
        }
        Err(Failure::Rollback(r)) => {
            crate::stats::count_rollback(r);
            Outcome::failed(r)
        }
        Err(Failure::Before(r)) => Outcome::failed(r),
    };
    done.node = node;
    done
}

/// How a collapse failed: before anything was under way (allocation,
/// charge), or with a rollback.
enum Failure {
    Before(ScanResult),
    Rollback(ScanResult),
}

impl From<ScanResult> for Failure {
    fn from(r: ScanResult) -> Self {
        Failure::Rollback(r)
    }
}

impl From<FillError> for ScanResult {
    fn from(e: FillError) -> Self {
        match e {
            FillError::StoreFailed => ScanResult::StoreFailed,
            FillError::Filled => ScanResult::PageFilled,
        }
    }
}

/// The commit sequence, each step consuming the state before it (the mm
/// layer's types): isolate the old folios (`OldFolios`), flush
/// (`IsolatedExtent`), copy (`CopiedFolio`), fill the holes with retry
/// entries (`HolesFilled`), store and publish (`CommittedFolio`), retract,
/// retire the old folios (`ReplacedFolios`). Every early return drops what
/// is held: the rollback, in collapse_file()'s order.
fn collapse(
    mm: Option<&Mm>,
    src: Source<'_>,
    start: usize,
    alloc: Alloc<'_>,
    node: &mut Option<i32>,
) -> Result<Outcome, Failure> {
    let end = start + HPAGE_PMD_NR;
    let (mapping, target) = (src.mapping, src.target);
    let (asked, new) = alloc_new_folio(mm, src, start, alloc);
    *node = asked;
    let new = new.map_err(Failure::Before)?;
    // mapping_set_update(): outside shmem, emptied nodes stay accounted.
    let mut xas = mapping.collapse_cursor(start, HPAGE_PMD_ORDER);
    let mut old = OldFolios::new(mapping, start).map_err(|_| ScanResult::Fail)?;

    // Make sure we have slots for all the pages in the range.
    let xa = create_range(&mut xas, target)?;

    // On failure `old` drops on return: TLB flush, then the folios go back.
    // A regular file has no holes (nr_none stays 0): its missing pages are
    // read in.
    let nr_none = isolate_old_folios(xa, src, start, end, &mut old)?;
    let old = old.finish();

    let charge = match src.shmem {
        Some(shmem) if nr_none > 0 => {
            let charge = (!inject::hit(Point::ShmemCharge, target))
                .then(|| shmem.shmem_charge(nr_none))
                .flatten();
            Some(charge.ok_or(ScanResult::Fail)?)
        }
        _ => None,
    };

    inject::hit(Point::BeforeCopy, target);
    // A poisoned source page, on request (as copy_mc_highpage reports it).
    if !old.is_empty() && inject::hit(Point::CopyMc, target) {
        return Err(ScanResult::CopyMc.into());
    }
    // The old folios are locked, so they won't change any more.
    let hpfn = new.pfn();
    let copied = old.covered();
    let new = match new.copy_from(&old) {
        Ok(new) => new,
        Err(new) => {
            // Rollback in collapse_file()'s order: charge, old, new.
            drop(charge);
            drop(old);
            drop(new);
            return Err(ScanResult::CopyMc.into());
        }
    };

    let filled = if nr_none > 0 {
        inject::hit(Point::BeforeRecheck, target);
        inject::hit(Point::BeforeStore, target);
        recheck_holes(&mut xas, mapping, start, end, nr_none, old, charge)?
    } else {
        inject::hit(Point::BeforeStore, target);
        xas.lock()
            .fill_holes(old, charge)
            .map_err(ScanResult::from)?
    };

    // Commit: publish the new folio as one multi-index entry.
    let (new, old) = filled.commit(new).map_err(|()| ScanResult::Fail)?;

    // Remove PTE tables while the new folio is still locked: faults wait
    // on its lock, so the emptied tables cannot be refilled meanwhile.
    retract_page_tables(&new);
    drop(new);

    old.retire();
    Ok(Outcome {
        result: ScanResult::Succeed,
        copied,
        holes: nr_none,
        hpfn: Some(hpfn),
        node: *node,
    })
}

/// `xas_create_range()`, allocating nodes (`xas_nomem()`) until it works;
/// returns with the xa_lock held.
fn create_range<'c, 'a>(
    xas: &'c mut XaCursor<'a>,
    target: Target<'_>,
) -> Result<XaLocked<'c, 'a>, ScanResult> {
    let mut xas = xas;
    loop {
        let mut xa = xas.lock();
        let failed = xa.create_range().is_err();
        let injected = !failed && inject::hit(Point::XasNomem, target);
        if !failed && !injected {
            return Ok(xa);
        }
        xas = xa.unlock();
        if injected || !xas.nomem() {
            return Err(ScanResult::Fail);
        }
    }
}

/// The scan loop of collapse_file(): lock, isolate and unmap every folio
/// of the extent; for shmem, count the holes. Enters with the xa_lock
/// held; returns `nr_none`, with no lock held either way.
fn isolate_old_folios(
    mut xa: XaLocked<'_, '_>,
    src: Source<'_>,
    start: usize,
    end: usize,
    old: &mut OldFolios<'_>,
) -> Result<usize, ScanResult> {
    let mapping = src.mapping;
    let mut nr_none = 0usize;
    let mut index = start;
    while index < end {
        let (folio, xas) = if let Some(shmem) = src.shmem {
            match xa.load_at(index) {
                // A retry or other internal entry is no folio: as a hole.
                Entry::None | Entry::Internal => {
                    // Stop if the extent has been truncated or hole-punched
                    // and is now completely empty.
                    if index == start && !xa.any_up_to(end - 1) {
                        return Err(ScanResult::Truncated);
                    }
                    nr_none += 1;
                    index += 1;
                    continue;
                }
                Entry::Folio(f) if f.is_uptodate() => {
                    let Some(locked) = f.trylock() else {
                        return Err(ScanResult::PageLock);
                    };
                    (locked, xa.unlock())
                }
                // Swapped out, or fallocated and not yet written: bring it in.
                Entry::Value | Entry::Folio(_) => {
                    let xas = xa.unlock();
                    let folio = shmem.shmem_get_folio(index).ok_or(ScanResult::Fail)?;
                    // Drain the LRU cache to help folio_isolate_lru(). As
                    // upstream, this CPU's: if the task moved since the
                    // swap-in queued the folio on another CPU, it is not on
                    // the LRU yet and the isolation fails, SCAN_DEL_PAGE_LRU
                    // (design.rst, "Upstream notes": kept, for the oracle).
                    crate::mm::lru_add_drain();
                    (folio, xas)
                }
            }
        } else {
            match xa.load_at(index) {
                Entry::Folio(f) if f.is_dirty() => {
                    drop(xa);
                    // Dirty because it has not been flushed since it was
                    // first written. Start an async flush for a file no one
                    // has open for write, hoping writeback is done when the
                    // collapse is tried again (MADV_COLLAPSE writes back and
                    // retries once); writable files can have their folios
                    // dirtied at any time, and flushing them blindly would
                    // cause undesirable system-wide writeback.
                    if !mapping.open_for_write() {
                        mapping.flush();
                    }
                    return Err(ScanResult::PageDirtyOrWriteback);
                }
                Entry::Folio(f) if f.is_writeback() => {
                    return Err(ScanResult::PageDirtyOrWriteback);
                }
                Entry::Folio(f) => {
                    let Some(locked) = f.trylock() else {
                        return Err(ScanResult::PageLock);
                    };
                    (locked, xa.unlock())
                }
                // Not in the page cache (never read, or evicted: a shadow
                // entry): read it, with the rest of the extent.
                Entry::None | Entry::Value | Entry::Internal => {
                    let xas = xa.unlock();
                    src.file.sync_readahead(index, end - index);
                    // Drain the LRU cache to help folio_isolate_lru(): this
                    // CPU's, as upstream, with the swap-in's window (the
                    // readahead queued its folios where the task was).
                    crate::mm::lru_add_drain();
                    // Nothing there after the read (past EOF, or truncated
                    // meanwhile): SCAN_FAIL, as upstream.
                    let folio = mapping.lock_folio(index).ok_or(ScanResult::Fail)?;
                    (folio, xas)
                }
            }
        };
        // The folio is locked, so the i_pages lock can be dropped without
        // racing with truncate. Once isolated it belongs to `old`: on any
        // failure below, `old` flushes the TLB before it goes back.
        let nr = check_and_isolate(folio, src, old)?;
        inject::hit(Point::ScanIndex, src.target);
        xa = xas.lock();
        let Some(isolated) = old.last() else {
            return Err(ScanResult::Fail);
        };
        // We control 2 + nr_pages references: our pin, the page cache's,
        // the LRU isolation's. Any other user must take the folio lock,
        // which we hold, so the count cannot grow behind our back.
        if isolated.ref_count() != 2 + nr as i32 {
            drop(xa);
            return Err(ScanResult::PageCount);
        }
        // The folio is locked and unmapped. If a PTE was dirty,
        // try_to_unmap() moved the dirty bit to the folio, and a dirty
        // folio must not be collapsed into a clean file-backed one. If it is
        // clean here, no one can write it until we unlock it: a write
        // through a stale TLB entry came from a clean PTE and faults (the
        // PTE is cleared), and the fault path and buffered writes take the
        // folio lock first.
        if src.shmem.is_none() && isolated.is_dirty() {
            drop(xa);
            return Err(ScanResult::PageDirtyOrWriteback);
        }
        index += nr;
    }
    Ok(nr_none)
}

/// The checks between locking an old folio and re-taking the xa_lock:
/// uptodate, not already huge, still in this mapping, clean and not under
/// writeback (regular files), isolated from the LRU (it joins `old`),
/// private data released, unmapped from every page table. Returns its
/// page count.
fn check_and_isolate(
    folio: LockedFolio,
    src: Source<'_>,
    old: &mut OldFolios<'_>,
) -> Result<usize, ScanResult> {
    // One read of what the checks below look at; the folio is locked.
    let read = old.read(folio);
    if !read.uptodate {
        return Err(ScanResult::Fail);
    }
    // If the file was truncated then extended, or hole-punched, before we
    // locked the first folio, a THP might be there already.
    if read.pmd_order {
        return Err(ScanResult::PteMappedHugepage);
    }
    let place = read.place.map_err(refusal)?;
    // Only clean file-backed folios are collapsed: dirty here means not
    // flushed since it was first written.
    if src.shmem.is_none() && (read.dirty || read.writeback) {
        return Err(ScanResult::PageDirtyOrWriteback);
    }
    // Isolated, private data released, unmapped (a folio whose private
    // data stays is refused, and put back at once).
    let isolated = old.isolate(place).map_err(refusal)?;
    Ok(isolated.nr_pages())
}

/// Why an old folio could not join the collapse.
fn refusal(e: IsolateError) -> ScanResult {
    match e {
        // Truncated (or hole-punched) since it was found.
        IsolateError::NotInMapping => ScanResult::Truncated,
        // The page cache changed where the walk counted holes: upstream
        // finds those holes filled at the re-check.
        IsolateError::OutOfPlace => ScanResult::PageFilled,
        IsolateError::NotLru => ScanResult::DelPageLru,
        IsolateError::HasPrivate => ScanResult::PageHasPrivate,
    }
}

/// The hole re-check under the i_mmap and xa locks: fill every hole with
/// `XA_RETRY_ENTRY` ([`XaLocked::fill_holes`]), then re-count: a hole
/// filled since the scan (a fault, seed 000) means `SCAN_PAGE_FILLED`; a
/// VMA of the mapping with a MISSING userfaultfd means
/// `SCAN_EXCEED_NONE_PTE` (userspace may wait for that fault). On failure
/// the returned state's `Drop` clears the retry entries again. On success
/// the xa_lock stays held in it, for the commit.
fn recheck_holes<'c, 'a, 'm>(
    xas: &'c mut XaCursor<'a>,
    mapping: &AddressSpace,
    start: usize,
    end: usize,
    nr_none: usize,
    old: IsolatedExtent<'m>,
    charge: Option<HoleCharge<'m>>,
) -> Result<HolesFilled<'c, 'a, 'm>, ScanResult> {
    let immap = mapping.i_mmap_read();
    let filled = xas.lock().fill_holes(old, charge);
    let refused = match &filled {
        Ok(f) if f.holes() != nr_none => Some(ScanResult::PageFilled),
        // If userspace observed a missing page in a VMA with a
        // MODE_MISSING userfaultfd, it may expect a UFFD_EVENT_PAGEFAULT
        // for that page: roll back rather than suppress it. Userfaultfds
        // registered after this point cannot observe a missing page: the
        // retry entries are in place.
        Ok(_) if immap.vmas(start, end).any(|vma| vma.uffd_missing()) => {
            Some(ScanResult::ExceedNonePte)
        }
        _ => None,
    };
    // As upstream, i_mmap is unlocked before the rollback (or the commit).
    drop(immap);
    let filled = filled?;
    match refused {
        Some(r) => Err(r),
        None => Ok(filled),
    }
}
