// SPDX-License-Identifier: GPL-2.0

//! The module's scanner: khugepaged's loop (`khugepaged()`,
//! `khugepaged_do_scan()`, `collapse_scan_mm_slot()`) over the targets a
//! user names through debugfs `scan` (processes and files), collapsing
//! each extent with khugepaged's semantics (`mode=khugepaged`'s
//! [`Control`]). One kernel thread, `khugepaged_rs`, freezable, stopped
//! and waited for by rmmod.
//!
//! A process target is held as khugepaged holds its mm slots: its
//! `mm_struct` only (`mmgrab`), and its users (`mmget_not_zero`) for each
//! visit, so an exiting process is dropped and nothing pins its memory.
//! A file target holds a reference to the file.

#![forbid(unsafe_code)]

use super::control::Control;
use super::request::{collapse_file_extent, collapse_vma_extent, target_mm, vma_eligible, Request};
use crate::abi::command::Mode;
use crate::abi::result::ScanResult;
use crate::abi::scan_cmd::{Knob, ScanCmd, ScanTarget, Setting};
use crate::mm::folio::NodeLoad;
use crate::mm::kthread::{self, KthreadCtx};
use crate::mm::task::MmExt;
use crate::mm::vma::fget;
use crate::mm::{
    khugepaged_knobs, File, FileExt, LocalFile, Mm, MmWithUser, MmapRead, Tva, VmaExt,
    HPAGE_PMD_NR, HPAGE_PMD_SIZE, PAGE_SHIFT,
};
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::Mutex;

/// What one target is.
pub(crate) enum What {
    /// A process's mm: `mmgrab` only; `pid` as it was named.
    Mm { pid: u32, mm: ARef<Mm> },
    /// A file's page cache.
    File(ARef<File>),
}

impl What {
    fn clone_ref(&self) -> What {
        match self {
            What::Mm { pid, mm } => What::Mm {
                pid: *pid,
                mm: mm.clone(),
            },
            What::File(f) => What::File(f.clone()),
        }
    }
}

/// One target (khugepaged's `mm_slot`), with what the scanner did to it.
struct Target {
    /// Targets are kept in the order they were added, by id.
    id: u64,
    what: What,
    extents: u64,
    collapsed: u64,
}

/// Where the scan is: `khugepaged_scan.mm_slot` and `.address` (for a
/// file, the byte offset).
#[derive(Clone, Copy)]
struct Cursor {
    id: u64,
    addr: usize,
}

/// The targets and the cursor, under one lock.
struct Targets {
    list: KVec<Target>,
    next_id: u64,
    cursor: Option<Cursor>,
}

impl Targets {
    /// The target the cursor is on, or the first (the cursor then points
    /// to it, at its start). `None` when the cursor's target was removed
    /// and none follows it: the cursor is back at the head of the list.
    fn current(&mut self) -> Option<(u64, What, usize)> {
        let at = match self.cursor {
            Some(c) => self.list.iter().find(|t| t.id >= c.id).map(|t| {
                // Removed meanwhile: the next one, from its start.
                let addr = if t.id == c.id { c.addr } else { 0 };
                (t, addr)
            }),
            None => self.list.first().map(|t| (t, 0)),
        };
        let Some((t, addr)) = at else {
            self.cursor = None;
            return None;
        };
        self.cursor = Some(Cursor { id: t.id, addr });
        Some((t.id, t.what.clone_ref(), addr))
    }

    /// Moves the cursor past target `id`; true when it went round (a full
    /// scan: `khugepaged_full_scans++`).
    fn advance(&mut self, id: u64) -> bool {
        match self.list.iter().find(|t| t.id > id) {
            Some(t) => {
                self.cursor = Some(Cursor { id: t.id, addr: 0 });
                false
            }
            None => {
                self.cursor = None;
                true
            }
        }
    }

    fn find(&mut self, id: u64) -> Option<&mut Target> {
        self.list.iter_mut().find(|t| t.id == id)
    }

    fn remove_where(&mut self, f: impl Fn(&Target) -> bool) -> usize {
        let before = self.list.len();
        self.list.retain(|t| !f(t));
        before - self.list.len()
    }
}

/// The scanner's counters since load (relaxed atomics).
#[derive(Default)]
struct Counters {
    passes: AtomicU64,
    full_scans: AtomicU64,
    extents: AtomicU64,
    extents_collapsed: AtomicU64,
    khugepaged_pages_collapsed: AtomicU64,
    asleep_ms: AtomicU64,
    alloc_sleeps: AtomicU64,
    frozen: AtomicU64,
    exited: AtomicU64,
    results: [AtomicU64; ScanResult::ALL.len()],
}

/// `u64::MAX`: follow khugepaged's knob.
const KHUGEPAGED: u64 = u64::MAX;

/// The scanner: its targets, its own knob values, its counters, and the
/// generation its sleeps watch.
#[pin_data]
pub(crate) struct Scanner {
    #[pin]
    targets: Mutex<Targets>,
    knobs: [AtomicU64; Knob::ALL.len()],
    wake_gen: AtomicU32,
    counters: Counters,
}

/// A knob's value now: the scanner's own, or khugepaged's.
fn knob(sc: &Scanner, k: Knob) -> u32 {
    match sc.knobs[k as usize].load(Relaxed) {
        KHUGEPAGED => {
            let kh = khugepaged_knobs();
            match k {
                Knob::PagesToScan => kh.pages_to_scan,
                Knob::ScanSleepMs => kh.scan_sleep_millisecs,
                Knob::AllocSleepMs => kh.alloc_sleep_millisecs,
            }
        }
        v => u32::try_from(v).unwrap_or(u32::MAX),
    }
}

impl Scanner {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            targets <- new_mutex!(Targets {
                list: KVec::new(),
                next_id: 1,
                cursor: None,
            }),
            knobs: [const { AtomicU64::new(KHUGEPAGED) }; Knob::ALL.len()],
            wake_gen: AtomicU32::new(0),
            counters: Counters::default(),
        })
    }

    /// Ends the thread's current sleep (`wake`, `set`, or a first target).
    pub(crate) fn wake(&self) {
        self.wake_gen.fetch_add(1, Relaxed);
        kthread::wake();
    }

    /// Adds a process's mm (its permission checks passed: [`mm_target`])
    /// or a file ([`file_target`]). A target already there is not added
    /// twice.
    pub(crate) fn add(&self, what: What) -> Result {
        let mut t = self.targets.lock();
        let dup = t.list.iter().any(|x| same(&x.what, &what));
        if !dup {
            let id = t.next_id;
            t.next_id += 1;
            let first = t.list.is_empty();
            t.list.push(
                Target {
                    id,
                    what,
                    extents: 0,
                    collapsed: 0,
                },
                GFP_KERNEL,
            )?;
            drop(t);
            if first {
                // As __khugepaged_enter() wakes khugepaged for a first mm.
                self.wake();
            }
        }
        Ok(())
    }

    /// Removes targets: by pid, or by file (the same page cache); ENOENT
    /// when none matched.
    pub(crate) fn remove(&self, pid: Option<u32>, file: Option<&LocalFile>) -> Result {
        let n = self
            .targets
            .lock()
            .remove_where(|t| match (&t.what, pid, file) {
                (What::Mm { pid: p, .. }, Some(pid), _) => *p == pid,
                (What::File(f), _, Some(file)) => core::ptr::eq(f.mapping(), file.mapping()),
                _ => false,
            });
        if n == 0 {
            return Err(ENOENT);
        }
        Ok(())
    }

    /// Removes every target.
    pub(crate) fn clear(&self) {
        self.targets.lock().remove_where(|_| true);
    }

    /// Sets knobs (the scanner's own value, or khugepaged's again), then
    /// wakes the thread, as writing khugepaged's sleep knobs wakes it.
    pub(crate) fn set(&self, knobs: &[Option<(Knob, Setting)>]) {
        for (k, v) in knobs.iter().flatten() {
            let v = match v {
                Setting::Own(n) => u64::from(*n),
                Setting::Khugepaged => KHUGEPAGED,
            };
            self.knobs[*k as usize].store(v, Relaxed);
        }
        self.wake();
    }

    /// The `scan` file.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        {
            let t = self.targets.lock();
            writeln!(f, "targets {}", t.list.len())?;
            for x in t.list.iter() {
                match &x.what {
                    What::Mm { pid, .. } => write!(f, "target id={} pid={pid}", x.id)?,
                    What::File(file) => {
                        write!(f, "target id={} ino={}", x.id, file.mapping().ino())?
                    }
                }
                writeln!(f, " extents={} collapsed={}", x.extents, x.collapsed)?;
            }
        }
        let c = &self.counters;
        let lines = [
            ("passes", &c.passes),
            ("full_scans", &c.full_scans),
            ("extents", &c.extents),
            ("extents_collapsed", &c.extents_collapsed),
            ("khugepaged_pages_collapsed", &c.khugepaged_pages_collapsed),
            ("asleep_ms", &c.asleep_ms),
            ("alloc_sleeps", &c.alloc_sleeps),
            ("frozen", &c.frozen),
            ("exited", &c.exited),
        ];
        for (name, v) in lines {
            writeln!(f, "{name} {}", v.load(Relaxed))?;
        }
        for k in Knob::ALL {
            let own = self.knobs[k as usize].load(Relaxed) != KHUGEPAGED;
            let whose = if own { "scanner" } else { "khugepaged" };
            writeln!(f, "{} {} {whose}", k.name(), knob(self, k))?;
        }
        for r in ScanResult::ALL {
            writeln!(f, "{} {}", r.name(), c.results[*r as usize].load(Relaxed))?;
        }
        Ok(())
    }
}

/// The same target: the same mm, or the same page cache.
fn same(a: &What, b: &What) -> bool {
    match (a, b) {
        (What::Mm { mm: x, .. }, What::Mm { mm: y, .. }) => core::ptr::eq::<Mm>(&**x, &**y),
        (What::File(x), What::File(y)) => core::ptr::eq(x.mapping(), y.mapping()),
        _ => false,
    }
}

/// A target for a process whose mm passed the permission checks.
pub(crate) fn mm_target(pid: u32, mm: &MmWithUser) -> What {
    What::Mm {
        pid,
        mm: ARef::from(&**mm),
    }
}

/// A target for a file.
pub(crate) fn file_target(file: ARef<File>) -> What {
    What::File(file)
}

/// What one visit of a target did.
enum Visit {
    /// One extent tried (the mmap lock was dropped): its result, whether
    /// it was collapsed now, and whether khugepaged would have counted it
    /// in `pages_collapsed`.
    Extent {
        result: ScanResult,
        collapsed: bool,
        counted: bool,
    },
    /// Nothing left to scan in the target this round (or its mmap lock
    /// was busy): on to the next target.
    Done,
    /// The process exited: the target goes.
    Exited,
}

/// One pass's budget (`collapse_control.progress`).
struct Pass {
    progress: usize,
}

/// `khugepaged()`: passes, and sleeps between them, until rmmod.
pub(crate) fn main(ctx: &KthreadCtx, sc: &Scanner) {
    ctx.set_freezable_nice();
    while !ctx.should_stop() {
        if ctx.try_to_freeze() {
            sc.counters.frozen.fetch_add(1, Relaxed);
        }
        do_scan(ctx, sc);
        if ctx.try_to_freeze() {
            sc.counters.frozen.fetch_add(1, Relaxed);
        }
        wait_work(ctx, sc);
    }
}

/// `khugepaged_wait_work()`: `scan_sleep_millisecs` while there are
/// targets (none when it is 0), else until one is added; a `wake`, a
/// `set` or rmmod ends it.
fn wait_work(ctx: &KthreadCtx, sc: &Scanner) {
    let seen = sc.wake_gen.load(Relaxed);
    let any = !sc.targets.lock().list.is_empty();
    let ms = if any {
        match knob(sc, Knob::ScanSleepMs) {
            0 => return,
            ms => Some(ms),
        }
    } else {
        None
    };
    let slept = ctx.sleep(Some((&sc.wake_gen, seen)), ms);
    sc.counters.asleep_ms.fetch_add(u64::from(slept), Relaxed);
}

/// `khugepaged_alloc_sleep()`: `alloc_sleep_millisecs` after a failed
/// allocation.
fn alloc_sleep(ctx: &KthreadCtx, sc: &Scanner) {
    let seen = sc.wake_gen.load(Relaxed);
    let ms = knob(sc, Knob::AllocSleepMs);
    sc.counters.alloc_sleeps.fetch_add(1, Relaxed);
    let slept = ctx.sleep(Some((&sc.wake_gen, seen)), Some(ms));
    sc.counters.asleep_ms.fetch_add(u64::from(slept), Relaxed);
}

/// `khugepaged_do_scan()`: one pass, visiting targets from the cursor
/// until `pages_to_scan` pages were scanned or the cursor went round the
/// list twice; after a failed allocation, one `alloc_sleep_millisecs`,
/// and a second failure ends the pass.
fn do_scan(ctx: &KthreadCtx, sc: &Scanner) {
    let max = knob(sc, Knob::PagesToScan) as usize;
    let Ok(load) = NodeLoad::new() else {
        return;
    };
    let mut req = Request {
        ctl: Control::new(Mode::Khugepaged),
        dry_run: false,
        load,
    };
    let mut pass = Pass { progress: 0 };
    let mut pass_through_head = 0;
    let mut wait = true;
    sc.counters.passes.fetch_add(1, Relaxed);
    crate::mm::lru_add_drain_all();
    loop {
        crate::mm::cond_resched();
        if ctx.should_stop() {
            break;
        }
        let picked = {
            let mut t = sc.targets.lock();
            if t.cursor.is_none() {
                pass_through_head += 1;
            }
            // khugepaged_has_work(), and at most once round the list.
            (pass_through_head < 2 && !t.list.is_empty()).then(|| t.current())
        };
        let Some(picked) = picked else {
            break;
        };
        // The cursor's target went, and none followed it: from the head.
        let Some((id, what, mut addr)) = picked else {
            continue;
        };
        let visit = match &what {
            What::Mm { mm, .. } => scan_mm(mm, &mut addr, &mut req, &mut pass),
            What::File(file) => scan_file(file, &mut addr, &mut req, &mut pass),
        };
        drop(what);
        let result = record(sc, id, addr, &visit);
        if pass.progress >= max {
            break;
        }
        if result == Some(ScanResult::AllocHugePageFail) {
            // If the allocation fails the first time, sleep a while; when
            // it fails again, cancel the pass.
            if !wait {
                break;
            }
            wait = false;
            alloc_sleep(ctx, sc);
        }
    }
}

/// After a visit of target `id`: the counters, and the cursor (at `addr`
/// in the same target, or on to the next one; an exited process is
/// dropped, as collect_mm_slot() frees its slot).
fn record(sc: &Scanner, id: u64, addr: usize, visit: &Visit) -> Option<ScanResult> {
    let c = &sc.counters;
    let mut t = sc.targets.lock();
    match *visit {
        Visit::Extent {
            result,
            collapsed,
            counted,
        } => {
            c.extents.fetch_add(1, Relaxed);
            c.results[result as usize].fetch_add(1, Relaxed);
            c.extents_collapsed.fetch_add(u64::from(collapsed), Relaxed);
            c.khugepaged_pages_collapsed
                .fetch_add(u64::from(counted), Relaxed);
            if let Some(cur) = t.cursor.as_mut().filter(|cur| cur.id == id) {
                cur.addr = addr;
            }
            if let Some(target) = t.find(id) {
                target.extents += 1;
                target.collapsed += u64::from(collapsed);
            }
            Some(result)
        }
        Visit::Done | Visit::Exited => {
            if t.cursor.is_some_and(|cur| cur.id == id) && t.advance(id) {
                c.full_scans.fetch_add(1, Relaxed);
            }
            if let Visit::Exited = visit {
                if t.remove_where(|x| x.id == id) > 0 {
                    c.exited.fetch_add(1, Relaxed);
                }
            }
            None
        }
    }
}

const fn align_up(x: usize) -> usize {
    (x + HPAGE_PMD_SIZE - 1) & !(HPAGE_PMD_SIZE - 1)
}
const fn align_down(x: usize) -> usize {
    x & !(HPAGE_PMD_SIZE - 1)
}

/// Progress of one extent, as `collapse_scan_file()` counts it: one page
/// when the scan found it huge already, the extent's pages otherwise.
fn extent_progress(scanned_huge: bool) -> usize {
    if scanned_huge {
        1
    } else {
        HPAGE_PMD_NR
    }
}

/// `collapse_scan_mm_slot()` for a process: from `*addr`, the first
/// extent of an eligible file VMA (`TVA_KHUGEPAGED`) is collapsed
/// (`collapse_single_pmd()`, which drops the mmap lock, after which the
/// visit ends, as upstream breaks out); VMAs passed over cost one page of
/// progress each.
fn scan_mm(target: &Mm, addr: &mut usize, req: &mut Request, pass: &mut Pass) -> Visit {
    // A process that exited has no users left: its target goes.
    let Some(mm) = target.mmget_not_zero() else {
        return Visit::Exited;
    };
    // Don't wait for the mmap lock (to avoid long waits): on to the next
    // target.
    let Some(lock) = MmapRead::try_lock(&mm) else {
        return Visit::Done;
    };
    pass.progress += 1;
    if mm.exiting() || mm.thp_disabled() {
        return Visit::Done;
    }
    let mut next = lock.find_vma(*addr);
    while let Some(vma) = next {
        if mm.exiting() || mm.thp_disabled() {
            pass.progress += 1;
            return Visit::Done;
        }
        let (hstart, hend) = (align_up(vma.vm_start()), align_down(vma.vm_end()));
        if vma_eligible(vma, Tva::Khugepaged).is_err() || *addr > hend {
            pass.progress += 1;
            next = lock.find_vma(vma.vm_end());
            continue;
        }
        *addr = (*addr).max(hstart);
        if *addr < hend {
            let Some(file) = vma.vm_file().map(ARef::from) else {
                return Visit::Done;
            };
            let at = *addr;
            let pgoff = vma.pgoff_of(at);
            drop(lock);
            let (done, upstream, scanned_huge) = collapse_vma_extent(&mm, file, pgoff, at, req);
            pass.progress += extent_progress(scanned_huge);
            *addr = at + HPAGE_PMD_SIZE;
            return Visit::Extent {
                result: done.result,
                collapsed: done.hpfn.is_some(),
                counted: upstream == ScanResult::Succeed,
            };
        }
        next = lock.find_vma(vma.vm_end());
    }
    Visit::Done
}

/// A file target: its next whole extent below `i_size`, as `fd=` in
/// khugepaged mode collapses it.
fn scan_file(file: &File, off: &mut usize, req: &mut Request, pass: &mut Pass) -> Visit {
    pass.progress += 1;
    let end = align_down(file.size());
    if *off >= end {
        return Visit::Done;
    }
    let at = align_down(*off);
    let (done, scanned_huge) = collapse_file_extent(file, at >> PAGE_SHIFT, req);
    pass.progress += extent_progress(scanned_huge);
    *off = at + HPAGE_PMD_SIZE;
    // No mm, no try_collapse_pte_mapped_thp(): khugepaged has no such
    // visit to count.
    Visit::Extent {
        result: done.result,
        collapsed: done.hpfn.is_some(),
        counted: false,
    }
}

/// A write to `scan` other than `add fd=` (whose file the FFI edge gets):
/// `add pid=` with process_madvise(2)'s permission checks, `remove`,
/// `clear`, `wake`, `set`.
pub(crate) fn apply(sc: &Scanner, cmd: ScanCmd) -> Result {
    match cmd {
        ScanCmd::Add(ScanTarget::Pid(pid)) => {
            let mm = target_mm(Some(pid))?;
            sc.add(mm_target(pid, &mm))
        }
        // The FFI edge takes the file (`add_file`).
        ScanCmd::Add(ScanTarget::Fd(_)) => Err(EINVAL),
        ScanCmd::Remove(ScanTarget::Pid(pid)) => sc.remove(Some(pid), None),
        ScanCmd::Remove(ScanTarget::Fd(fd)) => {
            let file = fget(fd).ok_or(EBADF)?;
            sc.remove(None, Some(&file))
        }
        ScanCmd::Clear => {
            sc.clear();
            Ok(())
        }
        ScanCmd::Wake => {
            sc.wake();
            Ok(())
        }
        ScanCmd::Set(knobs) => {
            sc.set(&knobs);
            Ok(())
        }
    }
}

/// `add fd=`: the writer's open file, which must be a regular file.
pub(crate) fn add_file(sc: &Scanner, file: ARef<File>) -> Result {
    if !file.is_regular() {
        return Err(EINVAL);
    }
    sc.add(file_target(file))
}
