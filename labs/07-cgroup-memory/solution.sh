#!/bin/bash
# Lab 07 solution: run lab07 (OOM-killed, 137), record the status, give lab07-fixed 128 MiB and run it.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab07 # a run of its own: lab07 and lab07-fixed start afresh
echo "\$ capsa run --keep --bundle $WORK/bundle lab07"
status=0
capsa run --keep --bundle "$WORK/bundle" lab07 || status=$?
echo "exit status: $status"
echo "$status" >"$WORK/exit-status"
echo "oom_kill in lab07's cgroup: $(cg_get /capsa-lab/lab07 memory.oom_kill)"
# raise the limit (and memory+swap with it, where it is set) to 128 MiB
bundle_jq "$WORK/fixed" '.linux.resources.memory |= (.limit = 134217728 | if .swap then .swap = .limit else . end)'
echo "\$ capsa run --keep --bundle $WORK/fixed lab07-fixed"
capsa run --keep --bundle "$WORK/fixed" lab07-fixed
echo "lab07-fixed: exit status $?, peak $(cg_get /capsa-lab/lab07-fixed memory.peak) bytes"
