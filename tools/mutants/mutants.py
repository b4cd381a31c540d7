#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Mutation check: each protection of the collapse, removed on purpose,
must make a selftest fail (a `not ok` line, or a kernel splat on the
console). For each mutant: edit one place, rebuild the module, run the
selftest program that guards it in the VM, restore the file.

    tools/mutants/mutants.py [NAME...]     (default: all; `make mutants`)
    tools/mutants/mutants.py --patterns    only check that every mutant's
                                           text occurs once in its file (no
                                           build, no VM; make check runs it)

First it builds the module (against the stock tree) and the selftests,
and refuses to start if either fails or a selftest program it needs is
missing. Then it prints one line per mutant:

    KILLED    a `not ok` line in the program's KTAP, or a kernel splat
    SURVIVED  the program ran tests, all ok, exit status 0, no splat
    ERROR     nothing proved either way: the mutant did not build (or its
              pattern is stale), the program was not found, exited non-zero
              without a `not ok`, reported no test that ran, or the VM
              timed out

and exits non-zero if any survived or was an error. Takes about 20 s per
mutant under TCG.
"""
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name, file, original text (must occur exactly once), replacement,
# selftest program, what it proves. A mutant that needs more than one edit
# to compile gives tuples of originals and replacements (applied in order);
# one whose protection sits in two files (a check and the type that
# repeats it) gives a tuple of files too, one per edit.
# A mutant that does not build proves nothing: it is an ERROR.
MUTANTS = [
    # Regular files (khugepaged_rs_fs, on XFS and ext4). Each dirty check
    # alone is covered by the next (the re-check after unmap catches what
    # the earlier ones let through): removed together, a dirty page is
    # copied into a clean huge folio and lost when the page cache drops it.
    ("no-dirty-checks", "rust/collapse/file.rs",
     ("Entry::Folio(f) if f.is_dirty() => {",
      "if src.shmem.is_none() && (read.dirty || read.writeback) {",
      "if src.shmem.is_none() && isolated.is_dirty() {"),
     ("Entry::Folio(f) if false && f.is_dirty() => {",
      "if src.shmem.is_none() && read.writeback {",
      "if false && isolated.is_dirty() {"),
     "khugepaged_rs_fs", "dirty pages collapsed into a clean folio (data lost on eviction)"),
    ("no-write-and-wait-retry", "rust/collapse/request.rs",
     "        || done.0.result != ScanResult::PageDirtyOrWriteback\n",
     "        || true\n",
     "khugepaged_rs_fs", "a dirty extent not written back and retried, as MADV_COLLAPSE does"),
    ("no-readahead", "rust/collapse/file.rs",
     "src.file.sync_readahead(index, end - index);", "let _ = src.file;",
     "khugepaged_rs_fs", "pages never read are not read in (SCAN_FAIL)"),
    ("eof-as-truncated", "rust/collapse/file.rs",
     "let folio = mapping.lock_folio(index).ok_or(ScanResult::Fail)?;",
     "let folio = mapping.lock_folio(index).ok_or(ScanResult::Truncated)?;",
     "khugepaged_rs_fs", "an extent past EOF reported otherwise than upstream (SCAN_FAIL)"),
    ("no-uffd-missing-check", "rust/collapse/file.rs",
     ".any(|vma| vma.uffd_missing())", ".any(|vma| false && vma.uffd_missing())",
     "khugepaged_rs_collapse", "holes filled under a MISSING userfaultfd (seeds 000/003)"),
    # The engine's count (upstream's check) and the layer's proof that
    # every slot not covered by an old folio held a hole (HolesFilled)
    # guard the same race: both go.
    ("no-nr-none-recheck", ("rust/collapse/file.rs", "rust/mm/page_cache.rs"),
     ("Ok(f) if f.holes() != nr_none => Some(ScanResult::PageFilled),",
      "if filled.holes + filled.old.covered() != HPAGE_PMD_NR {"),
     ("Ok(f) if false && f.holes() != nr_none => Some(ScanResult::PageFilled),",
      "if false {"),
     "khugepaged_rs_race", "a fault filling a hole during the collapse (seed 000)"),
    ("no-retract", "rust/collapse/file.rs",
     "retract_page_tables(&new);", "let _ = retract_page_tables;",
     "khugepaged_rs_collapse", "other VMAs keep stale PTE tables"),
    # The table is also read under both locks before it is freed
    # (EmptyTable): a PTE inserted by the race keeps it. Both go.
    ("no-retractable-recheck-under-ptl", ("rust/collapse/retract.rs", "rust/mm/pgtable.rs"),
     ("    if !vma.is_retractable() {\n        return Retract::NotRetractableUnderPtl;",
      "bindings::krs_pte_table_empty(self.table.pte.as_ptr())"),
     ("    if false {\n        return Retract::NotRetractableUnderPtl;",
      "{ let _ = self.table.pte; true }"),
     "khugepaged_rs_race", "UFFDIO_COPY into private shmem during retract (seed 002)"),
    # Removing only the first check is not observable: the re-check under
    # the PTE lock catches the same VMAs (that is its point).
    ("vma-always-retractable", "rust/mm/vma.rs",
     "!bindings::krs_vma_has_anon_vma(self.vma_ptr())",
     "true || !bindings::krs_vma_has_anon_vma(self.vma_ptr())",
     "khugepaged_rs_collapse", "MAP_PRIVATE CoW and uffd-wp tables retracted"),
    ("retract-ignores-uffd-wp", "rust/mm/vma.rs",
     "                && !bindings::krs_userfaultfd_protected(self.vma_ptr())\n", "",
     "khugepaged_rs_race", "uffd-wp markers lost with a retracted table (seeds 003/004)"),
    ("no-refcount-check", "rust/collapse/file.rs",
     "if isolated.ref_count() != 2 + nr as i32 {", "if false && isolated.ref_count() != 2 + nr as i32 {",
     "khugepaged_rs_race", "collapse despite extra folio references"),
    ("rollback-skips-lru-putback", "rust/mm/folio.rs",
     "            bindings::krs_folio_putback_lru(self.as_raw());\n", "",
     "khugepaged_rs_race", "a rolled-back folio left off the LRU (typed rollback)"),
    # shmem_uncharge() only recalculates lazily (7.2): the rollback that
    # matters is the nrpages decrement before it.
    ("rollback-keeps-hole-charge", "rust/mm/page_cache.rs",
     "unsafe { bindings::krs_mapping_sub_nrpages(self.mapping.as_raw(), self.nr) };",
     "let _ = self.nr;",
     "khugepaged_rs_race", "shmem accounting (nrpages, blocks) not restored on rollback"),
    ("no-swapin", "rust/collapse/file.rs",
     "let folio = shmem.shmem_get_folio(index).ok_or(ScanResult::Fail)?;",
     "let folio = Option::<LockedFolio>::None.ok_or(ScanResult::Fail)?;",
     "khugepaged_rs_collapse", "swapped-out shmem pages not brought back"),
    ("no-uffd-wp-install-refusal", "rust/collapse/install.rs",
     "if vma.uffd_protected() {", "if false && vma.uffd_protected() {",
     "khugepaged_rs_collapse", "PMD installed over uffd-wp markers"),
    ("copy-misplaced", "rust/mm/folio.rs",
     "let at = folio.index() - start;",
     "let at = (folio.index() + 1 - start).min(HPAGE_PMD_NR - folio.nr_pages());",
     "khugepaged_rs_collapse", "data copied to the wrong subpage"),
    ("no-alignment-check", "rust/abi/command.rs",
     "if start % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 {", "if false {",
     "khugepaged_rs_input", "unaligned input accepted"),
    ("dry-run-collapses", "rust/collapse/request.rs",
     "    if dry_run {\n        done.copied", "    if false {\n        done.copied",
     "khugepaged_rs_collapse", "dry_run changes the page cache"),
    ("no-ptrace-check", "rust/helpers/symbols.c",
     "mm = KRS_CALL(mm_access)(task, PTRACE_MODE_READ_FSCREDS);", "mm = get_task_mm(task);",
     "khugepaged_rs_collapse", "pid= without permission"),
    ("no-notifier-in-retract", "rust/collapse/retract.rs",
     "let range = NotifierRange::start(mm, addr);", "let range = ();",
     "khugepaged_rs_race", "secondary MMUs not told about the PMD clear (seed 002)"),
    # Review fixes: each protection removed again.
    ("madvise-walk-looks-up-late", "rust/collapse/request.rs",
     "    let lock = MmapRead::lock(mm);\n    follow(&lock, walk, tva);\n",
     "    let lock = MmapRead::lock(mm);\n    let _ = walk;\n",
     "khugepaged_rs_race", "the errno from the layout after the walk, not as madvise(2) sees it (stale.*)"),
    ("lru-drain-once-per-request", "rust/collapse/request.rs",
     "        // in on another CPU since the last VMA are on the LRU for the scan.\n        crate::mm::lru_add_drain_all();\n",
     "        // in on another CPU since the last VMA are on the LRU for the scan.\n",
     "khugepaged_rs_race", "a later VMA's folios in another CPU's LRU batch (stale.lru_drained_per_vma)"),
    ("install-vma-check-walks-on", "rust/collapse/request.rs",
     "let before_collapse = vma_end.is_none()\n",
     "let before_collapse = vma_end.is_some() || vma_end.is_none()\n",
     "khugepaged_rs_race", "the walk goes on after the installation's SCAN_VMA_CHECK"),
    ("no-mthp-collapse-stats", "rust/helpers/mm.c",
     "\tkrs_count_mthp_collapse_alloc(folio);\n", "",
     "khugepaged_rs_collapse", "hugepages-2048kB/stats/collapse_alloc not counted"),
    ("no-tlb-flush-on-rollback", "rust/mm/folio.rs",
     "        if !self.folios.is_empty() {\n            flush_unmap_batch();\n        }\n",
     "",
     "khugepaged_rs_race", "a failed scan leaves its batched TLB flush pending (tlb.*)"),
    ("notifier-start-unserialised", "rust/ffi/notifier.rs",
     ("    PID.store(0, SeqCst);\n    clear();\n", "    *current = Some(reg);"),
     ("    PID.store(0, SeqCst);\n    clear();\n    drop(current);\n",
      "    *CURRENT.lock() = Some(reg);"),
     "khugepaged_rs_module", "racing notifier writers leak a registration that outlives rmmod"),
    ("fd-ignores-thp-policy", "rust/collapse/request.rs",
     "    if !file.pmd_collapse_allowed(req.ctl.tva) {",
     "    if false && !file.pmd_collapse_allowed(req.ctl.tva) {",
     "khugepaged_rs_collapse", "fd= builds a huge folio under shmem_enabled=deny"),
    ("remote-pid-without-cap-sys-nice", "rust/collapse/request.rs",
     "    if mm.remote_without_cap_sys_nice() {",
     "    if false && mm.remote_without_cap_sys_nice() {",
     "khugepaged_rs_collapse", "pid= on another process without CAP_SYS_NICE"),
    ("ptrace-failure-as-eperm", "rust/helpers/symbols.c",
     "*err = mm ? PTR_ERR(mm) : -ESRCH;",
     "*err = !mm ? -ESRCH : PTR_ERR(mm) == -EACCES ? -EPERM : PTR_ERR(mm);",
     "khugepaged_rs_collapse", "pid= reports EPERM where process_madvise reports EACCES"),
    ("gap-below-vma-is-vma-null", "rust/collapse/request.rs",
     "let vma = vma.ok_or(ScanResult::VmaNull)?;",
     "let vma = vma.filter(|v| v.vm_start() <= addr).ok_or(ScanResult::VmaNull)?;",
     "khugepaged_rs_collapse", "hugepage_vma_revalidate(): find_vma() finds the VMA above"),
    ("vma-check-before-address-range", "rust/collapse/request.rs",
     "    if !vma.suitable_for_pmd(addr) {\n        return Err(ScanResult::AddressRange);\n    }\n    if !entry {",
     "    vma_eligible(vma, tva)?;\n    if !vma.suitable_for_pmd(addr) {\n        return Err(ScanResult::AddressRange);\n    }\n    if !entry {",
     "khugepaged_rs_collapse", "hugepage_vma_revalidate(): SCAN_ADDRESS_RANGE before SCAN_VMA_CHECK"),
    ("prctl-as-any-process", "rust/collapse/request.rs",
     "    if !entry && (mm.exiting() || mm.thp_disabled()) {",
     "    if mm.exiting() || mm.thp_disabled() {",
     "khugepaged_rs_collapse", "prctl(PR_SET_THP_DISABLE) refused by collapse_possible(): SCAN_VMA_CHECK"),
    ("fd-found-thp-as-collapsed", "rust/collapse/request.rs",
     "    // As upstream: the scan's event carries the collapse's result.\n",
     "    if form == Form::File && done.result == ScanResult::PteMappedHugepage {\n        done.result = ScanResult::Succeed;\n    }\n    // As upstream: the scan's event carries the collapse's result.\n",
     "khugepaged_rs_race", "fd= reports SCAN_SUCCEED for a huge folio it did not build"),
    ("no-hend-clip", "rust/abi/outcome.rs",
     "*hend = (*hend).min(align_down(vma_end));", "let _ = vma_end;",
     "khugepaged_rs_race", "madvise_collapse() clips its range to the revalidated VMA"),
    ("dry-run-holes-unseen", "rust/collapse/scan.rs",
     "                let at = xas.index();",
     "                let at = max + 1;",
     "khugepaged_rs_collapse", "dry_run counts holes it never looked at"),
    ("alloc-failpoint-uncounted", "rust/collapse/file.rs",
     "UnchargedFolio::count_alloc_failed();", "let _ = 0;",
     "khugepaged_rs_race", "the alloc fail point skips THP_COLLAPSE_ALLOC_FAILED"),
    ("no-collapse-file-event", "rust/collapse/request.rs",
     "trace::collapse_file(&CollapseEvent {", "core::mem::drop(&CollapseEvent {",
     "khugepaged_rs_collapse", "the collapse_file tracepoint is not emitted"),
    # mode=khugepaged (khugepaged_rs_khugepaged, beside the real khugepaged):
    # each threshold, ignored and off by one at its edge, and each other
    # difference from MADV_COLLAPSE's settings.
    ("khugepaged-ignores-max-ptes-none", "rust/collapse/control.rs",
     "max_ptes_none: knobs.max_ptes_none,", "max_ptes_none: HPAGE_PMD_NR,",
     "khugepaged_rs_khugepaged", "max_ptes_none not applied (SCAN_EXCEED_NONE_PTE never)"),
    ("max-ptes-none-off-by-one", "rust/collapse/control.rs",
     "present < HPAGE_PMD_NR.saturating_sub(self.max_ptes_none)",
     "present <= HPAGE_PMD_NR.saturating_sub(self.max_ptes_none)",
     "khugepaged_rs_khugepaged", "an extent exactly at max_ptes_none refused"),
    ("khugepaged-ignores-max-ptes-swap", "rust/collapse/control.rs",
     "max_ptes_swap: knobs.max_ptes_swap,", "max_ptes_swap: HPAGE_PMD_NR,",
     "khugepaged_rs_khugepaged", "max_ptes_swap not applied (SCAN_EXCEED_SWAP_PTE never)"),
    ("max-ptes-swap-off-by-one", "rust/collapse/control.rs",
     "swap > self.max_ptes_swap", "swap >= self.max_ptes_swap",
     "khugepaged_rs_khugepaged", "an extent exactly at max_ptes_swap refused"),
    ("no-thp-scan-exceed-event", "rust/collapse/request.rs",
     "count_scan_event(ScanEvent::ExceedNonePte);", "let _ = ScanEvent::ExceedNonePte;",
     "khugepaged_rs_khugepaged", "THP_SCAN_EXCEED_NONE_PTE not counted"),
    ("khugepaged-installs-pmd", "rust/collapse/control.rs",
     "pmd: Pmd::AtNextFault,", "pmd: Pmd::Install,",
     "khugepaged_rs_khugepaged", "the PMD installed by the request, not the next fault"),
    ("khugepaged-writeback-retry", "rust/collapse/control.rs",
     "writeback: Writeback::Never,", "writeback: Writeback::RetryOnce,",
     "khugepaged_rs_khugepaged", "a dirty extent written back and retried in khugepaged mode"),
    ("khugepaged-forced-eligibility", "rust/collapse/control.rs",
     "tva: Tva::Khugepaged,", "tva: Tva::Forced,",
     "khugepaged_rs_khugepaged", "TVA_FORCED_COLLAPSE where khugepaged checks TVA_KHUGEPAGED"),
    ("nothing-done-as-succeed", "rust/collapse/request.rs",
     "PmdOutcome::NoTable => ScanResult::PteMappedHugepage,",
     "PmdOutcome::NoTable => ScanResult::Succeed,",
     "khugepaged_rs_khugepaged", "an extent with no table to retract reported collapsed"),
    # The scanner (khugepaged_rs_scanner).
    ("scanner-not-freezable", "rust/helpers/mm.c",
     "\tset_freezable();\n", "",
     "khugepaged_rs_scanner", "a scanner thread the freezer leaves running"),
    ("scanner-keeps-exited-targets", "rust/collapse/scanner.rs",
     "        return Visit::Exited;", "        return Visit::Done;",
     "khugepaged_rs_scanner", "a target whose process exited is never dropped"),
    ("scanner-forced-eligibility", "rust/collapse/scanner.rs",
     "vma_eligible(vma, Tva::Khugepaged)", "vma_eligible(vma, Tva::Forced)",
     "khugepaged_rs_scanner", "the scanner collapses VMAs khugepaged leaves alone"),
    ("scan-add-pid-without-checks", "rust/collapse/scanner.rs",
     "let mm = target_mm(Some(pid))?;", "let mm = crate::mm::task::pid_mm(pid)?;",
     "khugepaged_rs_scanner", "add pid= on another process without CAP_SYS_NICE"),
    ("no-memcg-collapse-event", "rust/helpers/symbols.c",
     "KRS_CALL(count_memcg_events)(folio_memcg(folio), THP_COLLAPSE_ALLOC, 1);", "(void)0;",
     "khugepaged_rs_collapse", "memory.stat thp_collapse_alloc not counted"),
    # The busy kernel's lost tmpfs extent (Documentation/khugepaged_rs.rst,
    # "Busy kernel"): the PTEs cleared to map a PMD without their dirty bits.
    ("pte-dirty-bits-dropped", "rust/helpers/symbols.c",
     "\tif (pte_dirty(old))\n\t\tfolio_mark_dirty(folio);\n", "\t(void)old;\n",
     "khugepaged_rs_mthp", "a shmem folio written through its PTEs left clean (lost on eviction)"),
    # The kernel versions (Documentation/design.rst, "Kernel versions").
    ("no-uffd-rwp-refusal", "rust/helpers/mm.c",
     "\treturn userfaultfd_protected(vma);", "\treturn userfaultfd_wp(vma);",
     "khugepaged_rs_kver", "7.3: an RWP VMA retracted and PMD-mapped"),
    ("scan-pfn-of-any-folio", "rust/collapse/scan.rs",
     "            count.present += folio.nr_pages;\n            return Step::Next;",
     "            count.present += folio.nr_pages;\n            count.pfn = Some(folio.pfn);\n"
     "            return Step::Next;",
     "khugepaged_rs_kver", "scan_file's pfn not the folio that stopped the scan"),
]

# Mutants of code that exists only from some kernel version on (the series
# of KVER's kernel, tools/setup/versions.conf): skipped on older kernels.
SINCE = {"no-uffd-rwp-refusal": "7.3"}


SELFTESTS = "tools/testing/selftests/khugepaged_rs"
# KTAP result lines, at the start of a console line (the program runs
# directly, not under the kselftest runner: no "# " nesting).
RESULT = re.compile(r"\s*(not )?ok \d+")
# tools/vm/run's line before the splats it found (its exit status is 3).
SPLATS = "kernel reported problems on the console:"


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=REPO, text=True, capture_output=True, **kw)


def prepare(chosen):
    """Build the module against the stock tree and the selftests (what
    `make stock-module selftests` does): None, or why the check cannot
    start."""
    for what, cmd in (("the module", ["tools/build/module"]),
                      ("the selftests", ["tools/build/selftests"])):
        build = run(cmd)
        if build.returncode != 0:
            tail = (build.stdout + build.stderr).strip().splitlines()[-20:]
            return f"building {what} failed ({' '.join(cmd)}):\n" + "\n".join(tail)
    missing = sorted({prog for *_, prog, _ in chosen
                      if not os.access(os.path.join(REPO, SELFTESTS, prog), os.X_OK)})
    if missing:
        return f"selftest programs not built in {SELFTESTS}: {', '.join(missing)}"
    return None


def verdict(vm):
    """KILLED, SURVIVED or ERROR, and why, from a run of tools/vm/run: only
    a `not ok` or a splat kills."""
    console = vm.stdout.splitlines()
    results = [l.strip() for l in console if RESULT.match(l)]
    failed = [r for r in results if r.startswith("not ok")]
    if failed:
        return "KILLED", failed[0]
    err = vm.stderr.splitlines()
    at = [i for i, l in enumerate(err) if l.endswith(SPLATS)]
    if vm.returncode == 3 and at:
        return "KILLED", "kernel splat: " + " ".join(err[at[0] + 1:at[0] + 2]).strip()
    # Why the program stopped, as far as the console tells.
    said = [l.strip() for l in console if l.startswith("Bail out!")]
    if not any(l.startswith("KRS-EXIT: ") for l in console):
        said.append("the guest died or hung before reporting an exit status")
    last = f" ({said[-1]})" if said else ""
    if vm.returncode == 124:
        return "ERROR", "the VM timed out, no `not ok` before"
    if vm.returncode == 127:
        return "ERROR", "exit status 127: the program was not found in the VM"
    if vm.returncode != 0:
        return "ERROR", f"exit status {vm.returncode} without a `not ok`{last}"
    ran = [r for r in results if "# SKIP" not in r]
    if not ran:
        skipped = [l.strip() for l in console if l.startswith("1..0")] + results
        return "ERROR", (f"no test ran ({skipped[0]})" if skipped
                         else "the program reported no KTAP result")
    return "SURVIVED", f"{len(ran)} ok, no `not ok`"


def kernel_series():
    """The series (e.g. "7.3") of the kernel KVER selects."""
    out = run(["bash", "-c", '. tools/setup/common.sh && echo "$KERNEL_SERIES"'])
    return out.stdout.strip() or "0.0"


def version(series):
    return tuple(int(x) for x in series.split("."))


def stale_patterns():
    """The mutants whose original text does not occur exactly once."""
    stale = []
    for m in MUTANTS:
        olds = m[2] if isinstance(m[2], tuple) else (m[2],)
        paths = m[1] if isinstance(m[1], tuple) else (m[1],) * len(olds)
        for p, o in zip(paths, olds):
            n = open(os.path.join(REPO, p)).read().count(o)
            if n != 1:
                stale.append(f"{m[0]}: its text occurs {n} times in {p}, not once")
    return stale


def main(names):
    if names == ["--patterns"]:
        stale = stale_patterns()
        for line in stale:
            print(line)
        print(f"{len(MUTANTS) - len(set(l.split(':')[0] for l in stale))} of {len(MUTANTS)} "
              "mutants' patterns match the code")
        return 1 if stale else 0
    unknown = sorted(set(names) - {m[0] for m in MUTANTS})
    if unknown:
        print(f"unknown mutant: {', '.join(unknown)}", file=sys.stderr)
        return 2
    series = kernel_series()
    chosen = []
    for m in MUTANTS:
        if names and m[0] not in names:
            continue
        if m[0] in SINCE and version(series) < version(SINCE[m[0]]):
            print(f"{m[0]}: skipped (the code it mutates is for {SINCE[m[0]]} "
                  f"and later; this kernel is {series})")
            continue
        chosen.append(m)
    why_not = prepare(chosen)
    if why_not:
        print(f"mutants: not starting: {why_not}", file=sys.stderr)
        return 2
    killed, survived, errors = [], [], []
    for name, path, old, new, prog, why in chosen:
        olds, news = (old, new) if isinstance(old, tuple) else ((old,), (new,))
        paths = path if isinstance(path, tuple) else (path,) * len(olds)
        texts = {p: open(os.path.join(REPO, p)).read() for p in paths}
        stale = [p for p, o in zip(paths, olds) if texts[p].count(o) != 1]
        if stale:
            print(f"{name}: ERROR: stale (pattern not found once in {stale[0]})")
            errors.append(name)
            continue
        try:
            mutated = dict(texts)
            for p, o, n in zip(paths, olds, news):
                mutated[p] = mutated[p].replace(o, n)
            for p, t in mutated.items():
                open(os.path.join(REPO, p), "w").write(t)
            build = run(["tools/build/module"])
            if build.returncode != 0:
                print(f"{name}: ERROR: does not build (a mutant must compile)")
                errors.append(name)
                continue
            vm = run(["tools/vm/run", "--timeout", "600", "--", f"selftests/{prog}"])
            what, detail = verdict(vm)
            if what == "KILLED":
                print(f"{name}: KILLED by {prog}: {detail}  [{why}]")
                killed.append(name)
            elif what == "SURVIVED":
                print(f"{name}: SURVIVED {prog}: {detail}  [{why}]")
                survived.append(name)
            else:
                print(f"{name}: ERROR {prog}: {detail}  [{why}]")
                errors.append(name)
        finally:
            for p, t in texts.items():
                open(os.path.join(REPO, p), "w").write(t)
    run(["tools/build/module"])
    print(f"{len(killed)} killed, {len(survived)} survived, {len(errors)} errors")
    return 1 if survived or errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
