#!/bin/bash
# Lab 10 solution: time O_DIRECT reads and writes inside lab10, and the same read on the host; the throttled read rate in KiB/s.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
dev=$(cat "$WORK/loopdev")
pid=$(capsa state lab10 | jq -r .pid)
mm=$((0x$(stat -c %t "$dev"))):$((0x$(stat -c %T "$dev")))
echo "read limit $(cg_get "$pid" io.rbps "$mm"), write limit $(cg_get "$pid" io.wbps "$mm") bytes/s on $mm"
echo "\$ capsa exec lab10 time dd if=/dev/lab10disk of=/dev/null bs=64k count=32 iflag=direct"
out=$(capsa exec lab10 time dd if=/dev/lab10disk of=/dev/null bs=64k count=32 iflag=direct 2>&1)
echo "$out"
echo "\$ time dd if=$dev of=/dev/null bs=64k count=32 iflag=direct   # on the host"
time dd if="$dev" of=/dev/null bs=64k count=32 iflag=direct
echo "\$ capsa exec lab10 time dd if=/dev/zero of=/dev/lab10disk bs=64k count=16 oflag=direct"
capsa exec lab10 time dd if=/dev/zero of=/dev/lab10disk bs=64k count=16 oflag=direct
echo "bytes through lab10's cgroup: read $(cg_get "$pid" io.rbytes "$mm"), written $(cg_get "$pid" io.wbytes "$mm")"
# busybox time: "real	0m 2.00s"; 2048 KiB were read
secs=$(awk '$1 == "real" {sub(/s$/, "", $3); split($2, m, "m"); print m[1] * 60 + $3}' <<<"$out")
awk -v s="$secs" 'BEGIN {printf "%d\n", 2048 / s}' | tee "$WORK/read-rate"
