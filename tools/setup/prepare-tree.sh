#!/bin/bash
# Runs inside the toolchain root: turn linux-source into a tree that builds
# modules for the stock kernel (same .config, release string, Module.symvers).
# Usage: prepare-tree.sh KDIR STOCK_DIR KERNEL_RELEASE KERNEL_SERIES
set -euo pipefail
kdir=$1 stock=$2 release=$3 series=$4
jobs=$(nproc)

# Built in place (Rust artefacts record absolute paths); the marker file
# says it finished, a half-done tree is redone from scratch.
rm -rf "$kdir"
mkdir -p "$kdir"
echo "[khugepaged_rs]   extracting linux-source-$series" >&2
tar -xf "/usr/src/linux-source-$series.tar.xz" -C "$kdir" --strip-components=1
cd "$kdir"
cp "$stock/config" .config
# The stock build's signing keys are not ours; the release string must be.
./scripts/config --set-str MODULE_SIG_KEY certs/signing_key.pem \
	--set-str SYSTEM_TRUSTED_KEYS "" --set-str SYSTEM_REVOCATION_KEYS "" \
	--set-str BUILD_SALT "$release" \
	--set-str LOCALVERSION "${release#"$(make -s kernelversion)"}" \
	--disable LOCALVERSION_AUTO
make -s olddefconfig
grep -q '^CONFIG_RUST=y' .config || { echo "CONFIG_RUST is off after olddefconfig: the root's rustc/bindgen do not satisfy the kernel's Rust requirements" >&2; exit 1; }
echo "[khugepaged_rs]   make prepare (includes the Rust crates)" >&2
make -s -j"$jobs" prepare
echo "[khugepaged_rs]   make modules_prepare" >&2
make -s -j"$jobs" modules_prepare
cp "$stock/Module.symvers" Module.symvers
got=$(cat include/config/kernel.release)
[ "$got" = "$release" ] || { echo "prepared tree reports release '$got', expected '$release'" >&2; exit 1; }
touch .khugepaged_rs-done
