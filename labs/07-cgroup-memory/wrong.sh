#!/bin/bash
# Lab 07, a common mistake: a limit of exactly what the program's data needs (64 MiB), with no room for the rest.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab07 # a run of its own: lab07 and lab07-fixed start afresh
status=0
capsa run --keep --bundle "$WORK/bundle" lab07 || status=$?
echo "$status" >"$WORK/exit-status"
bundle_jq "$WORK/fixed" '.linux.resources.memory |= (.limit = 67108864 | if .swap then .swap = .limit else . end)'
status=0
capsa run --keep --bundle "$WORK/fixed" lab07-fixed || status=$?
echo "lab07-fixed: exit status $status"
