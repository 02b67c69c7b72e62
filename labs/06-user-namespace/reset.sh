#!/bin/bash
# Lab 06 reset: remove the container and the lab's files (bundle, host-only dir, answers).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab06
cg_prune /capsa-lab
rm -rf "$WORK"
