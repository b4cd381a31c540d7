// SPDX-License-Identifier: GPL-2.0

//! PMD lookup and classification: `find_pmd_or_thp_or_none()` and
//! `check_pmd_state()` of mm/khugepaged.c.

use crate::result::ScanResult;
use crate::sys::bindings;

/// `check_pmd_state()`: `Succeed` when `pmd` points to a PTE table.
///
/// # Safety
///
/// `pmd` points into a live page table of an mm whose mmap lock, or whose
/// mapping's i_mmap lock, the caller holds.
pub(crate) unsafe fn check_state(pmd: *mut bindings::pmd_t) -> ScanResult {
    // SAFETY: Per the function's contract; the helper reads it locklessly
    // (pmdp_get_lockless), as upstream does.
    match unsafe { bindings::krs_pmd_state(pmd) } {
        bindings::krs_pmd_state_KRS_PMD_TABLE => ScanResult::Succeed,
        bindings::krs_pmd_state_KRS_PMD_HUGE | bindings::krs_pmd_state_KRS_PMD_MIGRATION => {
            ScanResult::PmdMapped
        }
        _ => ScanResult::NoPteTable,
    }
}

/// `find_pmd_or_thp_or_none()`: the PMD for `addr` and its state. The
/// pointer is null when the mm has no PMD level there.
///
/// # Safety
///
/// `mm` is live and the caller holds its mmap lock or the i_mmap lock of a
/// mapping with a VMA of `mm` covering `addr`.
pub(crate) unsafe fn find(
    mm: *mut bindings::mm_struct,
    addr: u64,
) -> (*mut bindings::pmd_t, ScanResult) {
    // SAFETY: Per the function's contract.
    let pmd = unsafe { bindings::krs_mm_find_pmd(mm, addr as usize) };
    if pmd.is_null() {
        return (pmd, ScanResult::NoPteTable);
    }
    // SAFETY: `pmd` was just found in `mm`'s live tables.
    (pmd, unsafe { check_state(pmd) })
}
