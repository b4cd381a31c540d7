// SPDX-License-Identifier: GPL-2.0

//! The module's pure parts, in `core` only: the grammars of the debugfs
//! commands, 7.2's `enum scan_result` with its errno mapping, and the errno
//! a whole `addr=` request returns. No kernel pointer, no FFI: they build
//! for the host too (`tools/hosttest` runs their unit tests, `tools/fuzz`
//! fuzzes the parsers), through `#[path]` to this file.

#![forbid(unsafe_code)]

pub(crate) mod command;
pub(crate) mod inject_cmd;
pub(crate) mod outcome;
pub(crate) mod result;
pub(crate) mod scan_cmd;

/// The sizes the module works in (x86_64), the one copy of each: the mm
/// layer re-exports them, checked at build time against `kernel::page`.
pub(crate) const PAGE_SHIFT: usize = 12;
pub(crate) const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// `HPAGE_PMD_ORDER`.
pub(crate) const HPAGE_PMD_ORDER: u32 = 9;
/// Pages in one PMD.
pub(crate) const HPAGE_PMD_NR: usize = 1 << HPAGE_PMD_ORDER;
/// 2 MiB: one PMD.
pub(crate) const HPAGE_PMD_SIZE: usize = PAGE_SIZE << HPAGE_PMD_ORDER;
