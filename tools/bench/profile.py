#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""tools/bench/profile, on the host: the per-function tables.

    profile.py RAW.jsonl

reads the "PROF-JSON" lines of tools/bench/profile_guest.c (one per call:
pass, path, total_ns, and per traced function [calls, ns, top calls,
top ns, traced calls nested inside]) and prints, per pass, each function's
calls and inclusive instructions (thousands; under icount a nanosecond is
an instruction) for C (MADV_COLLAPSE) and Rust (khugepaged_rs), medians
over the calls.

The tracer's own instructions are taken out. Each traced call costs some
inside its own duration (s: from the "calib" pass, a function of
CALIB_BODY instructions: s = its duration per call - CALIB_BODY) and
more in its caller's (c: what the calib pass adds to the whole call per
traced call, against the "none" pass). A function's figure is
ns - calls * s - nested * c; "not traced" is the exact cost of the call
(pass none) less the top-level traced calls so corrected. Passes that
trace nothing (none, fixed, dry, zap: see profile_guest.c) are printed as
their median cost per call.
"""

import json
import statistics
import sys

# krs_folio_test_uptodate between the tracer's two clock reads: mov, shr,
# and, je (to the next instruction), ret (endbr64 runs before the entry
# hook; the fentry call is the hook).
CALIB = "krs_folio_test_uptodate"
CALIB_BODY = 5
PATHS = ("C", "Rust")


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def load(path):
    calls, missing = {}, []
    with open(path) as f:
        for line in f:
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if "missing" in o:
                missing.append(o["missing"])
            elif "pass" in o:
                # A module's function is "name [module]" in the trace.
                o["f"] = {f.split(" ")[0]: v for f, v in o["f"].items()}
                calls.setdefault(o["pass"], {}).setdefault(o["path"], []).append(o)
    return calls, missing


def k(ns):
    return f"{ns / 1000:10.1f}"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    passes, missing = load(sys.argv[1])
    if "none" not in passes:
        sys.exit("profile.py: no 'none' pass: nothing to measure the tracer against")
    t0 = {p: med([o["total_ns"] for o in passes["none"].get(p, [])]) for p in PATHS}
    any_call = next(iter(passes["none"].values()))[0]
    print(f"{len(passes['none'].get('C', []))} calls per path and pass, "
          f"{any_call['extents']} extent(s) a call; thousands of instructions (icount)")
    if missing:
        print("not traceable (left out): " + ", ".join(sorted(set(missing))))
    pairs = list(zip(passes["none"].get("Rust", []), passes["none"].get("C", [])))
    ratio = med([r["total_ns"] / c["total_ns"] for r, c in pairs])
    print(f"\nexact cost of a call (pass none, untraced): C {k(t0['C']).strip()}, "
          f"Rust {k(t0['Rust']).strip()}, Rust/C {ratio:.3f} (median of per-pair ratios)")

    s = c = 0.0
    if "calib" in passes and passes["calib"].get("Rust"):
        rows = passes["calib"]["Rust"]
        n = med([o["f"].get(CALIB, [0])[0] for o in rows])
        if n:
            s = med([o["f"][CALIB][1] / o["f"][CALIB][0] for o in rows]) - CALIB_BODY
            c = (med([o["total_ns"] for o in rows]) - t0["Rust"]) / n
    print(f"tracer, per traced call: {s:.0f} instructions inside the traced function's "
          f"duration, {c:.0f} in its caller's (pass calib)")
    print("untraced passes, median cost of a call (path: C, Rust, or zap):")
    for name, by_path in passes.items():
        if all(o["traced"] == 0 for rows in by_path.values() for o in rows):
            cells = [f"{p} {k(med([o['total_ns'] for o in rows])).strip()}"
                     for p, rows in sorted(by_path.items())]
            print(f"  {name:10} " + ", ".join(cells))
    print("check, per pass: (traced total - exact total) / traced calls, C and Rust:")
    for name, by_path in passes.items():
        if all(o["traced"] == 0 for rows in by_path.values() for o in rows):
            continue
        implied = []
        for p in PATHS:
            rows = by_path.get(p, [])
            n = med([o["traced"] for o in rows])
            implied.append(f"{(med([o['total_ns'] for o in rows]) - t0[p]) / n:7.0f}"
                           if n else "      -")
        print(f"  {name:10} {implied[0]} {implied[1]}")

    for name, by_path in passes.items():
        if all(o["traced"] == 0 for rows in by_path.values() for o in rows):
            continue
        funcs = []
        for p in PATHS:
            for o in by_path.get(p, []):
                for f in o["f"]:
                    if f not in funcs:
                        funcs.append(f)
        print(f"\npass {name}:")
        print(f"  {'function':32} {'C calls':>8} {'C':>10} {'Rust calls':>10} {'Rust':>10}"
              f" {'Rust-C':>10}")
        for f in funcs:
            cells = {}
            for p in PATHS:
                rows = by_path.get(p, [])
                vals = [o["f"].get(f, [0, 0, 0, 0, 0]) for o in rows]
                calls = med([v[0] for v in vals])
                corr = med([v[1] - v[0] * s - v[4] * c for v in vals])
                cells[p] = (calls, corr)
            d = cells["Rust"][1] - cells["C"][1]
            print(f"  {f:32} {cells['C'][0]:8.0f} {k(cells['C'][1])} {cells['Rust'][0]:10.0f}"
                  f" {k(cells['Rust'][1])} {k(d)}")
        rest = {}
        for p in PATHS:
            rows = by_path.get(p, [])
            per_call = []
            for o in rows:
                # The top-level calls, and every other traced call nested
                # inside one of them.
                ntop = sum(v[2] for v in o["f"].values())
                tot = sum(v[3] for v in o["f"].values())
                per_call.append(tot - ntop * s - (o["traced"] - ntop) * c)
            rest[p] = (med(per_call), t0[p] - med(per_call))
        print(f"  {'(top-level traced, sum)':32} {'':8} {k(rest['C'][0])} {'':10}"
              f" {k(rest['Rust'][0])} {k(rest['Rust'][0] - rest['C'][0])}")
        print(f"  {'(not traced: exact - top level)':32} {'':8} {k(rest['C'][1])} {'':10}"
              f" {k(rest['Rust'][1])} {k(rest['Rust'][1] - rest['C'][1])}")


if __name__ == "__main__":
    main()
