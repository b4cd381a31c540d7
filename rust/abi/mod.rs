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
