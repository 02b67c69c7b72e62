#!/bin/bash
# Lab 04 reset: remove the pod, its containers, lab04-out and the lab's files (the ipc objects die with their namespaces).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
capsa pod rm -f lab04 >/dev/null 2>&1 || true
rm_containers lab04
rm -rf "$WORK"
