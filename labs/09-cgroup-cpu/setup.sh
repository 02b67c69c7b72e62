#!/bin/bash
# Lab 09 setup: a bundle whose busy loop runs for 2 s under a CPU quota of 20 ms per 100 ms (20% of one CPU).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab09
rm -rf "$WORK/bundle" "$WORK/cpu-percent"
bundle "$WORK/bundle" '["sh", "-c", "timeout 2 sh -c '\''while :; do :; done'\''; echo the busy loop ran for 2 s of wall time"]'
bundle_jq "$WORK/bundle" '.linux.cgroupsPath = "/capsa-lab/lab09" | .linux.resources.cpu = {quota: 20000, period: 100000}'
echo "bundle ready: $WORK/bundle (cpu quota 20000 us per 100000 us period): time capsa run --keep --bundle $WORK/bundle lab09"
