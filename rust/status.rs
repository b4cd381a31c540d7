// SPDX-License-Identifier: GPL-2.0

//! The debugfs `status` file: what was loaded into which kernel, and whether
//! every symbol resolved. Names only, never addresses.

use crate::{symbols, sys};
use core::fmt;

/// Load-time facts shown by `status`; fixed once the module is loaded.
pub(crate) struct Status {
    resolved: symbols::Resolved,
}

impl Status {
    pub(crate) fn new(resolved: symbols::Resolved) -> Self {
        Self { resolved }
    }

    /// Formats the file. Format (one `key: value` per line, stable for
    /// scripts): version, kernel, symbols `N/M resolved`, ibt, then one
    /// `symbol NAME resolved` line per table entry.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "version: {}", sys::version())?;
        writeln!(
            f,
            "kernel: {}",
            sys::kernel_release().to_str().unwrap_or("?")
        )?;
        let n = self.resolved.count;
        writeln!(f, "symbols: {n}/{n} resolved")?;
        let ibt = if self.resolved.ibt_enforced {
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
}
