#!/bin/bash
# Lab 13 solution: pod A's IP from capsa pod inspect (and its netns), then a fetch from pod B.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
echo "\$ capsa pod ls"
capsa pod ls
ip=$(capsa pod inspect lab13-a | jq -r .pod.ip)
ns=$(capsa pod inspect lab13-a | jq -r .namespaces.net)
echo "\$ nsenter --net=$ns ip -4 addr show dev eth0"
nsenter --net="$ns" ip -4 addr show dev eth0
echo "\$ ip link show master capsa0"
ip link show master capsa0
echo "$ip" | tee "$WORK/pod-a-ip"
echo "\$ capsa exec lab13-b-client wget -qO- http://$ip/"
capsa exec lab13-b-client wget -qO- "http://$ip/" | tee "$WORK/fetched"
