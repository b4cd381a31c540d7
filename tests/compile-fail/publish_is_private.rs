// SPDX-License-Identifier: GPL-2.0

//! Misuse: publish the new folio (take the page cache's 512 references,
//! put it on the LRU) and then not store it, or drop it: a folio on the
//! LRU with references nobody owns, or freed while on the LRU.
//! Guard: `CopiedFolio::publish` is private to the mm layer; only
//! `HolesFilled::commit` calls it, and stores the folio in the same step.
//! expect: E0624
//! expect-msg: method `publish` is private

use crate::mm::folio::CopiedFolio;

fn misuse(new: CopiedFolio) {
    let _ = new.publish();
}
