// SPDX-License-Identifier: GPL-2.0

//! `collapse_scan_file()`: a lockless look at the extent's page cache
//! (under RCU) deciding whether a collapse is worth starting.

#![forbid(unsafe_code)]

use super::control::Limits;
use crate::abi::result::ScanResult;
use crate::mm::folio::{FolioScan, NodeLoad};
use crate::mm::page_cache::RcuEntry;
use crate::mm::{AddressSpace, HPAGE_PMD_NR};

/// What the scan saw, up to where it stopped.
#[derive(Default, Clone, Copy)]
pub(crate) struct ScanCount {
    /// Small pages present in the page cache (a huge folio is not counted:
    /// there is nothing to copy).
    pub(crate) present: usize,
    /// Swap entries.
    pub(crate) swap: usize,
    /// Indices without an entry among those looked at: all 512 when the
    /// scan went through, those before the entry that stopped it otherwise.
    pub(crate) holes: usize,
    /// The pfn of the folio that stopped the scan, if one did (for the
    /// tracepoint): upstream's `failed_pfn` (7.3), and the folio 7.2's
    /// loop stopped on (a scan that went through leaves none).
    pub(crate) pfn: Option<usize>,
}

impl ScanCount {
    /// Sets `holes` for a scan that looked at `[start, stop)`. The counts
    /// are racy (the scan is lockless), so nothing here may underflow.
    fn stopped_at(mut self, start: usize, stop: usize) -> Self {
        let looked = stop.saturating_sub(start).min(HPAGE_PMD_NR);
        self.holes = looked.saturating_sub(self.present.saturating_add(self.swap));
        self
    }
}

/// What one folio of the scan says.
enum Step {
    /// Counted: go on.
    Next,
    /// The entry changed under us: look again from the same index
    /// (`xas_find()`; the cursor was reset).
    Again,
    /// The scan ends with this result.
    Stop(ScanResult),
}

/// Scans `[start, start + 512)` of `mapping` with the request's `limits`
/// (MADV_COLLAPSE's: none; khugepaged's: `max_ptes_swap`, and
/// `max_ptes_none` once the scan went through), counting the folios per
/// node into `load` (cleared first) for the allocation. The vm events of
/// the thresholds are the caller's to count. The NUMA-node abort
/// (`collapse_scan_abort`) only matters with node_reclaim_mode and is not
/// mirrored.
pub(crate) fn scan_file(
    mapping: &AddressSpace,
    start: usize,
    limits: &Limits,
    load: &mut NodeLoad,
) -> (ScanResult, ScanCount) {
    let mut count = ScanCount::default();
    load.clear();
    let max = start + HPAGE_PMD_NR - 1;
    let mut xas = mapping.rcu_cursor(start);
    let mut step = Step::Again;
    loop {
        let entry = match step {
            Step::Again => xas.step(true, max),
            Step::Next => xas.step(false, max),
            Step::Stop(r) => {
                let at = xas.index();
                return (r, count.stopped_at(start, at));
            }
        };
        step = match entry {
            RcuEntry::End => {
                let count = count.stopped_at(start, max + 1);
                if limits.too_few_present(count.present) {
                    return (ScanResult::ExceedNonePte, count);
                }
                return (ScanResult::Succeed, count);
            }
            RcuEntry::Retry | RcuEntry::Skip => Step::Next,
            RcuEntry::Value { order } => {
                count.swap += 1usize << order;
                if limits.too_many_swapped(count.swap) {
                    Step::Stop(ScanResult::ExceedSwapPte)
                } else {
                    Step::Next
                }
            }
            // Being freed, or moved: look at this index again.
            RcuEntry::Again => Step::Again,
            RcuEntry::Folio(folio) => check_folio(&folio, &mut count, load),
        };
    }
}

/// The per-folio checks of `collapse_scan_file()`, on what was read of a
/// folio while it was referenced and still the entry.
fn check_folio(folio: &FolioScan, count: &mut ScanCount, load: &mut NodeLoad) -> Step {
    let stop = if folio.pmd_order {
        // Already huge: only the page table can still be collapsed.
        ScanResult::PteMappedHugepage
    } else {
        load.add(folio.nid);
        if !folio.lru {
            ScanResult::PageLru
        } else if folio.expected_ref_count + 1 != folio.ref_count {
            ScanResult::PageCount
        } else {
            count.present += folio.nr_pages;
            return Step::Next;
        }
    };
    count.pfn = Some(folio.pfn);
    Step::Stop(stop)
}
