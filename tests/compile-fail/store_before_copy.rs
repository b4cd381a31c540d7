// SPDX-License-Identifier: GPL-2.0

//! Misuse: store (commit) the new huge folio in the page cache before the
//! old pages were copied into it: readers and faults would see zeroes or
//! garbage where the file's data was.
//! Guard: `HolesFilled::commit` takes a `CopiedFolio`, which only
//! `NewFolio::copy_from` makes.
//! expect: E0308
//! expect-msg: expected `CopiedFolio`, found `NewFolio`

use crate::mm::page_cache::HolesFilled;
use crate::mm::NewFolio;

fn misuse(filled: HolesFilled<'_, '_, '_>, new: NewFolio) {
    let _ = filled.commit(new);
}
