# SPDX-License-Identifier: GPL-2.0
#
# khugepaged_rs: user-facing targets. Kbuild (the module itself) is in Kbuild.
#
#   make              build khugepaged_rs.ko: against the running kernel's
#                     /lib/modules/$(uname -r)/build when that tree can build
#                     Rust modules with the toolchain on PATH (CONFIG_RUST=y,
#                     the same rustc and bindgen); otherwise it says why and
#                     builds against the prepared stock tree (set-up first)
#   make KDIR=/path   build against your own built Rust-enabled tree
#   make KVER=<release>  build for that supported stock kernel (make kernels)
#                     into build/<release>/khugepaged_rs.ko; KVER= also
#                     picks the kernel of check, demo, bench, vm, soak,
#                     stress, mutants, selftests, docs (default: the first
#                     supported kernel, whose module is also copied to
#                     ./khugepaged_rs.ko)
#   make modules_install  build, then install as the kernel installs modules:
#                     /lib/modules/<release>/updates/khugepaged_rs.ko[.xz],
#                     depmod run (INSTALL_MOD_PATH=dir installs under dir)
#   make rust-analyzer    write rust-project.json (kernel crates + this one)
#                     for rust-analyzer
#   make help         this list
#   make kernels      the supported stock kernels (release, suites, toolchain)
#   make setup        toolchain root + stock kernel + prepared tree (cached)
#   make check        everything: build, clippy, rustfmt, docs and C style,
#                     host tests, kselftests in a VM through the kernel's
#                     run_kselftest.sh, then a smoke pass of every target
#                     of this list (tools/smoke, SMOKE=0 skips it); ends
#                     with "N passed, N failed"
#   make check-all    make check for every supported kernel, one after the
#                     other (the smoke pass in the first only; SMOKE=all:
#                     in each); ends with the sum, "N passed, N failed"
#   make drift        the upstream functions the module mirrors whose body
#                     changed in KVER's source (or SRC=/path/to/linux)
#                     since BASE (default: the newest verified kernel
#                     older than KVER; tools/drift/fingerprints);
#                     RECORD=1 records KVER's fingerprints as verified
#   make check-debug  the kselftests on the debug kernel (KASAN, lockdep,
#                     DEBUG_VM; built once, about an hour cold), then the
#                     debug targets' smoke pass
#   make demo         boot the stock kernel, load the module, show what it does
#   make bench        time the module's collapse against MADV_COLLAPSE in a VM,
#                     wall clock and deterministic (-icount) boots (SAMPLES=N,
#                     ICOUNT_SAMPLES=N pairs per scenario, BENCH_MODE=wall|icount,
#                     ONLY=keys); table, JSON and plot in build/bench/
#   make vm           a shell in the test VM, module and selftests in /krs
#   make mutants      remove each protection in turn; a selftest must fail
#                     (MUTANTS="name ..." for some)
#   make soak         the differential tester for SEEDS=N seeds (default 2000)
#                     from START=S (default 1) on BACKING=shmem|xfs|ext4|all
#                     (default shmem; all: the three, one after the other,
#                     in one VM) on CPUS=1|2 CPUs (default 1; 2: each seed
#                     builds its twins on one and collapses from one,
#                     picked by the seed); ACTORS=... as for stress: the
#                     data always compared, the outcome where no actor
#                     could change it
#   make fuzz         cargo fuzz (libFuzzer, ASan) of the debugfs command
#                     parsers on the host, FUZZ_SECONDS=N per target (default 60)
#   make stress       a multi-process workload racing collapses and injection
#                     points in a VM, every page checked against a model
#                     (DURATION=N seconds, default 180; BACKING=shmem|tmpfs|
#                     xfs|ext4|all or a list, default shmem); ACTORS=all|
#                     khugepaged,compact,migrate,memcg,drop,mthp runs the
#                     busy kernel's actors beside it (default none;
#                     migrate boots two NUMA nodes; MEMCG_MB=N); INJECT=0
#                     arms no injection point; ARGS="..." go to the
#                     program, e.g. ARGS="-w 8 -s SEED"
#   make stress-debug the same on the debug kernel, with kmemleak and
#                     free-pages checks after rmmod (tools/endurance/run)
#   make soak-debug   make soak on the debug kernel (SEEDS, START, BACKING, CPUS,
#                     ACTORS), with the same checks
#   make faults       collapses with the kernel's allocations failed under
#                     the module (fault injection, debug kernel), data and
#                     rollbacks checked, leak checks (ARGS="--rounds N ...",
#                     ACTORS=... as for stress)
#   make selftests    build the kselftests only
#   make hosttest     run the host-side (cargo) tests only
#   make compile-fail the compile-fail tests: each tests/compile-fail/*.rs,
#                     a misuse of the mm layer, must not build (for the
#                     error its header expects), each pass/*.rs must
#                     (CASES="name ..." for some; JOBS=N at a time)
#   make docs         Documentation/ with sphinx-build -W (build/docs/html),
#                     the ABI file validated, checkpatch --strict
#   make clean
#
# KDIR, LLVM, CLIPPY and INSTALL_MOD_PATH pass through to Kbuild. The
# targets that boot the stock kernel (demo, bench, vm, mutants, stress,
# soak) build the module against the stock tree of KVER. The debug kernel
# (check-debug, stress-debug, soak-debug, faults) is DEBUG_KVER's
# (tools/setup/versions.conf) whatever KVER says.

export KDIR LLVM CLIPPY INSTALL_MOD_PATH KVER

.PHONY: all module stock-module modules_install rust-analyzer help kernels docs setup check check-all check-debug drift demo bench vm selftests hosttest compile-fail fuzz stress soak stress-debug soak-debug faults clean

all: module

module:
	@tools/build/module --auto

stock-module:
	@tools/build/module

modules_install:
	@tools/build/module --auto modules modules_install

rust-analyzer:
	@tools/build/module --auto rust-analyzer

help:
	@sed -n '/^#   make /,/^# KDIR/{/^# KDIR/d;s/^# \{0,1\}//;p}' $(firstword $(MAKEFILE_LIST))

kernels:
	@tools/setup/kernels

docs:
	@tools/build/docs

setup:
	@tools/setup/setup

check:
	@tools/check

check-all:
	@tools/check-all

check-debug:
	@tools/check --debug

drift:
	@tools/drift/run

demo: stock-module
	@tools/demo/run

bench: stock-module
	@tools/bench/run

vm: stock-module selftests
	@tools/vm/run

selftests:
	@tools/build/selftests

hosttest:
	@tools/build/hosttest

compile-fail:
	@tools/compile-fail/run $(CASES)

# The script builds the module and the selftests first itself.
mutants:
	@python3 tools/mutants/mutants.py $(MUTANTS)

fuzz:
	@tools/fuzz/run

stress: stock-module
	@tools/stress/run $(ARGS)

SEEDS ?= 2000
START ?= 1
BACKING ?= shmem
CPUS ?= 1
soak: stock-module selftests
	@SEEDS=$(SEEDS) START=$(START) BACKING=$(BACKING) CPUS=$(CPUS) tools/soak/run

stress-debug:
	@tools/endurance/run stress $(ARGS)

soak-debug:
	@SEEDS=$(SEEDS) START=$(START) BACKING=$(BACKING) CPUS=$(CPUS) tools/endurance/run soak

faults:
	@tools/endurance/run faults $(ARGS)

clean:
	@tools/build/module clean
	rm -rf build rust-project.json
	find tools/testing/selftests/khugepaged_rs -maxdepth 1 -type f \
		-name 'khugepaged_rs_*' ! -name '*.[ch]' ! -name '*.sh' -delete
