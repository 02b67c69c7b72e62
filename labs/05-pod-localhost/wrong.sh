#!/bin/bash
# Lab 05, a common mistake: the sidecar started without --pod (its own 127.0.0.1), and 127.0.0.1 taken for the pod's IP.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bash "$LAB_DIR/setup.sh" >/dev/null   # start from the state setup leaves (also after a solution)
capsa run -d -q --name lab05-sidecar busybox sh -c 'while true; do wget -qO- http://127.0.0.1:8080/; sleep 2; done' >/dev/null
echo 127.0.0.1 >"$WORK/pod-ip"
