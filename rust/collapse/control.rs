// SPDX-License-Identifier: GPL-2.0

//! `struct collapse_control`'s settings: what a request collapses with,
//! chosen once per request from its `mode=` and carried with each extent.
//! Upstream asks `cc->is_khugepaged` wherever MADV_COLLAPSE and khugepaged
//! differ; here each difference is one typed field of [`Control`], set in
//! [`Control::new`], and the engine asks that field, never the mode.

#![forbid(unsafe_code)]

use crate::abi::command::Mode;
use crate::mm::folio::AllocGfp;
use crate::mm::{khugepaged_knobs, Tva, HPAGE_PMD_NR};

/// `collapse_max_ptes_none()` and `collapse_max_ptes_swap()` for a PMD
/// collapse of a file extent (no VMA: the userfaultfd case does not apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Most pages of the extent that may be absent from the page cache
    /// (holes, and swapped-out pages, which are not present either).
    pub(crate) max_ptes_none: usize,
    /// Most pages that may be swapped out.
    pub(crate) max_ptes_swap: usize,
}

impl Limits {
    /// MADV_COLLAPSE: "allow any empty/shared zeropage PTEs", any
    /// non-present entries.
    pub(crate) const NONE: Limits = Limits {
        max_ptes_none: HPAGE_PMD_NR,
        max_ptes_swap: HPAGE_PMD_NR,
    };

    /// `swap > max_ptes_swap`: `SCAN_EXCEED_SWAP_PTE`.
    pub(crate) fn too_many_swapped(&self, swap: usize) -> bool {
        swap > self.max_ptes_swap
    }

    /// `present < HPAGE_PMD_NR - max_ptes_none`: `SCAN_EXCEED_NONE_PTE`.
    pub(crate) fn too_few_present(&self, present: usize) -> bool {
        present < HPAGE_PMD_NR.saturating_sub(self.max_ptes_none)
    }
}

/// After a dirty or writeback folio stopped the collapse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writeback {
    /// MADV_COLLAPSE: write the extent back, wait, try once more.
    RetryOnce,
    /// khugepaged: give up (the async flush collapse_file() started may be
    /// done by the next visit).
    Never,
}

/// When a collapsed extent gets its PMD in the requesting mm
/// (`try_collapse_pte_mapped_thp()`'s `install_pmd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pmd {
    /// MADV_COLLAPSE: now, by the request.
    Install,
    /// khugepaged: at the next fault; the request only retracts the PTE
    /// table.
    AtNextFault,
}

/// The settings of one request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Control {
    /// The mode the settings came from (for the errno: which results count
    /// as done).
    pub(crate) mode: Mode,
    /// The scan's thresholds.
    pub(crate) limits: Limits,
    /// Eligibility: `TVA_FORCED_COLLAPSE` or `TVA_KHUGEPAGED`.
    pub(crate) tva: Tva,
    /// `alloc_charge_folio()`'s flags.
    pub(crate) gfp: AllocGfp,
    /// `collapse_single_pmd()`'s write-back retry.
    pub(crate) writeback: Writeback,
    /// PMD installation.
    pub(crate) pmd: Pmd,
}

impl Control {
    /// The settings of `mode`; khugepaged's knobs are read now, once for
    /// the request (upstream reads them at each extent's scan: a knob
    /// written during a request applies from the next one here).
    pub(crate) fn new(mode: Mode) -> Self {
        match mode {
            Mode::Madvise => Control {
                mode,
                limits: Limits::NONE,
                tva: Tva::Forced,
                gfp: AllocGfp::Transhuge,
                writeback: Writeback::RetryOnce,
                pmd: Pmd::Install,
            },
            Mode::Khugepaged => {
                let knobs = khugepaged_knobs();
                Control {
                    mode,
                    limits: Limits {
                        max_ptes_none: knobs.max_ptes_none,
                        max_ptes_swap: knobs.max_ptes_swap,
                    },
                    tva: Tva::Khugepaged,
                    // alloc_hugepage_khugepaged_gfpmask()
                    gfp: if knobs.defrag {
                        AllocGfp::Transhuge
                    } else {
                        AllocGfp::Light
                    },
                    writeback: Writeback::Never,
                    pmd: Pmd::AtNextFault,
                }
            }
        }
    }
}
