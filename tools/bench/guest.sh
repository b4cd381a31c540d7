#!/bin/sh
# Runs inside the bench VM (see tools/bench/run): load khugepaged_rs and run
# the benchmark with the sample count given on the command line.
set -e
insmod /krs/khugepaged_rs.ko
rc=0
/krs/collapse_bench "${1:-30}" || rc=$?
rmmod khugepaged_rs
exit $rc
