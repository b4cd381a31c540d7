// SPDX-License-Identifier: GPL-2.0

//! The grammar of a write to debugfs `scan`, the module's scanner thread,
//! parsed without the kernel (pure `core`, host-tested):
//!
//! ```text
//! add (pid=<n> | fd=<n>)       scan this process's mm, or this open file
//! remove (pid=<n> | fd=<n>)    stop scanning it
//! clear                        stop scanning everything
//! wake                         end the current sleep: a pass starts now
//! set <knob>=<n|default>...    the scanner's own value of a khugepaged knob
//! ```
//!
//! The knobs are `pages_to_scan`, `scan_sleep_millisecs` and
//! `alloc_sleep_millisecs`; by default the scanner follows khugepaged's
//! (`/sys/kernel/mm/transparent_hugepage/khugepaged/`), and `default`
//! returns a knob to that. Numbers are plain decimal digits; tokens are
//! separated by ASCII whitespace.

use crate::abi::command::errno;

/// What the scanner scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanTarget {
    /// Process `pid`'s mm (its file-backed VMAs).
    Pid(u32),
    /// The writer's open file `fd` (its page cache).
    Fd(u32),
}

/// A knob of khugepaged the scanner also follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Knob {
    /// Pages scanned per pass (`pages_to_scan`, at least 1).
    PagesToScan,
    /// Sleep between passes (`scan_sleep_millisecs`).
    ScanSleepMs,
    /// Sleep after a failed huge page allocation (`alloc_sleep_millisecs`).
    AllocSleepMs,
}

impl Knob {
    pub(crate) const ALL: [Knob; 3] = [Knob::PagesToScan, Knob::ScanSleepMs, Knob::AllocSleepMs];

    /// The name of khugepaged's sysfs file.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Knob::PagesToScan => "pages_to_scan",
            Knob::ScanSleepMs => "scan_sleep_millisecs",
            Knob::AllocSleepMs => "alloc_sleep_millisecs",
        }
    }

    fn from_name(s: &str) -> Option<Knob> {
        Knob::ALL.iter().copied().find(|k| k.name() == s)
    }
}

/// One knob setting: the scanner's own value, or khugepaged's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setting {
    Own(u32),
    Khugepaged,
}

/// The most knobs one `set` names.
pub(crate) const MAX_SETS: usize = Knob::ALL.len();

/// One parsed command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanCmd {
    Add(ScanTarget),
    Remove(ScanTarget),
    Clear,
    Wake,
    /// Up to [`MAX_SETS`] knobs, each at most once (`None` past the end).
    Set([Option<(Knob, Setting)>; MAX_SETS]),
}

/// Why a write was refused; [`ScanError::errno`] is what it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// Empty, not text, an unknown verb or key, or a missing argument.
    Syntax,
    /// A value that is not a number of the expected form.
    BadNumber,
    /// A number that does not fit (32 bits; a pid or fd: 31).
    Overflow,
    /// `pages_to_scan=0` (khugepaged refuses it too).
    Zero,
    /// The same knob twice.
    Duplicate,
}

impl ScanError {
    pub(crate) fn errno(self) -> i32 {
        match self {
            ScanError::Overflow => errno::ERANGE,
            _ => errno::EINVAL,
        }
    }
}

type Result<T> = core::result::Result<T, ScanError>;

/// Plain decimal digits, at most `max`.
fn number(s: &str, max: u64) -> Result<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScanError::BadNumber);
    }
    match s.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(ScanError::Overflow),
    }
}

fn target(token: Option<&str>) -> Result<ScanTarget> {
    let (key, value) = token
        .and_then(|t| t.split_once('='))
        .ok_or(ScanError::Syntax)?;
    let id = number(value, i32::MAX as u64)? as u32;
    match key {
        "pid" if id > 0 => Ok(ScanTarget::Pid(id)),
        "pid" => Err(ScanError::BadNumber),
        "fd" => Ok(ScanTarget::Fd(id)),
        _ => Err(ScanError::Syntax),
    }
}

fn setting(token: &str) -> Result<(Knob, Setting)> {
    let (key, value) = token.split_once('=').ok_or(ScanError::Syntax)?;
    let knob = Knob::from_name(key).ok_or(ScanError::Syntax)?;
    if value == "default" {
        return Ok((knob, Setting::Khugepaged));
    }
    let n = number(value, u64::from(u32::MAX))? as u32;
    if knob == Knob::PagesToScan && n == 0 {
        return Err(ScanError::Zero);
    }
    Ok((knob, Setting::Own(n)))
}

/// Parses one write.
pub(crate) fn parse(input: &[u8]) -> Result<ScanCmd> {
    let text = core::str::from_utf8(input).map_err(|_| ScanError::Syntax)?;
    if !text
        .bytes()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        return Err(ScanError::Syntax);
    }
    let mut tokens = text.split_ascii_whitespace();
    let verb = tokens.next().ok_or(ScanError::Syntax)?;
    let cmd = match verb {
        "add" => ScanCmd::Add(target(tokens.next())?),
        "remove" => ScanCmd::Remove(target(tokens.next())?),
        "clear" => ScanCmd::Clear,
        "wake" => ScanCmd::Wake,
        "set" => {
            let mut sets = [None; MAX_SETS];
            let mut n = 0;
            for token in tokens.by_ref() {
                let (knob, value) = setting(token)?;
                if sets[..n].iter().flatten().any(|(k, _)| *k == knob) {
                    return Err(ScanError::Duplicate);
                }
                // Three knobs, none twice: `n` stays below MAX_SETS here.
                let slot = sets.get_mut(n).ok_or(ScanError::Duplicate)?;
                *slot = Some((knob, value));
                n += 1;
            }
            if n == 0 {
                return Err(ScanError::Syntax);
            }
            ScanCmd::Set(sets)
        }
        _ => return Err(ScanError::Syntax),
    };
    if tokens.next().is_some() {
        return Err(ScanError::Syntax);
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<ScanCmd> {
        parse(s.as_bytes())
    }

    #[test]
    fn targets() {
        assert_eq!(p("add pid=42"), Ok(ScanCmd::Add(ScanTarget::Pid(42))));
        assert_eq!(p(" add\tfd=0\n"), Ok(ScanCmd::Add(ScanTarget::Fd(0))));
        assert_eq!(p("remove pid=7"), Ok(ScanCmd::Remove(ScanTarget::Pid(7))));
        assert_eq!(p("remove fd=3"), Ok(ScanCmd::Remove(ScanTarget::Fd(3))));
        assert_eq!(p("add pid=0"), Err(ScanError::BadNumber));
        assert_eq!(p("add pid=-1"), Err(ScanError::BadNumber));
        assert_eq!(p("add pid=+1"), Err(ScanError::BadNumber));
        assert_eq!(p("add pid=2147483648"), Err(ScanError::Overflow));
        assert_eq!(p("add fd=99999999999999999999"), Err(ScanError::Overflow));
        assert_eq!(p("add"), Err(ScanError::Syntax));
        assert_eq!(p("add ino=3"), Err(ScanError::Syntax));
        assert_eq!(p("add pid=1 fd=2"), Err(ScanError::Syntax));
        assert_eq!(p("add pid"), Err(ScanError::Syntax));
    }

    #[test]
    fn verbs() {
        assert_eq!(p("clear"), Ok(ScanCmd::Clear));
        assert_eq!(p("wake\n"), Ok(ScanCmd::Wake));
        assert_eq!(p("wake now"), Err(ScanError::Syntax));
        assert_eq!(p(""), Err(ScanError::Syntax));
        assert_eq!(p(" \n"), Err(ScanError::Syntax));
        assert_eq!(p("scan"), Err(ScanError::Syntax));
        assert_eq!(p("clear\0"), Err(ScanError::Syntax));
        assert_eq!(p("add pid=1 \u{e9}"), Err(ScanError::Syntax));
    }

    #[test]
    fn settings() {
        let want = [
            Some((Knob::ScanSleepMs, Setting::Own(0))),
            Some((Knob::PagesToScan, Setting::Khugepaged)),
            None,
        ];
        assert_eq!(
            p("set scan_sleep_millisecs=0 pages_to_scan=default"),
            Ok(ScanCmd::Set(want))
        );
        let all = p("set alloc_sleep_millisecs=4294967295 pages_to_scan=1 scan_sleep_millisecs=5");
        assert!(matches!(all, Ok(ScanCmd::Set([Some(_), Some(_), Some(_)]))));
        assert_eq!(p("set"), Err(ScanError::Syntax));
        assert_eq!(p("set pages_to_scan=0"), Err(ScanError::Zero));
        assert_eq!(
            p("set alloc_sleep_millisecs=4294967296"),
            Err(ScanError::Overflow)
        );
        assert_eq!(
            p("set pages_to_scan=1 pages_to_scan=2"),
            Err(ScanError::Duplicate)
        );
        assert_eq!(p("set max_ptes_none=5"), Err(ScanError::Syntax));
        assert_eq!(p("set pages_to_scan"), Err(ScanError::Syntax));
        assert_eq!(p("set pages_to_scan=x"), Err(ScanError::BadNumber));
        assert_eq!(ScanError::Overflow.errno(), errno::ERANGE);
        assert_eq!(ScanError::Zero.errno(), errno::EINVAL);
    }
}
