# shellcheck shell=bash
# Shared by the set-up and VM scripts: the selected kernel, paths, cache
# key, logging, the lock, and running a command inside the toolchain root.
#
# KVER=<release> selects one of the supported kernels (KERNELS in
# versions.conf; default: the first); select_kernel switches to another.
# KHUGEPAGED_RS_CACHE overrides where everything is cached (default:
# ${XDG_CACHE_HOME:-$HOME/.cache}/khugepaged_rs). Entries are keyed by the
# kernel release and a hash of its pinned versions (suites, series,
# packages), so each kernel has its own toolchain root and prepared tree,
# and a version bump builds a fresh set beside the old one; a package added
# to ROOT_PACKAGES is installed into the existing root instead.

set -euo pipefail

SETUP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SETUP_DIR/../.." && pwd)
# shellcheck source=versions.conf
. "$SETUP_DIR/versions.conf"

CACHE_BASE=${KHUGEPAGED_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/khugepaged_rs}

# The supported releases, one a line, the default first.
kernels() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' <<<"$KERNELS" | awk '{print $1}'; }
DEFAULT_KVER=$(kernels | head -n1)

# select_kernel RELEASE: make RELEASE the kernel every path below is for.
select_kernel() {
	local line suites
	line=$(sed -e 's/#.*//' <<<"$KERNELS" | awk -v r="$1" '$1 == r')
	if [ -z "$line" ]; then
		printf '[khugepaged_rs] error: KVER=%s is not a supported kernel; supported (tools/setup/versions.conf):\n' "$1" >&2
		kernels | sed 's/^/[khugepaged_rs]   /' >&2
		exit 1
	fi
	read -r KERNEL_RELEASE KERNEL_SERIES suites RUSTC_VERSION BINDGEN_VERSION GCC_VERSION <<<"$line"
	# Debian suites, the first the base of the toolchain root.
	SUITE=${suites//,/ }
	kernel_packages
	KVER=$KERNEL_RELEASE
	export KVER
	CACHE_KEY=$KERNEL_RELEASE-$(printf '%s\n' "$SUITE" "$KERNEL_SERIES" "$KERNEL_IMAGE_PKG" "$KERNEL_HEADERS_PKG" | sha256sum | cut -c1-8)
	CACHE_DIR=$CACHE_BASE/$CACHE_KEY
	ROOT=$CACHE_DIR/root
	STOCK_DIR_IN_ROOT=/usr/src/khugepaged_rs/stock-image
	STOCK_DIR=$ROOT$STOCK_DIR_IN_ROOT
	STOCK_IMAGE=$STOCK_DIR_IN_ROOT/vmlinuz
	# The prepared stock tree, as seen from inside the root.
	STOCK_KDIR=/usr/src/khugepaged_rs/linux-stock
	# Its kselftests directory: lib.mk, and kselftest.h, which krs_test.h
	# includes (the selftests' Makefile has it as -I$(selfdir)); a program
	# of tools/testing/selftests/khugepaged_rs compiled outside the
	# kselftest build needs it on its include path.
	STOCK_KSFT=$STOCK_KDIR/tools/testing/selftests
	# The stock modules the VM loads, keyed by VM_MODULES: checkouts with
	# different lists share the cache without refetching each other's.
	VM_MODULES_DIR_IN_ROOT=$STOCK_DIR_IN_ROOT/modules-$(echo $VM_MODULES | sha256sum | cut -c1-8)
	VM_MODULES_DIR=$ROOT$VM_MODULES_DIR_IN_ROOT
	# Where the module is built for this kernel (tools/build/module): a
	# copy of the sources with its objects, and the module itself. The
	# default kernel's module is also copied to the repository's top
	# directory, where it has always been.
	KRS_BUILD=$REPO_DIR/build/$KERNEL_RELEASE
	KRS_KO=$KRS_BUILD/khugepaged_rs.ko
}
select_kernel "${KVER:-$DEFAULT_KVER}"

# The VM's filesystems (tools/vm/filesystems) and the directory of their
# images (tools/setup/fs-images.sh), as seen from inside the root.
FS_LIST=$REPO_DIR/tools/vm/filesystems
FS_DIR_IN_ROOT=/usr/src/khugepaged_rs/fs-images

log() { printf '[khugepaged_rs] %s\n' "$*" >&2; }
die() { printf '[khugepaged_rs] error: %s\n' "$*" >&2; exit 1; }

require_root() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (chroot, bind mounts and QEMU's initramfs need it)"
}

# Serialise set-up steps of concurrent runs on one cache.
take_lock() {
	mkdir -p "$CACHE_DIR"
	exec 9>"$CACHE_DIR/.lock"
	if ! flock -n 9; then
		log "another set-up holds $CACHE_DIR/.lock; waiting"
		flock 9
	fi
}

root_ready() { [ -e "$ROOT/.khugepaged_rs-done" ]; }

# in_root CMD...: run CMD inside the toolchain root, in a private mount
# namespace, with /proc, /sys, /dev and the repo bound at the same paths it
# has outside. The namespace dies with the command, so the binds go away even
# if the caller is killed; the trap unmounts them on any normal exit too.
# Kbuild in a prepared tree of the cache (`in_root make -C TREE ...`), one
# at a time: a module build there (M=) rewrites files of the tree itself
# (7.2's rust/Makefile regenerates rust/kernel/generated_arch_*.rs on
# every run), so two builds at once can compile a half-written one. The
# lock is per tree, in the cache.
tree_make() {
	local tree=$1 lock
	lock=$CACHE_DIR/.kbuild-$(printf '%s' "$tree" | sha256sum | cut -c1-8).lock
	mkdir -p "$CACHE_DIR"
	(
		flock 9
		in_root make -C "$@"
	) 9>"$lock"
}

in_root() {
	root_ready || die "toolchain root missing: run 'make setup'"
	unshare --mount --propagation private -- /bin/bash -euc '
		root=$1 repo=$2; shift 2
		binds=()
		trap '\''for ((i=${#binds[@]}-1; i>=0; i--)); do umount -R -l "${binds[i]}" 2>/dev/null || true; done'\'' EXIT
		bind() { mkdir -p "$root$2"; mount --rbind "$1" "$root$2"; binds+=("$root$2"); }
		bind /proc /proc; bind /sys /sys; bind /dev /dev
		bind "$repo" "$repo"
		[ -n "${KRS_EXTRA_BIND:-}" ] && bind "$KRS_EXTRA_BIND" "$KRS_EXTRA_BIND"
		chroot "$root" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
			PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
			/bin/bash -c "cd \"\$0\" 2>/dev/null || cd /; exec \"\$@\"" "$PWD" "$@"
	' in_root "$ROOT" "$REPO_DIR" "$@"
}

# sync_sources DIR: the module's sources (Kbuild, include/, rust/ less the
# generated bindings) copied into DIR, where Kbuild builds them (M=DIR):
# only the files whose content differs, with their modification times, so
# that make rebuilds exactly what it would in the source directory; a
# source file removed here is removed there.
sync_sources() {
	local dir=$1 f
	mkdir -p "$dir"
	(
		cd "$REPO_DIR"
		find Kbuild include rust -type f \( -name Kbuild -o -name '*.h' -o -name '*.c' \
			-o \( -name '*.rs' ! -name '*_bindings.rs' \) \) | sort > "$dir/.sources.new"
		while IFS= read -r f; do
			cmp -s "$f" "$dir/$f" && continue
			mkdir -p "$dir/$(dirname "$f")"
			cp -p "$f" "$dir/$f"
		done < "$dir/.sources.new"
		if [ -f "$dir/.sources" ]; then
			comm -23 "$dir/.sources" "$dir/.sources.new" | while IFS= read -r f; do rm -f "$dir/$f"; done
		fi
		mv "$dir/.sources.new" "$dir/.sources"
	)
}

# "NAME IMAGE" (IMAGE: path inside the root) for each filesystem of
# tools/vm/filesystems whose image exists; with --make, the missing images
# are made first (tools/setup/fs-images.sh).
fs_images() {
	sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$FS_LIST" |
		in_root bash "$SETUP_DIR/fs-images.sh" "$FS_DIR_IN_ROOT" "$@"
}

# The Debian mirror: KRS_MIRROR, else the first deb.debian-style URI in the
# host's apt sources (never hard-coded here).
debian_mirror() {
	if [ -n "${KRS_MIRROR:-}" ]; then echo "$KRS_MIRROR"; return; fi
	local m
	m=$( { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}';
	       grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'; } |
	     grep -v -- '-security' | grep '/debian/\?$' | head -n1)
	[ -n "$m" ] || die "no Debian mirror in the host's apt sources; set KRS_MIRROR=http://<mirror>/debian"
	echo "${m%/}"
}
