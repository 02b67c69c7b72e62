#!/bin/bash
# Lab 05 reset: remove the pod (its containers, network, namespaces), any lab05 container, and the lab's files.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
capsa pod rm -f lab05 >/dev/null 2>&1 || true
rm_containers lab05
rm -rf "$WORK"
