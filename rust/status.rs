// SPDX-License-Identifier: GPL-2.0

//! The debugfs `status` file: what was loaded into which kernel, and whether
//! every symbol resolved. Names only, never addresses.

#![forbid(unsafe_code)]

use crate::ffi::{self, symbols};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// Set once at load, before the file exists.
static RESOLVED: AtomicUsize = AtomicUsize::new(0);
static IBT_ENFORCED: AtomicBool = AtomicBool::new(false);

/// Records what symbol resolution found.
pub(crate) fn set(resolved: symbols::Resolved) {
    RESOLVED.store(resolved.count, Relaxed);
    IBT_ENFORCED.store(resolved.ibt_enforced, Relaxed);
}

/// Formats the file. Format (one `key: value` per line, stable for
/// scripts): version, kernel, symbols `N/M resolved`, ibt, then one
/// `symbol NAME resolved` line per table entry.
pub(crate) fn show(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "version: {}", ffi::version())?;
    writeln!(
        f,
        "kernel: {}",
        ffi::kernel_release().to_str().unwrap_or("?")
    )?;
    let n = RESOLVED.load(Relaxed);
    writeln!(f, "symbols: {n}/{n} resolved")?;
    let ibt = if IBT_ENFORCED.load(Relaxed) {
        "enforced (every symbol has ENDBR)"
    } else {
        "not enforced"
    };
    writeln!(f, "ibt: {ibt}")?;
    for name in symbols::names() {
        writeln!(f, "symbol {} resolved", name.to_str().unwrap_or("?"))?;
    }
    Ok(())
}
