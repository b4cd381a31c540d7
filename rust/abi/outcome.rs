// SPDX-License-Identifier: GPL-2.0

//! What a whole `addr=` request returns: the errno `madvise(MADV_COLLAPSE)`
//! would return for the same range. Pure `core`, host-tested.
//!
//! `madvise_walk_vmas()` walks the VMAs in order and returns the first
//! VMA's error (`madvise_collapse()`: EINVAL for an ineligible VMA, else
//! `madvise_collapse_errno(last_fail)` unless every extent inside the VMA
//! is done), or ENOMEM if part of the range is unmapped. It looks the next
//! VMA up when the previous one is done, with the mmap lock taken again:
//! the layout it sees is the one at that moment, not the one when the
//! request started. [`MadviseWalk`] is that walk, fed the same lookups
//! (by the caller, under the mmap lock, when [`MadviseWalk::lookup`] asks)
//! and every extent the module tried. The module walks every extent even
//! past a failing VMA (it collapses what is eligible), but returns what
//! madvise would.

use crate::abi::command::{errno, Mode};
use crate::abi::result::ScanResult;

use super::HPAGE_PMD_SIZE as HPAGE;

const fn align_up(x: usize) -> usize {
    (x + HPAGE - 1) & !(HPAGE - 1)
}

const fn align_down(x: usize) -> usize {
    x & !(HPAGE - 1)
}

/// What `find_vma()` returned when the walk looked a VMA up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// `madvise_collapse()`'s `collapse_possible()` check passed (for the
    /// module: a file VMA that allows the collapse).
    pub(crate) eligible: bool,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `madvise_walk_vmas()` is about to `find_vma(at)`.
    Lookup { at: usize },
    /// Inside `madvise_collapse()` of a VMA: `[hstart, hend)` its extents
    /// (`hend` clipped at each revalidation), `range_end` where the walk
    /// looks the next VMA up when it returns.
    Collapse {
        range_end: usize,
        hstart: usize,
        hend: usize,
        thps: usize,
        last_fail: ScanResult,
    },
    /// madvise(2) returned.
    Done(Result<(), i32>),
}

/// `madvise_walk_vmas()` with `madvise_collapse()` for each VMA, as far as
/// they decide the errno of `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MadviseWalk {
    last_end: usize,
    mode: Mode,
    /// A gap was met (`unmapped_error = -ENOMEM`).
    unmapped: bool,
    state: State,
}

impl MadviseWalk {
    /// The walk over `[start, end)` for a request of `mode` ([`ScanResult::is_done_in`],
    /// [`ScanResult::continues_in`]), before its first lookup.
    pub(crate) fn new(start: usize, end: usize, mode: Mode) -> Self {
        let state = if start < end {
            State::Lookup { at: start }
        } else {
            State::Done(Ok(()))
        };
        MadviseWalk {
            last_end: end,
            mode,
            unmapped: false,
            state,
        }
    }

    /// The address madvise(2) looks up now (`find_vma()`), if it does:
    /// answer with [`MadviseWalk::found`], under the same mmap lock as the
    /// collapse that follows.
    pub(crate) fn lookup(&self) -> Option<usize> {
        match self.state {
            State::Lookup { at } => Some(at),
            _ => None,
        }
    }

    /// Goes on from `at`, or ends the walk there.
    fn next(&mut self, at: usize) {
        self.state = if at >= self.last_end {
            State::Done(self.unmapped_result())
        } else {
            State::Lookup { at }
        };
    }

    fn unmapped_result(&self) -> Result<(), i32> {
        if self.unmapped {
            Err(errno::ENOMEM)
        } else {
            Ok(())
        }
    }

    /// What `find_vma(lookup)` returned.
    pub(crate) fn found(&mut self, vma: Option<Found>) {
        let State::Lookup { at } = self.state else {
            return;
        };
        // "Still start < end": no VMA above, the rest is unmapped.
        let Some(vma) = vma else {
            self.state = State::Done(Err(errno::ENOMEM));
            return;
        };
        let mut start = at;
        if start < vma.start {
            // A gap: ENOMEM at the end, "but carry on".
            self.unmapped = true;
            start = vma.start;
            if start >= self.last_end {
                self.state = State::Done(self.unmapped_result());
                return;
            }
        }
        let range_end = vma.end.min(self.last_end);
        if !vma.eligible {
            self.state = State::Done(Err(errno::EINVAL));
            return;
        }
        let (hstart, hend) = (align_up(start), align_down(range_end));
        if hstart >= hend {
            // madvise_collapse() returns 0 without dropping the mmap lock:
            // the walk goes on from this VMA's end.
            self.next(vma.end);
            return;
        }
        self.state = State::Collapse {
            range_end,
            hstart,
            hend,
            thps: 0,
            last_fail: ScanResult::Fail,
        };
    }

    /// The extent at `t.addr` was tried; extents in address order.
    pub(crate) fn tried(&mut self, t: Tried) {
        let State::Collapse {
            range_end,
            hstart,
            ref mut hend,
            ref mut thps,
            ref mut last_fail,
        } = self.state
        else {
            return;
        };
        if t.addr < hstart || t.addr >= *hend {
            return;
        }
        if let Some(vma_end) = t.vma_end {
            *hend = (*hend).min(align_down(vma_end));
        }
        let stopped = if t.result.is_done_in(self.mode) {
            *thps += 1;
            false
        } else {
            *last_fail = t.result;
            !t.result.continues_in(self.mode)
        };
        if stopped || t.addr + HPAGE >= *hend {
            self.vma_done(range_end);
        }
    }

    /// `madvise_collapse()` returns: its errno ends the walk, or the walk
    /// looks the next VMA up at `range_end`. The mmap lock was dropped, so
    /// madvise_walk_vmas() forgets the VMA: a VMA that grew is not
    /// followed, one that shrank leaves no gap.
    fn vma_done(&mut self, range_end: usize) {
        let State::Collapse {
            hstart,
            hend,
            thps,
            last_fail,
            ..
        } = self.state
        else {
            return;
        };
        if thps != hend.saturating_sub(hstart) / HPAGE {
            self.state = State::Done(Err(last_fail.errno()));
        } else {
            self.next(range_end);
        }
    }

    /// The module's walk tried its last extent: a VMA whose extents were
    /// not all tried (the walk stopped early) is done with its last
    /// failure. Answer the lookups that may follow, then ask
    /// [`MadviseWalk::errno`].
    pub(crate) fn stop(&mut self) {
        if let State::Collapse { range_end, .. } = self.state {
            self.vma_done(range_end);
        }
    }

    /// The (positive) errno of the request, once [`MadviseWalk::stop`]ped
    /// and every lookup answered.
    pub(crate) fn errno(&self) -> Result<(), i32> {
        match self.state {
            State::Done(r) => r,
            State::Lookup { .. } | State::Collapse { .. } => self.unmapped_result(),
        }
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

    fn vma(start: usize, end: usize) -> Found {
        Found {
            start,
            end,
            eligible: true,
        }
    }

    fn ineligible(start: usize, end: usize) -> Found {
        Found {
            start,
            end,
            eligible: false,
        }
    }

    /// The walk over `[start, end)` where the layout is `layout(n)` once
    /// `n` extents were tried.
    fn walk<'a>(
        layout: impl Fn(usize) -> &'a [Found],
        (start, end): (usize, usize),
        ext: &[Tried],
        mode: Mode,
    ) -> Result<(), i32> {
        let mut w = MadviseWalk::new(start, end, mode);
        let look = |w: &mut MadviseWalk, n: usize| {
            while let Some(at) = w.lookup() {
                w.found(layout(n).iter().copied().find(|v| v.end > at));
            }
        };
        for (n, e) in ext.iter().enumerate() {
            look(&mut w, n);
            w.tried(*e);
        }
        w.stop();
        look(&mut w, ext.len());
        w.errno()
    }

    /// The same, over a layout that does not change.
    fn errno(
        layout: &[Found],
        range: (usize, usize),
        ext: &[Tried],
        mode: Mode,
    ) -> Result<(), i32> {
        walk(|_| layout, range, ext, mode)
    }

    /// madvise(2)'s errno when the layout is `before` while the first
    /// extent is tried and `after` from then on.
    fn changed(
        before: &[Found],
        after: &[Found],
        range: (usize, usize),
        ext: &[Tried],
    ) -> Result<(), i32> {
        walk(
            |n| if n == 0 { before } else { after },
            range,
            ext,
            Mode::Madvise,
        )
    }

    #[test]
    fn all_done_is_success() {
        let ext = [
            t(0, Succeed),
            t(2 * M, PmdMapped),
            t(4 * M, Succeed),
            t(6 * M, Succeed),
        ];
        assert_eq!(
            errno(&[vma(0, 8 * M)], (0, 8 * M), &ext, Mode::Madvise),
            Ok(())
        );
    }

    #[test]
    fn a_gap_without_a_whole_extent_is_still_enomem() {
        // The range runs 1 MiB past the end of a 2 MiB mapping (seed 90 of
        // the differential tester).
        assert_eq!(
            errno(
                &[vma(0, 2 * M)],
                (0, 3 * M),
                &[t(0, Succeed)],
                Mode::Madvise
            ),
            Err(errno::ENOMEM)
        );
    }

    #[test]
    fn first_vma_error_wins_over_a_later_gap() {
        assert_eq!(
            errno(&[ineligible(0, M)], (0, 3 * M), &[], Mode::Madvise),
            Err(errno::EINVAL)
        );
    }

    #[test]
    fn ineligible_vma_without_a_whole_extent_is_einval() {
        assert_eq!(
            errno(&[ineligible(4096, 8192)], (4096, 8192), &[], Mode::Madvise),
            Err(errno::EINVAL)
        );
    }

    #[test]
    fn a_vma_without_a_whole_extent_is_success() {
        let layout = [vma(0, 3 * M), vma(3 * M, 4 * M)];
        assert_eq!(
            errno(
                &layout,
                (0, 4 * M),
                &[t(0, Succeed), t(2 * M, AddressRange)],
                Mode::Madvise
            ),
            Ok(())
        );
    }

    #[test]
    fn last_failure_of_the_first_failing_vma() {
        let layout = [vma(0, 4 * M), vma(4 * M, 8 * M)];
        let ext = [
            t(0, Succeed),
            t(2 * M, PageLock),
            t(4 * M, ExceedNonePte),
            t(6 * M, Succeed),
        ];
        assert_eq!(
            errno(&layout, (0, 8 * M), &ext, Mode::Madvise),
            Err(errno::EAGAIN)
        );
    }

    #[test]
    fn stop_at_a_non_continuable_failure() {
        let ext = [
            t(0, AllocHugePageFail),
            t(2 * M, PageLock),
            t(4 * M, Succeed),
        ];
        assert_eq!(
            errno(&[vma(0, 6 * M)], (0, 6 * M), &ext, Mode::Madvise),
            Err(errno::ENOMEM)
        );
        // The module's walk stopped there too.
        assert_eq!(
            errno(&[vma(0, 6 * M)], (0, 6 * M), &ext[..1], Mode::Madvise),
            Err(errno::ENOMEM)
        );
    }

    #[test]
    fn straddling_extents_do_not_count() {
        // A VMA boundary at 3 MiB: the extent [2M, 4M) belongs to neither.
        let layout = [vma(0, 3 * M), vma(3 * M, 6 * M)];
        let ext = [t(0, Succeed), t(2 * M, AddressRange), t(4 * M, Succeed)];
        assert_eq!(errno(&layout, (0, 6 * M), &ext, Mode::Madvise), Ok(()));
    }

    #[test]
    fn a_vma_shrunk_during_the_walk_asks_for_fewer_extents() {
        // [0, 8M) shrank to [0, 4M) after the first extent: the revalidation
        // of the second sees the new end; the extents above are not asked,
        // and the walk does not look past the range it asked of the VMA.
        let mut second = t(2 * M, Succeed);
        second.vma_end = Some(4 * M);
        let ext = [t(0, Succeed), second, t(4 * M, VmaNull), t(6 * M, VmaNull)];
        let (before, shrunk) = ([vma(0, 8 * M)], [vma(0, 4 * M)]);
        assert_eq!(
            walk(
                |n| if n == 0 { &before } else { &shrunk },
                (0, 8 * M),
                &ext,
                Mode::Madvise
            ),
            Ok(())
        );
    }

    #[test]
    fn khugepaged_counts_a_lazy_pmd_as_done_and_walks_on() {
        let layout = [vma(0, 6 * M)];
        let r = (0, 6 * M);
        let ext = [
            t(0, PteMappedHugepage),
            t(2 * M, Succeed),
            t(4 * M, PmdMapped),
        ];
        assert_eq!(errno(&layout, r, &ext, Mode::Khugepaged), Ok(()));
        assert_eq!(errno(&layout, r, &ext, Mode::Madvise), Err(errno::EINVAL));
        // A threshold does not stop khugepaged's walk: the last failure is
        // what the VMA returns.
        let ext = [
            t(0, ExceedNonePte),
            t(2 * M, Succeed),
            t(4 * M, ExceedSwapPte),
        ];
        assert_eq!(
            errno(&layout, r, &ext, Mode::Khugepaged),
            Err(errno::EINVAL)
        );
        let ext = [
            t(0, ExceedSwapPte),
            t(2 * M, Succeed),
            t(4 * M, ExceedNonePte),
        ];
        assert_eq!(errno(&layout, r, &ext, Mode::Khugepaged), Err(errno::EBUSY));
        // MADV_COLLAPSE stops at the first: EINVAL, whatever follows.
        assert_eq!(errno(&layout, r, &ext, Mode::Madvise), Err(errno::EINVAL));
    }

    #[test]
    fn a_vma_gone_at_revalidation_is_its_failure() {
        // Unmapped before the second extent was revalidated.
        let ext = [t(0, Succeed), t(2 * M, VmaNull), t(4 * M, VmaNull)];
        let before = [vma(0, 8 * M)];
        assert_eq!(
            walk(
                |n| if n == 0 { &before } else { &[] },
                (0, 8 * M),
                &ext,
                Mode::Madvise
            ),
            Err(errno::EINVAL)
        );
    }

    #[test]
    fn a_later_vma_unmapped_during_the_walk_is_enomem() {
        // Two VMAs; the second is unmapped while the first is collapsed:
        // madvise(2) looks it up after the first and finds nothing (ENOMEM
        // at once), or a VMA past the range (a gap: ENOMEM).
        let ext = [t(0, Succeed), t(2 * M, VmaNull)];
        let before = [vma(0, 2 * M), vma(2 * M, 4 * M)];
        for after in [&[vma(0, 2 * M)][..], &[vma(0, 2 * M), vma(8 * M, 10 * M)]] {
            assert_eq!(
                changed(&before, after, (0, 4 * M), &ext),
                Err(errno::ENOMEM)
            );
        }
    }

    #[test]
    fn a_later_vma_shrunk_from_its_front_is_enomem() {
        // [2M, 6M) became [3M, 6M): a gap at 2M, then a VMA whose only
        // whole extent is collapsed.
        let ext = [t(0, Succeed), t(2 * M, AddressRange), t(4 * M, Succeed)];
        let before = [vma(0, 2 * M), vma(2 * M, 6 * M)];
        let after = [vma(0, 2 * M), vma(3 * M, 6 * M)];
        assert_eq!(
            changed(&before, &after, (0, 6 * M), &ext),
            Err(errno::ENOMEM)
        );
    }

    #[test]
    fn a_gap_filled_during_the_walk_is_success() {
        let ext = [t(0, Succeed), t(2 * M, Succeed), t(4 * M, Succeed)];
        let before = [vma(0, 2 * M), vma(4 * M, 6 * M)];
        let after = [vma(0, 2 * M), vma(2 * M, 4 * M), vma(4 * M, 6 * M)];
        assert_eq!(changed(&before, &after, (0, 6 * M), &ext), Ok(()));
        // Unfilled, the same extents: ENOMEM.
        let ext = [t(0, Succeed), t(2 * M, AddressRange), t(4 * M, Succeed)];
        assert_eq!(
            errno(&before, (0, 6 * M), &ext, Mode::Madvise),
            Err(errno::ENOMEM)
        );
    }

    #[test]
    fn a_vma_grown_during_the_walk_is_not_followed() {
        // [0, 2M) grew to [0, 4M) (a mapping merged with it): the walk
        // looks up at 2M and finds it again, as a VMA of its own.
        let ext = [t(0, Succeed), t(2 * M, Succeed)];
        let before = [vma(0, 2 * M), vma(2 * M, 4 * M)];
        let after = [vma(0, 4 * M)];
        assert_eq!(changed(&before, &after, (0, 4 * M), &ext), Ok(()));
    }
}
