// SPDX-License-Identifier: GPL-2.0

//! [`Vma`]: a VMA borrowed for as long as the lock that keeps it alive
//! (the mmap lock, or the i_mmap lock while walking a mapping's tree), and
//! the per-VMA predicates the collapse checks.

use crate::sys::bindings;
use core::marker::PhantomData;
use core::ptr::NonNull;

/// 2 MiB: one PMD.
pub(crate) const HPAGE_PMD_SIZE: u64 = 1 << 21;
/// Pages in one PMD.
pub(crate) const HPAGE_PMD_NR: usize = 512;
/// `HPAGE_PMD_ORDER`.
pub(crate) const HPAGE_PMD_ORDER: u32 = 9;
pub(crate) const PAGE_SHIFT: u32 = 12;

/// A VMA, valid for `'a`.
#[derive(Clone, Copy)]
pub(crate) struct Vma<'a>(NonNull<bindings::vm_area_struct>, PhantomData<&'a ()>);

impl<'a> Vma<'a> {
    /// # Safety
    ///
    /// `vma` is valid for `'a`: the caller holds, for `'a`, the mmap lock
    /// of its mm or the i_mmap lock of the mapping whose tree it came from.
    pub(crate) unsafe fn from_raw(vma: *mut bindings::vm_area_struct) -> Option<Self> {
        NonNull::new(vma).map(|v| Self(v, PhantomData))
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::vm_area_struct {
        self.0.as_ptr()
    }

    // SAFETY (all accessors below): the VMA is valid for 'a (type
    // invariant), and each helper only reads it.
    pub(crate) fn start(&self) -> u64 {
        // SAFETY: See above.
        unsafe { bindings::krs_vma_start(self.as_ptr()) as u64 }
    }
    pub(crate) fn end(&self) -> u64 {
        // SAFETY: See above.
        unsafe { bindings::krs_vma_end(self.as_ptr()) as u64 }
    }
    pub(crate) fn pgoff(&self) -> u64 {
        // SAFETY: See above.
        unsafe { bindings::krs_vma_pgoff(self.as_ptr()) as u64 }
    }
    pub(crate) fn file(&self) -> *mut bindings::file {
        // SAFETY: See above.
        unsafe { bindings::krs_vma_file(self.as_ptr()) }
    }
    pub(crate) fn mm(&self) -> *mut bindings::mm_struct {
        // SAFETY: See above.
        unsafe { bindings::krs_vma_mm(self.as_ptr()) }
    }
    pub(crate) fn is_anonymous(&self) -> bool {
        // SAFETY: See above.
        unsafe { bindings::krs_vma_is_anonymous(self.as_ptr()) }
    }
    pub(crate) fn is_shared(&self) -> bool {
        // SAFETY: See above.
        unsafe { bindings::krs_vma_is_shared(self.as_ptr()) }
    }
    pub(crate) fn uffd_wp(&self) -> bool {
        // SAFETY: See above.
        unsafe { bindings::krs_userfaultfd_wp(self.as_ptr()) }
    }
    pub(crate) fn uffd_missing(&self) -> bool {
        // SAFETY: See above.
        unsafe { bindings::krs_userfaultfd_missing(self.as_ptr()) }
    }
    pub(crate) fn uffd_armed(&self) -> bool {
        // SAFETY: See above.
        unsafe { bindings::krs_userfaultfd_armed(self.as_ptr()) }
    }

    /// `linear_page_index()`.
    pub(crate) fn pgoff_of(&self, addr: u64) -> u64 {
        ((addr - self.start()) >> PAGE_SHIFT) + self.pgoff()
    }

    /// The range `[start, end)` lies inside this VMA (`range_in_vma`).
    pub(crate) fn contains(&self, start: u64, end: u64) -> bool {
        self.start() <= start && end <= self.end()
    }

    /// `thp_vma_suitable_order(vma, addr, PMD_ORDER)`.
    pub(crate) fn suitable_for_pmd(&self, addr: u64) -> bool {
        // SAFETY: See above.
        unsafe { bindings::krs_thp_vma_suitable_pmd(self.as_ptr(), addr as usize) }
    }

    /// `thp_vma_allowable_order(vma, vm_flags, TVA_FORCED_COLLAPSE,
    /// PMD_ORDER)`: what MADV_COLLAPSE asks (THP/tmpfs settings are
    /// ignored, VM_NOHUGEPAGE, DAX, prctl and the like are not).
    pub(crate) fn allows_forced_collapse(&self) -> bool {
        // SAFETY: See above.
        unsafe { bindings::krs_thp_vma_allowable_pmd(self.as_ptr()) }
    }

    /// `file_backed_vma_is_retractable()`: no anon pages (MAP_PRIVATE
    /// CoW), not uffd-wp (PTE markers live in the table), no guard regions.
    pub(crate) fn is_retractable(&self) -> bool {
        // SAFETY: See above; the anon_vma pointer and the guard bit are
        // read with READ_ONCE / test_bit, as upstream does without locks.
        unsafe {
            !bindings::krs_vma_has_anon_vma(self.as_ptr())
                && !bindings::krs_userfaultfd_wp(self.as_ptr())
                && !bindings::krs_vma_maybe_guard(self.as_ptr())
        }
    }
}
