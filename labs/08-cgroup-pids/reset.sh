#!/bin/bash
# Lab 08 reset: delete lab08 (its sleeps die with it) and the lab's files.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab08
cg_prune /capsa-lab
rm -rf "$WORK"
