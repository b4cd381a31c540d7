// SPDX-License-Identifier: GPL-2.0

//! Fuzzes the grammar of a write to debugfs `scan` (rust/abi/scan_cmd.rs,
//! included unchanged with the rest of rust/abi/). Beyond "no panic",
//! every input must give:
//!
//! - the same result twice (the parser is deterministic);
//! - an error that is EINVAL or ERANGE;
//! - on success a command within the grammar's bounds: a pid in
//!   1..=i32::MAX, an fd in 0..=i32::MAX, `set` with one to three distinct
//!   knobs (`pages_to_scan` never 0), packed at the front; and the same
//!   command again when its canonical rendering is parsed (and, for `set`,
//!   its knobs in reverse order).
#![no_main]
#![allow(dead_code)]

#[path = "../../../rust/abi/mod.rs"]
mod abi;

use abi::command::errno;
use abi::scan_cmd::{parse, Knob, ScanCmd, ScanTarget, Setting, MAX_SETS};
use libfuzzer_sys::fuzz_target;

fn target(t: ScanTarget) -> String {
    match t {
        ScanTarget::Pid(p) => format!("pid={p}"),
        ScanTarget::Fd(f) => format!("fd={f}"),
    }
}

fn knob(k: Knob, v: Setting) -> String {
    match v {
        Setting::Own(n) => format!("{}={n}", k.name()),
        Setting::Khugepaged => format!("{}=default", k.name()),
    }
}

/// The command written back in the grammar; `set`'s knobs reversed if
/// `rev`.
fn render(c: &ScanCmd, rev: bool) -> String {
    match *c {
        ScanCmd::Add(t) => format!("add {}", target(t)),
        ScanCmd::Remove(t) => format!("remove {}", target(t)),
        ScanCmd::Clear => "clear".into(),
        ScanCmd::Wake => "wake".into(),
        ScanCmd::Set(sets) => {
            let mut knobs: Vec<String> = sets.iter().flatten().map(|(k, v)| knob(*k, *v)).collect();
            if rev {
                knobs.reverse();
            }
            format!("set {}", knobs.join(" "))
        }
    }
}

fn check_ok(c: &ScanCmd) {
    match *c {
        ScanCmd::Add(t) | ScanCmd::Remove(t) => match t {
            ScanTarget::Pid(p) => assert!((1..=i32::MAX as u32).contains(&p), "pid {p}"),
            ScanTarget::Fd(f) => assert!(f <= i32::MAX as u32, "fd {f}"),
        },
        ScanCmd::Set(sets) => {
            let n = sets.iter().take_while(|s| s.is_some()).count();
            assert!(n >= 1 && n <= MAX_SETS, "{sets:?}");
            assert!(sets[n..].iter().all(|s| s.is_none()), "{sets:?}");
            for (i, (k, v)) in sets.iter().flatten().enumerate() {
                assert!(
                    sets.iter().flatten().skip(i + 1).all(|(o, _)| o != k),
                    "{sets:?}"
                );
                if *k == Knob::PagesToScan {
                    assert_ne!(*v, Setting::Own(0));
                }
            }
            let rev = render(c, true);
            let mut want = [None; MAX_SETS];
            for (i, s) in sets.iter().flatten().rev().enumerate() {
                want[i] = Some(*s);
            }
            assert_eq!(parse(rev.as_bytes()), Ok(ScanCmd::Set(want)), "{rev:?}");
        }
        ScanCmd::Clear | ScanCmd::Wake => {}
    }
    let canon = render(c, false);
    assert_eq!(parse(canon.as_bytes()), Ok(*c), "canonical {canon:?}");
}

fuzz_target!(|data: &[u8]| {
    let r = parse(data);
    assert_eq!(r, parse(data), "not deterministic");
    match r {
        Ok(c) => check_ok(&c),
        Err(e) => {
            let n = e.errno();
            assert!(
                n == errno::EINVAL || n == errno::ERANGE,
                "{e:?} -> errno {n}"
            );
        }
    }
});
