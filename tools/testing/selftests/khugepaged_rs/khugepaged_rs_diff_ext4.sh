#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# khugepaged_rs_diff with its twins on the VM's ext4 (/mnt/ext4), a short run
# (about 30 s under TCG); skipped when it is not mounted.
exec "$(dirname "$0")/khugepaged_rs_diff" --backing ext4 --seeds 30 --batch 10
