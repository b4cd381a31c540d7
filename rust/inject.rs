// SPDX-License-Identifier: GPL-2.0

//! Injection points: places where the collapse drops or is about to take a
//! lock, which a test can pause (until released through debugfs `inject`,
//! or a timeout), delay, or — for the fail points — make fail once, to
//! force a race window or a rollback deterministically.
//!
//! Disarmed, a point costs one relaxed load of [`ARMED`] and a branch not
//! taken. Armed points are scoped to a process (the `collapse` writer's
//! tgid) or a file (inode number), so an idle system is never affected.

#![forbid(unsafe_code)]

use crate::abi::inject_cmd::{InjectCmd, Mode, Point, Scope};
use crate::mm::task;
use crate::mm::AddressSpace;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed, Ordering::SeqCst};

/// Bit `p` set: point `p` is armed.
static ARMED: AtomicU32 = AtomicU32::new(0);
/// Bumped by every release; paused collapses wait for it to change.
static RELEASE_GEN: AtomicU32 = AtomicU32::new(0);

const N: usize = Point::ALL.len();

/// The arming of one point.
struct Slot {
    /// 0 pause, 1 delay, 2 fail.
    mode: AtomicU8,
    /// 0 pid, 1 inode.
    scope_kind: AtomicU8,
    scope: AtomicU64,
    /// Pause timeout or delay, in ms.
    ms: AtomicU32,
    remaining: AtomicU32,
    hits: AtomicU32,
    waiting: AtomicU32,
    timeouts: AtomicU32,
}

impl Slot {
    const fn new() -> Self {
        Self {
            mode: AtomicU8::new(0),
            scope_kind: AtomicU8::new(0),
            scope: AtomicU64::new(0),
            ms: AtomicU32::new(0),
            remaining: AtomicU32::new(0),
            hits: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            timeouts: AtomicU32::new(0),
        }
    }
}

static SLOTS: [Slot; N] = [const { Slot::new() }; N];

/// What the collapse is working on, for scope matching: the mapping, whose
/// inode number is only read when a point is armed.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a>(&'a AddressSpace);

impl<'a> Target<'a> {
    pub(crate) fn of(mapping: &'a AddressSpace) -> Self {
        Self(mapping)
    }
}

/// Runs point `p` for `target`. Returns true when a fail point fires:
/// the caller then fails the step as if the kernel had.
#[inline(always)]
pub(crate) fn hit(p: Point, target: Target<'_>) -> bool {
    if ARMED.load(Relaxed) & (1 << p as u32) == 0 {
        return false;
    }
    fire(p, target)
}

#[cold]
fn fire(p: Point, target: Target<'_>) -> bool {
    let slot = &SLOTS[p as usize];
    let matches = match slot.scope_kind.load(SeqCst) {
        0 => task::current_tgid() == slot.scope.load(SeqCst),
        _ => target.0.ino() == slot.scope.load(SeqCst),
    };
    if !matches {
        return false;
    }
    // Consume one hit; the last one disarms the point.
    let mut left = slot.remaining.load(SeqCst);
    loop {
        if left == 0 {
            return false;
        }
        match slot
            .remaining
            .compare_exchange(left, left - 1, SeqCst, SeqCst)
        {
            Ok(_) => break,
            Err(now) => left = now,
        }
    }
    if left == 1 {
        ARMED.fetch_and(!(1 << p as u32), SeqCst);
    }
    slot.hits.fetch_add(1, SeqCst);
    match slot.mode.load(SeqCst) {
        0 => {
            let seen = RELEASE_GEN.load(SeqCst);
            slot.waiting.fetch_add(1, SeqCst);
            // Callers reach a pause/delay point with no spinlock held (see
            // Point docs): it may sleep.
            let released = task::wait_for_change(&RELEASE_GEN, seen, slot.ms.load(SeqCst));
            slot.waiting.fetch_sub(1, SeqCst);
            if !released {
                slot.timeouts.fetch_add(1, SeqCst);
            }
            false
        }
        1 => {
            task::msleep(slot.ms.load(SeqCst));
            false
        }
        _ => true,
    }
}

/// Applies one `inject` command.
pub(crate) fn apply(cmd: InjectCmd) {
    match cmd {
        InjectCmd::Arm {
            point,
            mode,
            scope,
            count,
        } => {
            let slot = &SLOTS[point as usize];
            ARMED.fetch_and(!(1 << point as u32), SeqCst);
            let (m, ms) = match mode {
                Mode::Pause { timeout_ms } => (0, timeout_ms),
                Mode::Delay { ms } => (1, ms),
                Mode::Fail => (2, 0),
            };
            let (kind, value) = match scope {
                Scope::Pid(pid) => (0, u64::from(pid)),
                Scope::Ino(ino) => (1, ino),
            };
            slot.mode.store(m, SeqCst);
            slot.ms.store(ms, SeqCst);
            slot.scope_kind.store(kind, SeqCst);
            slot.scope.store(value, SeqCst);
            slot.hits.store(0, SeqCst);
            slot.timeouts.store(0, SeqCst);
            slot.remaining.store(count, SeqCst);
            ARMED.fetch_or(1 << point as u32, SeqCst);
        }
        InjectCmd::Release(_) => release(),
        InjectCmd::Clear => {
            ARMED.store(0, SeqCst);
            for slot in &SLOTS {
                slot.remaining.store(0, SeqCst);
            }
            release();
        }
    }
}

/// Wakes every paused collapse (a pause is one-shot: releasing any
/// releases all, which is what a test holding one pause wants).
fn release() {
    RELEASE_GEN.fetch_add(1, SeqCst);
    task::wake_waiters();
}

/// Disarms everything and wakes waiters (module unload).
pub(crate) fn shutdown() {
    apply(InjectCmd::Clear);
}

/// The `inject` file: one line per point.
pub(crate) fn show(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let armed = ARMED.load(SeqCst);
    for p in Point::ALL {
        let s = &SLOTS[p as usize];
        let mode = match s.mode.load(SeqCst) {
            0 => "pause",
            1 => "delay",
            _ => "fail",
        };
        let scope = if s.scope_kind.load(SeqCst) == 0 {
            "pid"
        } else {
            "ino"
        };
        writeln!(
            f,
            "{} armed={} mode={} {}={} ms={} remaining={} hits={} waiting={} timeouts={}",
            p.name(),
            (armed >> p as u32) & 1,
            mode,
            scope,
            s.scope.load(SeqCst),
            s.ms.load(SeqCst),
            s.remaining.load(SeqCst),
            s.hits.load(SeqCst),
            s.waiting.load(SeqCst),
            s.timeouts.load(SeqCst)
        )?;
    }
    Ok(())
}
