#!/bin/bash
# Lab 09 solution: run the loop, read the CPU time the cgroup got, divide by the 2 s of wall time.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab09 # a run of its own
echo "\$ time capsa run --keep --bundle $WORK/bundle lab09"
time capsa run --keep --bundle "$WORK/bundle" lab09
cg=/capsa-lab/lab09
echo "cpu quota $(cg_get $cg cpu.quota) us per $(cg_get $cg cpu.period) us"
echo "nr_periods $(cg_get $cg cpu.nr_periods), nr_throttled $(cg_get $cg cpu.nr_throttled), throttled $(cg_get $cg cpu.throttled_usec) us"
usage=$(cg_get $cg cpu.usage_usec)
echo "CPU time used: $usage us in 2000000 us of wall time"
echo $((usage * 100 / 2000000)) | tee "$WORK/cpu-percent"
