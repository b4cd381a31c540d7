// SPDX-License-Identifier: GPL-2.0

//! Misuse: commit the same filled extent twice, with two new folios: the
//! second store would replace the first folio without its references being
//! put, and the old folios would be retired twice.
//! Guard: `HolesFilled::commit(self, ..)` consumes the state.
//! expect: E0382
//! expect-msg: use of moved value: `filled`

use crate::mm::folio::CopiedFolio;
use crate::mm::page_cache::HolesFilled;

fn misuse(filled: HolesFilled<'_, '_, '_>, a: CopiedFolio, b: CopiedFolio) {
    let _ = filled.commit(a);
    let _ = filled.commit(b);
}
