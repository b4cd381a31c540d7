// SPDX-License-Identifier: GPL-2.0

//! The grammar of a write to debugfs `inject`, parsed without the kernel
//! (pure `core`, host-tested):
//!
//! ```text
//! pause=<point> (pid=<n> | ino=<n>) [timeout_ms=<n>] [count=<n>]
//! delay=<point> ms=<n> (pid=<n> | ino=<n>) [count=<n>]
//! fail=<point> (pid=<n> | ino=<n>) [count=<n>]
//! release [<point>]
//! clear
//! ```
//!
//! Every arming is scoped: `pid` is the thread-group id of the process
//! whose `collapse` write should hit the point, `ino` the inode number of
//! the file being collapsed. `count` hits (default 1) disarm the point.

use crate::abi::command::errno;

/// Where the collapse can be paused, delayed or made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Point {
    /// Per scanned index, before re-taking the xa_lock.
    ScanIndex,
    /// After the scan (old folios isolated, holes charged), before copying.
    BeforeCopy,
    /// Before the i_mmap + xa_lock hole re-check.
    BeforeRecheck,
    /// Before the xa_lock under which the multi-index entry is stored.
    BeforeStore,
    /// Per VMA in retraction, between MMU-notifier start and PMD lock.
    RetractVma,
    /// Before re-taking the mmap lock to install the PMD.
    BeforeInstall,
    /// After the lockless scan said yes, before `collapse_file()` locks
    /// anything: the page cache may change in between.
    AfterScan,
    /// Fail points: the huge folio allocation,
    Alloc,
    /// its memcg charge,
    Charge,
    /// the copy (as if copy_mc hit a poisoned page),
    CopyMc,
    /// the xarray node allocation (xas_nomem),
    XasNomem,
    /// and the shmem charge of the holes.
    ShmemCharge,
}

impl Point {
    pub(crate) const ALL: [Point; 12] = [
        Point::ScanIndex,
        Point::BeforeCopy,
        Point::BeforeRecheck,
        Point::BeforeStore,
        Point::RetractVma,
        Point::BeforeInstall,
        Point::AfterScan,
        Point::Alloc,
        Point::Charge,
        Point::CopyMc,
        Point::XasNomem,
        Point::ShmemCharge,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Point::ScanIndex => "scan_index",
            Point::BeforeCopy => "before_copy",
            Point::BeforeRecheck => "before_recheck",
            Point::BeforeStore => "before_store",
            Point::RetractVma => "retract_vma",
            Point::BeforeInstall => "before_install",
            Point::AfterScan => "after_scan",
            Point::Alloc => "alloc",
            Point::Charge => "charge",
            Point::CopyMc => "copy_mc",
            Point::XasNomem => "xas_nomem",
            Point::ShmemCharge => "shmem_charge",
        }
    }

    /// Fail points only fail; the others only pause or delay.
    pub(crate) fn is_fail_point(self) -> bool {
        (self as u8) >= (Point::Alloc as u8)
    }

    fn from_name(s: &str) -> Option<Point> {
        Point::ALL.iter().copied().find(|p| p.name() == s)
    }
}

/// What an armed point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Sleep until released (or `timeout_ms`).
    Pause { timeout_ms: u32 },
    /// Sleep `ms`.
    Delay { ms: u32 },
    /// Make the step fail.
    Fail,
}

/// Who a point fires for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Pid(u32),
    Ino(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InjectCmd {
    Arm {
        point: Point,
        mode: Mode,
        scope: Scope,
        count: u32,
    },
    Release(Option<Point>),
    Clear,
}

/// Default and maximum pause: nothing can hang forever.
pub(crate) const DEFAULT_PAUSE_MS: u32 = 10_000;
pub(crate) const MAX_PAUSE_MS: u32 = 60_000;
const MAX_DELAY_MS: u32 = 10_000;

fn number(s: &str, max: u64) -> Result<u64, i32> {
    // Plain decimal digits only, as in the collapse grammar (no sign).
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(errno::EINVAL);
    }
    let n: u64 = s.parse().map_err(|_| errno::ERANGE)?;
    if n > max {
        return Err(errno::ERANGE);
    }
    Ok(n)
}

/// Parses one write to `inject`; the error is a positive errno.
pub(crate) fn parse(input: &[u8]) -> Result<InjectCmd, i32> {
    let text = core::str::from_utf8(input).map_err(|_| errno::EINVAL)?;
    let mut tokens = text.split_ascii_whitespace();
    let first = tokens.next().ok_or(errno::EINVAL)?;
    let cmd = match first {
        "clear" => InjectCmd::Clear,
        "release" => InjectCmd::Release(
            tokens
                .next()
                .map(|p| Point::from_name(p).ok_or(errno::EINVAL))
                .transpose()?,
        ),
        _ => return parse_arm(first, tokens),
    };
    match tokens.next() {
        None => Ok(cmd),
        Some(_) => Err(errno::EINVAL),
    }
}

/// The keys of an arming, each at most once.
#[derive(Default)]
struct ArmKeys {
    scope: Option<Scope>,
    count: Option<u32>,
    ms: Option<u32>,
    timeout: Option<u32>,
}

impl ArmKeys {
    fn parse<'a>(tokens: impl Iterator<Item = &'a str>) -> Result<Self, i32> {
        let mut keys = Self::default();
        for t in tokens {
            let (k, v) = t.split_once('=').ok_or(errno::EINVAL)?;
            let slot_was_set = match k {
                "pid" => keys
                    .scope
                    .replace(Scope::Pid(number(v, i32::MAX as u64)? as u32))
                    .is_some(),
                "ino" => keys
                    .scope
                    .replace(Scope::Ino(number(v, u64::MAX)?))
                    .is_some(),
                "count" => keys.count.replace(number(v, 1_000_000)? as u32).is_some(),
                "ms" => keys
                    .ms
                    .replace(number(v, u64::from(MAX_DELAY_MS))? as u32)
                    .is_some(),
                "timeout_ms" => keys
                    .timeout
                    .replace(number(v, u64::from(MAX_PAUSE_MS))? as u32)
                    .is_some(),
                _ => return Err(errno::EINVAL),
            };
            if slot_was_set {
                return Err(errno::EINVAL);
            }
        }
        Ok(keys)
    }
}

/// `pause=`, `delay=` or `fail=<point>` and its keys.
fn parse_arm<'a>(first: &str, tokens: impl Iterator<Item = &'a str>) -> Result<InjectCmd, i32> {
    let (verb, point) = first.split_once('=').ok_or(errno::EINVAL)?;
    let point = Point::from_name(point).ok_or(errno::EINVAL)?;
    let ArmKeys {
        scope,
        count,
        ms,
        timeout,
    } = ArmKeys::parse(tokens)?;
    let scope = scope.ok_or(errno::EINVAL)?;
    if matches!(scope, Scope::Pid(0)) || count == Some(0) {
        return Err(errno::EINVAL);
    }
    let mode = match verb {
        "pause" if ms.is_none() && !point.is_fail_point() => Mode::Pause {
            timeout_ms: timeout.unwrap_or(DEFAULT_PAUSE_MS),
        },
        "delay" if timeout.is_none() && !point.is_fail_point() => Mode::Delay {
            ms: ms.ok_or(errno::EINVAL)?,
        },
        "fail" if ms.is_none() && timeout.is_none() && point.is_fail_point() => Mode::Fail,
        _ => return Err(errno::EINVAL),
    };
    Ok(InjectCmd::Arm {
        point,
        mode,
        scope,
        count: count.unwrap_or(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<InjectCmd, i32> {
        parse(s.as_bytes())
    }

    #[test]
    fn arming() {
        assert_eq!(
            p("pause=before_recheck pid=42"),
            Ok(InjectCmd::Arm {
                point: Point::BeforeRecheck,
                mode: Mode::Pause {
                    timeout_ms: DEFAULT_PAUSE_MS
                },
                scope: Scope::Pid(42),
                count: 1
            })
        );
        assert_eq!(
            p("delay=scan_index ms=5 ino=12 count=512\n"),
            Ok(InjectCmd::Arm {
                point: Point::ScanIndex,
                mode: Mode::Delay { ms: 5 },
                scope: Scope::Ino(12),
                count: 512
            })
        );
        assert_eq!(
            p("fail=alloc pid=7"),
            Ok(InjectCmd::Arm {
                point: Point::Alloc,
                mode: Mode::Fail,
                scope: Scope::Pid(7),
                count: 1
            })
        );
        assert_eq!(p("release"), Ok(InjectCmd::Release(None)));
        assert_eq!(
            p("release retract_vma"),
            Ok(InjectCmd::Release(Some(Point::RetractVma)))
        );
        assert_eq!(p("clear"), Ok(InjectCmd::Clear));
    }

    #[test]
    fn refusals() {
        assert_eq!(p(""), Err(errno::EINVAL));
        assert_eq!(p("pause=before_recheck"), Err(errno::EINVAL), "unscoped");
        assert_eq!(p("pause=nowhere pid=1"), Err(errno::EINVAL));
        assert_eq!(
            p("fail=before_copy pid=1"),
            Err(errno::EINVAL),
            "not a fail point"
        );
        assert_eq!(p("pause=alloc pid=1"), Err(errno::EINVAL), "fail point");
        assert_eq!(p("delay=scan_index pid=1"), Err(errno::EINVAL), "no ms");
        assert_eq!(
            p("pause=scan_index pid=1 timeout_ms=60001"),
            Err(errno::ERANGE)
        );
        assert_eq!(p("pause=scan_index pid=0"), Err(errno::EINVAL));
        assert_eq!(p("pause=scan_index pid=1 pid=2"), Err(errno::EINVAL));
        assert_eq!(p("pause=scan_index pid=1 count=0"), Err(errno::EINVAL));
        assert_eq!(p("release x"), Err(errno::EINVAL));
        assert_eq!(p("clear now"), Err(errno::EINVAL));
        assert_eq!(p("pause=scan_index pid=1 bogus=1"), Err(errno::EINVAL));
        assert_eq!(p("pause=scan_index pid=+1"), Err(errno::EINVAL));
        assert_eq!(p("fail=alloc pid=1 count=+5"), Err(errno::EINVAL));
        assert_eq!(p("fail=alloc ino=99999999999999999999"), Err(errno::ERANGE));
    }

    #[test]
    fn names_round_trip() {
        for pt in Point::ALL {
            assert_eq!(Point::from_name(pt.name()), Some(pt));
        }
    }
}
