// SPDX-License-Identifier: GPL-2.0

//! The collapse engine: mm/khugepaged.c's file collapse, step for step, in
//! safe Rust over the mm layer (`crate::mm`). Each function names the C
//! function it mirrors; `Documentation/design.rst` has the table.

#![forbid(unsafe_code)]

pub(crate) mod control;
pub(crate) mod file;
pub(crate) mod install;
pub(crate) mod request;
pub(crate) mod retract;
pub(crate) mod scan;
pub(crate) mod scanner;

use crate::abi::result::ScanResult;
use crate::mm::pgtable::PmdState;

impl From<PmdState> for ScanResult {
    /// `check_pmd_state()`'s result for a PMD.
    fn from(state: PmdState) -> Self {
        match state {
            PmdState::Table => ScanResult::Succeed,
            // The folio may be under migration; either way it ends up a
            // present PMD mapping a folio again.
            PmdState::Huge | PmdState::Migration => ScanResult::PmdMapped,
            PmdState::None | PmdState::NotPresent | PmdState::Bad => ScanResult::NoPteTable,
        }
    }
}
