#!/bin/bash
# Lab 03 setup: a container `lab03` in its own uts namespace, hostname "lab03" from config.json.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab03
rm -f "$WORK/host-hostname"
bundle "$WORK/lab03" sleep 1d
jq '.hostname = "lab03"' "$WORK/lab03/config.json" >"$WORK/lab03/config.json.tmp"
mv "$WORK/lab03/config.json.tmp" "$WORK/lab03/config.json"
echo lab03 >"$WORK/lab03/rootfs/etc/hostname"
# the host's name now, so the check can tell that it did not change
cat /proc/sys/kernel/hostname >"$WORK/host-hostname"
run_detached "$WORK/lab03" lab03
echo "lab03 is running with hostname lab03 (config.json); the host is $(cat "$WORK/host-hostname")"
