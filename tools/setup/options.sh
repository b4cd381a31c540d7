# shellcheck shell=bash
# The workloads' settings from the environment, shared by the stock and the
# debug kernel's targets: actors_options for every workload that can run in
# the busy kernel; stress_options for `make stress` (tools/stress/run) and
# `make stress-debug` (tools/endurance/run stress); soak_options for `make
# soak` (tools/soak/run) and `make soak-debug` (tools/endurance/run soak).
#
#   ACTORS=all|none|khugepaged,compact,migrate,memcg,drop,mthp: the busy
#       kernel (khugepaged_rs_actors, Documentation/khugepaged_rs.rst,
#       "Busy kernel") around the workload; none: the wrapper with no actor
#       (its report gives the module's races alone); not set: the workload
#       alone. The VM gets two NUMA nodes when migrate is among them.
#   MEMCG_MB=N: the memcg actor's memory.max (default 48 MiB, below the
#       default 4 stress workers' 64 MiB of files).
#
#   DURATION=N (stress): seconds (default 180).
#   BACKING (stress): shmem|tmpfs|xfs|ext4|all, or a comma-separated list
#       (default shmem): the workers' files (khugepaged_rs_stress -b); "all"
#       is shmem,xfs,ext4, and tmpfs too when the mthp actor runs (its
#       huge=within_size mount at /mnt/tmpfs).
#   INJECT=0 (stress): no injection points armed (-I), so that every
#       rollback in the module's stats is a race of the workers or of the
#       actors.
#
#   SEEDS=N, START=S (soak): seeds START..START+N-1 (default 2000 from 1).
#   BACKING (soak): shmem|xfs|ext4|all (default shmem; all: the three, one
#       after the other, in one VM).
#   CPUS=1|2 (soak): khugepaged_rs_diff --cpus.

# Sets actors, memcg, numa (1 or 2) and wrap: an array, the actors' command
# line to put before CMD (/krs/khugepaged_rs_actors in the VM), or empty.
actors_options() {
	actors=${ACTORS:-}
	[[ $actors =~ ^[a-z,]*$ ]] || die "ACTORS must be all, none or a list of khugepaged,compact,migrate,memcg,drop,mthp"
	memcg=${MEMCG_MB:-}
	[ -z "$memcg" ] || [[ $memcg =~ ^[1-9][0-9]*$ ]] || die "MEMCG_MB must be a number of MiB"
	numa=1
	[[ ,$actors, == *,all,* || ,$actors, == *,migrate,* ]] && numa=2
	wrap=()
	[ -n "$actors" ] && wrap=(/krs/khugepaged_rs_actors -a "$actors" ${memcg:+-m "$memcg"})
	return 0
}

# actors_options, and duration, backing and inject (an array: the stress's
# own option).
stress_options() {
	actors_options
	duration=${DURATION:-180}
	[[ $duration =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive number of seconds"
	backing=${BACKING:-shmem}
	[[ $backing =~ ^[a-z0-9,]+$ ]] || die "BACKING must be shmem, tmpfs, xfs, ext4, all or a list"
	if [ "$backing" = all ]; then
		backing=shmem,xfs,ext4
		[[ ,$actors, == *,all,* || ,$actors, == *,mthp,* ]] && backing=shmem,tmpfs,xfs,ext4
	fi
	inject=()
	case ${INJECT:-1} in
	0) inject=(-I) ;;
	1) ;;
	*) die "INJECT must be 0 or 1" ;;
	esac
}

# actors_options, and seeds, backings (words) and soak_cmd: an array, the
# command the VM runs from /krs (the actors' wrap, then a shell running
# khugepaged_rs_diff on each backing in turn).
soak_options() {
	actors_options
	seeds=${SEEDS:-2000}
	local first=${START:-1} cpus=${CPUS:-1}
	[[ $seeds =~ ^[1-9][0-9]*$ ]] || die "SEEDS must be a positive number"
	[[ $first =~ ^[1-9][0-9]*$ ]] || die "START must be a positive number"
	[[ $cpus =~ ^[12]$ ]] || die "CPUS must be 1 or 2 (the VM has two)"
	case ${BACKING:-shmem} in
	shmem|xfs|ext4) backings=${BACKING:-shmem} ;;
	all) backings="shmem xfs ext4" ;;
	*) die "BACKING must be shmem, xfs, ext4 or all" ;;
	esac
	soak_cmd=(${wrap[@]+"${wrap[@]}"} sh -c 'rc=0; for b in '"$backings"'; do
		selftests/khugepaged_rs_diff --backing "$b" --start '"$first"' --seeds '"$seeds"' \
			--cpus '"$cpus"' || rc=1; done; exit $rc')
}
