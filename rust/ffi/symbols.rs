// SPDX-License-Identifier: GPL-2.0

//! Resolution of the symbol table (`include/khugepaged_rs_symbols.h`): every
//! kernel function (and the few variables) the module needs that 7.2 does
//! not export.
//!
//! All or nothing: every address is looked up and vetted before any slot is
//! written, so a refused load leaves no half-filled table behind. A name that
//! does not resolve fails the load with `ENOENT`; when IBT is enforced, a
//! target without ENDBR (an indirect call there would trap) fails it with
//! `EPERM` and says to boot with `ibt=off`.

use crate::ffi::{self, bindings};
use core::sync::atomic::{AtomicBool, Ordering::SeqCst};
use kernel::prelude::*;

/// A name that never resolves, appended by the `selftest_missing_symbol`
/// module parameter to prove the all-or-nothing path.
pub(crate) const SELFTEST_MISSING: &CStr =
    match CStr::from_bytes_with_nul(bindings::KRS_SELFTEST_MISSING_SYMBOL) {
        Ok(s) => s,
        Err(_) => panic!("KRS_SELFTEST_MISSING_SYMBOL is not a C string"),
    };

/// What a successful resolution found, for the debugfs `status` file.
#[derive(Clone, Copy)]
pub(crate) struct Resolved {
    /// Number of table entries, all resolved.
    pub(crate) count: usize,
    /// IBT was enforced, so every target was checked for ENDBR.
    pub(crate) ibt_enforced: bool,
}

/// Why one symbol cannot be used.
enum Refusal {
    Missing,
    NoEndbr,
}

/// Vets one address the way the table needs it: a function is called
/// indirectly, so it needs ENDBR when IBT is enforced; a variable
/// (`data`) is only read or passed by address.
fn vet(addr: usize, ibt: bool, data: bool) -> core::result::Result<(), Refusal> {
    if addr == 0 {
        Err(Refusal::Missing)
    } else if ibt && !data && !ffi::has_endbr(addr) {
        Err(Refusal::NoEndbr)
    } else {
        Ok(())
    }
}

fn refuse(name: &CStr, why: Refusal) -> Error {
    match why {
        Refusal::Missing => {
            pr_err!(
                "cannot resolve kernel symbol '{}': not in kallsyms\n",
                name.to_str().unwrap_or("?")
            );
            ENOENT
        }
        Refusal::NoEndbr => {
            pr_err!(
                "kernel symbol '{}' has no ENDBR and IBT is enforced; boot with ibt=off to use khugepaged_rs\n",
                name.to_str().unwrap_or("?")
            );
            EPERM
        }
    }
}

/// The table as C defined it.
fn table() -> &'static [bindings::krs_symbol] {
    // SAFETY: `krs_symbols` is a static const array of `krs_nr_symbols`
    // initialised entries in rust/helpers/symbols.c, never modified.
    unsafe { core::slice::from_raw_parts(bindings::krs_symbols.as_ptr(), bindings::krs_nr_symbols) }
}

/// Whether [`init`] ran: the table is written at most once.
static STARTED: AtomicBool = AtomicBool::new(false);

/// Resolves the symbol table, once: [`resolve_all`] under a guard that
/// refuses (`EBUSY`) every call after the first, so the C slots are never
/// written while anything reads them. The first call is module init's,
/// before any file or callback that reaches the table exists (the table
/// is read only by the helpers those reach: a convention of the module's
/// init order, `khugepaged_rs_main.rs`).
pub(crate) fn init(extra: Option<&CStr>) -> Result<Resolved> {
    if STARTED.swap(true, SeqCst) {
        return Err(EBUSY);
    }
    // SAFETY: The first call (checked above): nothing read or wrote the
    // table before, and no later call writes it.
    unsafe { resolve_all(extra) }
}

/// Resolves every table entry (plus `extra`, a name that must also resolve)
/// and fills the C slots only if all of them are usable.
///
/// # Safety
///
/// No other thread reads or writes the table's slots during the call.
unsafe fn resolve_all(extra: Option<&CStr>) -> Result<Resolved> {
    // SAFETY: Registers and removes a kprobe; callable from module init.
    let ret = unsafe { bindings::krs_kallsyms_init() };
    if ret != 0 {
        pr_err!(
            "cannot find kallsyms_lookup_name through a kprobe (error {})\n",
            ret
        );
        return Err(Error::from_errno(ret));
    }
    let ibt = ffi::ibt_enforced();
    // SAFETY: No preconditions; returns the address found above.
    let lookup = unsafe { bindings::krs_kallsyms_addr() } as usize;
    vet(lookup, ibt, false).map_err(|why| refuse(c"kallsyms_lookup_name", why))?;

    let table = table();
    let mut addrs = KVec::with_capacity(table.len(), GFP_KERNEL)?;
    for entry in table {
        // SAFETY: Every `name` in the table is a string literal.
        let name = unsafe { CStr::from_char_ptr(entry.name) };
        // SAFETY: `name` is NUL-terminated; kallsyms_lookup_name only reads it.
        let addr = unsafe { bindings::krs_kallsyms_lookup(entry.name) } as usize;
        vet(addr, ibt, entry.data).map_err(|why| refuse(name, why))?;
        addrs.push(addr, GFP_KERNEL)?;
    }
    if let Some(name) = extra {
        // SAFETY: `name` is NUL-terminated; kallsyms_lookup_name only reads it.
        let addr = unsafe { bindings::krs_kallsyms_lookup(name.as_char_ptr()) } as usize;
        vet(addr, ibt, false).map_err(|why| refuse(name, why))?;
    }

    for (entry, addr) in table.iter().zip(addrs.iter()) {
        // `slot` points at the `static typeof(f) *` pointer C keeps for this
        // entry, and `addr` is the address of that very function or variable.
        // SAFETY: A valid slot (above); no other thread reads or writes it
        // meanwhile (the function's contract).
        unsafe { *entry.slot = *addr as *mut _ };
    }
    Ok(Resolved {
        count: table.len(),
        ibt_enforced: ibt,
    })
}

/// Names in the table, for `status`.
pub(crate) fn names() -> impl Iterator<Item = &'static CStr> {
    table().iter().map(|entry| {
        // SAFETY: Every `name` in the table is a string literal.
        unsafe { CStr::from_char_ptr(entry.name) }
    })
}
