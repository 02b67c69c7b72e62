#!/bin/bash
# Lab 05 solution: a sidecar in the pod fetching http://127.0.0.1:8080/, and the pod's IP.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
echo "+ capsa run -d --pod lab05 --name lab05-sidecar busybox sh -c 'while true; do wget -qO- http://127.0.0.1:8080/; sleep 2; done'"
capsa run -d -q --pod lab05 --name lab05-sidecar busybox sh -c 'while true; do wget -qO- http://127.0.0.1:8080/; sleep 2; done'
sleep 1
echo "+ capsa logs lab05-sidecar"
capsa logs lab05-sidecar
for c in lab05-web lab05-sidecar; do echo "$c: $(readlink "/proc/$(capsa state "$c" | jq -r .pid)/ns/net")"; done
capsa pod inspect lab05 | jq -r .pod.ip | tee "$WORK/pod-ip"
