#!/bin/bash
# Lab 04, a common mistake: the message left in /dev/shm (a per-container tmpfs here), no ipc object made.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bash "$LAB_DIR/setup.sh" >/dev/null   # start from the state setup leaves (also after a solution)
capsa exec lab04-a sh -c 'echo hello sibling > /dev/shm/lab04'
readlink "/proc/$(capsa state lab04-a | jq -r .pid)/ns/ipc" >"$WORK/ipc-ns"
