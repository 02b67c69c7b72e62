#!/bin/bash
# Lab 08, a common wrong answer: the number of sleeps the bomb asked for, not the number the kernel let it start.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
capsa exec lab08 sh /bomb.sh 2>/dev/null || true
echo 100 >"$WORK/started"
