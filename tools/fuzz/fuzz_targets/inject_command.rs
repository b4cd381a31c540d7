// SPDX-License-Identifier: GPL-2.0

//! Fuzzes the grammar of a write to debugfs `inject` (rust/abi/inject_cmd.rs,
//! included unchanged with the rest of rust/abi/).
//! Beyond "no panic", every input must give:
//!
//! - the same result twice (the parser is deterministic);
//! - an error that is EINVAL or ERANGE (within the set EINVAL, ERANGE,
//!   EBADF the debugfs files may return for a bad command);
//! - on success an arming within the grammar's bounds: pause and delay only
//!   at pause points, fail only at fail points, a delay of at most 10 s, a
//!   pause timeout of at most 60 s, a count in 1..=1,000,000, a pid in
//!   1..=i32::MAX; `release <point>` and `clear` exactly as written; and the
//!   same command again when its canonical rendering, or the input's
//!   arguments in another order, are parsed.
#![no_main]
#![allow(dead_code)]

#[path = "../../../rust/abi/mod.rs"]
mod abi;

use abi::command::errno;
use abi::inject_cmd::{parse, InjectCmd, Mode, Point, Scope, MAX_PAUSE_MS};
use libfuzzer_sys::fuzz_target;

const MAX_DELAY_MS: u32 = 10_000;

/// The command written back in the grammar.
fn render(c: &InjectCmd) -> String {
    match *c {
        InjectCmd::Clear => "clear".into(),
        InjectCmd::Release(None) => "release".into(),
        InjectCmd::Release(Some(p)) => format!("release {}", p.name()),
        InjectCmd::Arm {
            point,
            mode,
            scope,
            count,
        } => {
            let scope = match scope {
                Scope::Pid(p) => format!("pid={p}"),
                Scope::Ino(i) => format!("ino={i}"),
            };
            let (verb, extra) = match mode {
                Mode::Pause { timeout_ms } => ("pause", format!(" timeout_ms={timeout_ms}")),
                Mode::Delay { ms } => ("delay", format!(" ms={ms}")),
                Mode::Fail => ("fail", String::new()),
            };
            format!("{verb}={} {scope}{extra} count={count}", point.name())
        }
    }
}

fn check_ok(data: &[u8], c: &InjectCmd) {
    let text = core::str::from_utf8(data).expect("accepted input is UTF-8");
    let tokens: Vec<&str> = text.split_ascii_whitespace().collect();
    match *c {
        InjectCmd::Clear => assert_eq!(tokens, ["clear"]),
        InjectCmd::Release(p) => {
            assert_eq!(tokens[0], "release");
            assert_eq!(tokens.get(1).copied(), p.map(Point::name));
            assert!(tokens.len() <= 2);
        }
        InjectCmd::Arm {
            point,
            mode,
            scope,
            count,
        } => {
            assert!((1..=1_000_000).contains(&count), "count {count}");
            if let Scope::Pid(pid) = scope {
                assert!((1..=i32::MAX as u32).contains(&pid), "pid {pid}");
            }
            match mode {
                Mode::Pause { timeout_ms } => {
                    assert!(!point.is_fail_point(), "pause at {point:?}");
                    assert!(timeout_ms <= MAX_PAUSE_MS, "timeout {timeout_ms}");
                }
                Mode::Delay { ms } => {
                    assert!(!point.is_fail_point(), "delay at {point:?}");
                    assert!(ms <= MAX_DELAY_MS, "delay {ms}");
                }
                Mode::Fail => assert!(point.is_fail_point(), "fail at {point:?}"),
            }
            assert!(Point::ALL.contains(&point));
            // The arguments after the verb may come in any order.
            let mut reordered = vec![tokens[0]];
            reordered.extend(tokens[1..].iter().rev());
            let reordered = reordered.join("\t");
            assert_eq!(
                parse(reordered.as_bytes()),
                Ok(*c),
                "reordered {reordered:?}"
            );
        }
    }
    let canon = render(c);
    assert_eq!(parse(canon.as_bytes()), Ok(*c), "canonical {canon:?}");
}

fuzz_target!(|data: &[u8]| {
    let r = parse(data);
    assert_eq!(r, parse(data), "not deterministic");
    match r {
        Ok(c) => check_ok(data, &c),
        Err(e) => assert!(e == errno::EINVAL || e == errno::ERANGE, "errno {e}"),
    }
});
