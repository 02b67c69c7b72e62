#!/bin/bash
# Lab 09 reset: delete lab09 (and so its cgroup) and the lab's files.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab09
cg_prune /capsa-lab
rm -rf "$WORK"
