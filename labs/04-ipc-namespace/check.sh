#!/bin/bash
# Lab 04 check: lab04-a/b share the pod's ipc namespace, lab04-out does not; a queue and a SysV segment only the pod sees.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
running() { capsa state "$1" 2>/dev/null | jq -r 'select(.status == "running") | .pid' || true; }
pa=$(running lab04-a) pb=$(running lab04-b) po=$(running lab04-out)
if [ -z "$pa" ] || [ -z "$pb" ] || [ -z "$po" ]; then
  fail "lab04-a, lab04-b and lab04-out must all be running (run: capsa lab start 4)"
fi
pinned=$(capsa pod inspect lab04 2>/dev/null | jq -r '.namespaces.ipc // empty') || true
[ -n "$pinned" ] || fail "pod lab04 is gone (run: capsa lab start 4)"
na=$(readlink "/proc/$pa/ns/ipc") nb=$(readlink "/proc/$pb/ns/ipc") no=$(readlink "/proc/$po/ns/ipc")
nh=$(readlink /proc/self/ns/ipc) np="ipc:[$(stat -Lc %i "$pinned")]"
explain "ipc namespaces: lab04-a $na, lab04-b $nb, the pod's pinned $pinned $np, lab04-out $no, the host $nh"
if [ "$na" != "$np" ] || [ "$nb" != "$np" ]; then
  fail "lab04-a and lab04-b should both be in the pod's ipc namespace $np"
fi
if [ "$no" = "$np" ] || [ "$no" = "$nh" ]; then fail "lab04-out should have an ipc namespace of its own"; fi

problems=()
# The queue: the pod's /dev/mqueue as lab04-b mounted it (mqueue is per ipc namespace).
if [ -e "/proc/$pb/root/dev/mqueue/lab04" ]; then
  explain "lab04-b sees the message queue lab04 in /dev/mqueue: $(tr -s ' ' <"/proc/$pb/root/dev/mqueue/lab04")"
  [ ! -e "/proc/$po/root/dev/mqueue/lab04" ] || problems+=("lab04-out sees a queue lab04 too: it was made there as well")
else
  problems+=("no message queue lab04 in the pod's ipc namespace (capsa exec lab04-a touch /dev/mqueue/lab04)")
fi
# SysV shared memory: /proc/sysvipc/shm lists the segments of the reader's ipc namespace.
segs() { nsenter --target "$1" --ipc cat /proc/sysvipc/shm | tail -n +2 | wc -l; }
sb=$(segs "$pb") so=$(segs "$po") sh=$(tail -n +2 /proc/sysvipc/shm | wc -l)
explain "SysV shm segments: $sb in the pod's ipc namespace, $so in lab04-out's, $sh on the host (ipcs -m)"
if [ "$sb" -eq 0 ]; then
  problems+=("no SysV shared memory segment in the pod's ipc namespace (nsenter --target $pa --ipc ipcmk -M 4096)")
fi
# The classic mistake: /dev/shm is a tmpfs each managed container mounts for itself.
if [ -e "/proc/$pa/root/dev/shm/lab04" ] && [ ! -e "/proc/$pb/root/dev/shm/lab04" ]; then
  explain "lab04-a has /dev/shm/lab04, lab04-b does not: /dev/shm is a tmpfs file system that every managed container mounts"
  explain "for itself (see its own line in /proc/PID/mountinfo); POSIX shm_open() is just a file there, not an ipc-namespace object"
  explain "(kubelet pods through capsa-cri do share one /dev/shm: the sandbox's tmpfs is bound into every container)"
fi
got=$(answer ipc-ns)
if [ -z "$got" ]; then
  problems+=("no answer in $WORK/ipc-ns: write the pod's ipc namespace (readlink /proc/PID/ns/ipc)")
elif [ "$(tr -cd 0-9 <<<"$got")" != "$(tr -cd 0-9 <<<"$np")" ]; then
  [ "$(tr -cd 0-9 <<<"$got")" = "$(tr -cd 0-9 <<<"$nh")" ] && explain "$got is the host's ipc namespace (readlink /proc/self/ns/ipc)"
  [ "$(tr -cd 0-9 <<<"$got")" = "$(tr -cd 0-9 <<<"$no")" ] && explain "$got is lab04-out's, which is not in the pod"
  problems+=("ipc-ns says $got, but the pod's ipc namespace is $np")
fi
if [ ${#problems[@]} -gt 0 ]; then msg=$(printf '%s; ' "${problems[@]}"); fail "${msg%; }"; fi
pass "lab04-a and lab04-b share $np (queue and segment visible to both), lab04-out ($no) sees neither"
