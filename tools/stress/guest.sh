#!/bin/sh
# Runs inside the stress VM (see tools/stress/run): load the module, run the
# stress program with the given arguments (under khugepaged_rs_actors when
# actors are asked for), unload the module.
#
#   stress-guest [-a ACTORS] [-m MEMCG_MB] -- STRESS-ARGS...
set -e
actors= memcg=
while [ $# -gt 0 ]; do
	case $1 in
	-a) actors=$2; shift 2 ;;
	-m) memcg=$2; shift 2 ;;
	--) shift; break ;;
	*) break ;;
	esac
done
echo "## insmod khugepaged_rs.ko"
insmod /krs/khugepaged_rs.ko
rc=0
if [ -n "$actors" ]; then
	/krs/khugepaged_rs_actors -a "$actors" ${memcg:+-m "$memcg"} -- \
		/krs/khugepaged_rs_stress "$@" || rc=$?
else
	/krs/khugepaged_rs_stress "$@" || rc=$?
fi
echo "## rmmod khugepaged_rs"
rmmod khugepaged_rs
exit $rc
