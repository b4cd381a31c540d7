#!/bin/sh
# Runs inside the stress VM (see tools/stress/run): load the module, run the
# stress program with the given arguments, unload the module.
set -e
echo "## insmod khugepaged_rs.ko"
insmod /krs/khugepaged_rs.ko
rc=0
/krs/khugepaged_rs_stress "$@" || rc=$?
echo "## rmmod khugepaged_rs"
rmmod khugepaged_rs
exit $rc
