#!/bin/bash
# Lab 01, a common wrong answer: the pid seen inside the container.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
echo 1 >"$WORK/host-pid"
