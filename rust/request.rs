// SPDX-License-Identifier: GPL-2.0

//! One write to debugfs `collapse`: parse it, find the target (an mm, or a
//! file), walk its 2 MiB extents the way `madvise_collapse()` and
//! `collapse_single_pmd()` do, and build the per-extent report.

use crate::collapse_file::{collapse_file, Outcome};
use crate::command::{self, errno, Target};
use crate::guards::{FileRef, MmRef, MmapRead};
use crate::inject;
use crate::inject_cmd::Point;
use crate::install_pmd::try_collapse_pte_mapped_thp;
use crate::outcome::{self, Segment, Tried};
use crate::result::ScanResult;
use crate::scan::scan_file;
use crate::sys::bindings;
use crate::vma::{Vma, HPAGE_PMD_SIZE, PAGE_SHIFT};
use crate::{pmd, stats};
use core::fmt::{self, Write};
use core::ptr::NonNull;
use kernel::prelude::*;

/// One line of the report.
pub(crate) struct Extent {
    /// User address (mm form) or file offset (fd form).
    start: u64,
    pgoff: u64,
    result: ScanResult,
    copied: usize,
    holes: usize,
}

/// What a write did: its extents and what `write()` returned.
pub(crate) struct Report {
    extents: KVec<Extent>,
    status: isize,
}

impl Report {
    /// What the write returns: the byte count, or -errno.
    pub(crate) fn status(&self) -> isize {
        self.status
    }

    /// Renders the report as the `collapse` file shows it.
    pub(crate) fn render(&self, out: &mut KVec<u8>) -> Result {
        let mut w = VecWriter(out);
        for (i, e) in self.extents.iter().enumerate() {
            writeln!(
                w,
                "extent={i} start={:#x} pgoff={} result={} copied={} holes={}",
                e.start,
                e.pgoff,
                e.result.name(),
                e.copied,
                e.holes
            )
            .map_err(|_| ENOMEM)?;
        }
        writeln!(w, "status={}", self.status).map_err(|_| ENOMEM)
    }

    /// Renders the status line alone.
    pub(crate) fn render_status(&self, out: &mut KVec<u8>) -> Result {
        writeln!(VecWriter(out), "status={}", self.status).map_err(|_| ENOMEM)
    }
}

struct VecWriter<'a>(&'a mut KVec<u8>);

impl Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| fmt::Error)
    }
}

/// Runs one request; `len` is what a successful write returns.
pub(crate) fn run(input: &[u8], len: usize) -> Report {
    let mut report = Report {
        extents: KVec::new(),
        status: 0,
    };
    report.status = match execute(input, &mut report.extents) {
        Ok(()) => len as isize,
        Err(e) => -(e as isize),
    };
    report
}

fn execute(input: &[u8], extents: &mut KVec<Extent>) -> Result<(), i32> {
    // SAFETY: No preconditions.
    let limit = unsafe { bindings::krs_task_size() } as u64;
    let cmd = command::parse(input, limit).map_err(|e| e.errno())?;
    match cmd.target {
        Target::Mm { pid, addr, len } => {
            let mm = target_mm(pid)?;
            collapse_mm(&mm, addr, addr + len, cmd.dry_run, extents)
        }
        Target::File { fd, offset, len } => {
            let file = target_file(fd)?;
            collapse_fd(&file, offset, offset + len, cmd.dry_run, extents)
        }
    }
}

/// The writer's own mm, or `pid`'s as process_madvise(2) gets it: ESRCH
/// for no such process, `mm_access()`'s error (EACCES when the
/// PTRACE_MODE_READ check fails), then EPERM for another process's mm
/// without CAP_SYS_NICE.
fn target_mm(pid: Option<u32>) -> Result<MmRef, i32> {
    let mut err = 0;
    let mm = match pid {
        // SAFETY: Returns current's mm with an mm_users reference, or null.
        None => unsafe { bindings::krs_current_mm_get() },
        // SAFETY: Returns the mm with an mm_users reference, or null and
        // the errno in `err`.
        Some(pid) => unsafe { bindings::krs_pid_mm_get(pid as i32, &mut err) },
    };
    let mm = match NonNull::new(mm) {
        // SAFETY: The reference is transferred to the guard.
        Some(mm) => unsafe { MmRef::from_raw(mm) },
        None if err != 0 => return Err(-err),
        None => return Err(errno::EINVAL),
    };
    // SAFETY: Compares with current's mm and checks a capability.
    if pid.is_some() && unsafe { bindings::krs_remote_mm_needs_nice(mm.as_ptr()) } {
        return Err(errno::EPERM);
    }
    Ok(mm)
}

/// The writer's open file `fd`: EBADF if none; EINVAL unless a regular
/// shmem file (regular files on other filesystems are not supported yet).
fn target_file(fd: u32) -> Result<FileRef, i32> {
    // SAFETY: fget on the current task's table; returns a reference or null.
    let file = NonNull::new(unsafe { bindings::krs_fget(fd as i32) }).ok_or(errno::EBADF)?;
    // SAFETY: The reference is transferred to the guard.
    let file = unsafe { FileRef::from_raw(file) };
    // SAFETY: The file is live while referenced.
    if !unsafe { bindings::krs_file_is_regular(file.as_ptr()) } || !file.is_shmem() {
        return Err(errno::EINVAL);
    }
    Ok(file)
}

const fn align_up(x: u64) -> u64 {
    (x + HPAGE_PMD_SIZE - 1) & !(HPAGE_PMD_SIZE - 1)
}
const fn align_down(x: u64) -> u64 {
    x & !(HPAGE_PMD_SIZE - 1)
}

/// `madvise(MADV_COLLAPSE)` over `[start, end)` of `mm`: every 2 MiB
/// extent is tried and reported, also past a VMA that fails (where
/// madvise(2) would stop), unless a failure outside MADV_COLLAPSE's
/// whitelist stops the walk as it stops `madvise_collapse()`. The errno is
/// what madvise(2) would return for the range ([`outcome::request_errno`]).
fn collapse_mm(
    mm: &MmRef,
    start: u64,
    end: u64,
    dry_run: bool,
    extents: &mut KVec<Extent>,
) -> Result<(), i32> {
    let segments = vma_segments(mm, start, end)?;
    // SAFETY: Drains every CPU's LRU caches; may sleep, no locks held.
    unsafe { bindings::krs_lru_add_drain_all() };
    let mut tried = KVec::new();
    let mut entered = None;
    let mut addr = align_up(start);
    while addr < align_down(end) {
        let (pgoff, outcome, vma_end) = collapse_extent(mm, addr, dry_run, &mut entered);
        push(extents, addr, pgoff, outcome)?;
        tried
            .push(
                Tried {
                    addr,
                    result: outcome.result,
                    vma_end,
                },
                GFP_KERNEL,
            )
            .map_err(|_| errno::ENOMEM)?;
        let r = outcome.result;
        let per_vma = matches!(
            r,
            ScanResult::VmaNull | ScanResult::AddressRange | ScanResult::VmaCheck
        );
        if !r.continues() && !per_vma {
            break;
        }
        addr += HPAGE_PMD_SIZE;
        // SAFETY: No locks held.
        unsafe { bindings::krs_cond_resched() };
    }
    outcome::request_errno(&segments, &tried)
}

/// The layout of `[start, end)` as madvise(2) would walk it, reduced to
/// what decides its errno: the VMAs holding a whole extent, the first
/// ineligible VMA (the walk ends there), and whether anything is unmapped.
fn vma_segments(mm: &MmRef, start: u64, end: u64) -> Result<KVec<Segment>, i32> {
    let mut segments = KVec::new();
    let mut push = |s: Segment| segments.push(s, GFP_KERNEL).map_err(|_| errno::ENOMEM);
    let lock = mm.read_lock();
    let mut gap = false;
    let mut addr = start;
    while addr < end {
        // SAFETY: The mmap lock is held while `vma` is used.
        let vma = unsafe { Vma::from_raw(bindings::krs_find_vma(lock.mm(), addr as usize)) };
        let vma = match vma {
            Some(v) if v.start() < end => v,
            _ => {
                gap = true;
                break;
            }
        };
        gap |= vma.start() > addr;
        let (s, e) = (addr.max(vma.start()), end.min(vma.end()));
        if let Err(r) = vma_eligible(vma) {
            push(Segment::Vma {
                start: s,
                end: e,
                ineligible: Some(r),
            })?;
            break;
        }
        if align_up(s) < align_down(e) {
            push(Segment::Vma {
                start: s,
                end: e,
                ineligible: None,
            })?;
        }
        addr = e;
    }
    drop(lock);
    if gap {
        push(Segment::Gap)?;
    }
    Ok(segments)
}

fn push(extents: &mut KVec<Extent>, start: u64, pgoff: u64, o: Outcome) -> Result<(), i32> {
    stats::count_result(o.result);
    let e = Extent {
        start,
        pgoff,
        result: o.result,
        copied: o.copied,
        holes: o.holes,
    };
    extents.push(e, GFP_KERNEL).map_err(|_| errno::ENOMEM)
}

fn outcome(result: ScanResult) -> Outcome {
    Outcome {
        result,
        copied: 0,
        holes: 0,
    }
}

/// `hugepage_vma_revalidate()` + `collapse_single_pmd()` for the file
/// extent at `addr`. The mmap lock is taken for the VMA checks, dropped for
/// the page-cache work, and re-taken (and everything re-checked, seed 001)
/// for the PMD installation. Also returns the end of the VMA the checks
/// passed on (madvise_collapse() clips its range to it).
fn collapse_extent(
    mm: &MmRef,
    addr: u64,
    dry_run: bool,
    entered: &mut Option<u64>,
) -> (u64, Outcome, Option<u64>) {
    let (file, pgoff, vma_end) = {
        let lock = mm.read_lock();
        let vma = match revalidate(&lock, addr, entered) {
            Ok(vma) => vma,
            Err(r) => return (0, outcome(r), None),
        };
        let pgoff = vma.pgoff_of(addr);
        // SAFETY: The VMA's file is live while the mmap lock is held;
        // get_file takes our own reference.
        let file = unsafe {
            FileRef::from_raw(NonNull::new_unchecked(bindings::krs_get_file(vma.file())))
        };
        if !file.is_shmem() {
            return (pgoff, outcome(ScanResult::VmaCheck), None);
        }
        (file, pgoff, Some(vma.end()))
    };

    let target = inject::Target::of(file.mapping());
    let (mut result, count) = scan_file(file.mapping(), pgoff);
    let mut done = outcome(result);
    if dry_run {
        done.copied = count.present;
        done.holes = count.holes;
        if result == ScanResult::PteMappedHugepage {
            let lock = mm.read_lock();
            // SAFETY: mmap lock held.
            if unsafe { pmd::find(lock.mm(), addr) }.1 == ScanResult::PmdMapped {
                done.result = ScanResult::PmdMapped;
            }
        }
        return (pgoff, done, vma_end);
    }
    if result == ScanResult::Succeed {
        inject::hit(Point::AfterScan, target);
        done = collapse_file(mm.as_ptr(), file.mapping(), pgoff);
        // "If MADV_COLLAPSE, adjust result to call
        // try_collapse_pte_mapped_thp()".
        if done.result == ScanResult::Succeed {
            done.result = ScanResult::PteMappedHugepage;
        }
        result = done.result;
    }
    if result == ScanResult::PteMappedHugepage {
        inject::hit(Point::BeforeInstall, target);
    }
    drop(file);

    if result == ScanResult::PteMappedHugepage {
        let lock = mm.read_lock();
        // SAFETY: The mm is live (mm_users held).
        let gone = unsafe {
            bindings::krs_mm_exiting(lock.mm()) || bindings::krs_mm_thp_disabled(lock.mm())
        };
        done.result = if gone {
            ScanResult::AnyProcess
        } else {
            match try_collapse_pte_mapped_thp(&lock, addr) {
                // Mapped by us right now: the collapse succeeded.
                ScanResult::PmdMapped if done.copied + done.holes > 0 => ScanResult::Succeed,
                r => r,
            }
        };
    }
    (pgoff, done, vma_end)
}

/// The checks before the extent at `addr`, under the mmap lock; returns
/// the VMA to collapse in.
///
/// The first extent tried inside a VMA is where madvise(2) enters
/// `madvise_collapse()` for that VMA: its check is `collapse_possible()`
/// (`SCAN_VMA_CHECK`, which covers prctl(PR_SET_THP_DISABLE) and
/// VM_NOHUGEPAGE), with no revalidation. Every later extent comes after the
/// mmap lock was dropped: it gets `hugepage_vma_revalidate()`'s checks, in
/// its order (`SCAN_ANY_PROCESS` for an exiting or THP-disabled mm,
/// `SCAN_VMA_NULL` when no VMA ends above `addr`, `SCAN_ADDRESS_RANGE` when
/// the VMA found does not cover the aligned extent — also a gap below a
/// later VMA — then `SCAN_VMA_CHECK`). An extent outside every VMA (the
/// module walks across gaps) gets revalidation's answer. `entered` is the
/// start of the VMA whose entry check passed last.
fn revalidate<'a>(
    lock: &'a MmapRead<'_>,
    addr: u64,
    entered: &mut Option<u64>,
) -> Result<Vma<'a>, ScanResult> {
    let m = lock.mm();
    // SAFETY: The caller holds the mmap lock for the lifetime of `lock`.
    let vma = unsafe { Vma::from_raw(bindings::krs_find_vma(m, addr as usize)) };
    let entry = match vma {
        Some(v) => v.contains(addr, addr + HPAGE_PMD_SIZE) && *entered != Some(v.start()),
        None => false,
    };
    // SAFETY: mm_users held by the caller's `MmRef`.
    if !entry && unsafe { bindings::krs_mm_exiting(m) || bindings::krs_mm_thp_disabled(m) } {
        return Err(ScanResult::AnyProcess);
    }
    let vma = vma.ok_or(ScanResult::VmaNull)?;
    if entry {
        vma_eligible(vma)?;
        *entered = Some(vma.start());
    }
    if !vma.suitable_for_pmd(addr) {
        return Err(ScanResult::AddressRange);
    }
    if !entry {
        vma_eligible(vma)?;
    }
    Ok(vma)
}

/// `collapse_possible(vma, TVA_FORCED_COLLAPSE)` as `madvise_collapse()`
/// checks it first, plus this module's scope: shmem files only
/// (anonymous memory and other filesystems are `SCAN_VMA_CHECK`).
fn vma_eligible(vma: Vma<'_>) -> Result<(), ScanResult> {
    if vma.is_anonymous() || vma.file().is_null() {
        return Err(ScanResult::VmaCheck);
    }
    // SAFETY: The file of a VMA the caller holds the mmap lock for.
    if !unsafe { bindings::krs_file_is_shmem(vma.file()) } {
        return Err(ScanResult::VmaCheck);
    }
    if !vma.allows_forced_collapse() {
        return Err(ScanResult::VmaCheck);
    }
    Ok(())
}

/// The `fd=` form: collapse the page cache of `file` over `[start, end)`
/// without any mapping. An extent already huge in the page cache counts as
/// done (`SCAN_PTE_MAPPED_HUGEPAGE`); one collapsed now is `SCAN_SUCCEED`.
/// The new folio is charged to the writer's memcg. The THP policy applies
/// as it does to MADV_COLLAPSE of a shmem mapping (`shmem_enabled=deny`,
/// THP disabled by hardware: `SCAN_VMA_CHECK`, EINVAL), checked per extent
/// as revalidation would.
fn collapse_fd(
    file: &FileRef,
    start: u64,
    end: u64,
    dry_run: bool,
    extents: &mut KVec<Extent>,
) -> Result<(), i32> {
    // SAFETY: May sleep, no locks held.
    unsafe { bindings::krs_lru_add_drain_all() };
    let mut last_fail = None;
    let mut off = align_up(start);
    while off < align_down(end) {
        let pgoff = off >> PAGE_SHIFT;
        let done = if !file.shmem_pmd_allowed() {
            outcome(ScanResult::VmaCheck)
        } else {
            let (result, count) = scan_file(file.mapping(), pgoff);
            if dry_run {
                Outcome {
                    result,
                    copied: count.present,
                    holes: count.holes,
                }
            } else if result == ScanResult::Succeed {
                inject::hit(Point::AfterScan, inject::Target::of(file.mapping()));
                collapse_file(core::ptr::null_mut(), file.mapping(), pgoff)
            } else {
                outcome(result)
            }
        };
        push(extents, off, pgoff, done)?;
        let r = done.result;
        if !(r.is_done() || r == ScanResult::PteMappedHugepage) {
            last_fail = Some(r);
            if !r.continues() {
                break;
            }
        }
        off += HPAGE_PMD_SIZE;
        // SAFETY: No locks held.
        unsafe { bindings::krs_cond_resched() };
    }
    last_fail.map_or(Ok(()), |r| Err(r.errno()))
}
