// SPDX-License-Identifier: GPL-2.0

//! [`ScanResult`]: the outcome of one collapse step, named exactly as the
//! `enum scan_result` (mm/khugepaged.c) of the kernel built for, and its
//! errno mapping (`madvise_collapse_errno`). Pure `core`: the host tests it
//! too (tools/build/hosttest, with the kernel's version cfgs).

use crate::abi::command::{errno, Mode};

/// 7.3 renamed `SCAN_PTE_UFFD_WP` to `SCAN_PTE_UFFD`: since read-write
/// protection (RWP) it is the result for both kinds of uffd-protected VMA
/// or PTE. The report and the tracepoints name it as the kernel does.
#[cfg(not(krs_7_3))]
const SCAN_PTE_UFFD: &str = "SCAN_PTE_UFFD_WP";
#[cfg(krs_7_3)]
const SCAN_PTE_UFFD: &str = "SCAN_PTE_UFFD";

macro_rules! scan_results {
    ($($name:ident => $c:expr,)*) => {
        /// `enum scan_result` of mm/khugepaged.c, in the same order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum ScanResult {
            $($name,)*
        }

        impl ScanResult {
            /// Every result, in `enum scan_result` order.
            pub(crate) const ALL: &'static [ScanResult] = &[$(ScanResult::$name,)*];

            /// The C name, e.g. `SCAN_PAGE_FILLED`.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(ScanResult::$name => $c,)*
                }
            }
        }
    };
}

scan_results! {
    Fail => "SCAN_FAIL",
    Succeed => "SCAN_SUCCEED",
    NoPteTable => "SCAN_NO_PTE_TABLE",
    PmdMapped => "SCAN_PMD_MAPPED",
    ExceedNonePte => "SCAN_EXCEED_NONE_PTE",
    ExceedSwapPte => "SCAN_EXCEED_SWAP_PTE",
    ExceedSharedPte => "SCAN_EXCEED_SHARED_PTE",
    PteNonPresent => "SCAN_PTE_NON_PRESENT",
    PteUffd => SCAN_PTE_UFFD,
    PteMappedHugepage => "SCAN_PTE_MAPPED_HUGEPAGE",
    LackReferencedPage => "SCAN_LACK_REFERENCED_PAGE",
    PageNull => "SCAN_PAGE_NULL",
    ScanAbort => "SCAN_SCAN_ABORT",
    PageCount => "SCAN_PAGE_COUNT",
    PageLru => "SCAN_PAGE_LRU",
    PageLock => "SCAN_PAGE_LOCK",
    PageAnon => "SCAN_PAGE_ANON",
    PageLazyfree => "SCAN_PAGE_LAZYFREE",
    PageCompound => "SCAN_PAGE_COMPOUND",
    AnyProcess => "SCAN_ANY_PROCESS",
    VmaNull => "SCAN_VMA_NULL",
    VmaCheck => "SCAN_VMA_CHECK",
    AddressRange => "SCAN_ADDRESS_RANGE",
    DelPageLru => "SCAN_DEL_PAGE_LRU",
    AllocHugePageFail => "SCAN_ALLOC_HUGE_PAGE_FAIL",
    CgroupChargeFail => "SCAN_CGROUP_CHARGE_FAIL",
    Truncated => "SCAN_TRUNCATED",
    PageHasPrivate => "SCAN_PAGE_HAS_PRIVATE",
    StoreFailed => "SCAN_STORE_FAILED",
    CopyMc => "SCAN_COPY_MC",
    PageFilled => "SCAN_PAGE_FILLED",
    PageDirtyOrWriteback => "SCAN_PAGE_DIRTY_OR_WRITEBACK",
}

impl ScanResult {
    /// `madvise_collapse_errno()`: the (positive) errno MADV_COLLAPSE
    /// returns when this was the last failure.
    pub(crate) fn errno(self) -> i32 {
        use ScanResult::*;
        match self {
            AllocHugePageFail => errno::ENOMEM,
            CgroupChargeFail | ExceedNonePte => errno::EBUSY,
            PageCount | PageLock | PageLru | DelPageLru | PageFilled | PageHasPrivate
            | PageDirtyOrWriteback => errno::EAGAIN,
            _ => errno::EINVAL,
        }
    }

    /// The extent is (now) mapped or cached huge: counts as done.
    pub(crate) fn is_done(self) -> bool {
        matches!(self, ScanResult::Succeed | ScanResult::PmdMapped)
    }

    /// Done for a request of `mode`: [`ScanResult::is_done`]; for
    /// khugepaged also an extent huge in the page cache whose PMD the next
    /// fault maps (`SCAN_PTE_MAPPED_HUGEPAGE`: no PTE table to retract).
    pub(crate) fn is_done_in(self, mode: Mode) -> bool {
        self.is_done() || (mode == Mode::Khugepaged && self == ScanResult::PteMappedHugepage)
    }

    /// The following extents of a request of `mode` are still tried after
    /// this one: MADV_COLLAPSE's whitelist ([`ScanResult::continues`]);
    /// khugepaged goes on after anything but a failed allocation (which
    /// ends its pass, after one `alloc_sleep_millisecs`).
    pub(crate) fn continues_in(self, mode: Mode) -> bool {
        match mode {
            Mode::Madvise => self.continues(),
            Mode::Khugepaged => self != ScanResult::AllocHugePageFail,
        }
    }

    /// `madvise_collapse()`'s whitelist of failures after which the
    /// following extents are still tried; any other failure stops.
    pub(crate) fn continues(self) -> bool {
        use ScanResult::*;
        self.is_done()
            || matches!(
                self,
                NoPteTable
                    | PteNonPresent
                    | PteUffd
                    | LackReferencedPage
                    | PageNull
                    | PageCount
                    | PageLock
                    | PageCompound
                    | PageLru
                    | DelPageLru
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_c_enum() {
        assert_eq!(ScanResult::ALL.len(), 32);
        assert_eq!(ScanResult::ALL[0].name(), "SCAN_FAIL");
        assert_eq!(ScanResult::ALL[30].name(), "SCAN_PAGE_FILLED");
        assert_eq!(ScanResult::PageDirtyOrWriteback as usize, 31);
        #[cfg(not(krs_7_3))]
        assert_eq!(ScanResult::PteUffd.name(), "SCAN_PTE_UFFD_WP");
        #[cfg(krs_7_3)]
        assert_eq!(ScanResult::PteUffd.name(), "SCAN_PTE_UFFD");
        for (i, r) in ScanResult::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(r.name().starts_with("SCAN_"));
        }
    }

    #[test]
    fn errnos_match_madvise_collapse_errno() {
        assert_eq!(ScanResult::AllocHugePageFail.errno(), errno::ENOMEM);
        assert_eq!(ScanResult::ExceedNonePte.errno(), errno::EBUSY);
        assert_eq!(ScanResult::CgroupChargeFail.errno(), errno::EBUSY);
        assert_eq!(ScanResult::PageFilled.errno(), errno::EAGAIN);
        assert_eq!(ScanResult::PageLock.errno(), errno::EAGAIN);
        assert_eq!(ScanResult::PteUffd.errno(), errno::EINVAL);
        assert_eq!(ScanResult::Truncated.errno(), errno::EINVAL);
        assert_eq!(ScanResult::VmaCheck.errno(), errno::EINVAL);
    }

    #[test]
    fn khugepaged_done_and_continuation() {
        use Mode::*;
        assert!(!ScanResult::PteMappedHugepage.is_done_in(Madvise));
        assert!(ScanResult::PteMappedHugepage.is_done_in(Khugepaged));
        assert!(ScanResult::PmdMapped.is_done_in(Khugepaged));
        assert!(!ScanResult::ExceedNonePte.is_done_in(Khugepaged));
        assert!(!ScanResult::ExceedNonePte.continues_in(Madvise));
        assert!(ScanResult::ExceedNonePte.continues_in(Khugepaged));
        assert!(ScanResult::ExceedSwapPte.continues_in(Khugepaged));
        assert!(ScanResult::PageDirtyOrWriteback.continues_in(Khugepaged));
        assert!(!ScanResult::AllocHugePageFail.continues_in(Khugepaged));
        for r in ScanResult::ALL {
            assert_eq!(r.continues_in(Madvise), r.continues());
            assert_eq!(r.is_done_in(Madvise), r.is_done());
        }
    }

    #[test]
    fn continuation_whitelist() {
        assert!(ScanResult::PmdMapped.continues());
        assert!(ScanResult::PageLock.continues());
        assert!(!ScanResult::PageFilled.continues());
        assert!(!ScanResult::ExceedNonePte.continues());
        assert!(!ScanResult::AllocHugePageFail.continues());
    }
}
