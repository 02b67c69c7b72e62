#!/bin/bash
# Lab 12 reset: remove the pod, the containers and the lab's files.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
capsa pod rm -f lab12-pod >/dev/null 2>&1 || true
rm_containers lab12
rm -rf "$WORK"
