#!/bin/sh
# Runs inside the stress VM (see tools/stress/run): load the module, run the
# stress program with the given arguments (under the actors' command line
# WRAP, khugepaged_rs_actors, when actors are asked for), unload the module.
#
#   stress-guest [WRAP...] -- STRESS-ARGS...
set -e
wrap=
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	wrap="$wrap $1"
	shift
done
[ $# -gt 0 ] && shift
echo "## insmod khugepaged_rs.ko"
insmod /krs/khugepaged_rs.ko
rc=0
# shellcheck disable=SC2086 # WRAP is words: no argument of it holds a space
$wrap /krs/khugepaged_rs_stress "$@" || rc=$?
echo "## rmmod khugepaged_rs"
rmmod khugepaged_rs
exit $rc
