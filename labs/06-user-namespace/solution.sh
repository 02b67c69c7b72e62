#!/bin/bash
# Lab 06 solution: read the uid map from the host, make a file as uid 1000 inside, stat it outside.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
pid=$(capsa state lab06 | jq -r .pid)
rootfs=$(capsa state lab06 | jq -r .rootfs)
show() { echo "\$ $*"; "$@"; }
show capsa exec lab06 id
show cat "/proc/$pid/uid_map"
show grep Uid "/proc/$pid/status"
echo "\$ capsa exec -u 1000:1000 lab06 sh -c 'echo hi > /tmp/from-1000; ls -ln /tmp/from-1000'"
capsa exec -u 1000:1000 lab06 sh -c 'echo hi > /tmp/from-1000; ls -ln /tmp/from-1000'
show stat -c '%u:%g %n' "$rootfs/tmp/from-1000"
show capsa exec lab06 cat /mnt/host/secret || true
awk '/^Uid:/ {print $2}' "/proc/$pid/status" >"$WORK/host-uid"
stat -c %u "$rootfs/tmp/from-1000" >"$WORK/file-owner"
echo "host-uid: $(answer host-uid), file-owner: $(answer file-owner)"
