#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# khugepaged_rs_diff with its twins on the VM's ext4 (/mnt/ext4), a short run
# (15 to 50 s under TCG); skipped when it is not mounted.
exec "$(dirname "$0")/khugepaged_rs_diff" --backing ext4 --seeds 20 --batch 10
