// SPDX-License-Identifier: GPL-2.0

//! Control: the same calls as the compile-fail cases, used as
//! `collapse_file()` and `try_collapse_pte_mapped_thp()` use them: the
//! folio is used and locked while the xa_lock is held, `nomem()` runs on
//! the cursor `unlock()` handed back, the folio joins the old folios, the
//! commit's states follow each other, and the PTE table is cleared and
//! freed under its locks. It must build.

use crate::mm::folio::{IsolateError, PmdFolio};
use crate::mm::page_cache::FillError;
use crate::mm::pgtable::{PmdAddr, PmdRef, PteIndex, Subpage};
use crate::mm::{AddressSpace, Entry, LockedFolio, NewFolio, OldFolios, VmaRef};

fn correct_use(mapping: &AddressSpace, index: usize, new: NewFolio) -> Option<usize> {
    let mut cursor = mapping.cursor(index, 0);
    let mut xa = cursor.lock();
    if xa.create_range().is_err() {
        let cursor = xa.unlock();
        cursor.nomem();
        return None;
    }
    let locked: LockedFolio = match xa.load_at(index) {
        Entry::Folio(folio) => folio.trylock()?,
        _ => return None,
    };
    let cursor = xa.unlock();
    let mut old = OldFolios::new(mapping, index).ok()?;
    let read = old.read(locked);
    if !read.uptodate || read.dirty {
        return None;
    }
    let place = read.place.ok()?;
    match old.isolate(place) {
        Ok(isolated) => {
            let _ = isolated.index();
        }
        Err(
            IsolateError::NotInMapping
            | IsolateError::OutOfPlace
            | IsolateError::NotLru
            | IsolateError::HasPrivate,
        ) => return None,
    }
    let old = old.finish();
    let covered = old.covered();
    let new = new.copy_from(&old).ok()?;
    let filled = match cursor.lock().fill_holes(old, None) {
        Ok(filled) => filled,
        Err(FillError::StoreFailed | FillError::Filled) => return None,
    };
    let (committed, replaced) = filled.commit(new).ok()?;
    drop(committed);
    replaced.retire();
    Some(covered)
}

fn retract(vma: &VmaRef, addr: PmdAddr, folio: &PmdFolio) -> Option<()> {
    let pmd = PmdRef::find(vma, addr)?;
    let table = pmd.map()?;
    let pml = pmd.lock();
    let ptl = pml.lock_table(&table)?;
    let mut cleared = ptl.clearing(folio);
    for i in PteIndex::all() {
        if let Subpage::Mapped(pte) = cleared.entry(i) {
            pte.clear();
        }
    }
    cleared.done();
    ptl.empty().ok()?.collapse_flush().free_deferred();
    Some(())
}
