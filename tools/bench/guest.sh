#!/bin/sh
# Runs inside the bench VM (see tools/bench/run): load khugepaged_rs and run
# the benchmark: collapse_bench SAMPLES [WARMUP [ONLY]].
set -e
# No swapping while timing: the 1 GiB scenario must stay in memory.
swapoff -a 2>/dev/null || true
insmod /krs/khugepaged_rs.ko
rc=0
/krs/collapse_bench "$@" || rc=$?
rmmod khugepaged_rs
exit $rc
