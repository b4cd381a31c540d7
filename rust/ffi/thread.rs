// SPDX-License-Identifier: GPL-2.0

//! The module's kernel thread, `khugepaged_rs`: the scanner
//! (`collapse::scanner`), started when the module loads and stopped (and
//! waited for) when it goes.

use crate::collapse::scanner::{self, Scanner};
use crate::mm::kthread::Kthread;
use kernel::prelude::*;
use kernel::sync::Arc;

/// The scanner's thread; dropping it stops the thread and waits for it.
pub(crate) struct ScannerThread {
    _thread: Kthread<Scanner>,
}

impl ScannerThread {
    /// Starts the scanner thread on `scanner`. `_module` is the module
    /// being initialised: only its `init` has one to give.
    pub(crate) fn start(_module: &'static ThisModule, scanner: Arc<Scanner>) -> Result<Self> {
        // SAFETY: Called from module init, whose state keeps the returned
        // value and drops it in the module's exit, before the module's
        // code goes away (`KhugepagedRs::drop`).
        let thread = unsafe { Kthread::run(scanner::main, scanner, c"khugepaged_rs") }?;
        Ok(Self { _thread: thread })
    }
}
