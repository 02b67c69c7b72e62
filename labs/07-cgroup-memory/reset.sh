#!/bin/bash
# Lab 07 reset: delete lab07 and lab07-fixed (and so their cgroups) and the lab's files.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab07
cg_prune /capsa-lab
rm -rf "$WORK"
