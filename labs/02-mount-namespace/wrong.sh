#!/bin/bash
# Lab 02, a common mistake: the mount made on the host, in the bundle's rootfs, and the bundle given as the root.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bash "$LAB_DIR/setup.sh" >/dev/null   # start from the state setup leaves (also after a solution)
# "the container's /tmp is the rootfs's tmp directory, so mount there": but this runs
# in the host's mount namespace.
mount -t tmpfs lab02-scratch "$WORK/lab02/rootfs/tmp"
echo "$WORK/lab02" >"$WORK/rootfs-dir"
