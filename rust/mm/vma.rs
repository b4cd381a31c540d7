// SPDX-License-Identifier: GPL-2.0

//! VMAs, reached two ways, each with the lifetime of the lock that keeps
//! them alive: under the mmap lock, the kernel crate's [`VmaRef`] (found by
//! [`MmapRead`], which adds `find_vma()` to `MmapReadGuard`); under a
//! mapping's i_mmap lock, [`IMmapVma`]. An i_mmap VMA is not a `VmaRef`:
//! `VmaRef`'s invariant is the mmap (or VMA) lock of its mm, which nobody
//! holds there; the VMA and its mm only stay allocated while it is in the
//! tree. The predicates the collapse asks of both are [`VmaExt`]'s.
//!
//! Also [`FileExt`]: what the collapse asks of a file (its page cache,
//! shmem or not, the THP policy).

use super::page_cache::AddressSpace;
use super::{File, Mm, MmWithUser, VmaRef, PAGE_SHIFT};
use crate::ffi::bindings;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::fs::file::LocalFile;
use kernel::mm::MmapReadGuard;
use kernel::sync::aref::ARef;

/// The mmap lock (read) of an mm, with the lookups the collapse makes.
///
/// # Invariants
///
/// `_guard` holds the mmap read lock of `mm`.
#[must_use = "dropping it unlocks the mmap lock"]
pub(crate) struct MmapRead<'a> {
    mm: &'a MmWithUser,
    _guard: MmapReadGuard<'a>,
}

impl<'a> MmapRead<'a> {
    /// `mmap_read_lock()`.
    pub(crate) fn lock(mm: &'a MmWithUser) -> Self {
        // INVARIANT: The guard locks this very mm.
        Self {
            mm,
            _guard: mm.mmap_read_lock(),
        }
    }

    /// `mmap_read_trylock()`: the lock if nobody holds it for writing.
    pub(crate) fn try_lock(mm: &'a MmWithUser) -> Option<Self> {
        // INVARIANT: The guard locks this very mm.
        Some(Self {
            mm,
            _guard: mm.mmap_read_trylock()?,
        })
    }

    pub(crate) fn mm(&self) -> &'a MmWithUser {
        self.mm
    }

    /// `find_vma()`: the first VMA ending above `addr` (it may start
    /// above it).
    pub(crate) fn find_vma(&self, addr: usize) -> Option<&VmaRef> {
        // SAFETY: The mmap lock of this mm is held (type invariant).
        let vma = unsafe { bindings::krs_find_vma(self.mm.as_raw(), addr) };
        // SAFETY: A VMA found under the mmap lock stays valid while it is
        // held, i.e. while `self` is borrowed.
        (!vma.is_null()).then(|| unsafe { VmaRef::from_raw(vma) })
    }

    /// `vma_lookup()`: the VMA containing `addr`.
    pub(crate) fn vma_lookup(&self, addr: usize) -> Option<&VmaRef> {
        // SAFETY: The mmap lock of this mm is held (type invariant).
        let vma = unsafe { bindings::krs_vma_lookup(self.mm.as_raw(), addr) };
        // SAFETY: A VMA found under the mmap lock stays valid while it is
        // held, i.e. while `self` is borrowed.
        (!vma.is_null()).then(|| unsafe { VmaRef::from_raw(vma) })
    }
}

/// Read access to a `vm_area_struct` the implementer keeps valid.
///
/// # Safety
///
/// `vma_ptr()` returns a VMA that stays allocated and in its mm's tree
/// while `self` is borrowed, and whose `vm_mm`, `vm_file`, `vm_start`,
/// `vm_end` and `vm_pgoff` do not change meanwhile (changing them takes
/// the mmap lock for writing and, for a file VMA, the i_mmap lock for
/// writing too: `vma_prepare()`). Other fields may change under a reader
/// that holds only the i_mmap lock (`vm_flags` by mprotect() or madvise(),
/// `anon_vma` by a fault, the userfaultfd context by UFFDIO_REGISTER):
/// they are read once, racily, as upstream reads them, and every decision
/// taken on them is taken again under the page-table lock.
pub(crate) unsafe trait VmaAccess {
    fn vma_ptr(&self) -> *mut bindings::vm_area_struct;
}

// SAFETY: `VmaRef`'s invariant: the mmap or VMA lock is held while it is
// borrowed, which keeps the VMA and the fields the trait names.
unsafe impl VmaAccess for VmaRef {
    fn vma_ptr(&self) -> *mut bindings::vm_area_struct {
        self.as_ptr()
    }
}

/// Whose eligibility rules a collapse is checked by (`enum tva_type`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Tva {
    /// `TVA_FORCED_COLLAPSE`: MADV_COLLAPSE.
    Forced,
    /// `TVA_KHUGEPAGED`: khugepaged.
    Khugepaged,
}

/// What the collapse asks of a VMA, however it was reached.
pub(crate) trait VmaExt: VmaAccess {
    c_reads! { , vma_ptr;
        fn vm_start -> usize = krs_vma_start;
        fn vm_end -> usize = krs_vma_end;
        fn pgoff -> usize = krs_vma_pgoff;
        fn is_anonymous -> bool = krs_vma_is_anonymous;
        /// `VM_SHARED`.
        fn is_shared -> bool = krs_vma_is_shared;
        /// `userfaultfd_protected()`: registered for uffd-wp, or (7.3
        /// and later) for uffd read-write protection (RWP); both keep
        /// per-PTE state, so khugepaged neither retracts nor PMD-maps them.
        /// 7.2 has no RWP: there it is `userfaultfd_wp()` (the C helper
        /// tests the kernel version).
        fn uffd_protected -> bool = krs_userfaultfd_protected;
        fn uffd_missing -> bool = krs_userfaultfd_missing;
        fn uffd_armed -> bool = krs_userfaultfd_armed;
    }

    /// `thp_vma_allowable_order(vma, vm_flags, tva, PMD_ORDER)`: as
    /// [`Tva::Forced`], what MADV_COLLAPSE asks (THP/tmpfs settings are
    /// ignored, VM_NOHUGEPAGE, DAX, prctl, shmem_enabled=deny and the like
    /// are not); as [`Tva::Khugepaged`], what khugepaged asks (the THP
    /// `enabled` and `shmem_enabled` settings, the mount's `huge=` and
    /// MADV_HUGEPAGE apply too).
    fn allows_collapse(&self, tva: Tva) -> bool {
        // SAFETY: A valid VMA (`VmaAccess`); only reads it.
        unsafe { bindings::krs_thp_vma_allowable_pmd(self.vma_ptr(), tva == Tva::Khugepaged) }
    }

    /// `linear_page_index()`.
    fn pgoff_of(&self, addr: usize) -> usize {
        ((addr - self.vm_start()) >> PAGE_SHIFT) + self.pgoff()
    }
    /// The range `[start, end)` lies inside this VMA (`range_in_vma`).
    fn contains(&self, start: usize, end: usize) -> bool {
        self.vm_start() <= start && end <= self.vm_end()
    }
    /// `thp_vma_suitable_order(vma, addr, PMD_ORDER)`.
    fn suitable_for_pmd(&self, addr: usize) -> bool {
        // SAFETY: A valid VMA (`VmaAccess`); only reads it.
        unsafe { bindings::krs_thp_vma_suitable_pmd(self.vma_ptr(), addr) }
    }
    /// `file_backed_vma_is_retractable()`: no anon pages (MAP_PRIVATE
    /// CoW), not uffd-wp nor (7.3) uffd-RWP (`uffd_protected`: PTE markers
    /// and per-PTE state live in the table), no guard regions.
    fn is_retractable(&self) -> bool {
        // SAFETY: A valid VMA (`VmaAccess`); the anon_vma pointer and the guard bit
        // are read with READ_ONCE / test_bit, as upstream does without locks.
        unsafe {
            !bindings::krs_vma_has_anon_vma(self.vma_ptr())
                && !bindings::krs_userfaultfd_protected(self.vma_ptr())
                && !bindings::krs_vma_maybe_guard(self.vma_ptr())
        }
    }
    /// The VMA's mm, alive (`mm_count`) while the VMA is.
    fn vm_mm(&self) -> &Mm {
        // SAFETY: A valid VMA's `vm_mm` is allocated at least as long as
        // the VMA is (the mm's VMAs go before the mm does).
        unsafe { Mm::from_raw(bindings::krs_vma_mm(self.vma_ptr())) }
    }
    /// The VMA's file, if any (valid while the VMA is).
    fn vm_file(&self) -> Option<&File> {
        // SAFETY: A valid VMA (`VmaAccess`); only reads it.
        let file = unsafe { bindings::krs_vma_file(self.vma_ptr()) };
        // SAFETY: `vm_file` holds a reference for the VMA's lifetime.
        (!file.is_null()).then(|| unsafe { File::from_raw_file(file) })
    }
}

impl<T: VmaAccess + ?Sized> VmaExt for T {}

/// A VMA of a mapping's i_mmap tree, valid while the i_mmap lock is held.
///
/// # Invariants
///
/// The VMA is in the tree whose i_mmap lock is held for `'g`.
#[derive(Clone, Copy)]
pub(crate) struct IMmapVma<'g>(NonNull<bindings::vm_area_struct>, PhantomData<&'g ()>);

// SAFETY: The i_mmap lock held for `'g` keeps the VMA in the tree and
// allocated (type invariant), which is as long as `self` can be borrowed;
// `vm_start`, `vm_end`, `vm_pgoff` and `vm_file` change only under the
// i_mmap write lock, `vm_mm` never. `vm_flags` can change meanwhile: the
// retractable checks read it racily and are repeated under the PTE lock.
unsafe impl VmaAccess for IMmapVma<'_> {
    fn vma_ptr(&self) -> *mut bindings::vm_area_struct {
        self.0.as_ptr()
    }
}

/// `vma_interval_tree_foreach()` under the i_mmap lock.
pub(crate) struct IMmapVmas<'g> {
    next: *mut bindings::vm_area_struct,
    first: usize,
    last: usize,
    _lock: PhantomData<&'g ()>,
}

impl IMmapVmas<'_> {
    /// # Safety
    ///
    /// `mapping`'s i_mmap lock is held for the iterator's lifetime.
    pub(super) unsafe fn new(
        mapping: *mut bindings::address_space,
        first: usize,
        last: usize,
    ) -> Self {
        Self {
            // SAFETY: Under the i_mmap lock (function contract).
            next: unsafe { bindings::krs_vma_first(mapping, first, last) },
            first,
            last,
            _lock: PhantomData,
        }
    }
}

impl<'g> Iterator for IMmapVmas<'g> {
    type Item = IMmapVma<'g>;

    fn next(&mut self) -> Option<IMmapVma<'g>> {
        let vma = NonNull::new(self.next)?;
        // SAFETY: `vma` is in the tree, under the i_mmap lock held for 'g.
        self.next = unsafe { bindings::krs_vma_next(vma.as_ptr(), self.first, self.last) };
        // INVARIANT: Found in the tree under the lock held for 'g.
        Some(IMmapVma(vma, PhantomData))
    }
}

/// What the collapse asks of a file.
pub(crate) trait FileExt {
    /// `file->f_mapping`.
    fn mapping(&self) -> &AddressSpace;
    /// `shmem_file()`.
    fn is_shmem(&self) -> bool;
    /// `S_ISREG(file_inode(file)->i_mode)`.
    fn is_regular(&self) -> bool;
    /// `i_size_read(file_inode(file))`, in bytes.
    fn size(&self) -> usize;
    /// A PMD-sized folio may be collapsed in this file's page cache, as
    /// `__thp_vma_allowable_orders(tva)` would decide for a VMA of it
    /// without MADV_HUGEPAGE: shmem through `shmem_allowable_huge_orders(...,
    /// shmem_huge_force)` (forced: `shmem_enabled=deny`, THP disabled by
    /// hardware, PMD order above `MAX_PAGECACHE_ORDER`; for khugepaged also
    /// the mount's `huge=`, for memfd `shmem_enabled`); any other file as
    /// `thp_disabled_by_hw()`, for khugepaged THP `enabled=always`, and
    /// `file_thp_enabled()` (a regular file, not an anonymous inode, its
    /// mapping supporting PMD-sized folios).
    fn pmd_collapse_allowed(&self, tva: Tva) -> bool;
    /// `page_cache_sync_readahead(mapping, &file->f_ra, file, index, nr)`:
    /// reads what is missing from `[index, index + nr)` (up to EOF), with
    /// the file's readahead state. May sleep (I/O).
    fn sync_readahead(&self, index: usize, nr: usize);
}

/// On [`LocalFile`], so a [`File`] (which derefs to it) has it too, and a
/// file from [`fget`], which may not leave this thread, as well.
impl FileExt for LocalFile {
    fn mapping(&self) -> &AddressSpace {
        // SAFETY: A live file's mapping lives as long as the file.
        unsafe { AddressSpace::from_raw(bindings::krs_file_mapping(self.as_ptr())) }
    }
    fn is_shmem(&self) -> bool {
        // SAFETY: A live file (we hold a reference or its VMA's lock).
        unsafe { bindings::krs_file_is_shmem(self.as_ptr()) }
    }
    fn is_regular(&self) -> bool {
        // SAFETY: A live file (a reference, or its VMA's lock); only reads it.
        unsafe { bindings::krs_file_is_regular(self.as_ptr()) }
    }
    fn size(&self) -> usize {
        // SAFETY: A live file (a reference, or its VMA's lock); reads i_size.
        let size = unsafe { bindings::krs_file_size(self.as_ptr()) };
        usize::try_from(size).unwrap_or(0)
    }
    fn pmd_collapse_allowed(&self, tva: Tva) -> bool {
        let khugepaged = tva == Tva::Khugepaged;
        // SAFETY: A live file (a reference, or its VMA's lock); only reads it.
        unsafe { bindings::krs_file_pmd_collapse_allowed(self.as_ptr(), khugepaged) }
    }
    fn sync_readahead(&self, index: usize, nr: usize) {
        // SAFETY: A live file (we hold a reference): readahead locks what
        // it needs. It may sleep (a convention: no spinlock held).
        unsafe { bindings::krs_file_sync_readahead(self.as_ptr(), index, nr) }
    }
}

/// `fget(fd)` in the current task's table, as a file another thread may
/// use (the scanner's): EBADF if `fd` is not open, EINVAL if it is
/// `writing` itself.
///
/// # Safety
///
/// The current thread holds no `fdget_pos()` without `f_pos_lock` on any
/// file but `writing`: the caller runs inside a `write()` on `writing` (a
/// debugfs file, which has no `splice` or `iter` operations that could
/// nest another).
pub(crate) unsafe fn fget_for_thread(
    fd: u32,
    writing: *const bindings::file,
) -> kernel::error::Result<ARef<File>> {
    let file = LocalFile::fget(fd).map_err(|_| kernel::error::code::EBADF)?;
    if core::ptr::eq(file.as_ptr(), writing) {
        return Err(kernel::error::code::EINVAL);
    }
    // SAFETY: Not `writing` (checked), so no `fdget_pos()` of this thread
    // can be active on it (function contract).
    Ok(unsafe { LocalFile::assume_no_fdget_pos(file) })
}

/// `fget(fd)` in the current task's table, as the kernel crate's
/// [`LocalFile::fget`] gets it: a `LocalFile`, which stays on this thread
/// (the writer may hold an `fdget_pos()` on the same file: `fd=` can name
/// the very debugfs file being written).
pub(crate) fn fget(fd: u32) -> Option<ARef<LocalFile>> {
    LocalFile::fget(fd).ok()
}
