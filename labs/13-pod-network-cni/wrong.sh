#!/bin/bash
# Lab 13, a common mistake: localhost from pod B, as if the pods shared one network namespace.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
echo 127.0.0.1 >"$WORK/pod-a-ip"
# Connection refused: nothing listens on pod B's own loopback.
capsa exec lab13-b-client wget -qO- http://127.0.0.1/ >"$WORK/fetched" || true
