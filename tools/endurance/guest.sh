#!/bin/sh
# Runs inside the debug VM (tools/endurance/run): one workload between the
# module's insmod and rmmod, and the checks that nothing leaked.
#
#   endurance-guest [--tolerance PAGES] -- CMD...
#
#  1. Before insmod: the module is loaded and unloaded once (what the kernel
#     allocates for the first module loaded stays); kmemleak scans twice and
#     is cleared (what the boot left is not the module's); memory is settled
#     and the free pages counted.
#  2. insmod; the module's address range is noted (its kallsyms).
#  3. CMD runs; its exit status is the run's unless a check below fails.
#  4. kmemleak scans twice with the module loaded (its frames have names).
#  5. rmmod; kmemleak scans twice again: objects that only the module's data
#     pointed to are unreferenced now, and its frames show as bare addresses
#     in its former range.
#  6. Memory is settled and the free pages counted again.
#
# A kmemleak report with a frame of the module fails the run (exit 5), and
# so does a drop in free pages larger than the tolerance (default 1024 pages,
# 4 MiB; Documentation/khugepaged_rs.rst, "Endurance", says why): a folio
# reference the module leaked keeps its pages off the free lists for good.
#
# Settling: sync, drop caches, shrink every slab cache (which also empties
# KASAN's quarantine of that cache), compact, fold the per-CPU vm counters,
# swap off for the count and on again. Free pages = nr_free_pages plus the
# pages on the per-CPU free lists (/proc/zoneinfo "count:"); the larger of
# two counts, each after its own settling. What the debug tools keep for
# their own bookkeeping is counted apart: the stack depot's growth (its
# pools hold every distinct stack trace saved, for good) and kmemleak's
# metadata slabs (one kmemleak_object per object alive anywhere in the
# kernel): free pages before - free pages after - both growths.
tolerance=1024
while [ $# -gt 0 ]; do
	case $1 in
	--tolerance) tolerance=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "usage: endurance-guest [--tolerance PAGES] -- CMD..." >&2; exit 2 ;;
	esac
done
KML=/sys/kernel/debug/kmemleak
failed=0
say() { echo "# endurance: $*"; }

settle() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
	for s in /sys/kernel/slab/*/shrink; do echo 1 > "$s" 2>/dev/null; done
	echo 1 > /proc/sys/vm/compact_memory 2>/dev/null
	echo 1 > /proc/sys/vm/stat_refresh 2>/dev/null
}

# Free pages after settling, swap off meanwhile (pages come back from zram).
count_free() {
	swaps=$(awk 'NR > 1 {print $1}' /proc/swaps)
	for s in $swaps; do swapoff "$s"; done
	best=0
	for i in 1 2; do
		settle
		n=$(( $(awk '$1 == "nr_free_pages" {print $2}' /proc/vmstat) +
		      $(awk '$1 == "count:" {n += $2} END {print n + 0}' /proc/zoneinfo) ))
		[ "$n" -gt "$best" ] && best=$n
	done
	for s in $swaps; do swapon "$s"; done
	echo "$best"
}

# The stack depot's pages: pools of 4 pages (DEPOT_POOL_ORDER 2) that hold
# every distinct stack trace KASAN, kmemleak and lockdep saved, never freed.
depot_pages() {
	awk '$1 == "pools:" { n = $2 * 4 } END { print n + 0 }' \
		/sys/kernel/debug/stackdepot/stats 2>/dev/null || echo 0
}

# kmemleak's own slab pages (kmemleak_object, kmemleak_scan_area): one
# object per tracked allocation, so they grow with whatever the kernel's
# caches hold after a busy run. The objects they describe are counted.
kmemleak_pages() {
	slab_pages | awk '$1 ~ /^kmemleak_/ {n += $2} END {print n + 0}'
}

# "cache pages" per slab cache (/proc/slabinfo: num_slabs x pagesperslab).
slab_pages() {
	awk 'NR > 2 {print $1, $15 * $6}' /proc/slabinfo 2>/dev/null
}

# The eight caches that grew most between two slab_pages outputs.
slab_growth() {
	printf '%s\n' "$1" | awk -v after="$2" '
		BEGIN { n = split(after, l, "\n"); for (i = 1; i <= n; i++) { split(l[i], f, " "); a[f[1]] = f[2] } }
		{ d = a[$1] - $2; if (d > 0) print d, $1 }' | sort -rn | head -8 |
		while read -r d name; do say "slab grew: $name +$d pages"; done
}

meminfo() {
	awk '/^(MemFree|Shmem|ShmemHugePages|AnonPages|Slab|SUnreclaim|PageTables|Percpu|VmallocUsed|KernelStack):/ {printf "%s %s kB  ", $1, $2} END {print ""}' /proc/meminfo
}

# kmemleak: scan twice (objects younger than 5 s are not reported yet).
kml_scan() {
	sleep 6
	echo scan > $KML
	echo scan > $KML
}

# awk: the value of a string of hex digits.
HEX='function hex(s,  i, n) { n = 0; for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return n }'

# The reports of $KML in which a frame is the module's, by name or by an
# address in its range: printed, counted in $ours; the others are counted
# in $others (and the first two printed).
kml_attribute() {
	cat $KML > /tmp/kmemleak.txt
	awk -v lo="$mod_lo" -v hi="$mod_hi" -v out=/tmp/kmemleak.count "$HEX"'
	function flush() {
		if (rep == "") return
		if (mine) { n++; printf "%s", rep }
		else { o++; if (o <= 2) printf "%s", rep }
		rep = ""
	}
	/^unreferenced object/ { flush(); mine = 0 }
	{ rep = rep "#   " $0 "\n" }
	/\[khugepaged_rs\]/ { mine = 1 }
	lo != "" && match($0, /\[<ffffffff[0-9a-f]+>\]/) {
		a = hex(substr($0, RSTART + 10, 8))
		if (a >= lo + 0 && a < hi + 0) mine = 1
	}
	END { flush(); print n + 0, o + 0 > out }
	' /tmp/kmemleak.txt
	read -r ours others < /tmp/kmemleak.count
	rm -f /tmp/kmemleak.txt /tmp/kmemleak.count
}

if [ ! -w $KML ]; then
	say "no kmemleak on this kernel (the debug kernel has it)"
	exit 2
fi
# The trace ring buffer is allocated in full on first use (make faults
# traces its failures): allocate it now, before the free pages are counted.
[ -e /sys/kernel/tracing/buffer_size_kb ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
if [ -w /sys/kernel/tracing/buffer_size_kb ]; then
	kb=$(sed -n 's/.*expanded: \([0-9]*\).*/\1/p' /sys/kernel/tracing/buffer_size_kb)
	[ -n "$kb" ] && echo "$kb" > /sys/kernel/tracing/buffer_size_kb
fi
# A first load and unload, before anything is counted: what the kernel
# allocates once for the first module it loads (module text comes from the
# execmem cache, which keeps its pages) is not the module's.
insmod /krs/khugepaged_rs.ko && rmmod khugepaged_rs || exit 1
say "kmemleak: scanning what the boot left"
kml_scan
mod_lo= mod_hi=
kml_attribute
say "kmemleak before insmod: $((ours + others)) report(s), the kernel's own; cleared"
echo clear > $KML
free0=$(count_free)
depot0=$(depot_pages)
kml0=$(kmemleak_pages)
say "before insmod: free pages $free0; $(meminfo)"
slabs0=$(slab_pages)

echo "## insmod khugepaged_rs.ko"
insmod /krs/khugepaged_rs.ko || exit 1
# The module's range: from its lowest symbol to 1 MiB past its highest
# (the low 32 bits; modules live at 0xffffffffXXXXXXXX). No other module is
# loaded in this VM, so nothing else lives there.
eval "$(awk "$HEX"'
	/\[khugepaged_rs\]$/ && substr($1, 1, 8) == "ffffffff" {
		v = hex(substr($1, 9, 8)); if (lo == "" || v < lo) lo = v; if (v > hi) hi = v }
	END { if (lo != "") printf "mod_lo=%.0f mod_hi=%.0f\n", lo, hi + 1048576 }' /proc/kallsyms)"
say "module range (low 32 bits): $mod_lo..$mod_hi"

start=$(date +%s)
"$@"
rc=$?
say "workload exited $rc after $(( $(date +%s) - start )) s"

say "kmemleak with the module loaded"
kml_scan
kml_attribute
say "kmemleak after the workload: $ours report(s) attributable to khugepaged_rs, $others other(s)"
[ "$ours" -eq 0 ] || failed=1
loaded_others=$others
echo clear > $KML

echo "## rmmod khugepaged_rs"
if ! rmmod khugepaged_rs; then
	say "rmmod failed"
	failed=1
fi
kml_scan
kml_attribute
say "kmemleak after rmmod: $ours report(s) attributable to khugepaged_rs, $others other(s)"
[ "$ours" -eq 0 ] || failed=1
say "kmemleak total: attributable $(( ours )) after rmmod; unattributed $(( loaded_others + others ))"

free1=$(count_free)
say "after rmmod: free pages $free1; $(meminfo)"
# The stack depot grows with every new code path the run took (under the
# busy kernel's actors: migration, compaction, swap, memcg reclaim, each
# with its KASAN alloc/free stacks), and is never freed; kmemleak's
# metadata grows with the number of objects alive (dentries, bios, inodes
# the kernel's caches kept). Both are the debug tools' bookkeeping: their
# pages are counted apart, not against the module. Everything else is
# counted, slab included: an object the module leaks is both a kmemleak
# report and pages in its cache.
depot=$(( $(depot_pages) - depot0 ))
kml=$(( $(kmemleak_pages) - kml0 ))
say "stack depot: +$depot pages (distinct stack traces saved since, never freed)"
say "kmemleak metadata: +$kml pages (its kmemleak_object slabs)"
drop=$(( free0 - free1 - depot - kml ))
if [ "$drop" -gt "$tolerance" ]; then
	say "LEAK: $drop pages fewer free than before insmod, the debug tools' bookkeeping apart (tolerance $tolerance)"
	failed=1
else
	say "free pages: $drop fewer than before insmod, the debug tools' bookkeeping apart (tolerance $tolerance): ok"
fi
# Where the pages went, for the one who reads the report, from a quarter of
# the tolerance on: the slab caches that grew most, and memcgs removed but
# still alive (their pages and objects charged elsewhere keep them).
if [ "$drop" -gt $((tolerance / 4)) ]; then
	slab_growth "$slabs0" "$(slab_pages)"
	[ -r /sys/fs/cgroup/cgroup.stat ] &&
		say "cgroups: $(tr '\n' ' ' < /sys/fs/cgroup/cgroup.stat)"
fi

if [ "$rc" -ne 0 ]; then
	exit "$rc"
fi
if [ "$failed" -ne 0 ]; then
	say "FAILED: leak check"
	exit 5
fi
say "PASSED: no kmemleak report attributable to khugepaged_rs, free pages back"
exit 0
