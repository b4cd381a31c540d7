// SPDX-License-Identifier: GPL-2.0

//! `collapse_scan_file()`: a lockless look at the extent's page cache
//! (under RCU) deciding whether a collapse is worth starting.

use crate::guards::{RcuRead, XaState};
use crate::result::ScanResult;
use crate::sys::bindings;
use crate::vma::{HPAGE_PMD_NR, HPAGE_PMD_ORDER};

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
}

impl ScanCount {
    /// Sets `holes` for a scan that looked at `[start, stop)`. The counts
    /// are racy (the scan is lockless), so nothing here may underflow.
    fn stopped_at(mut self, start: u64, stop: u64) -> Self {
        let looked = usize::try_from(stop.saturating_sub(start)).unwrap_or(HPAGE_PMD_NR);
        self.holes = looked
            .min(HPAGE_PMD_NR)
            .saturating_sub(self.present.saturating_add(self.swap));
        self
    }
}

/// Scans `[start, start + 512)` of `mapping`. MADV_COLLAPSE's limits apply:
/// no maximum of empty or swapped entries (`collapse_max_ptes_none/swap`
/// are 512 for a user request). The NUMA-node abort (`collapse_scan_abort`)
/// only matters with node_reclaim_mode and is not mirrored.
pub(crate) fn scan_file(
    mapping: *mut bindings::address_space,
    start: u64,
) -> (ScanResult, ScanCount) {
    let mut count = ScanCount::default();
    let mut xas = XaState::new(mapping, start, 0);
    let max = start + HPAGE_PMD_NR as u64 - 1;
    let _rcu = RcuRead::lock();

    // SAFETY: `xas` walks the live page cache of `mapping` under RCU,
    // which is what the xas_* calls here and below require.
    let mut entry = unsafe { bindings::krs_xas_find(xas.raw(), max as usize) };
    while !entry.is_null() {
        // SAFETY: See above.
        let next =
            |xas: &mut XaState| unsafe { bindings::krs_xas_next_entry(xas.raw(), max as usize) };
        // SAFETY: See above.
        if unsafe { bindings::krs_xas_retry(xas.raw(), entry) } {
            entry = next(&mut xas);
            continue;
        }
        // SAFETY: Only inspects the entry's tag bits.
        if unsafe { bindings::krs_xa_is_value(entry) } {
            // SAFETY: See above.
            count.swap += 1usize << unsafe { bindings::krs_xas_get_order(xas.raw()) };
            entry = next(&mut xas);
            continue;
        }
        let folio = entry.cast::<bindings::folio>();
        // SAFETY: Under RCU a page-cache folio can be speculatively
        // referenced with folio_try_get (it fails on a freed folio).
        if !unsafe { bindings::krs_folio_try_get(folio) } {
            // SAFETY: See above.
            unsafe { bindings::krs_xas_reset(xas.raw()) };
            // SAFETY: See above.
            entry = unsafe { bindings::krs_xas_find(xas.raw(), max as usize) };
            continue;
        }
        // SAFETY: From here we hold a reference on `folio`.
        let result = unsafe { check_folio(&mut xas, folio, &mut count) };
        // SAFETY: Drops the reference taken above.
        unsafe { bindings::krs_folio_put(folio) };
        match result {
            Some(ScanResult::Fail) => {
                // The folio moved: look again from the same index.
                // SAFETY: See above.
                unsafe { bindings::krs_xas_reset(xas.raw()) };
                // SAFETY: See above.
                entry = unsafe { bindings::krs_xas_find(xas.raw(), max as usize) };
            }
            Some(r) => return (r, count.stopped_at(start, xas.index())),
            None => entry = next(&mut xas),
        }
    }
    (ScanResult::Succeed, count.stopped_at(start, max + 1))
}

/// The per-folio checks of `collapse_scan_file()`. `None`: keep going;
/// `Some(Fail)`: the entry changed, reload; anything else ends the scan.
///
/// # Safety
///
/// The caller holds a reference on `folio` and the RCU read lock.
unsafe fn check_folio(
    xas: &mut XaState,
    folio: *mut bindings::folio,
    count: &mut ScanCount,
) -> Option<ScanResult> {
    // SAFETY: RCU held, `xas` walks the page cache.
    if unsafe { bindings::krs_xas_reload(xas.raw()) } != folio.cast() {
        return Some(ScanResult::Fail);
    }
    // SAFETY: We hold a reference, the folio is valid (also below).
    if unsafe { bindings::krs_folio_order(folio) } == HPAGE_PMD_ORDER {
        // Already huge: only the page table can still be collapsed.
        return Some(ScanResult::PteMappedHugepage);
    }
    // SAFETY: See above.
    if !unsafe { bindings::krs_folio_test_lru(folio) } {
        return Some(ScanResult::PageLru);
    }
    // SAFETY: See above.
    let (expected, refs) = unsafe {
        (
            bindings::krs_folio_expected_ref_count(folio),
            bindings::krs_folio_ref_count(folio),
        )
    };
    if expected + 1 != refs {
        return Some(ScanResult::PageCount);
    }
    // SAFETY: See above.
    count.present += unsafe { bindings::krs_folio_nr_pages(folio) } as usize;
    None
}
