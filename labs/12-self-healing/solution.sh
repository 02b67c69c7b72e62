#!/bin/bash
# Lab 12 solution: run the flaky service with --restart on-failure:5, count its restarts; the pod with OnFailure.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# wait_up NAME MIN: until NAME runs again after at least MIN restarts (5 s at most).
wait_up() {
  local info
  for _ in $(seq 50); do
    info=$(capsa inspect "$1" | jq -r --argjson min "$2" '.[0] | select(.state == "running" and .restartCount >= $min) | .pid')
    [ -n "$info" ] && [ "$(cat "/proc/$info/comm" 2>/dev/null)" = sleep ] && return 0
    sleep 0.1
  done
  echo "$1 did not come up" >&2
  return 1
}
echo "\$ capsa run -d --name lab12 --restart on-failure:5 -v $WORK/state:/state busybox sh /state/flaky.sh"
capsa run -d -q --name lab12 --restart on-failure:5 -v "$WORK/state:/state" busybox sh /state/flaky.sh
wait_up lab12 2
echo "\$ capsa ps -a; capsa logs -t lab12"
capsa ps -a
capsa logs -t lab12
echo "\$ capsa inspect lab12 | jq '.[0].restartCount'"
capsa inspect lab12 | jq '.[0].restartCount' | tee "$WORK/restarts"

echo "\$ sed -i 's/restartPolicy: Never/restartPolicy: OnFailure/' $WORK/pod.yaml"
sed -i 's/restartPolicy: Never/restartPolicy: OnFailure/' "$WORK/pod.yaml"
capsa pod rm -f lab12-pod >/dev/null 2>&1 || true
echo "\$ capsa pod apply -f $WORK/pod.yaml"
capsa pod apply -q -f "$WORK/pod.yaml"
wait_up lab12-pod-app 1
capsa pod ls
capsa pod logs lab12-pod
