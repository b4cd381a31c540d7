// SPDX-License-Identifier: GPL-2.0

//! The module's tracepoints (`include/khugepaged_rs_trace.h`): each
//! function tests the event's static key inline, as C's `trace_<event>()`
//! does (disabled, a jump patched to fall through), and only when the event
//! is enabled calls `rust_do_trace_<event>()` in C. The kernel crate's
//! `declare_trace!` takes its keys from `kernel::bindings`, which cannot
//! hold a module's events: this is the same thing over the module's own
//! bindings.

use super::bindings;
use crate::abi::result::ScanResult;
use crate::mm::{FileExt, LocalFile, Mm};

/// The static key of tracepoint `$tp` is enabled.
macro_rules! enabled {
    ($tp:ident) => {
        // SAFETY: `$tp` is a tracepoint defined by C (rust/helpers/trace.c,
        // CREATE_TRACE_POINTS), whose `key` field is a static key: querying
        // it is always allowed.
        unsafe { kernel::static_branch_unlikely!(bindings::$tp, bindings::tracepoint, key) }
    };
}

fn mm_ptr(mm: Option<&Mm>) -> *mut bindings::mm_struct {
    mm.map_or(core::ptr::null_mut(), |m| m.as_raw())
}

fn int(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Why `retract_page_tables()` left a VMA's table, or that it did not.
#[derive(Clone, Copy)]
#[repr(i32)]
pub(crate) enum Retract {
    // Above the SCAN_* values: the event prints both from one table.
    Retracted = 100,
    NotPmdAligned = 101,
    NoPteTable = 102,
    MmExiting = 103,
    NotRetractable = 104,
    ChangedUnderPtl = 105,
    NotRetractableUnderPtl = 106,
    /// A PTE of the table maps or refers to a page (never expected: the
    /// new folio's lock and the retractable checks keep it empty).
    NotEmpty = 107,
}

/// `khugepaged_rs:scan_file`: the scan of one extent (and, as upstream,
/// the collapse's result when the scan led to one). `pfn`: the last folio
/// the scan looked at, if any (-1 otherwise, never a stale pointer).
pub(crate) fn scan_file(
    mm: Option<&Mm>,
    pfn: Option<usize>,
    file: &LocalFile,
    present: usize,
    swap: usize,
    result: ScanResult,
) {
    if enabled!(__tracepoint_scan_file) {
        // SAFETY: `file` is live (a reference); `mm` is live or null, which
        // the event only records.
        unsafe {
            bindings::rust_do_trace_scan_file(
                mm_ptr(mm),
                pfn.unwrap_or(usize::MAX),
                file.as_ptr(),
                int(present),
                int(swap),
                result as i32,
            )
        }
    }
}

/// What `khugepaged_rs:collapse_file` records of one collapse.
pub(crate) struct CollapseEvent<'a> {
    pub(crate) mm: Option<&'a Mm>,
    /// The new huge folio's pfn, if one was allocated.
    pub(crate) hpfn: Option<usize>,
    pub(crate) index: usize,
    pub(crate) addr: usize,
    pub(crate) file: &'a LocalFile,
    pub(crate) copied: usize,
    pub(crate) holes: usize,
    /// The node the huge folio was asked for, if one was allocated.
    pub(crate) node: Option<i32>,
    pub(crate) result: ScanResult,
}

/// `khugepaged_rs:collapse_file`: one `collapse_file()`.
pub(crate) fn collapse_file(e: &CollapseEvent<'_>) {
    if enabled!(__tracepoint_collapse_file) {
        // SAFETY: `e.file` is live (a reference); `e.mm` is live or null,
        // which the event only records.
        unsafe {
            bindings::rust_do_trace_collapse_file(
                mm_ptr(e.mm),
                e.hpfn.unwrap_or(usize::MAX),
                e.index,
                e.addr,
                e.file.is_shmem(),
                e.file.as_ptr(),
                int(crate::mm::HPAGE_PMD_NR),
                int(e.copied),
                int(e.holes),
                e.node.unwrap_or(-1),
                e.result as i32,
            )
        }
    }
}

/// `khugepaged_rs:retract`: one VMA of `retract_page_tables()`.
pub(crate) fn retract(mm: &Mm, addr: usize, result: Retract) {
    if enabled!(__tracepoint_retract) {
        // SAFETY: `mm` is allocated (a reference); the event records it.
        unsafe { bindings::rust_do_trace_retract(mm.as_raw(), addr, result as i32) }
    }
}

/// `khugepaged_rs:install_pmd`: `try_collapse_pte_mapped_thp()`'s result.
pub(crate) fn install_pmd(mm: &Mm, addr: usize, result: ScanResult) {
    if enabled!(__tracepoint_install_pmd) {
        // SAFETY: `mm` is allocated (a reference); the event records it.
        unsafe { bindings::rust_do_trace_install_pmd(mm.as_raw(), addr, result as i32) }
    }
}
