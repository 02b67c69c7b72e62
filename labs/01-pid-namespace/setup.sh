#!/bin/bash
# Lab 01 setup: a container `lab01` running sleep, in its own pid namespace.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab01
rm -f "$WORK/host-pid"
bundle "$WORK/lab01" sleep 1d
run_detached "$WORK/lab01" lab01
echo "lab01 is running: look at it from inside (capsa exec lab01 ps) and from the host (capsa ps lab01)"
