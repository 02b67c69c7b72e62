#!/bin/bash
# Lab 12, a common mistake: no --restart (the default is no) and the manifest's restartPolicy: Never kept.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# Start over from a fresh setup (this may run after solution.sh).
bash "$LAB_DIR/setup.sh" >/dev/null
capsa run -d -q --name lab12 -v "$WORK/state:/state" busybox sh /state/flaky.sh >/dev/null
for _ in $(seq 50); do
  [ "$(capsa inspect lab12 | jq -r '.[0].state')" = exited ] && break
  sleep 0.1
done
capsa ps -a
capsa pod apply -q -f "$WORK/pod.yaml"
# "It crashed and nothing restarted it": 0 restarts.
echo 0 >"$WORK/restarts"
