// SPDX-License-Identifier: GPL-2.0

//! Misuse: retire the old folios (put the page cache's references on them)
//! while they are still in the page cache, before the new folio replaced
//! them: a use-after-free of every old folio.
//! Guard: only `ReplacedFolios` (made by the commit) has `retire`; the
//! isolated, not yet replaced `IsolatedExtent` has none.
//! expect: E0599
//! expect-msg: no method named `retire` found

use crate::mm::folio::IsolatedExtent;

fn misuse(old: IsolatedExtent<'_>) {
    old.retire();
}
