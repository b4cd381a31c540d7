#!/bin/bash
# Runs inside the toolchain root: the images of the VM's filesystems.
# Usage: fs-images.sh DIR [--make] < lines of tools/vm/filesystems
# Prints "NAME IMAGE" for each line whose image exists in DIR. An image is
# DIR/NAME-KEY.img, KEY a hash of its line and of its mkfs binary: a change
# to either (a new xfsprogs) makes a new image, and checkouts with different
# lists share DIR without remaking each other's. With --make, a missing
# image is made (a sparse file of SIZE, then MKFS... on it), and images of
# other keys older than a day are removed; a line whose image cannot be
# made is reported in one line and left out.
set -uo pipefail
dir=$1 make=${2:-}
mkdir -p "$dir"
say() { printf '[khugepaged_rs] %s\n' "$*" >&2; }
keep=()
while read -r name type size opts mkfs; do
	bin=$(command -v "${mkfs%% *}") || {
		[ -n "$make" ] && say "no ${mkfs%% *} in the toolchain root (ROOT_PACKAGES): the VM runs without /mnt/$name"
		continue
	}
	key=$({ echo "$name $type $size $opts $mkfs"; sha256sum < "$(readlink -f "$bin")"; } | sha256sum | cut -c1-12)
	img=$dir/$name-$key.img
	keep+=("$img")
	if [ ! -f "$img" ] && [ -n "$make" ]; then
		say "making the $name image for the VM ($mkfs, $size)"
		rm -f "$img.tmp"
		# $mkfs unquoted: the command and its options.
		if out=$(truncate -s "$size" "$img.tmp" 2>&1 && $mkfs "$img.tmp" 2>&1 </dev/null); then
			mv "$img.tmp" "$img"
		else
			rm -f "$img.tmp"
			say "could not make the $name image: $(echo $out | cut -c1-200); the VM runs without /mnt/$name"
		fi
	fi
	[ -f "$img" ] && echo "$name $img"
done
if [ -n "$make" ]; then
	find "$dir" -maxdepth 1 -name '*.img' -mmin +1440 | while read -r f; do
		case " ${keep[*]-} " in *" $f "*) ;; *) rm -f "$f" ;; esac
	done
	find "$dir" -maxdepth 1 -name '*.img.tmp' -mmin +60 -delete
fi
exit 0
