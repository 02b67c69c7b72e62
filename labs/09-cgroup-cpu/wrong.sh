#!/bin/bash
# Lab 09, a common wrong answer: a busy loop takes a whole CPU, so 100%.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab09 # a run of its own
capsa run --keep --bundle "$WORK/bundle" lab09
echo 100 >"$WORK/cpu-percent"
