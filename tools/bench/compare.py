#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Set several make bench runs side by side.

    compare.py RUN1/result.json RUN2/result.json ...

For every scenario: the wall-clock and the icount Rust/C ratio of each run,
and the spread (largest - smallest) of each (icount to three decimals);
for the floor row, the floor in microseconds. The icount spread is what says whether runs repeat.
"""

import json
import sys


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    runs = [load(p) for p in sys.argv[1:]]
    if not runs:
        sys.exit(__doc__)
    n = len(runs)
    by_key = [{r["scenario"]: r for r in run} for run in runs]
    width = 7 * n
    print("%-26s  %-*s  %6s  %-*s  %6s" % ("", width, "wall-clock Rust/C", "",
                                         width, "icount Rust/C", ""))
    print("%-26s  %s  %6s  %s  %6s" % ("scenario", "".join("%7s" % ("run %d" % (i + 1))
                                                           for i in range(n)),
                                     "spread", "".join("%7s" % ("run %d" % (i + 1))
                                                       for i in range(n)), "spread"))
    for row in runs[0]:
        k = row["scenario"]
        rows = [b.get(k, {}) for b in by_key]
        if "skipped" in row:
            print("%-26s  skipped: %s" % (row["name"], row["skipped"]))
            continue
        if row["kind"] == "floor":
            fields = (("floor_median_us", "%7.0f"), ("icount_floor_median_us", "%7.0f"))
        else:
            # The icount ratios repeat to the third decimal: show it.
            fields = (("ratio", "%7.2f"), ("icount_ratio", "%7.3f"))
        cols = []
        for f, fmt in fields:
            v = [r.get(f) for r in rows]
            cols.append("".join(fmt % x if x is not None else "%7s" % "-" for x in v))
            got = [x for x in v if x is not None]
            cols.append(fmt.replace("7", "6") % (max(got) - min(got)) if len(got) > 1 else
                        "%6s" % "-")
        name = row["name"] + (" (us)" if row["kind"] == "floor" else "")
        print("%-26s  %s  %s  %s  %s" % (name, cols[0], cols[1], cols[2], cols[3]))


if __name__ == "__main__":
    main()
