// SPDX-License-Identifier: GPL-2.0

//! Misuse: resolve the symbol table again while collapses run: the C slots
//! every helper calls through would be rewritten under their readers.
//! Guard: `resolve_all` is an `unsafe fn` (and private to `ffi::symbols`);
//! the safe entry, `symbols::init`, runs it once and refuses every later
//! call (EBUSY).
//! expect: E0603
//! expect: E0133
//! expect-msg: call to unsafe function `resolve_all` is unsafe

fn misuse() {
    let _ = crate::ffi::symbols::resolve_all(None);
}
