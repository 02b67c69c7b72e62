#!/bin/bash
# Lab 06, a common wrong answer: the ids as the container sees them, not as the host does.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
capsa exec -u 1000:1000 lab06 sh -c 'echo hi > /tmp/from-1000'
capsa exec lab06 id -u | tee "$WORK/host-uid"
capsa exec lab06 stat -c %u /tmp/from-1000 | tee "$WORK/file-owner"
