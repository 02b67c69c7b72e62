#!/bin/bash
# Lab 01 solution: the host pid of the container's init, as the runtime's state says.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
capsa exec lab01 ps
capsa state lab01 | jq -r .pid | tee "$WORK/host-pid"
