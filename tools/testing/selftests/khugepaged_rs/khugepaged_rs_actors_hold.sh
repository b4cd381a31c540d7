#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# khugepaged_rs_actors' hold (Documentation/khugepaged_rs.rst, "Holding the
# actors"), the protocol by which make faults' clean collapse runs in an
# idle kernel: under the khugepaged, compact, memcg and drop actors, this
# script (their command) asks for a hold, then checks that each actor
# acknowledged it with its pressure off (khugepaged asleep in its own wait
# with scan_sleep_millisecs an hour, compaction_proactiveness 0, the memcg's
# memory.max lifted); it ends the hold and checks that each put its setting
# back. The actors' report must count one hold each.
KHD=/sys/kernel/mm/transparent_hugepage/khugepaged
CG=/sys/fs/cgroup/krs-busy
PRO=/proc/sys/vm/compaction_proactiveness
ACTORS="khugepaged compact memcg drop"
MEMCG_MB=64

fail() {
	echo "# FAIL: $*"
	exit 1
}

# wait_for SECONDS COMMAND...: COMMAND true within SECONDS, 0.1 s apart.
wait_for() {
	n=$(($1 * 10))
	shift
	while ! "$@"; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}

all_held() {
	for a in $ACTORS; do
		[ -e "$KRS_ACTORS_HOLD/held-$a" ] || return 1
	done
}

none_held() {
	for a in $ACTORS; do
		[ ! -e "$KRS_ACTORS_HOLD/held-$a" ] || return 1
	done
}

# expect FILE VALUE WHEN
expect() {
	v=$(cat "$1")
	[ "$v" = "$2" ] || fail "$WHEN: $1 is $v, not $2"
}

if [ "${1:-}" != --inside ]; then
	[ "$(id -u)" -eq 0 ] || { echo "# SKIP: not root"; exit 4; }
	[ -w "$KHD/scan_sleep_millisecs" ] || { echo "# SKIP: no khugepaged knobs"; exit 4; }
	out=$("$(dirname "$0")/khugepaged_rs_actors" -a "$(echo $ACTORS | tr ' ' ,)" \
		-m "$MEMCG_MB" -- "$0" --inside 2>&1)
	rc=$?
	echo "$out" | sed 's/^#* */# /'
	[ "$rc" -eq 0 ] || fail "khugepaged_rs_actors exited $rc"
	for a in $ACTORS; do
		echo "$out" | grep -q "^#   $a:.*, holds 1\(,\|\$\)" ||
			fail "the report does not count $a's one hold"
	done
	echo "# ok: every actor held once, and back"
	exit 0
fi

[ -n "$KRS_ACTORS_HOLD" ] || fail "no KRS_ACTORS_HOLD from khugepaged_rs_actors"
WHEN="before the hold"
expect "$KHD/scan_sleep_millisecs" 0
expect "$PRO" 100
expect "$CG/memory.max" $((MEMCG_MB << 20))

start=$(date +%s)
: > "$KRS_ACTORS_HOLD/hold"
# khugepaged's last scan and its sleep: seconds on an idle VM; the actor's
# own bound on waiting for it is 60 s, which this must not reach.
wait_for 50 all_held || fail "not every actor acknowledged the hold in 50 s: $(ls "$KRS_ACTORS_HOLD")"
echo "# held after $(($(date +%s) - start)) s"
WHEN="held"
expect "$KHD/scan_sleep_millisecs" 3600000
expect "$PRO" 0
expect "$CG/memory.max" max
for p in /proc/[0-9]*; do
	[ "$(cat "$p/comm" 2>/dev/null)" = khugepaged ] || continue
	state=$(sed 's/.*) \(.\).*/\1/' "$p/stat")
	wchan=$(cat "$p/wchan")
	echo "# khugepaged: state $state, wchan $wchan"
	[ "$state" = S ] && [ "${wchan#khugepaged}" != "$wchan" ] ||
		fail "held, but khugepaged is not asleep in its wait"
done

rm "$KRS_ACTORS_HOLD/hold"
wait_for 30 none_held || fail "not every actor came back in 30 s: $(ls "$KRS_ACTORS_HOLD")"
WHEN="after the hold"
expect "$KHD/scan_sleep_millisecs" 0
expect "$PRO" 100
expect "$CG/memory.max" $((MEMCG_MB << 20))
exit 0
