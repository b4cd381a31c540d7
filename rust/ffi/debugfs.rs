// SPDX-License-Identifier: GPL-2.0

//! The module's debugfs directory, `/sys/kernel/debug/khugepaged_rs/`:
//!
//! - `status` (0400) and `stats` (0400): text rendered at open;
//! - `collapse` (0600): each write runs one request; reading the same open
//!   file returns the report of the last write made through it, so
//!   concurrent writers never see each other's results;
//! - `inject` (0600): arms injection points (write), shows them (read, as
//!   rendered at open);
//! - `notifier` (0600): the recording MMU notifier of the selftests;
//! - `scan` (0600): the scanner's targets and knobs (write), what it did
//!   (read, rendered at open).
//!
//! The files are built on `debugfs_create_file()` with our own
//! `file_operations` (kernel::debugfs has no per-open state). `owner` pins
//! the module while a file is open. Everything is removed on drop (rmmod).
//! The ABI is in `Documentation/ABI/testing/debugfs-khugepaged_rs`.

use super::notifier;
use crate::abi::scan_cmd::{self, ScanCmd, ScanTarget};
use crate::collapse::request::{self, Report};
use crate::collapse::scanner::{self, Scanner};
use core::fmt::{self, Write};
use core::ptr;
use kernel::sync::Arc;
use kernel::{bindings, new_mutex, prelude::*, sync::Mutex, uaccess::UserPtr, uaccess::UserSlice};

/// A command is one short line; anything longer is refused.
const MAX_COMMAND: usize = 256;

/// Renders a read-only file.
type Show = fn(&mut fmt::Formatter<'_>) -> fmt::Result;

/// Owns the directory and the `file_operations` its files point to.
pub(crate) struct Files {
    dir: *mut bindings::dentry,
    _show_fops: KBox<bindings::file_operations>,
    _collapse_fops: KBox<bindings::file_operations>,
    _inject_fops: KBox<bindings::file_operations>,
    _notifier_fops: KBox<bindings::file_operations>,
    _scan_fops: KBox<bindings::file_operations>,
    /// What `scan`'s `i_private` points to, kept alive while it exists.
    _scanner: Arc<Scanner>,
}

// SAFETY: The dentry pointer is only used to remove the directory on drop.
unsafe impl Send for Files {}
// SAFETY: The dentry pointer is only used to remove the directory on
// drop; no shared mutable state.
unsafe impl Sync for Files {}

fn is_err(p: *mut bindings::dentry) -> bool {
    p.is_null() || (p as usize) >= (-4095isize) as usize
}

impl Files {
    pub(crate) fn new(module: &'static ThisModule, scanner: Arc<Scanner>) -> Result<Self> {
        let mut show_fops = KBox::new(zeroed_fops(), GFP_KERNEL)?;
        show_fops.owner = module.as_ptr();
        show_fops.open = Some(show_open);
        show_fops.read = Some(text_read);
        show_fops.release = Some(text_release);
        show_fops.llseek = Some(bindings::default_llseek);
        let mut collapse_fops = KBox::new(zeroed_fops(), GFP_KERNEL)?;
        collapse_fops.owner = module.as_ptr();
        collapse_fops.open = Some(collapse_open);
        collapse_fops.read = Some(collapse_read);
        collapse_fops.write = Some(write_op::<CollapseFile>);
        collapse_fops.release = Some(collapse_release);
        collapse_fops.llseek = Some(bindings::default_llseek);
        let mut inject_fops = KBox::new(zeroed_fops(), GFP_KERNEL)?;
        *inject_fops = *show_fops;
        inject_fops.write = Some(write_op::<InjectFile>);
        let mut notifier_fops = KBox::new(zeroed_fops(), GFP_KERNEL)?;
        *notifier_fops = *show_fops;
        notifier_fops.write = Some(write_op::<NotifierFile>);
        let mut scan_fops = KBox::new(zeroed_fops(), GFP_KERNEL)?;
        *scan_fops = *show_fops;
        scan_fops.open = Some(scan_open);
        scan_fops.write = Some(write_op::<ScanFile>);

        // SAFETY: Creates a top-level directory; the name is a C string.
        let dir = unsafe {
            bindings::debugfs_create_dir(c"khugepaged_rs".as_char_ptr(), ptr::null_mut())
        };
        if is_err(dir) {
            return Err(ENODEV);
        }
        let files = Self {
            dir,
            _show_fops: show_fops,
            _collapse_fops: collapse_fops,
            _inject_fops: inject_fops,
            _notifier_fops: notifier_fops,
            _scan_fops: scan_fops,
            _scanner: scanner,
        };
        // Files whose read shows text rendered at open (some also take writes).
        let text_files: [(&CStr, u16, Show, &bindings::file_operations); 4] = [
            (c"status", 0o400, crate::status::show, &files._show_fops),
            (c"stats", 0o400, crate::stats::show, &files._show_fops),
            (c"inject", 0o600, crate::inject::show, &files._inject_fops),
            (c"notifier", 0o600, notifier::show, &files._notifier_fops),
        ];
        for (name, mode, show, fops) in text_files {
            files.create(name, mode, show as *mut core::ffi::c_void, fops)?;
        }
        files.create(c"collapse", 0o600, ptr::null_mut(), &files._collapse_fops)?;
        let scanner = Arc::as_ptr(&files._scanner).cast_mut().cast();
        files.create(c"scan", 0o600, scanner, &files._scan_fops)?;
        Ok(files)
    }

    fn create(
        &self,
        name: &CStr,
        mode: u16,
        data: *mut core::ffi::c_void,
        fops: &bindings::file_operations,
    ) -> Result {
        // SAFETY: `self.dir` is our directory; `fops` lives in `self`, which
        // outlives the file (removed in Drop before the boxes are freed).
        let d = unsafe {
            bindings::debugfs_create_file_full(
                name.as_char_ptr(),
                mode,
                self.dir,
                data,
                ptr::null(),
                fops,
            )
        };
        if is_err(d) {
            return Err(ENOMEM);
        }
        Ok(())
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        // SAFETY: Our directory; debugfs_remove waits for running file
        // operations, after which the fops boxes may be freed.
        unsafe { bindings::debugfs_remove(self.dir) }
    }
}

const fn zeroed_fops() -> bindings::file_operations {
    // SAFETY: `file_operations` is a C struct of pointers and integers; all
    // zero is its "no operation" value.
    unsafe { core::mem::zeroed() }
}

/// Per-open text of a file.
type Text = KVec<u8>;

/// `fmt::Write` into a text (the only one: reports and shown files).
struct FmtVec<'a>(&'a mut Text);

impl Write for FmtVec<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| fmt::Error)
    }
}

struct ShowArgs(Show);

impl fmt::Display for ShowArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

/// `open` of a read-only file: renders its text once.
///
/// # Safety
///
/// Called by the VFS with a debugfs inode whose `i_private` is a [`Show`].
unsafe extern "C" fn show_open(inode: *mut bindings::inode, file: *mut bindings::file) -> i32 {
    // SAFETY: `i_private` is the `Show` function passed at creation.
    let show: Show =
        unsafe { core::mem::transmute::<*mut core::ffi::c_void, Show>((*inode).i_private) };
    let mut text = Text::new();
    if write!(FmtVec(&mut text), "{}", ShowArgs(show)).is_err() {
        return ENOMEM.to_errno();
    }
    match KBox::new(text, GFP_KERNEL) {
        Ok(b) => {
            // SAFETY: `file` is being opened; we own `private_data`.
            unsafe { (*file).private_data = KBox::into_raw(b).cast() };
            0
        }
        Err(_) => ENOMEM.to_errno(),
    }
}

/// `open` of `scan`: renders what the scanner did, once.
///
/// # Safety
///
/// Called by the VFS with the debugfs inode of `scan`, whose `i_private`
/// is the [`Scanner`] its [`Files`] keeps alive.
unsafe extern "C" fn scan_open(inode: *mut bindings::inode, file: *mut bindings::file) -> i32 {
    // SAFETY: Per the function contract.
    let sc = unsafe { &*(*inode).i_private.cast::<Scanner>() };
    let mut text = Text::new();
    if write!(FmtVec(&mut text), "{}", ScanShow(sc)).is_err() {
        return ENOMEM.to_errno();
    }
    match KBox::new(text, GFP_KERNEL) {
        Ok(b) => {
            // SAFETY: `file` is being opened; we own `private_data`.
            unsafe { (*file).private_data = KBox::into_raw(b).cast() };
            0
        }
        Err(_) => ENOMEM.to_errno(),
    }
}

struct ScanShow<'a>(&'a Scanner);

impl fmt::Display for ScanShow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.show(f)
    }
}

/// `scan`: adds and removes the scanner's targets, sets its knobs, wakes it.
struct ScanFile;

impl CommandFile for ScanFile {
    unsafe fn write(file: *mut bindings::file, input: &[u8], count: usize) -> isize {
        // Its `Files` keeps the `Scanner` alive while the file exists, and
        // debugfs runs no operation after removing it.
        // SAFETY: `file` is an open `scan` file (function contract): its
        // inode's `i_private` is that `Scanner`.
        let sc = unsafe { &*(*(*file).f_inode).i_private.cast::<Scanner>() };
        let result = match scan_cmd::parse(input) {
            Err(e) => Err(Error::from_errno(-e.errno())),
            Ok(ScanCmd::Add(ScanTarget::Fd(fd))) => {
                // SAFETY: This runs inside write() on `file`, the only file
                // this thread holds an fdget_pos() on.
                unsafe { crate::mm::vma::fget_for_thread(fd, file) }
                    .and_then(|f| scanner::add_file(sc, f))
            }
            Ok(cmd) => scanner::apply(sc, cmd),
        };
        match result {
            Ok(()) => count as isize,
            Err(e) => e.to_errno() as isize,
        }
    }
}

/// `read` of a read-only file.
///
/// # Safety
///
/// Called by the VFS on a file opened by [`show_open`].
unsafe extern "C" fn text_read(
    file: *mut bindings::file,
    buf: *mut u8,
    count: usize,
    ppos: *mut i64,
) -> isize {
    // SAFETY: `private_data` is the `Text` set at open, freed at release.
    let text = unsafe { &*((*file).private_data.cast::<Text>()) };
    // SAFETY: Copies at most `count` bytes to the user buffer.
    unsafe {
        bindings::simple_read_from_buffer(buf.cast(), count, ppos, text.as_ptr().cast(), text.len())
    }
}

/// `release` of a read-only file: frees its text.
///
/// # Safety
///
/// Called by the VFS once, on a file opened by [`show_open`].
unsafe extern "C" fn text_release(_inode: *mut bindings::inode, file: *mut bindings::file) -> i32 {
    // SAFETY: Set at open from `KBox::into_raw`; the file is going away.
    drop(unsafe { KBox::from_raw((*file).private_data.cast::<Text>()) });
    0
}

/// Per-open state of `collapse`: the rendered report of the last write.
type CollapseState = Mutex<Text>;

/// Room for the longest status line (`status=` and an `isize`), reserved
/// when `collapse` is opened: the report of a write that ran out of memory
/// still gets its status line, without allocating.
const STATUS_ROOM: usize = 32;

/// `open` of `collapse`: an empty report for this open file, with room for
/// a status line.
///
/// # Safety
///
/// Called by the VFS on a file being opened.
unsafe extern "C" fn collapse_open(_inode: *mut bindings::inode, file: *mut bindings::file) -> i32 {
    let Ok(text) = Text::with_capacity(STATUS_ROOM, GFP_KERNEL) else {
        return ENOMEM.to_errno();
    };
    match KBox::pin_init(new_mutex!(text), GFP_KERNEL) {
        Ok(b) => {
            // SAFETY: The box is never moved out of again: it is only
            // reached through `private_data` and freed at release.
            let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(b) });
            // SAFETY: `file` is being opened; we own `private_data`.
            unsafe { (*file).private_data = raw.cast() };
            0
        }
        Err(_) => ENOMEM.to_errno(),
    }
}

/// # Safety
///
/// `file` is an open `collapse` file.
unsafe fn collapse_state<'a>(file: *mut bindings::file) -> &'a CollapseState {
    // SAFETY: Set at open, freed at release, pinned in between.
    unsafe { &*((*file).private_data.cast::<CollapseState>()) }
}

/// What a writable file does with one command written to it.
trait CommandFile {
    /// Runs `input` (the `count` bytes written to `file`); returns what
    /// `write()` returns (the byte count, or -errno).
    ///
    /// # Safety
    ///
    /// `file` is an open file of this kind (its `private_data` as its
    /// `open` set it).
    unsafe fn write(file: *mut bindings::file, input: &[u8], count: usize) -> isize;
}

/// `write` of every writable file: copies the command in (at most
/// [`MAX_COMMAND`] bytes) and hands it to `F`.
///
/// # Safety
///
/// Called by the VFS on an open file of kind `F`, with a user buffer of
/// `count` bytes.
unsafe extern "C" fn write_op<F: CommandFile>(
    file: *mut bindings::file,
    ubuf: *const u8,
    count: usize,
    _ppos: *mut i64,
) -> isize {
    let mut buf = [0u8; MAX_COMMAND];
    match read_command(&mut buf, ubuf, count) {
        // SAFETY: `file` is an open file of kind `F` (function contract).
        Ok(input) => unsafe { F::write(file, input, count) },
        Err(e) => e.to_errno() as isize,
    }
}

/// `collapse`: runs one request and keeps its report for this open file.
struct CollapseFile;

impl CommandFile for CollapseFile {
    unsafe fn write(file: *mut bindings::file, input: &[u8], count: usize) -> isize {
        let report = request::run(input, count);
        // SAFETY: `file` is an open collapse file (function contract).
        let state = unsafe { collapse_state(file) };
        // Rendered into this file's own buffer, under its lock: its
        // capacity never shrinks below what open reserved.
        let mut text = state.lock();
        text.clear();
        if render(&report, &mut text).is_err() {
            // Out of memory for the text: keep the status line, which fits
            // in the room reserved at open (a failed growth leaves the
            // buffer as it was), so this cannot fail.
            text.clear();
            let _ = writeln!(FmtVec(&mut text), "status={}", report.status);
        }
        report.status
    }
}

/// Renders a report as the `collapse` file shows it.
fn render(report: &Report, text: &mut Text) -> fmt::Result {
    let mut w = FmtVec(text);
    for (i, e) in report.extents.iter().enumerate() {
        writeln!(
            w,
            "extent={i} start={:#x} pgoff={} result={} copied={} holes={}",
            e.start,
            e.pgoff,
            e.result.name(),
            e.copied,
            e.holes
        )?;
    }
    writeln!(w, "status={}", report.status)
}

/// `read` of `collapse`: the report of the last write through this file.
///
/// # Safety
///
/// Called by the VFS on a file opened by [`collapse_open`].
unsafe extern "C" fn collapse_read(
    file: *mut bindings::file,
    buf: *mut u8,
    count: usize,
    ppos: *mut i64,
) -> isize {
    // SAFETY: `file` is an open collapse file.
    let state = unsafe { collapse_state(file) };
    let text = state.lock();
    // SAFETY: Copies at most `count` bytes to the user buffer; the mutex
    // (which may sleep) is held across the copy.
    unsafe {
        bindings::simple_read_from_buffer(buf.cast(), count, ppos, text.as_ptr().cast(), text.len())
    }
}

/// `release` of `collapse`: frees the report.
///
/// # Safety
///
/// Called by the VFS once, on a file opened by [`collapse_open`].
unsafe extern "C" fn collapse_release(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> i32 {
    // SAFETY: Set at open from `KBox::into_raw`; the file is going away.
    drop(unsafe { KBox::from_raw((*file).private_data.cast::<CollapseState>()) });
    0
}

/// `inject`: arms, releases or clears injection points.
struct InjectFile;

impl CommandFile for InjectFile {
    unsafe fn write(_file: *mut bindings::file, input: &[u8], count: usize) -> isize {
        match crate::abi::inject_cmd::parse(input) {
            Ok(cmd) => {
                crate::inject::apply(cmd);
                count as isize
            }
            Err(e) => -(e as isize),
        }
    }
}

/// Copies a command of `count` bytes from user space into `buf`.
fn read_command(buf: &mut [u8; MAX_COMMAND], ubuf: *const u8, count: usize) -> Result<&[u8]> {
    if count > MAX_COMMAND {
        return Err(EINVAL);
    }
    let mut reader = UserSlice::new(UserPtr::from_ptr(ubuf as *mut _), count).reader();
    reader.read_slice(&mut buf[..count]).map_err(|_| EFAULT)?;
    Ok(&buf[..count])
}

/// `notifier`: `pid=<n>`, `stop` or `clear`.
struct NotifierFile;

impl CommandFile for NotifierFile {
    unsafe fn write(_file: *mut bindings::file, input: &[u8], count: usize) -> isize {
        let text = core::str::from_utf8(input).unwrap_or("").trim();
        let result = match text {
            "stop" => {
                notifier::stop();
                Ok(())
            }
            "clear" => {
                notifier::clear();
                Ok(())
            }
            _ => match text.strip_prefix("pid=").map(str::parse::<u32>) {
                Some(Ok(pid)) if pid > 0 && pid <= i32::MAX as u32 => notifier::start(pid),
                _ => Err(EINVAL),
            },
        };
        match result {
            Ok(()) => count as isize,
            Err(e) => e.to_errno() as isize,
        }
    }
}
