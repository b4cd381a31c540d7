// SPDX-License-Identifier: GPL-2.0

//! What a whole `addr=` request returns: the errno `madvise(MADV_COLLAPSE)`
//! would return for the same range, computed from the VMA layout and the
//! per-extent results. Pure `core`, host-tested.
//!
//! madvise(2) walks the VMAs in order and returns the first VMA's error
//! (`madvise_collapse()`: EINVAL for an ineligible VMA, else
//! `madvise_collapse_errno(last_fail)` unless every extent inside the VMA
//! is done), or ENOMEM if part of the range is unmapped. The module walks
//! every extent even past a failing VMA (it collapses what is eligible),
//! but returns what madvise would.

use crate::abi::command::{errno, Mode};
use crate::abi::result::ScanResult;

use super::HPAGE_PMD_SIZE as HPAGE;

/// One piece of the requested range, in address order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Nothing mapped over `[start, end)`.
    Gap,
    /// A VMA covering `[start, end)` of the range; `ineligible` is the
    /// result every extent of an ineligible VMA gets (`SCAN_VMA_CHECK`).
    Vma {
        start: usize,
        end: usize,
        ineligible: Option<ScanResult>,
    },
}

/// One extent the walk tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tried {
    /// Its start address.
    pub(crate) addr: usize,
    pub(crate) result: ScanResult,
    /// The end of the VMA its checks passed on, if they passed:
    /// madvise_collapse() clips its range to it after each revalidation
    /// (`hend = min(hend, vma->vm_end & HPAGE_PMD_MASK)`), so a VMA that
    /// shrank during the walk asks for fewer extents.
    pub(crate) vma_end: Option<usize>,
}

/// The errno (positive) of the request, given the segments of the range in
/// order and every extent tried, in address order. `mode` says which
/// results are done and which stop a VMA's walk
/// ([`ScanResult::is_done_in`], [`ScanResult::continues_in`]).
pub(crate) fn request_errno(
    segments: &[Segment],
    extents: &[Tried],
    mode: Mode,
) -> Result<(), i32> {
    let mut unmapped = false;
    for seg in segments {
        match *seg {
            Segment::Gap => unmapped = true,
            Segment::Vma {
                ineligible: Some(_),
                ..
            } => return Err(errno::EINVAL),
            Segment::Vma {
                start,
                end,
                ineligible: None,
            } => {
                let hstart = (start + HPAGE - 1) & !(HPAGE - 1);
                let mut hend = end & !(HPAGE - 1);
                if hstart >= hend {
                    continue;
                }
                let mut thps = 0usize;
                let mut last_fail = ScanResult::Fail;
                // madvise_collapse(): the extents of this VMA, in order,
                // while below its (clipped) end, until one fails in a way
                // that stops it.
                for t in extents.iter().filter(|t| t.addr >= hstart) {
                    if t.addr >= hend {
                        break;
                    }
                    if let Some(vma_end) = t.vma_end {
                        hend = hend.min(vma_end & !(HPAGE - 1));
                    }
                    if t.result.is_done_in(mode) {
                        thps += 1;
                        continue;
                    }
                    last_fail = t.result;
                    if !t.result.continues_in(mode) {
                        break;
                    }
                }
                if thps != hend.saturating_sub(hstart) / HPAGE {
                    return Err(last_fail.errno());
                }
            }
        }
    }
    if unmapped {
        Err(errno::ENOMEM)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ScanResult::*;

    /// 1 MiB: extents start at multiples of 2 * M.
    const M: usize = 1 << 20;

    fn t(addr: usize, result: ScanResult) -> Tried {
        Tried {
            addr,
            result,
            vma_end: None,
        }
    }

    fn vma(start: usize, end: usize) -> Segment {
        Segment::Vma {
            start,
            end,
            ineligible: None,
        }
    }

    #[test]
    fn all_done_is_success() {
        let segs = [vma(0, 8 * M)];
        let ext = [
            t(0, Succeed),
            t(2 * M, PmdMapped),
            t(4 * M, Succeed),
            t(6 * M, Succeed),
        ];
        assert_eq!(request_errno(&segs, &ext, Mode::Madvise), Ok(()));
    }

    #[test]
    fn a_gap_without_a_whole_extent_is_still_enomem() {
        // The range runs 1 MiB past the end of a 2 MiB mapping (seed 90 of
        // the differential tester).
        let segs = [vma(0, 2 * M), Segment::Gap];
        assert_eq!(
            request_errno(&segs, &[t(0, Succeed)], Mode::Madvise),
            Err(errno::ENOMEM)
        );
    }

    #[test]
    fn first_vma_error_wins_over_a_later_gap() {
        let segs = [
            Segment::Vma {
                start: 0,
                end: M,
                ineligible: Some(VmaCheck),
            },
            Segment::Gap,
        ];
        assert_eq!(request_errno(&segs, &[], Mode::Madvise), Err(errno::EINVAL));
    }

    #[test]
    fn ineligible_vma_without_a_whole_extent_is_einval() {
        let segs = [Segment::Vma {
            start: 4096,
            end: 8192,
            ineligible: Some(VmaCheck),
        }];
        assert_eq!(request_errno(&segs, &[], Mode::Madvise), Err(errno::EINVAL));
    }

    #[test]
    fn last_failure_of_the_first_failing_vma() {
        let segs = [vma(0, 4 * M), vma(4 * M, 8 * M)];
        let ext = [
            t(0, Succeed),
            t(2 * M, PageLock),
            t(4 * M, ExceedNonePte),
            t(6 * M, Succeed),
        ];
        assert_eq!(
            request_errno(&segs, &ext, Mode::Madvise),
            Err(errno::EAGAIN)
        );
    }

    #[test]
    fn stop_at_a_non_continuable_failure() {
        let segs = [vma(0, 6 * M)];
        let ext = [
            t(0, AllocHugePageFail),
            t(2 * M, PageLock),
            t(4 * M, Succeed),
        ];
        assert_eq!(
            request_errno(&segs, &ext, Mode::Madvise),
            Err(errno::ENOMEM)
        );
    }

    #[test]
    fn straddling_extents_do_not_count() {
        // A VMA boundary at 3 MiB: the extent [2M, 4M) belongs to neither.
        let segs = [vma(0, 3 * M), vma(3 * M, 6 * M)];
        let ext = [t(0, Succeed), t(2 * M, AddressRange), t(4 * M, Succeed)];
        assert_eq!(request_errno(&segs, &ext, Mode::Madvise), Ok(()));
    }

    #[test]
    fn a_vma_shrunk_during_the_walk_asks_for_fewer_extents() {
        // [0, 8M) shrank to [0, 4M) after the first extent: the revalidation
        // of the second sees the new end; the extents above are not asked.
        let segs = [vma(0, 8 * M)];
        let mut second = t(2 * M, Succeed);
        second.vma_end = Some(4 * M);
        let ext = [t(0, Succeed), second, t(4 * M, VmaNull), t(6 * M, VmaNull)];
        assert_eq!(request_errno(&segs, &ext, Mode::Madvise), Ok(()));
    }

    #[test]
    fn khugepaged_counts_a_lazy_pmd_as_done_and_walks_on() {
        let segs = [vma(0, 6 * M)];
        let ext = [
            t(0, PteMappedHugepage),
            t(2 * M, Succeed),
            t(4 * M, PmdMapped),
        ];
        assert_eq!(request_errno(&segs, &ext, Mode::Khugepaged), Ok(()));
        assert_eq!(
            request_errno(&segs, &ext, Mode::Madvise),
            Err(errno::EINVAL)
        );
        // A threshold does not stop khugepaged's walk: the last failure is
        // what the VMA returns.
        let ext = [
            t(0, ExceedNonePte),
            t(2 * M, Succeed),
            t(4 * M, ExceedSwapPte),
        ];
        assert_eq!(
            request_errno(&segs, &ext, Mode::Khugepaged),
            Err(errno::EINVAL)
        );
        let ext = [
            t(0, ExceedSwapPte),
            t(2 * M, Succeed),
            t(4 * M, ExceedNonePte),
        ];
        assert_eq!(
            request_errno(&segs, &ext, Mode::Khugepaged),
            Err(errno::EBUSY)
        );
        // MADV_COLLAPSE stops at the first: EINVAL, whatever follows.
        assert_eq!(
            request_errno(&segs, &ext, Mode::Madvise),
            Err(errno::EINVAL)
        );
    }

    #[test]
    fn a_vma_gone_at_revalidation_is_its_failure() {
        // Unmapped before the second extent was revalidated.
        let segs = [vma(0, 8 * M)];
        let ext = [t(0, Succeed), t(2 * M, VmaNull), t(4 * M, VmaNull)];
        assert_eq!(
            request_errno(&segs, &ext, Mode::Madvise),
            Err(errno::EINVAL)
        );
    }
}
