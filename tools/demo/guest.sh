#!/bin/sh
# Runs inside the demo VM (see tools/demo/run).
set -e
d=/sys/kernel/debug/khugepaged_rs
echo "## uname -r: $(uname -r)"
echo "## insmod khugepaged_rs.ko"
insmod /krs/khugepaged_rs.ko
ls -l $d
echo "## head -4 $d/status"
head -4 $d/status
/krs/collapse_demo
echo "## $d/stats (non-zero lines)"
grep -v ' 0$' $d/stats | sed 's/^/   /'
rmmod khugepaged_rs
