// SPDX-License-Identifier: GPL-2.0

//! The grammar of a write to debugfs `collapse`, parsed without touching
//! the kernel (pure `core`, so the host runs its tests with `cargo test`).
//!
//! ```text
//! addr=<hex> len=<size> [pid=<n>] [mode=<mode>] [dry_run]      a range of an mm
//! fd=<n> [offset=<size>] len=<size> [mode=<mode>] [dry_run]    the page cache of an open file
//! ```
//!
//! `mode=` is `madvise` (the default: MADV_COLLAPSE's semantics) or
//! `khugepaged` (the daemon's: its thresholds, eligibility, allocation and
//! lazy PMD, see [`Mode`]). Tokens are separated by ASCII whitespace, in
//! any order, each at most once. `addr` is hexadecimal with or without `0x`; a size is decimal or
//! `0x` hexadecimal with an optional binary suffix `K`, `M` or `G` (either
//! case). Lengths and addresses must be page-aligned and non-zero (unlike
//! madvise(2), which rounds a length up: an unaligned length here is more
//! likely a typo than an intent), and a length is at most [`MAX_LEN`]
//! (1 GiB, 512 extents: the report stays one short read, and no request
//! holds the collapse for long). The semantic checks that need the kernel
//! (the range is mapped, the pid exists, the fd is open) happen later.

/// Errno values used by the parser (uapi numbers; stable).
pub(crate) mod errno {
    pub(crate) const EBADF: i32 = 9;
    pub(crate) const EAGAIN: i32 = 11;
    pub(crate) const ENOMEM: i32 = 12;
    pub(crate) const EBUSY: i32 = 16;
    pub(crate) const EINVAL: i32 = 22;
    pub(crate) const ERANGE: i32 = 34;
}

/// The page size, as a `u64` for the grammar's numbers.
const PAGE_SIZE: u64 = super::PAGE_SIZE as u64;

/// The longest range one request may cover.
pub(crate) const MAX_LEN: u64 = 1 << 30;

/// What to collapse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// `[addr, addr + len)` of the writer's mm, or of `pid`'s.
    Mm {
        pid: Option<u32>,
        addr: u64,
        len: u64,
    },
    /// `[offset, offset + len)` of the writer's open file `fd`.
    File { fd: u32, offset: u64, len: u64 },
}

/// Whose semantics each extent is collapsed with: 7.2's
/// `collapse_control.is_khugepaged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Mode {
    /// `madvise(MADV_COLLAPSE)` (`is_khugepaged == false`): no thresholds,
    /// the THP settings ignored (`TVA_FORCED_COLLAPSE`), `GFP_TRANSHUGE`,
    /// a dirty extent written back and tried again, the PMD installed now.
    #[default]
    Madvise,
    /// khugepaged (`is_khugepaged == true`): `max_ptes_none`/`max_ptes_swap`
    /// from sysfs, the THP settings applied (`TVA_KHUGEPAGED`), the
    /// `defrag` knob's allocation flags, no write-back, the PMD left to the
    /// next fault.
    Khugepaged,
}

impl Mode {
    /// The value of `mode=`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "madvise" => Some(Mode::Madvise),
            "khugepaged" => Some(Mode::Khugepaged),
            _ => None,
        }
    }
}

/// One parsed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) target: Target,
    /// Scan and report, change nothing.
    pub(crate) dry_run: bool,
    /// Whose semantics (`mode=`; MADV_COLLAPSE's by default).
    pub(crate) mode: Mode,
}

/// Why a write was refused; [`ParseError::errno`] is what the write returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Nothing but whitespace.
    Empty,
    /// Bytes that are not printable ASCII.
    NotText,
    /// A key this grammar does not have.
    UnknownKey,
    /// The same key twice.
    Duplicate,
    /// A value that is not a number of the expected form.
    BadNumber,
    /// A number that does not fit in 64 bits (after its suffix).
    Overflow,
    /// `len`, or `addr`/`fd`, is missing.
    Missing,
    /// Keys of the two forms mixed (`fd` with `addr` or `pid`, or `offset`
    /// without `fd`).
    Conflict,
    /// `len=0`.
    ZeroLength,
    /// `len` above [`MAX_LEN`].
    TooLong,
    /// An address, offset or length that is not a multiple of the page size.
    Unaligned,
    /// The range wraps or ends beyond the user address space.
    OutOfRange,
    /// A negative or absurd file descriptor.
    BadFd,
    /// A pid that cannot exist (zero or negative).
    BadPid,
    /// A `mode=` that is neither `madvise` nor `khugepaged`.
    UnknownMode,
}

impl ParseError {
    /// The errno a write returns for this error (positive).
    pub(crate) fn errno(self) -> i32 {
        match self {
            ParseError::Overflow => errno::ERANGE,
            ParseError::BadFd => errno::EBADF,
            _ => errno::EINVAL,
        }
    }
}

type Result<T> = core::result::Result<T, ParseError>;

fn parse_digits(s: &str, radix: u32) -> Result<u64> {
    if s.is_empty() || s.starts_with('+') || s.starts_with('-') {
        return Err(ParseError::BadNumber);
    }
    // `from_str_radix` reports overflow separately from bad digits.
    u64::from_str_radix(s, radix).map_err(|e| match e.kind() {
        core::num::IntErrorKind::PosOverflow => ParseError::Overflow,
        _ => ParseError::BadNumber,
    })
}

fn strip_hex_prefix(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

/// `<hex>` or `0x<hex>`.
fn parse_hex(s: &str) -> Result<u64> {
    parse_digits(strip_hex_prefix(s).unwrap_or(s), 16)
}

/// Decimal or `0x` hex, with an optional K/M/G suffix.
pub(crate) fn parse_size(s: &str) -> Result<u64> {
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n = match strip_hex_prefix(digits) {
        Some(hex) => parse_digits(hex, 16)?,
        None => parse_digits(digits, 10)?,
    };
    n.checked_mul(1u64 << shift).ok_or(ParseError::Overflow)
}

/// A pid or fd: decimal, `min..=i32::MAX`, else `err`.
fn parse_id(s: &str, err: ParseError, min: u64) -> Result<u64> {
    match parse_digits(s, 10) {
        Ok(n) if (min..=i32::MAX as u64).contains(&n) => Ok(n),
        _ => Err(err),
    }
}

fn set(slot: &mut Option<u64>, value: u64) -> Result<()> {
    if slot.replace(value).is_some() {
        return Err(ParseError::Duplicate);
    }
    Ok(())
}

/// The keys of one command, each at most once.
#[derive(Default)]
struct Keys {
    addr: Option<u64>,
    len: Option<u64>,
    pid: Option<u64>,
    fd: Option<u64>,
    offset: Option<u64>,
    mode: Option<Mode>,
    dry_run: bool,
}

impl Keys {
    fn parse(text: &str) -> Result<Self> {
        let mut keys = Self::default();
        let mut any = false;
        for token in text.split_ascii_whitespace() {
            any = true;
            if token == "dry_run" {
                if keys.dry_run {
                    return Err(ParseError::Duplicate);
                }
                keys.dry_run = true;
                continue;
            }
            let (key, value) = token.split_once('=').ok_or(ParseError::UnknownKey)?;
            match key {
                "addr" => set(&mut keys.addr, parse_hex(value)?)?,
                "len" => set(&mut keys.len, parse_size(value)?)?,
                "offset" => set(&mut keys.offset, parse_size(value)?)?,
                "pid" => set(&mut keys.pid, parse_id(value, ParseError::BadPid, 1)?)?,
                "fd" => set(&mut keys.fd, parse_id(value, ParseError::BadFd, 0)?)?,
                "mode" => {
                    let mode = Mode::parse(value).ok_or(ParseError::UnknownMode)?;
                    if keys.mode.replace(mode).is_some() {
                        return Err(ParseError::Duplicate);
                    }
                }
                _ => return Err(ParseError::UnknownKey),
            }
        }
        if !any {
            return Err(ParseError::Empty);
        }
        Ok(keys)
    }

    /// The form the keys make: `addr=` (with `pid=`) or `fd=` (with
    /// `offset=`), never both.
    fn target(&self) -> Result<Target> {
        let len = self.len.ok_or(ParseError::Missing)?;
        Ok(match (self.fd, self.addr) {
            (Some(_), Some(_)) => return Err(ParseError::Conflict),
            (Some(_), None) if self.pid.is_some() => return Err(ParseError::Conflict),
            (None, Some(_)) if self.offset.is_some() => return Err(ParseError::Conflict),
            (None, None) if self.offset.is_some() => return Err(ParseError::Conflict),
            (None, None) => return Err(ParseError::Missing),
            (Some(fd), None) => Target::File {
                fd: fd as u32,
                offset: self.offset.unwrap_or(0),
                len,
            },
            (None, Some(addr)) => Target::Mm {
                pid: self.pid.map(|p| p as u32),
                addr,
                len,
            },
        })
    }
}

/// The range of a target: non-empty, at most [`MAX_LEN`], page-aligned,
/// and inside the user address space (`addr=`) or the largest file.
fn check_range(target: &Target, user_limit: u64) -> Result<()> {
    let (start, len) = match *target {
        Target::Mm { addr, len, .. } => (addr, len),
        Target::File { offset, len, .. } => (offset, len),
    };
    if len == 0 {
        return Err(ParseError::ZeroLength);
    }
    if len > MAX_LEN {
        return Err(ParseError::TooLong);
    }
    if start % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 {
        return Err(ParseError::Unaligned);
    }
    let end = start.checked_add(len).ok_or(ParseError::OutOfRange)?;
    match target {
        Target::Mm { .. } if end > user_limit => Err(ParseError::OutOfRange),
        // Page-cache offsets are bounded by MAX_LFS_FILESIZE (i64::MAX).
        Target::File { .. } if end > i64::MAX as u64 => Err(ParseError::OutOfRange),
        _ => Ok(()),
    }
}

/// Parses one write. `user_limit` is the end of the user address space
/// (`TASK_SIZE`): an mm range must end at or below it.
pub(crate) fn parse(input: &[u8], user_limit: u64) -> Result<Command> {
    if input
        .iter()
        .any(|&b| !(b.is_ascii_graphic() || b.is_ascii_whitespace()))
    {
        return Err(ParseError::NotText);
    }
    // Only ASCII remains, so this cannot fail.
    let text = core::str::from_utf8(input).map_err(|_| ParseError::NotText)?;
    let keys = Keys::parse(text)?;
    let target = keys.target()?;
    check_range(&target, user_limit)?;
    Ok(Command {
        target,
        dry_run: keys.dry_run,
        mode: keys.mode.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 0x7fff_ffff_f000;

    fn p(s: &str) -> Result<Command> {
        parse(s.as_bytes(), LIMIT)
    }

    fn mm(pid: Option<u32>, addr: u64, len: u64, dry_run: bool) -> Result<Command> {
        Ok(Command {
            target: Target::Mm { pid, addr, len },
            dry_run,
            mode: Mode::Madvise,
        })
    }

    fn khugepaged(c: Result<Command>) -> Result<Command> {
        c.map(|c| Command {
            mode: Mode::Khugepaged,
            ..c
        })
    }

    #[test]
    fn own_mm_range() {
        assert_eq!(
            p("addr=7f0000200000 len=2M"),
            mm(None, 0x7f00_0020_0000, 2 << 20, false)
        );
        assert_eq!(
            p("addr=0x7f0000200000 len=4194304\n"),
            mm(None, 0x7f00_0020_0000, 4 << 20, false)
        );
        assert_eq!(
            p(" len=0x200000\taddr=0X200000 "),
            mm(None, 0x20_0000, 2 << 20, false)
        );
    }

    #[test]
    fn other_pid_and_dry_run() {
        assert_eq!(
            p("pid=42 addr=200000 len=2m dry_run"),
            mm(Some(42), 0x20_0000, 2 << 20, true)
        );
    }

    #[test]
    fn file_form() {
        let want = Command {
            target: Target::File {
                fd: 3,
                offset: 2 << 20,
                len: 1 << 30,
            },
            dry_run: false,
            mode: Mode::Madvise,
        };
        assert_eq!(p("fd=3 offset=2M len=1G"), Ok(want));
        let want = Command {
            target: Target::File {
                fd: 0,
                offset: 0,
                len: 8192,
            },
            dry_run: true,
            mode: Mode::Madvise,
        };
        assert_eq!(p("dry_run fd=0 len=8K"), Ok(want));
    }

    #[test]
    fn modes() {
        let want = mm(None, 0x20_0000, 2 << 20, false);
        assert_eq!(p("addr=200000 len=2M mode=madvise"), want);
        assert_eq!(p("mode=khugepaged addr=200000 len=2M"), khugepaged(want));
        assert_eq!(
            p("pid=7 addr=200000 len=2M dry_run mode=khugepaged"),
            khugepaged(mm(Some(7), 0x20_0000, 2 << 20, true))
        );
        let fd = p("fd=4 offset=2M len=2M mode=khugepaged").map(|c| c.mode);
        assert_eq!(fd, Ok(Mode::Khugepaged));
        assert_eq!(
            p("addr=200000 len=2M mode=khugepaged mode=madvise"),
            Err(ParseError::Duplicate)
        );
        assert_eq!(
            p("addr=200000 len=2M mode=madvise mode=madvise"),
            Err(ParseError::Duplicate)
        );
        assert_eq!(
            p("addr=200000 len=2M mode=Khugepaged"),
            Err(ParseError::UnknownMode)
        );
        assert_eq!(p("addr=200000 len=2M mode="), Err(ParseError::UnknownMode));
        assert_eq!(p("addr=200000 len=2M mode"), Err(ParseError::UnknownKey));
        assert_eq!(p("mode=khugepaged"), Err(ParseError::Missing));
        assert_eq!(p("mode=khugepaged len=2M"), Err(ParseError::Missing));
        assert_eq!(ParseError::UnknownMode.errno(), errno::EINVAL);
        assert_eq!(Mode::parse("madvise"), Some(Mode::Madvise));
        assert_eq!(Mode::parse("khugepaged"), Some(Mode::Khugepaged));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("0x10M"), Ok(16 << 20));
        assert_eq!(parse_size("3G"), Ok(3 << 30));
        assert_eq!(parse_size("G"), Err(ParseError::BadNumber));
        assert_eq!(parse_size("1.5M"), Err(ParseError::BadNumber));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_size("18446744073709551616"),
            Err(ParseError::Overflow)
        );
        assert_eq!(parse_size("17179869184G"), Err(ParseError::Overflow));
    }

    #[test]
    fn garbage_and_unknown_keys() {
        assert_eq!(p(""), Err(ParseError::Empty));
        assert_eq!(p(" \n\t"), Err(ParseError::Empty));
        assert_eq!(p("addr=200000 len=2M\0"), Err(ParseError::NotText));
        assert_eq!(p("addr=200000 len=2M \u{e9}"), Err(ParseError::NotText));
        assert_eq!(p("collapse"), Err(ParseError::UnknownKey));
        assert_eq!(p("addr=200000 len=2M size=1"), Err(ParseError::UnknownKey));
        assert_eq!(p("addr=200000 len=2M ADDR=1"), Err(ParseError::UnknownKey));
        assert_eq!(p("addr=xyz len=2M"), Err(ParseError::BadNumber));
        assert_eq!(p("addr= len=2M"), Err(ParseError::BadNumber));
        assert_eq!(p("addr=200000 len=-2M"), Err(ParseError::BadNumber));
        assert_eq!(p("addr=200000 len=+2M"), Err(ParseError::BadNumber));
        assert_eq!(p("addr=200000=1 len=2M"), Err(ParseError::BadNumber));
    }

    #[test]
    fn duplicates_and_conflicts() {
        assert_eq!(
            p("addr=200000 addr=400000 len=2M"),
            Err(ParseError::Duplicate)
        );
        assert_eq!(
            p("addr=200000 len=2M dry_run dry_run"),
            Err(ParseError::Duplicate)
        );
        assert_eq!(p("fd=3 addr=200000 len=2M"), Err(ParseError::Conflict));
        assert_eq!(p("fd=3 pid=1 len=2M"), Err(ParseError::Conflict));
        assert_eq!(p("addr=200000 offset=0 len=2M"), Err(ParseError::Conflict));
        assert_eq!(p("offset=0 len=2M"), Err(ParseError::Conflict));
        assert_eq!(p("len=2M"), Err(ParseError::Missing));
        assert_eq!(p("addr=200000"), Err(ParseError::Missing));
        assert_eq!(p("dry_run"), Err(ParseError::Missing));
    }

    #[test]
    fn lengths_alignment_and_range() {
        assert_eq!(p("addr=200000 len=0"), Err(ParseError::ZeroLength));
        assert_eq!(p("addr=200000 len=1G"), mm(None, 0x20_0000, 1 << 30, false));
        assert_eq!(p("addr=200000 len=1050624K"), Err(ParseError::TooLong));
        assert_eq!(p("fd=3 len=2G"), Err(ParseError::TooLong));
        assert_eq!(p("addr=200001 len=2M"), Err(ParseError::Unaligned));
        assert_eq!(p("addr=200000 len=4097"), Err(ParseError::Unaligned));
        assert_eq!(p("fd=3 offset=100 len=2M"), Err(ParseError::Unaligned));
        assert_eq!(
            p("addr=fffffffffffff000 len=8K"),
            Err(ParseError::OutOfRange)
        );
        assert_eq!(
            p("addr=ffff888000000000 len=2M"),
            Err(ParseError::OutOfRange)
        );
        assert_eq!(p("addr=7fffffe00000 len=2M"), Err(ParseError::OutOfRange));
        assert_eq!(
            p("addr=7fffffc00000 len=2M"),
            mm(None, 0x7fff_ffc0_0000, 2 << 20, false)
        );
        assert_eq!(
            p("fd=3 offset=0x7ffffffffffff000 len=8K"),
            Err(ParseError::OutOfRange)
        );
    }

    #[test]
    fn pids_and_fds() {
        assert_eq!(p("pid=0 addr=200000 len=2M"), Err(ParseError::BadPid));
        assert_eq!(p("pid=-5 addr=200000 len=2M"), Err(ParseError::BadPid));
        assert_eq!(
            p("pid=4294967296 addr=200000 len=2M"),
            Err(ParseError::BadPid)
        );
        assert_eq!(p("pid=x addr=200000 len=2M"), Err(ParseError::BadPid));
        assert_eq!(p("fd=-1 len=2M"), Err(ParseError::BadFd));
        assert_eq!(p("fd=abc len=2M"), Err(ParseError::BadFd));
        assert_eq!(p("fd=2147483648 len=2M"), Err(ParseError::BadFd));
    }

    #[test]
    fn errnos() {
        assert_eq!(ParseError::Overflow.errno(), errno::ERANGE);
        assert_eq!(ParseError::BadFd.errno(), errno::EBADF);
        assert_eq!(ParseError::UnknownKey.errno(), errno::EINVAL);
        assert_eq!(ParseError::Unaligned.errno(), errno::EINVAL);
    }
}
