// SPDX-License-Identifier: GPL-2.0

//! khugepaged_rs: khugepaged's file/shmem collapse (`collapse_file`,
//! `retract_page_tables`, PMD installation) re-implemented in Rust and
//! driven from debugfs.
//!
//! This file holds the module's entry points and its `mod` lines only.
//! The layers, each calling down, never up:
//!
//! - `ffi`: the FFI edge (generated bindings, the symbol table resolved at
//!   load, the `extern "C"` callbacks of debugfs and the MMU notifier);
//! - `collapse`: the engine (request → scan → `collapse_file` → retract →
//!   PMD install), safe Rust (`#![forbid(unsafe_code)]`);
//! - `mm`: safe types over the kernel's mm, owning every raw pointer;
//! - `abi`: the pure grammars and result tables, host-tested;
//! - `inject`, `stats`, `status`: injection points and counters (safe).
//!
//! Only `ffi/` and `mm/` are allowed `unsafe_code`: the crate denies that
//! lint and those two modules alone allow it.

#![deny(unsafe_code)]

use kernel::prelude::*;
use kernel::sync::Arc;

/// `WARN_ON_ONCE(cond)`: warns the first time `cond` holds at this call
/// site (a `static` per expansion), and evaluates to `cond`.
macro_rules! warn_on_once {
    ($cond:expr) => {{
        static WARNED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
        let cond: bool = $cond;
        if cond && !WARNED.swap(true, core::sync::atomic::Ordering::Relaxed) {
            kernel::warn_on!(true);
        }
        cond
    }};
}

mod abi;
mod collapse;
mod ffi;
mod inject;
mod mm;
mod stats;
mod status;

module! {
    type: KhugepagedRs,
    name: "khugepaged_rs",
    authors: ["khugepaged_rs developers"],
    description: "khugepaged's file/shmem collapse in Rust, driven from debugfs",
    license: "GPL",
    params: {
        selftest_missing_symbol: u32 {
            default: 0,
            description: "Selftests only: 1 adds a symbol that cannot resolve, so the load must fail",
        },
    },
}

struct KhugepagedRs {
    /// Removed first at exit: no write can start a notifier or add a
    /// scanner target afterwards.
    debugfs: Option<ffi::debugfs::Files>,
    /// The scanner's thread, stopped and waited for at exit.
    scanner: Option<ffi::thread::ScannerThread>,
}

impl kernel::Module for KhugepagedRs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // 7.3's `ModuleParamAccess::value()` returns the value, 7.2's a
        // reference to it.
        #[cfg(not(krs_7_3))]
        let missing = *module_parameters::selftest_missing_symbol.value();
        #[cfg(krs_7_3)]
        let missing = module_parameters::selftest_missing_symbol.value();
        let extra = if missing != 0 {
            Some(ffi::symbols::SELFTEST_MISSING)
        } else {
            None
        };
        let resolved = ffi::symbols::init(extra)?;
        status::set(resolved);
        // Before the debugfs files (the only callers of start/stop) exist.
        ffi::notifier::init();
        let scanner = Arc::pin_init(collapse::scanner::Scanner::new(), GFP_KERNEL)?;
        let thread = ffi::thread::ScannerThread::start(module, scanner.clone())?;
        let files = ffi::debugfs::Files::new(module, scanner)?;
        pr_info!("loaded, {} kernel symbols resolved\n", resolved.count);
        Ok(Self {
            debugfs: Some(files),
            scanner: Some(thread),
        })
    }
}

impl Drop for KhugepagedRs {
    fn drop(&mut self) {
        // No write can be running (open files pin the module); remove the
        // files anyway before the last stop, so that no write can register
        // a notifier after it, and clear any armed point (releasing a
        // paused scanner), then stop the scanner and wait for it.
        drop(self.debugfs.take());
        inject::shutdown();
        drop(self.scanner.take());
        ffi::notifier::stop();
    }
}
