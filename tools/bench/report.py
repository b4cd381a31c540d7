#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench, on the host: turn the guests' raw pairs into the outputs.

    report.py OUTDIR

reads OUTDIR/raw-wall.jsonl and OUTDIR/raw-icount.jsonl (either may be
missing: that mode was not run), the "BENCH-JSON" lines of
tools/bench/collapse_bench.c plus one "host" line from tools/bench/run, and
writes:

    OUTDIR/result.txt   the table
    OUTDIR/result.json  one JSON object per scenario and line
    OUTDIR/bench.png    ratio per scenario with its quartiles; cost per
                        extent against extent count

Every ratio is the median (and quartiles) of the per-pair ratios
Rust time / C time, never a quotient of medians.
"""

import json
import math
import os
import sys

MODES = ("wall", "icount")

# The performance targets (Rust/C, icount), by scenario key: drawn on the
# plot, kept in the JSON (icount ratio) and checked in result.txt's "targets"
# section, with the wall clock's (WALL_TARGET for every scenario with a
# ratio); a benchmark, so nothing fails on them.
TARGETS = {"full": 0.97, "holes": 0.85, "sparse": 0.60, "pmd_mapped": 0.60,
           "batch32_vs_calls": 0.97}
WALL_TARGET = 1.00
FLAT = 0.10  # per-extent cost flat within +-10 % from 1 to 512 extents


def quantile(sorted_v, q):
    """Linear interpolation between closest ranks, as numpy's default."""
    n = len(sorted_v)
    if not n:
        return None
    k = q * (n - 1)
    i = int(math.floor(k))
    if i + 1 < n:
        return sorted_v[i] + (k - i) * (sorted_v[i + 1] - sorted_v[i])
    return sorted_v[-1]


def med(v):
    return quantile(sorted(v), 0.5)


def load(path):
    """The meta line, the host line and the scenario rows (by key) of one boot."""
    meta, host, rows, bad = {}, {}, {}, 0
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                bad += 1  # a console line cut by a kernel message
                continue
            if "meta" in obj:
                meta = obj
            elif "host" in obj:
                host = obj
            elif "scenario" in obj:
                rows[obj["scenario"]] = obj
    order = [k for k in rows]
    return {"meta": meta, "host": host, "rows": rows, "order": order, "bad": bad}


def stats(row):
    """Figures of one scenario in one boot."""
    if row is None or "skipped" in row:
        return None
    if row["kind"] == "floor":
        v = sorted(row.get("floor_us", []))
        return {
            "n": len(v),
            "floor": quantile(v, 0.5),
            "floor_p25": quantile(v, 0.25),
            "floor_p75": quantile(v, 0.75),
            "failed": row.get("failed", 0),
            "why": row.get("why", ""),
        }
    r, c, first = row["rust_us"], row["c_us"], row["rust_first"]
    ratios = [a / b for a, b in zip(r, c) if b > 0]
    s = sorted(ratios)
    ext = row.get("extents", 1)
    rf = [x for x, f in zip(ratios, first) if f]
    cf = [x for x, f in zip(ratios, first) if not f]
    st = {
        "n": len(s),
        "c": med(c),
        "rust": med(r),
        "ratio": quantile(s, 0.5),
        "p25": quantile(s, 0.25),
        "p75": quantile(s, 0.75),
        "min": s[0] if s else None,
        "max": s[-1] if s else None,
        "rust_first": med(rf),
        "c_first": med(cf),
        "failed_c": row.get("failed_c", 0),
        "failed_rust": row.get("failed_rust", 0),
        "why_c": row.get("why_c", ""),
        "why_rust": row.get("why_rust", ""),
        "pairs": row.get("pairs", 0),
        "extents": ext,
    }
    if s:
        pe_c = sorted(x / ext for x in c)
        pe_r = sorted(x / ext for x in r)
        st.update(
            c_pe=quantile(pe_c, 0.5), c_pe_p25=quantile(pe_c, 0.25), c_pe_p75=quantile(pe_c, 0.75),
            r_pe=quantile(pe_r, 0.5), r_pe_p25=quantile(pe_r, 0.25), r_pe_p75=quantile(pe_r, 0.75),
        )
    if "retracted_c" in row:
        st["retracted"] = (row["retracted_c"], row["retracted_rust"])
    return st


def rnd(x, d=3):
    return None if x is None else round(x, d)


def fmt(x, spec, none="-"):
    return none if x is None else format(x, spec)


def main():
    out = sys.argv[1]
    boots = {m: load(os.path.join(out, "raw-%s.jsonl" % m)) for m in MODES}
    boots = {m: b for m, b in boots.items() if b is not None}
    if not boots:
        sys.exit("report.py: no raw results in %s" % out)
    # Scenario order and names: as the guest ran them.
    order, info = [], {}
    for b in boots.values():
        for k in b["order"]:
            if k not in info:
                order.append(k)
                info[k] = b["rows"][k]
    st = {m: {k: stats(b["rows"].get(k)) for k in order} for m, b in boots.items()}

    def get(mode, key):
        return st.get(mode, {}).get(key)

    full = {m: get(m, "full") for m in MODES}
    floor = {m: get(m, "floor") for m in MODES}

    # --- result.json ---------------------------------------------------------
    rows = []
    for k in order:
        r = info[k]
        j = {"scenario": k, "name": r["name"], "kind": r["kind"]}
        w, i = get("wall", k), get("icount", k)
        if "skipped" in r:
            j.update(skipped=r["skipped"], c_median_us=None, rust_median_us=None, ratio=None,
                     ratio_p25=None, ratio_p75=None, icount_ratio=None, icount_ratio_p25=None,
                     icount_ratio_p75=None, samples=0, icount_samples=0)
        elif r["kind"] == "floor":
            j.update(c_median_us=None, rust_median_us=None, ratio=None, ratio_p25=None,
                     ratio_p75=None, icount_ratio=None,
                     samples=w["n"] if w else 0,
                     floor_median_us=rnd(w and w["floor"], 1),
                     floor_p25_us=rnd(w and w["floor_p25"], 1),
                     floor_p75_us=rnd(w and w["floor_p75"], 1),
                     icount_floor_median_us=rnd(i and i["floor"], 1),
                     icount_samples=i["n"] if i else 0)
            for m, pre in (("wall", ""), ("icount", "icount_")):
                f, fu = floor[m], full[m]
                if f and fu and f["floor"] and fu["n"]:
                    j[pre + "full_c_over_floor"] = rnd(fu["c"] / f["floor"], 2)
                    j[pre + "full_rust_over_floor"] = rnd(fu["rust"] / f["floor"], 2)
                    if fu["c"] > f["floor"]:
                        j[pre + "full_ratio_above_floor"] = rnd(
                            (fu["rust"] - f["floor"]) / (fu["c"] - f["floor"]))
        else:
            j.update(extents=r.get("extents"), c_calls=r.get("c_calls"),
                     c_median_us=rnd(w and w["c"], 1), rust_median_us=rnd(w and w["rust"], 1),
                     ratio=rnd(w and w["ratio"]), ratio_p25=rnd(w and w["p25"]),
                     ratio_p75=rnd(w and w["p75"]),
                     icount_ratio=rnd(i and i["ratio"]),
                     icount_ratio_p25=rnd(i and i["p25"]), icount_ratio_p75=rnd(i and i["p75"]),
                     icount_c_median_us=rnd(i and i["c"], 1),
                     icount_rust_median_us=rnd(i and i["rust"], 1),
                     samples=w["n"] if w else 0, icount_samples=i["n"] if i else 0,
                     failed_c=sum(x["failed_c"] for x in (w, i) if x),
                     failed_rust=sum(x["failed_rust"] for x in (w, i) if x))
            if r["kind"] == "scale":
                j.update(c_per_extent_us=rnd(w and w.get("c_pe"), 1),
                         rust_per_extent_us=rnd(w and w.get("r_pe"), 1),
                         icount_c_per_extent_us=rnd(i and i.get("c_pe"), 1),
                         icount_rust_per_extent_us=rnd(i and i.get("r_pe"), 1))
            if k in TARGETS:
                j["target_icount_ratio"] = TARGETS[k]
        rows.append(j)
    with open(os.path.join(out, "result.json"), "w", encoding="utf-8") as f:
        for j in rows:
            f.write(json.dumps(j) + "\n")

    # --- result.txt ----------------------------------------------------------
    L = []
    p = L.append
    meta = next((b["meta"] for b in boots.values() if b["meta"]), {})
    p("khugepaged_rs collapse benchmark: Rust (write to debugfs collapse) vs C (madvise MADV_COLLAPSE)")
    p("kernel: %s" % meta.get("kernel", "?"))
    p("cpu: %s, %s online" % (meta.get("cpu", "?"), meta.get("cpus", "?")))
    p("module: %s" % meta.get("module", "?"))
    p("shmem_enabled: %s; shmem mTHP sizes enabled: %s" % (meta.get("shmem_enabled", "?"),
                                                         meta.get("shmem_mthp", "?")))
    p("clocksource: %s; floor copy: %s" % (meta.get("clocksource", "?"), meta.get("floor_copy", "?")))
    desc = {"wall": "QEMU TCG, 2 vCPUs, one host thread each: guest time is host time",
            "icount": "QEMU TCG -icount shift=0,sleep=off, one host thread: guest time is "
                      "instructions executed (1 ns each)"}
    for m in MODES:
        b = boots.get(m)
        if not b:
            p("%-7s boot: not run" % m)
            continue
        h, mt = b["host"], b["meta"]
        p("%-7s boot: %s" % (m, desc[m]))
        p("         %s pairs per scenario (fewer above 8 extents), %s warm-up (1 at 32"
          " extents, none from 64);" % (mt.get("samples", "?"), mt.get("warmup", "?")))
        p("         host load %s -> %s; %s s; VM exit status %s%s" % (
              h.get("load_before", "?"),
              h.get("load_after", "?"), h.get("wall_s", "?"), h.get("vm_rc", "?"),
              "; %d console lines unreadable" % b["bad"] if b["bad"] else ""))
    p("")
    hdr = ("%-26s %-14s | %9s %9s %6s %9s %5s | %9s %9s %6s %9s %5s | %7s" %
           ("scenario", "kind", "C", "Rust", "Rust/C", "ratio", "pairs",
            "C", "Rust", "Rust/C", "ratio", "pairs", "failed"))
    p(hdr)
    p("%-26s %-14s | %9s %9s %6s %9s %5s | %9s %9s %6s %9s %5s | %7s" %
      ("", "", "med (us)", "med (us)", "median", "p25-p75", "",
       "med (us)", "med (us)", "median", "p25-p75", "", "C/Rust"))
    p("%-26s %-14s | %-45s | %-45s |" % ("", "", "wall clock", "icount (deterministic)"))
    p("-" * len(hdr))
    for k in order:
        r = info[k]
        if "skipped" in r:
            p("%-26s %-14s | skipped: %s" % (r["name"], r["kind"], r["skipped"]))
            continue
        if r["kind"] == "floor":
            cols = []
            for m in MODES:
                f = get(m, k)
                cols.append("%9s %9s %6s %9s %5s" % (
                    fmt(f and f["floor"], ".0f"), "(copy)", "", "",
                    "%d" % f["n"] if f else "-"))
            p("%-26s %-14s | %s | %s |" % (r["name"], r["kind"], cols[0], cols[1]))
            continue
        cols, fc, fr = [], 0, 0
        for m in MODES:
            s = get(m, k)
            if not s:
                cols.append("%9s %9s %6s %9s %5s" % ("-", "-", "-", "-", "-"))
                continue
            fc += s["failed_c"]
            fr += s["failed_rust"]
            iq = "%.2f-%.2f" % (s["p25"], s["p75"]) if s["n"] else "-"
            cols.append("%9s %9s %6s %9s %5s" % (
                fmt(s["c"], ".0f"), fmt(s["rust"], ".0f"), fmt(s["ratio"], ".2f"), iq,
                "%d/%d" % (s["n"], s["pairs"])))
        p("%-26s %-14s | %s | %s | %7s" % (r["name"], r["kind"], cols[0], cols[1],
                                           "%d/%d" % (fc, fr)))
    p("")
    p("Rust/C: median of the per-pair ratios Rust time / C time (< 1: Rust faster); p25-p75:")
    p("their quartiles. C and Rust medians are over the same pairs, separately, so their")
    p("quotient is not the ratio. icount times are guest microseconds at one instruction")
    p("per nanosecond: thousands of instructions executed, the same from run to run.")
    p("batch_vs_calls: one 64 MiB write against 32 madvise() calls of 2 MiB (timed together);")
    p("batch_vs_one: against one 64 MiB madvise(). A pair with a failed call is left out.")

    # Cost per extent.
    scale = [k for k in order if info[k]["kind"] == "scale" and "skipped" not in info[k]]
    if scale:
        p("")
        p("cost per extent (median call time / extents, us; icount: thousands of instructions),")
        p("and relative to the 1-extent cost of the same path (flat: within +-%d %%):" % (FLAT * 100))
        p("  %7s | %9s %9s %7s %7s | %9s %9s %7s %7s" % (
            "extents", "C wall", "Rust wall", "C rel", "R rel", "C icount", "R icount", "C rel", "R rel"))
        base = {m: get(m, scale[0]) for m in MODES}
        for k in scale:
            cols = []
            for m in MODES:
                s, b0 = get(m, k), base[m]
                if not s or not s["n"]:
                    cols.append("%9s %9s %7s %7s" % ("-", "-", "-", "-"))
                    continue
                rel = lambda a, b: fmt(a / b if b else None, ".2f")
                cols.append("%9.0f %9.0f %7s %7s" % (
                    s["c_pe"], s["r_pe"],
                    rel(s["c_pe"], b0 and b0.get("c_pe")), rel(s["r_pe"], b0 and b0.get("r_pe"))))
            p("  %7d | %s | %s" % (info[k]["extents"], cols[0], cols[1]))

    # Floor.
    if any(floor.values()):
        p("")
        p("floor: 512 small pages of a shmem file copied into an anonymous huge page, one")
        p("4 KiB copy at a time with the kernel's instruction (%s), timed in user space;" %
          meta.get("floor_copy", "?"))
        p("the data movement every collapse of a full extent does. Each path above it (from")
        p("the medians; Rust/C above the floor = (Rust - floor) / (C - floor)):")
        for m in MODES:
            f, fu = floor[m], full[m]
            if not f or f["floor"] is None:
                continue
            line = "  %-7s floor %6.0f us (p25-p75 %.0f-%.0f, %d samples)" % (
                m, f["floor"], f["floor_p25"], f["floor_p75"], f["n"])
            p(line)
            if fu and fu["n"]:
                line = "          full extent: C %.2fx the floor (+%.0f us), Rust %.2fx (+%.0f us)" % (
                    fu["c"] / f["floor"], fu["c"] - f["floor"],
                    fu["rust"] / f["floor"], fu["rust"] - f["floor"])
                if fu["c"] > f["floor"]:
                    line += "; Rust/C above the floor %.2f" % (
                        (fu["rust"] - f["floor"]) / (fu["c"] - f["floor"]))
                p(line)

    # Targets.
    tl = []
    for k in order:
        if "skipped" in info[k] or info[k]["kind"] == "floor":
            continue
        for m, t in (("icount", TARGETS.get(k)), ("wall", WALL_TARGET)):
            s = get(m, k)
            if t is None or not s or not s.get("n"):
                continue
            d = s["ratio"] - t
            tl.append("  %-7s %-26s %.3f  target %.2f: %s" % (
                m, info[k]["name"], s["ratio"], t,
                "met" if d <= 0 else "missed by %.3f" % d))
    for m in MODES:
        sc = [get(m, k) for k in scale]
        sc = [x for x in sc if x and x["n"]]
        if len(sc) > 1 and sc[0]["r_pe"]:
            rel = [x["r_pe"] / sc[0]["r_pe"] for x in sc]
            worst = max(abs(r - 1) for r in rel)
            tl.append("  %-7s %-26s %.2f-%.2f of 1 extent's: %s" % (
                m, "Rust per extent", min(rel), max(rel),
                "flat (within +-%d %%)" % (FLAT * 100) if worst <= FLAT else "not flat"))
    if tl:
        p("")
        p("targets (Rust/C median; icount by scenario, wall clock %.2f for all):" % WALL_TARGET)
        L.extend(tl)

    p("")
    p("order check: median ratio when Rust went first / when C went first, and their")
    p("geometric mean (cancels a constant first/second-position factor):")
    for m in MODES:
        for k in order:
            s = get(m, k)
            if not s or "ratio" not in s or not s["n"]:
                continue
            a, b = s["rust_first"], s["c_first"]
            g = math.sqrt(a * b) if a and b else None
            p("  %-7s %-26s %s / %s  -> %s" % (m, info[k]["name"], fmt(a, ".2f"), fmt(b, ".2f"),
                                             fmt(g, ".2f")))
    for m in MODES:
        for k in order:
            s = get(m, k)
            if not s:
                continue
            if "failed_c" in s:
                for path, n, why in (("C", s["failed_c"], s["why_c"]),
                                     ("Rust", s["failed_rust"], s["why_rust"])):
                    if n:
                        p("failed (%s): %s, %s: %d, first: %s" % (m, info[k]["name"], path, n, why))
                if "retracted" in s:
                    p("%s (%s): the other mappings' page tables were all retracted (Rss 0 after)"
                      " in %d/%d C and %d/%d Rust samples" % (
                          info[k]["name"], m, s["retracted"][0], s["n"], s["retracted"][1], s["n"]))
            elif s.get("failed"):
                p("failed (%s): %s: %d, last: %s" % (m, info[k]["name"], s["failed"], s["why"]))
    text = "\n".join(L) + "\n"
    with open(os.path.join(out, "result.txt"), "w", encoding="utf-8") as f:
        f.write(text)

    plot(out, order, info, get, floor)


def plot(out, order, info, get, floor):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib missing (make setup installs it); no bench.png",
              file=sys.stderr)
        return
    style = {"wall": dict(color="tab:blue", marker="o", label="wall clock"),
             "icount": dict(color="tab:orange", marker="s", label="icount (deterministic)")}
    fig = plt.figure(figsize=(13, 9.5))
    gs = fig.add_gridspec(2, 2, height_ratios=[1.15, 1], hspace=0.55, wspace=0.25)

    # Ratio per scenario.
    ax = fig.add_subplot(gs[0, :])
    keys = [k for k in order if info[k]["kind"] != "floor"]
    for m, off in (("wall", -0.12), ("icount", 0.12)):
        xs, ys, lo, hi = [], [], [], []
        for x, k in enumerate(keys):
            s = get(m, k)
            if not s or not s.get("n"):
                continue
            xs.append(x + off)
            ys.append(s["ratio"])
            lo.append(s["ratio"] - s["p25"])
            hi.append(s["p75"] - s["ratio"])
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], linestyle="none", capsize=4, markersize=6,
                        **style[m])
    tx = [(x, TARGETS[k]) for x, k in enumerate(keys)
          if k in TARGETS and "skipped" not in info[k]]
    for n, (x, t) in enumerate(tx):
        ax.hlines(t, x - 0.35, x + 0.35, colors="tab:red", linestyles="dashed", linewidth=1.2,
                  label="target" if n == 0 else None)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    for x, k in enumerate(keys):
        if "skipped" in info[k]:
            ax.text(x, 1.0, "not yet\nsupported", ha="center", va="center", fontsize=8,
                    color="grey", bbox=dict(facecolor="white", edgecolor="lightgrey"))
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([info[k]["name"] for k in keys], rotation=28, ha="right", fontsize=9)
    ax.set_xlim(-0.6, len(keys) - 0.4)
    ax.set_ylabel("Rust / C time (median, p25-p75)")
    ax.set_title("khugepaged_rs vs MADV_COLLAPSE: per-pair time ratio (< 1: Rust faster)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)

    # Cost per extent against extent count, one panel per mode.
    scale = [k for k in order if info[k]["kind"] == "scale" and "skipped" not in info[k]]
    for col, m in enumerate(("wall", "icount")):
        ax = fig.add_subplot(gs[1, col])
        for path, key, color in (("C (MADV_COLLAPSE)", "c_pe", "tab:green"),
                                 ("Rust (khugepaged_rs)", "r_pe", "tab:purple")):
            xs, ys, lo, hi = [], [], [], []
            for k in scale:
                s = get(m, k)
                if not s or not s.get("n"):
                    continue
                xs.append(info[k]["extents"])
                ys.append(s[key])
                lo.append(s[key] - s[key + "_p25"])
                hi.append(s[key + "_p75"] - s[key])
            if xs:
                ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, color=color, label=path)
                ax.fill_between(xs, [ys[0] * (1 - FLAT)] * len(xs), [ys[0] * (1 + FLAT)] * len(xs),
                                color=color, alpha=0.08)
        f = floor.get(m)
        if f and f.get("floor"):
            ax.axhline(f["floor"], color="black", linestyle=":", linewidth=1,
                       label="floor: copy 512 pages")
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 8, 64, 512])
        ax.set_xticklabels(["1\n2 MiB", "8\n16 MiB", "64\n128 MiB", "512\n1 GiB"])
        ax.set_ylim(bottom=0)
        ax.set_xlabel("extents in one call")
        ax.set_ylabel("us per extent" if m == "wall" else "guest us per extent (k instructions)")
        ax.set_title("cost per extent, %s (band: +-%d %% of 1 extent)" % (
            "wall clock" if m == "wall" else "icount", FLAT * 100), fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", color="grey")
    fig.savefig(os.path.join(out, "bench.png"), dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()
