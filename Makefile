# SPDX-License-Identifier: GPL-2.0
#
# khugepaged_rs: user-facing targets. Kbuild (the module itself) is in Kbuild.
#
#   make              build khugepaged_rs.ko (against the prepared stock
#                     tree; set-up runs first if needed)
#   make KDIR=/path   build against your own built 7.2 Rust-enabled tree
#   make setup        toolchain root + stock kernel + prepared tree (cached)
#   make check        everything: build, clippy, rustfmt, host tests, kselftests
#                     in a VM; ends with "N passed, N failed"
#   make check-debug  the kselftests on the debug kernel (KASAN, lockdep,
#                     DEBUG_VM; built once, about an hour cold)
#   make demo         boot the stock kernel, load the module, show what it does
#   make bench        time the module's collapse against MADV_COLLAPSE in a VM
#                     (SAMPLES=N pairs per scenario, default 30); the table
#                     goes to build/bench/result.txt
#   make vm           a shell in the test VM, module and selftests in /krs
#   make mutants      remove each protection in turn; a selftest must fail
#   make soak         the differential tester for SEEDS=N seeds (default 2000)
#   make fuzz         cargo fuzz (libFuzzer, ASan) of the debugfs command
#                     parsers on the host, FUZZ_SECONDS=N per target (default 60)
#   make stress       a multi-process workload racing collapses and injection
#                     points in a VM, every page checked against a model
#                     (DURATION=N seconds, default 180)
#   make stress-debug the same on the debug kernel, with kmemleak and
#                     free-pages checks after rmmod (tools/endurance/run)
#   make soak-debug   make soak on the debug kernel, with the same checks
#   make faults       collapses with the kernel's allocations failed under
#                     the module (fault injection, debug kernel), data and
#                     rollbacks checked, leak checks
#   make selftests    build the kselftests only
#   make hosttest     run the host-side (cargo) tests only
#   make clean
#
# KDIR, LLVM and CLIPPY pass through to Kbuild.

export KDIR LLVM CLIPPY

.PHONY: all module setup check check-debug demo bench vm selftests hosttest fuzz stress soak stress-debug soak-debug faults clean

all: module

module:
	@tools/build/module

setup:
	@tools/setup/setup

check:
	@tools/check

check-debug:
	@tools/check --debug

demo: module
	@tools/demo/run

bench: module
	@tools/bench/run

vm: module selftests
	@tools/vm/run

selftests:
	@tools/build/selftests

hosttest:
	@tools/build/hosttest

mutants: module selftests
	@python3 tools/mutants/mutants.py

fuzz:
	@tools/fuzz/run

stress: module
	@tools/stress/run

SEEDS ?= 2000
soak: module selftests
	@tools/vm/run --timeout $$(( $(SEEDS) + 600 )) -- sh -c 'selftests/khugepaged_rs_diff --seeds $(SEEDS)'

stress-debug:
	@tools/endurance/run stress

soak-debug:
	@SEEDS=$(SEEDS) tools/endurance/run soak

faults:
	@tools/endurance/run faults

clean:
	@tools/build/module clean
	rm -rf build tools/testing/selftests/khugepaged_rs/khugepaged_rs_module
