// SPDX-License-Identifier: GPL-2.0

//! Misuse: resolve the symbol table again while collapses run: the C slots
//! every helper calls through would be rewritten under their readers.
//! Guard: `resolve_all` is a private `unsafe fn`; the safe entry,
//! `symbols::init`, runs it once and refuses every later call (EBUSY).
//! expect: E0603
//! expect-msg: function `resolve_all` is private

fn misuse() {
    let _ = crate::ffi::symbols::resolve_all(None);
}
