#!/bin/bash
# Lab 13 setup: pods lab13-a (httpd) and lab13-b (a client) on capsa's CNI bridge network.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
capsa pod rm -f lab13-a lab13-b >/dev/null 2>&1 || true
rm_containers lab13
rm -f "$WORK/pod-a-ip" "$WORK/fetched"
busybox_image
capsa pod create lab13-a >/dev/null
capsa pod create lab13-b >/dev/null
# A page that only this setup's pod A serves: its hostname and a fresh token.
token=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
# shellcheck disable=SC2016 # $(hostname) and $TOKEN expand in the container
capsa run -d -q --name lab13-a-web --pod lab13-a -e "TOKEN=$token" busybox \
  sh -c 'mkdir -p /www; echo "hello from pod $(hostname), token $TOKEN" >/www/index.html; exec httpd -f -p 80 -h /www' >/dev/null
capsa run -d -q --name lab13-b-client --pod lab13-b busybox sleep 1d >/dev/null
for _ in $(seq 50); do
  capsa exec lab13-a-web wget -qO- http://127.0.0.1/ >/dev/null 2>&1 && break
  sleep 0.1
done
echo "pods lab13-a (httpd on port 80) and lab13-b (a client) are up on the capsa network: fetch lab13-a's page from lab13-b"
