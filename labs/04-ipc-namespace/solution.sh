#!/bin/bash
# Lab 04 solution: a message queue made in lab04-a, a SysV segment in the pod's ipc namespace, the namespace noted.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
pa=$(capsa state lab04-a | jq -r .pid)
for c in lab04-a lab04-b lab04-out; do
  echo "$c: $(readlink "/proc/$(capsa state "$c" | jq -r .pid)/ns/ipc")"
done
echo "+ capsa exec lab04-a touch /dev/mqueue/lab04"
capsa exec lab04-a touch /dev/mqueue/lab04
for c in lab04-b lab04-out; do echo "+ capsa exec $c ls /dev/mqueue"; capsa exec "$c" ls /dev/mqueue; done
echo "+ nsenter --target $pa --ipc ipcmk -M 4096"
nsenter --target "$pa" --ipc ipcmk -M 4096
for c in lab04-b lab04-out; do echo "+ capsa exec $c cat /proc/sysvipc/shm"; capsa exec "$c" cat /proc/sysvipc/shm; done
readlink "/proc/$pa/ns/ipc" | tee "$WORK/ipc-ns"
