#!/bin/bash
# Lab 10 reset: delete lab10, detach its loop device, remove the disk image and the lab's files.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab10
img=$(cd "$WORK" && pwd -P)/disk.img
for b in /sys/block/loop*; do
  if [ "$(cat "$b/loop/backing_file" 2>/dev/null)" = "$img" ]; then losetup -d "/dev/${b##*/}"; fi
done
cg_prune /capsa-lab
rm -rf "$WORK"
