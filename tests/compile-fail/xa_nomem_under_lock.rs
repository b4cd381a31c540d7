// SPDX-License-Identifier: GPL-2.0

//! Misuse: call `XaCursor::nomem()` (`xas_nomem(GFP_KERNEL)`, which may
//! sleep) while the `XaLocked` still holds the xa_lock, a spinlock taken with
//! interrupts off: sleeping in atomic context.
//! Guard: `XaCursor::lock(&mut self)` borrows the cursor mutably for as long
//! as the `XaLocked` lives; `nomem(&mut self)` needs a second mutable borrow.
//! expect: E0499
//! expect-msg: cannot borrow `cursor` as mutable more than once at a time

use crate::mm::AddressSpace;

fn misuse(mapping: &AddressSpace, index: usize) {
    let mut cursor = mapping.cursor(index, 0);
    let mut xa = cursor.lock();
    if xa.create_range().is_err() {
        cursor.nomem();
    }
    drop(xa);
}
