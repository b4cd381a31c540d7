// SPDX-License-Identifier: GPL-2.0

//! Fuzzes the grammar of a write to debugfs `collapse` (rust/abi/command.rs,
//! included unchanged). Beyond "no panic", every input must give:
//!
//! - the same result twice (the parser is deterministic);
//! - an error whose errno is EINVAL, ERANGE or EBADF, and `NotText` exactly
//!   when a byte is neither printable ASCII nor ASCII whitespace;
//! - on success, a command within the grammar's bounds: a non-zero length
//!   of at most 1 GiB, page-aligned start and length, a range that does not
//!   wrap and ends at or below the user limit (mm) or `i64::MAX` (file), a
//!   pid in 1..=i32::MAX, an fd in 0..=i32::MAX, `dry_run` exactly when the
//!   token is there, the mode `mode=` names (MADV_COLLAPSE's without it),
//!   `UnknownMode` only with a bad `mode=` token; and the same command
//!   again when its canonical rendering, or the input's tokens in reverse
//!   order, are parsed;
//! - with a larger user limit (LA57), every command accepted under the
//!   smaller one, unchanged.
#![no_main]
#![allow(dead_code)]

#[path = "../../../rust/abi/mod.rs"]
mod abi;

use abi::command::{errno, parse, parse_size, Command, Mode, ParseError, Target, MAX_LEN};
use libfuzzer_sys::fuzz_target;

const PAGE_SIZE: u64 = 4096;
/// TASK_SIZE with 4- and 5-level page tables.
const LIMIT_47: u64 = (1 << 47) - PAGE_SIZE;
const LIMIT_56: u64 = (1 << 56) - PAGE_SIZE;

fn is_text(data: &[u8]) -> bool {
    data.iter()
        .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace())
}

/// The command written back in the grammar, in one fixed token order.
fn render(c: &Command) -> String {
    let mut s = match c.target {
        Target::Mm { pid, addr, len } => {
            let mut s = format!("addr={addr:x} len={len}");
            if let Some(pid) = pid {
                s += &format!(" pid={pid}");
            }
            s
        }
        Target::File { fd, offset, len } => format!("fd={fd} offset={offset:#x} len={len}"),
    };
    if c.dry_run {
        s += " dry_run";
    }
    if c.mode == Mode::Khugepaged {
        s += " mode=khugepaged";
    }
    s
}

fn check_ok(data: &[u8], c: &Command, limit: u64) {
    let (start, len, end_limit) = match c.target {
        Target::Mm { pid, addr, len } => {
            if let Some(pid) = pid {
                assert!((1..=i32::MAX as u32).contains(&pid), "pid {pid}");
            }
            (addr, len, limit)
        }
        Target::File { fd, offset, len } => {
            assert!(fd <= i32::MAX as u32, "fd {fd}");
            (offset, len, i64::MAX as u64)
        }
    };
    assert!(len > 0 && len <= MAX_LEN, "len {len:#x}");
    assert_eq!(start % PAGE_SIZE, 0, "start {start:#x}");
    assert_eq!(len % PAGE_SIZE, 0, "len {len:#x}");
    let end = start.checked_add(len).expect("range wraps");
    assert!(end <= end_limit, "end {end:#x} beyond {end_limit:#x}");

    let text = core::str::from_utf8(data).expect("accepted input is ASCII");
    let tokens: Vec<&str> = text.split_ascii_whitespace().collect();
    assert_eq!(c.dry_run, tokens.contains(&"dry_run"));
    let mode = tokens.iter().find_map(|t| t.strip_prefix("mode="));
    assert_eq!(
        c.mode,
        mode.map_or(Mode::Madvise, |m| Mode::parse(m).expect("mode"))
    );
    let len_token = tokens
        .iter()
        .find_map(|t| t.strip_prefix("len="))
        .expect("accepted without len=");
    assert_eq!(parse_size(len_token), Ok(len));

    // Canonical form and token order do not matter.
    let canon = render(c);
    assert_eq!(
        parse(canon.as_bytes(), limit),
        Ok(*c),
        "canonical {canon:?}"
    );
    let reversed: Vec<&str> = tokens.iter().rev().copied().collect();
    let reversed = reversed.join("\n");
    assert_eq!(
        parse(reversed.as_bytes(), limit),
        Ok(*c),
        "reversed {reversed:?}"
    );
}

fn check_err(data: &[u8], e: ParseError) {
    let n = e.errno();
    assert!(
        n == errno::EINVAL || n == errno::ERANGE || n == errno::EBADF,
        "{e:?} -> errno {n}"
    );
    assert_eq!(e == ParseError::NotText, !is_text(data), "{e:?}");
    if is_text(data) {
        let blank = data.iter().all(|b| b.is_ascii_whitespace());
        assert_eq!(e == ParseError::Empty, blank, "{e:?}");
        if e == ParseError::UnknownMode {
            let text = core::str::from_utf8(data).expect("text is ASCII");
            assert!(
                text.split_ascii_whitespace().any(|t| t
                    .strip_prefix("mode=")
                    .is_some_and(|m| Mode::parse(m).is_none())),
                "UnknownMode without a bad mode= token"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let r = parse(data, LIMIT_47);
    assert_eq!(r, parse(data, LIMIT_47), "not deterministic");
    let wide = parse(data, LIMIT_56);
    match r {
        Ok(c) => {
            check_ok(data, &c, LIMIT_47);
            assert_eq!(
                wide,
                Ok(c),
                "a larger user limit changed an accepted command"
            );
        }
        Err(e) => check_err(data, e),
    }
    match wide {
        Ok(c) => check_ok(data, &c, LIMIT_56),
        Err(e) => {
            check_err(data, e);
            // Only the mm range check depends on the limit.
            assert_eq!(r, Err(e), "a larger user limit changed the error");
        }
    }
});
