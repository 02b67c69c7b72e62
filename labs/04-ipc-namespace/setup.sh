#!/bin/bash
# Lab 04 setup: pod lab04 (lab04-a, lab04-b share its ipc namespace) and lab04-out outside it.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab04
capsa pod rm -f lab04 >/dev/null 2>&1 || true
rm -f "$WORK/ipc-ns"
busybox_image
capsa pod create --network none lab04 >/dev/null
for c in lab04-a lab04-b; do capsa run -d -q --pod lab04 --name "$c" busybox sleep 1d >/dev/null; done
capsa run -d -q --name lab04-out busybox sleep 1d >/dev/null
echo "pod lab04 runs lab04-a and lab04-b; lab04-out runs outside the pod: which of them share ipc objects?"
