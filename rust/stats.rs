// SPDX-License-Identifier: GPL-2.0

//! Counters behind the debugfs `stats` file. Relaxed atomics: each counter
//! is exact, the set is not a snapshot.

#![forbid(unsafe_code)]

use crate::abi::result::ScanResult;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

const N: usize = 32;
static RESULTS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static ROLLBACKS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static EXTENTS_COLLAPSED: AtomicU64 = AtomicU64::new(0);
static PAGES_COPIED: AtomicU64 = AtomicU64::new(0);
static HOLES_FILLED: AtomicU64 = AtomicU64::new(0);
static VMAS_RETRACTED: AtomicU64 = AtomicU64::new(0);
static NOTIFIER_RANGES: AtomicU64 = AtomicU64::new(0);
static KHUGEPAGED_COLLAPSED: AtomicU64 = AtomicU64::new(0);

/// One extent's final result.
pub(crate) fn count_result(r: ScanResult) {
    RESULTS[r as usize].fetch_add(1, Relaxed);
}

/// A collapse that rolled back, by reason.
pub(crate) fn count_rollback(r: ScanResult) {
    ROLLBACKS[r as usize].fetch_add(1, Relaxed);
}

/// A committed collapse.
pub(crate) fn count_collapse(copied: usize, holes: usize) {
    EXTENTS_COLLAPSED.fetch_add(1, Relaxed);
    PAGES_COPIED.fetch_add(copied as u64, Relaxed);
    HOLES_FILLED.fetch_add(holes as u64, Relaxed);
}

/// A page table retracted from a VMA.
pub(crate) fn count_retracted() {
    VMAS_RETRACTED.fetch_add(1, Relaxed);
}

/// An MMU-notifier range started.
pub(crate) fn count_notifier_range() {
    NOTIFIER_RANGES.fetch_add(1, Relaxed);
}

/// A `mode=khugepaged` extent that upstream's `collapse_single_pmd()`
/// would count in khugepaged's `pages_collapsed`: it returned
/// `SCAN_SUCCEED`, which it also returns for an extent already mapped by a
/// PMD or already huge with no PTE table to retract (nothing collapsed).
pub(crate) fn count_khugepaged_collapsed() {
    KHUGEPAGED_COLLAPSED.fetch_add(1, Relaxed);
}

/// The `stats` file: `name value` lines.
pub(crate) fn show(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for r in ScanResult::ALL {
        writeln!(f, "{} {}", r.name(), RESULTS[*r as usize].load(Relaxed))?;
    }
    writeln!(f, "extents_collapsed {}", EXTENTS_COLLAPSED.load(Relaxed))?;
    writeln!(f, "pages_copied {}", PAGES_COPIED.load(Relaxed))?;
    writeln!(f, "holes_filled {}", HOLES_FILLED.load(Relaxed))?;
    writeln!(f, "vmas_retracted {}", VMAS_RETRACTED.load(Relaxed))?;
    writeln!(f, "notifier_ranges {}", NOTIFIER_RANGES.load(Relaxed))?;
    writeln!(
        f,
        "khugepaged_pages_collapsed {}",
        KHUGEPAGED_COLLAPSED.load(Relaxed)
    )?;
    for r in ScanResult::ALL {
        writeln!(
            f,
            "rollback_{} {}",
            r.name(),
            ROLLBACKS[*r as usize].load(Relaxed)
        )?;
    }
    Ok(())
}
