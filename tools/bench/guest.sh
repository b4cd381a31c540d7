#!/bin/sh
# Runs inside the bench VM (see tools/bench/run, tools/bench/profile): load
# khugepaged_rs and run a benchmark program, then unload the module:
#   bench-guest [PROGRAM] ARGS...
# PROGRAM (an absolute path) defaults to the benchmark,
# collapse_bench SAMPLES [WARMUP [ONLY]].
set -e
prog=/krs/collapse_bench
case ${1:-} in /*) prog=$1; shift ;; esac
# No swapping while timing: the 1 GiB scenario must stay in memory.
swapoff -a 2>/dev/null || true
insmod /krs/khugepaged_rs.ko
rc=0
"$prog" "$@" || rc=$?
rmmod khugepaged_rs
exit $rc
