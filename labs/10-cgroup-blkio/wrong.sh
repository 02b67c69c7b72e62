#!/bin/bash
# Lab 10, a common mistake: measuring on the host, outside the container's cgroup, where nothing is throttled.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
dev=$(cat "$WORK/loopdev")
start=$EPOCHREALTIME
dd if="$dev" of=/dev/null bs=64k count=32 iflag=direct 2>/dev/null
end=$EPOCHREALTIME
awk -v a="$start" -v b="$end" 'BEGIN {printf "%d\n", 2048 / (b - a)}' | tee "$WORK/read-rate"
