// SPDX-License-Identifier: GPL-2.0

//! One write to debugfs `collapse`: parse it, find the target (an mm, or a
//! file), walk its 2 MiB extents the way `madvise_collapse()` and
//! `collapse_single_pmd()` do, and build the per-extent report.

#![forbid(unsafe_code)]

use super::control::{Control, Pmd, Writeback};
use super::file::{collapse_file, Alloc, Outcome};
use super::install::{try_collapse_pte_mapped_thp, PmdOutcome};
use super::scan::scan_file;
use crate::abi::command::{self, Mode, Target};
use crate::abi::inject_cmd::Point;
use crate::abi::outcome::{Found, MadviseWalk, Tried};
use crate::abi::result::ScanResult;
use crate::ffi::trace::{self, CollapseEvent};
use crate::inject;
use crate::mm::folio::NodeLoad;
use crate::mm::pgtable::{PmdAddr, PmdRef};
use crate::mm::task::{self, MmExt};
use crate::mm::vma::fget;
use crate::mm::{
    count_scan_event, File, FileExt, LocalFile, Mm, MmWithUser, MmapRead, ScanEvent, Tva, VmaExt,
    VmaRef, HPAGE_PMD_SIZE, PAGE_SHIFT,
};
use crate::stats;
use kernel::error::Error;
use kernel::prelude::*;
use kernel::sync::aref::ARef;

/// One line of the report.
pub(crate) struct Extent {
    /// User address (mm form) or file offset (fd form).
    pub(crate) start: usize,
    pub(crate) pgoff: usize,
    pub(crate) result: ScanResult,
    pub(crate) copied: usize,
    pub(crate) holes: usize,
}

/// What a write did: its extents and what `write()` returned.
pub(crate) struct Report {
    pub(crate) extents: KVec<Extent>,
    /// The byte count, or -errno.
    pub(crate) status: isize,
}

/// The kernel-side error of an errno the pure parts computed (positive).
fn errno_error(errno: i32) -> Error {
    Error::from_errno(-errno)
}

/// Runs one request; `len` is what a successful write returns.
pub(crate) fn run(input: &[u8], len: usize) -> Report {
    let mut extents = KVec::new();
    let status = match execute(input, &mut extents) {
        Ok(()) => isize::try_from(len).unwrap_or(isize::MAX),
        Err(e) => e.to_errno() as isize,
    };
    Report { extents, status }
}

fn execute(input: &[u8], extents: &mut KVec<Extent>) -> Result {
    let limit = crate::mm::task_size() as u64;
    let cmd = command::parse(input, limit).map_err(|e| errno_error(e.errno()))?;
    // The parser bounds every number by the user address space (addr=) or
    // 1 GiB past an offset it checked: they fit a usize.
    let size = |x: u64| usize::try_from(x).map_err(|_| EINVAL);
    let mut req = Request {
        ctl: Control::new(cmd.mode),
        dry_run: cmd.dry_run,
        load: NodeLoad::new()?,
    };
    match cmd.target {
        Target::Mm { pid, addr, len } => {
            let mm = target_mm(pid)?;
            let (start, end) = (size(addr)?, size(addr + len)?);
            // madvise(2) and process_madvise(2) run the advice in a block plug.
            crate::mm::with_blk_plug(|| collapse_mm(&mm, start, end, &mut req, extents))
        }
        Target::File { fd, offset, len } => {
            let file = target_file(fd)?;
            let (start, end) = (size(offset)?, size(offset + len)?);
            // It stands for MADV_COLLAPSE of a mapping of the file: in the
            // same block plug.
            crate::mm::with_blk_plug(|| collapse_fd(&file, start, end, &mut req, extents))
        }
    }
}

/// One request: its settings (chosen once, from `mode=`), whether it is a
/// dry run, and the scratchpad of its scans (`collapse_control.node_load`).
pub(crate) struct Request {
    pub(crate) ctl: Control,
    pub(crate) dry_run: bool,
    pub(crate) load: NodeLoad,
}

/// The writer's own mm, or `pid`'s as process_madvise(2) gets it: ESRCH
/// for no such process, `mm_access()`'s error (EACCES when the
/// PTRACE_MODE_READ check fails), then EPERM for another process's mm
/// without CAP_SYS_NICE.
pub(crate) fn target_mm(pid: Option<u32>) -> Result<ARef<MmWithUser>> {
    let Some(pid) = pid else {
        return task::current_mm().ok_or(EINVAL);
    };
    let mm = task::pid_mm(pid)?;
    if mm.remote_without_cap_sys_nice() {
        return Err(EPERM);
    }
    Ok(mm)
}

/// The writer's open file `fd`: EBADF if none; EINVAL unless a regular
/// file (shmem, or any other filesystem: whether its page cache can hold
/// PMD-sized folios is checked per extent, as the THP policy is).
fn target_file(fd: u32) -> Result<ARef<LocalFile>> {
    let file = fget(fd).ok_or(EBADF)?;
    if !file.is_regular() {
        return Err(EINVAL);
    }
    Ok(file)
}

const fn align_up(x: usize) -> usize {
    (x + HPAGE_PMD_SIZE - 1) & !(HPAGE_PMD_SIZE - 1)
}
const fn align_down(x: usize) -> usize {
    x & !(HPAGE_PMD_SIZE - 1)
}

/// `madvise(MADV_COLLAPSE)` over `[start, end)` of `mm`: every 2 MiB
/// extent is tried and reported, also past a VMA that fails (where
/// madvise(2) would stop), unless a failure outside MADV_COLLAPSE's
/// whitelist stops the walk as it stops `madvise_collapse()`. The errno is
/// what madvise(2) would return for the range: [`MadviseWalk`] follows
/// `madvise_walk_vmas()`, which looks the next VMA up (under the mmap
/// lock the next extent takes) each time a VMA is done.
fn collapse_mm(
    mm: &MmWithUser,
    start: usize,
    end: usize,
    req: &mut Request,
    extents: &mut KVec<Extent>,
) -> Result {
    let mut walk = MadviseWalk::new(start, end, req.ctl.mode);
    let mut entered = None;
    let mut addr = align_up(start);
    while addr < align_down(end) {
        let (pgoff, outcome, vma_end) = collapse_extent(mm, addr, req, &mut entered, &mut walk);
        push(extents, addr, pgoff, outcome)?;
        let r = outcome.result;
        walk.tried(Tried {
            addr,
            result: r,
            vma_end,
        });
        // The checks before the collapse failed (no VMA, one that does not
        // cover the extent, an ineligible one): the module walks on to the
        // next extent. Once they passed, a failure stops the walk as it
        // stops madvise_collapse(), SCAN_VMA_CHECK of the PMD installation
        // (the VMA changed while the mmap lock was dropped) too.
        let before_collapse = vma_end.is_none()
            && matches!(
                r,
                ScanResult::VmaNull | ScanResult::AddressRange | ScanResult::VmaCheck
            );
        if !r.continues_in(req.ctl.mode) && !before_collapse {
            break;
        }
        addr += HPAGE_PMD_SIZE;
        crate::mm::cond_resched();
    }
    walk.stop();
    if walk.lookup().is_some() {
        follow(&MmapRead::lock(mm), &mut walk, req.ctl.tva);
    }
    walk.errno().map_err(errno_error)
}

/// `madvise_walk_vmas()`'s lookups, as many as it makes now: the VMA it
/// finds, and whether `madvise_collapse()` would refuse it.
fn follow(lock: &MmapRead<'_>, walk: &mut MadviseWalk, tva: Tva) {
    while let Some(at) = walk.lookup() {
        walk.found(lock.find_vma(at).map(|v| Found {
            start: v.vm_start(),
            end: v.vm_end(),
            eligible: vma_eligible(v, tva).is_ok(),
        }));
    }
}

fn push(extents: &mut KVec<Extent>, start: usize, pgoff: usize, o: Outcome) -> Result {
    stats::count_result(o.result);
    let e = Extent {
        start,
        pgoff,
        result: o.result,
        copied: o.copied,
        holes: o.holes,
    };
    Ok(extents.push(e, GFP_KERNEL)?)
}

/// `hugepage_vma_revalidate()` + `collapse_single_pmd()` for the file
/// extent at `addr`. The mmap lock is taken for the VMA checks, dropped for
/// the page-cache work, and re-taken (and everything re-checked, seed 001)
/// for the PMD installation. Also returns the end of the VMA the checks
/// passed on (madvise_collapse() clips its range to it). `walk`'s lookups
/// are answered first, under the same lock.
fn collapse_extent(
    mm: &MmWithUser,
    addr: usize,
    req: &mut Request,
    entered: &mut Option<usize>,
    walk: &mut MadviseWalk,
) -> (usize, Outcome, Option<usize>) {
    let (file, pgoff, vma_end) = match vma_file(mm, addr, req.ctl.tva, entered, walk) {
        Ok(found) => found,
        Err((pgoff, r)) => return (pgoff, Outcome::failed(r), None),
    };
    let (done, ..) = collapse_vma_extent(mm, file, pgoff, addr, req);
    (pgoff, done, Some(vma_end))
}

/// `collapse_single_pmd()` for the extent at `addr`, page `pgoff` of
/// `file`, once its VMA passed the checks: the scan and collapse, then,
/// when the extent was found huge already, `try_collapse_pte_mapped_thp()`
/// under the mmap lock taken again. Returns the outcome (the module's
/// result), what upstream's function would have returned (for
/// khugepaged's `pages_collapsed`, [`crate::stats`]), and whether the scan
/// found the extent huge already (it then costs one page of progress).
pub(crate) fn collapse_vma_extent(
    mm: &MmWithUser,
    file: ARef<File>,
    pgoff: usize,
    addr: usize,
    req: &mut Request,
) -> (Outcome, ScanResult, bool) {
    let (mut done, huge) = scan_and_collapse(
        Job {
            mm: Some(mm),
            file: &file,
            pgoff,
            addr,
            form: Form::Vma,
            dry_run: req.dry_run,
            ctl: &req.ctl,
        },
        &mut req.load,
    );
    if req.dry_run {
        if done.result == ScanResult::PteMappedHugepage && pmd_mapped(mm, addr) {
            done.result = ScanResult::PmdMapped;
        }
        return (done, done.result, huge);
    }
    let mut upstream = done.result;
    if done.result == ScanResult::PteMappedHugepage {
        inject::hit(Point::BeforeInstall, inject::Target::of(file.mapping()));
        drop(file);
        (done.result, upstream) = install(mm, addr, &done, req.ctl.pmd);
    }
    if req.ctl.mode == Mode::Khugepaged && upstream == ScanResult::Succeed {
        stats::count_khugepaged_collapsed();
    }
    (done, upstream, huge)
}

/// Under the mmap lock: the checks of the extent at `addr`, and the VMA's
/// file (our own reference: it outlives the lock), its page offset and the
/// VMA's end; or the page offset (0 if unknown) and why not. First, as
/// madvise(2) does with the lock it takes the VMA with, `walk`'s lookups.
fn vma_file(
    mm: &MmWithUser,
    addr: usize,
    tva: Tva,
    entered: &mut Option<usize>,
    walk: &mut MadviseWalk,
) -> Result<(ARef<File>, usize, usize), (usize, ScanResult)> {
    let lock = MmapRead::lock(mm);
    follow(&lock, walk, tva);
    let vma = revalidate(&lock, addr, tva, entered).map_err(|r| (0, r))?;
    let pgoff = vma.pgoff_of(addr);
    match vma.vm_file() {
        Some(f) => Ok((ARef::from(f), pgoff, vma.vm_end())),
        None => Err((pgoff, ScanResult::VmaCheck)),
    }
}

/// Who asked: a walk over an mm's VMAs (`addr=`, `pid=`, the scanner's
/// `pid=` targets) or a file (`fd=`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Vma,
    File,
}

/// One extent to scan and collapse: the page `pgoff` of `file`, `addr`
/// the user address (0 for `fd=`), `mm` charged for the new folio, with
/// the request's settings.
#[derive(Clone, Copy)]
struct Job<'a> {
    mm: Option<&'a Mm>,
    file: &'a LocalFile,
    pgoff: usize,
    addr: usize,
    form: Form,
    dry_run: bool,
    ctl: &'a Control,
}

/// `collapse_scan_file()` for the extent of `job`, and the
/// `collapse_file()` it leads to (not for a dry run), with their
/// tracepoints.
///
/// As `collapse_single_pmd()` does for MADV_COLLAPSE: when a dirty folio
/// or one under writeback stopped the collapse, the extent is written back
/// and waited for (`filemap_write_and_wait_range()`), and tried once more.
/// `fd=` does the same: it stands for MADV_COLLAPSE of a mapping of the
/// whole file. khugepaged does not ([`Writeback::Never`]). Also returns
/// whether the (last) scan found the extent huge already.
fn scan_and_collapse(job: Job<'_>, load: &mut NodeLoad) -> (Outcome, bool) {
    let done = scan_and_collapse_once(job, load);
    let mapping = job.file.mapping();
    if job.ctl.writeback == Writeback::Never
        || done.0.result != ScanResult::PageDirtyOrWriteback
        || !mapping.can_writeback()
    {
        return done;
    }
    let start = job.pgoff << PAGE_SHIFT;
    // As upstream: the wait drains this CPU's LRU batch only when it
    // waited on a folio under writeback (folio_batch_release()). An extra
    // drain here was measured once to matter (before the block plug) and
    // no longer does (khugepaged_rs_wbretry: design.rst, "Differences
    // from MADV_COLLAPSE").
    mapping.write_and_wait(start, start + HPAGE_PMD_SIZE - 1);
    scan_and_collapse_once(job, load)
}

fn scan_and_collapse_once(job: Job<'_>, load: &mut NodeLoad) -> (Outcome, bool) {
    let Job {
        mm,
        file,
        pgoff,
        addr,
        form,
        dry_run,
        ctl,
    } = job;
    let mapping = file.mapping();
    let (result, count) = scan_file(mapping, pgoff, &ctl.limits, load);
    let mut done = Outcome::failed(result);
    if dry_run {
        done.copied = count.present;
        done.holes = count.holes;
    } else if result == ScanResult::ExceedSwapPte {
        count_scan_event(ScanEvent::ExceedSwapPte);
    } else if result == ScanResult::ExceedNonePte {
        count_scan_event(ScanEvent::ExceedNonePte);
    } else if result == ScanResult::Succeed {
        inject::hit(Point::AfterScan, inject::Target::of(mapping));
        let alloc = Alloc { gfp: ctl.gfp, load };
        done = collapse_file(mm, file, pgoff, alloc);
        // "If MADV_COLLAPSE, adjust result to call
        // try_collapse_pte_mapped_thp()": the PMD is installed now.
        // khugepaged leaves it to the next fault (the tables were retracted).
        if form == Form::Vma && ctl.pmd == Pmd::Install && done.result == ScanResult::Succeed {
            done.result = ScanResult::PteMappedHugepage;
        }
        trace::collapse_file(&CollapseEvent {
            mm,
            hpfn: done.hpfn,
            index: pgoff,
            addr,
            file,
            copied: done.copied,
            holes: done.holes,
            node: done.node,
            result: done.result,
        });
    }
    // As upstream: the scan's event carries the collapse's result.
    trace::scan_file(mm, count.pfn, file, count.present, count.swap, done.result);
    (done, result == ScanResult::PteMappedHugepage)
}

/// The end of `collapse_single_pmd()`: with the mmap lock taken again, map
/// the huge folio by a PMD, or retract the PTE table mapping it
/// (`try_collapse_pte_mapped_thp()`, as `pmd` says). Returns the module's
/// result and upstream's (which folds `SCAN_PMD_MAPPED` into
/// `SCAN_SUCCEED`, and returns `SCAN_SUCCEED` when nothing was done).
fn install(mm: &MmWithUser, addr: usize, done: &Outcome, pmd: Pmd) -> (ScanResult, ScanResult) {
    let lock = MmapRead::lock(mm);
    if mm.exiting() || mm.thp_disabled() {
        return (ScanResult::AnyProcess, ScanResult::AnyProcess);
    }
    // `addr & HPAGE_PMD_MASK`, as collapse_single_pmd() passes it.
    let outcome = try_collapse_pte_mapped_thp(&lock, PmdAddr::containing(addr), pmd);
    let upstream = outcome.upstream();
    trace::install_pmd(mm, addr, upstream);
    let result = match outcome {
        // Mapped by us, or its table retracted for the next fault to map
        // it: this request made the extent huge in this mm.
        PmdOutcome::Mapped | PmdOutcome::Retracted => ScanResult::Succeed,
        // Huge in the page cache, no table of this mm to retract: nothing
        // done (upstream says SCAN_SUCCEED), the next fault maps it.
        PmdOutcome::NoTable => ScanResult::PteMappedHugepage,
        // Mapped by us right now: the collapse succeeded.
        PmdOutcome::Other(ScanResult::PmdMapped) if done.copied + done.holes > 0 => {
            ScanResult::Succeed
        }
        PmdOutcome::Other(r) => r,
    };
    let upstream = match upstream {
        ScanResult::PmdMapped => ScanResult::Succeed,
        r => r,
    };
    (result, upstream)
}

/// The extent at `addr` is mapped by a PMD in `mm` now.
fn pmd_mapped(mm: &MmWithUser, addr: usize) -> bool {
    let lock = MmapRead::lock(mm);
    let Some(vma) = lock.vma_lookup(addr) else {
        return false;
    };
    PmdRef::find(vma, PmdAddr::containing(addr))
        .is_some_and(|pmd| ScanResult::from(pmd.state()) == ScanResult::PmdMapped)
}

/// The checks before the extent at `addr`, under the mmap lock; returns
/// the VMA to collapse in.
///
/// The first extent tried inside a VMA is where madvise(2) enters
/// `madvise_collapse()` for that VMA: its check is `collapse_possible()`
/// (`SCAN_VMA_CHECK`, which covers prctl(PR_SET_THP_DISABLE) and
/// VM_NOHUGEPAGE), with no revalidation; then every CPU's LRU batches are
/// drained, as there. Every later extent comes after the
/// mmap lock was dropped: it gets `hugepage_vma_revalidate()`'s checks, in
/// its order (`SCAN_ANY_PROCESS` for an exiting or THP-disabled mm,
/// `SCAN_VMA_NULL` when no VMA ends above `addr`, `SCAN_ADDRESS_RANGE` when
/// the VMA found does not cover the aligned extent — also a gap below a
/// later VMA — then `SCAN_VMA_CHECK`). An extent outside every VMA (the
/// module walks across gaps) gets revalidation's answer. `entered` is the
/// start of the VMA whose entry check passed last.
fn revalidate<'a>(
    lock: &'a MmapRead<'_>,
    addr: usize,
    tva: Tva,
    entered: &mut Option<usize>,
) -> Result<&'a VmaRef, ScanResult> {
    let vma = lock.find_vma(addr);
    let entry = match vma {
        Some(v) => v.contains(addr, addr + HPAGE_PMD_SIZE) && *entered != Some(v.vm_start()),
        None => false,
    };
    let mm = lock.mm();
    if !entry && (mm.exiting() || mm.thp_disabled()) {
        return Err(ScanResult::AnyProcess);
    }
    let vma = vma.ok_or(ScanResult::VmaNull)?;
    if entry {
        vma_eligible(vma, tva)?;
        *entered = Some(vma.vm_start());
        // madvise_collapse() drains every CPU's LRU batches once per VMA,
        // with the mmap lock held, before its first extent: folios faulted
        // in on another CPU since the last VMA are on the LRU for the scan.
        crate::mm::lru_add_drain_all();
    }
    if !vma.suitable_for_pmd(addr) {
        return Err(ScanResult::AddressRange);
    }
    if !entry {
        vma_eligible(vma, tva)?;
    }
    Ok(vma)
}

/// `collapse_possible(vma, tva)` as `madvise_collapse()` checks it first
/// (`TVA_FORCED_COLLAPSE`; khugepaged's scan `TVA_KHUGEPAGED`), plus this
/// module's scope: file VMAs only (anonymous memory is `SCAN_VMA_CHECK`).
/// For a file, the kernel's check admits shmem (its THP policy) and
/// regular files whose mapping supports PMD-sized folios
/// (`file_thp_enabled()`), with the VMA aligned to the file's offsets.
pub(crate) fn vma_eligible(vma: &VmaRef, tva: Tva) -> Result<(), ScanResult> {
    if vma.is_anonymous() || vma.vm_file().is_none() {
        return Err(ScanResult::VmaCheck);
    }
    if !vma.allows_collapse(tva) {
        return Err(ScanResult::VmaCheck);
    }
    Ok(())
}

/// The `fd=` form: collapse the page cache of `file` over `[start, end)`
/// without any mapping. An extent already huge in the page cache counts as
/// done (`SCAN_PTE_MAPPED_HUGEPAGE`); one collapsed now is `SCAN_SUCCEED`.
/// The new folio is charged to the writer's memcg. The THP policy applies
/// as it does to MADV_COLLAPSE of a mapping of the file (shmem:
/// `shmem_enabled=deny`; any file: THP disabled by hardware; a regular
/// file: its filesystem's page cache without PMD-sized folios; each
/// `SCAN_VMA_CHECK`, EINVAL), checked per extent as revalidation would.
fn collapse_fd(
    file: &LocalFile,
    start: usize,
    end: usize,
    req: &mut Request,
    extents: &mut KVec<Extent>,
) -> Result {
    crate::mm::lru_add_drain_all();
    let mut last_fail = None;
    let mut off = align_up(start);
    while off < align_down(end) {
        let pgoff = off >> PAGE_SHIFT;
        let (done, _) = collapse_file_extent(file, pgoff, req);
        push(extents, off, pgoff, done)?;
        let r = done.result;
        if !(r.is_done() || r == ScanResult::PteMappedHugepage) {
            last_fail = Some(r);
            if !r.continues_in(req.ctl.mode) {
                break;
            }
        }
        off += HPAGE_PMD_SIZE;
        crate::mm::cond_resched();
    }
    last_fail.map_or(Ok(()), |r| Err(errno_error(r.errno())))
}

/// One extent of a file without a mapping (`fd=`): the THP policy as
/// revalidation would check it, then the scan and collapse; and whether
/// the scan found it huge already.
pub(crate) fn collapse_file_extent(
    file: &LocalFile,
    pgoff: usize,
    req: &mut Request,
) -> (Outcome, bool) {
    if !file.pmd_collapse_allowed(req.ctl.tva) {
        return (Outcome::failed(ScanResult::VmaCheck), false);
    }
    scan_and_collapse(
        Job {
            mm: None,
            file,
            pgoff,
            addr: 0,
            form: Form::File,
            dry_run: req.dry_run,
            ctl: &req.ctl,
        },
        &mut req.load,
    )
}
