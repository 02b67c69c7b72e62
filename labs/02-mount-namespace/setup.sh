#!/bin/bash
# Lab 02 setup: a container `lab02` (own mount namespace, root = a bundle's rootfs) and a marker file on the host.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab02
# a wrong try may have left a mount on the host under $WORK: remove it first
findmnt -rn -o TARGET | { grep "^$WORK/" || true; } | sort -r | while read -r m; do umount -l "$m"; done
rm -f "$WORK/rootfs-dir" "$WORK/host-marker"
bundle "$WORK/lab02" sleep 1d
echo "this file lives on the host, in $WORK" >"$WORK/host-marker"
run_detached "$WORK/lab02" lab02
echo "lab02 is running in its own mount namespace; the host has a marker file at $WORK/host-marker: can the container see it?"
