#!/bin/bash
# Lab 12 check: lab12 restarted by its shim and up in a new process; the pod's app restarted by its restartPolicy.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
info=$(capsa inspect lab12 2>/dev/null | jq -c '.[0] // empty') || true
[ -n "$info" ] || fail "no container lab12: run the flaky service as in step 1 (capsa lab start 12 first)"
field() { jq -r "$1" <<<"$info"; }
policy=$(field .restart)
state=$(field .state)
count=$(field .restartCount)
pid=$(field '.pid // empty')
runs=$(cat "$WORK/state/runs" 2>/dev/null || echo 0)
explain "lab12: restart policy '$policy', state $state, restartCount $count; flaky.sh counted $runs run(s) in $WORK/state/runs"

# 1. The container is up again, after the shim restarted it.
if [ "$state" != running ]; then
  explain "its last run ended with status $(field '.exitCode // "?"') at $(field '.exit.finished_at // "?"')"
  case $policy in
    no) explain "--restart no (the default) records the exit and leaves the container down; --restart on-failure:N or always makes its capsa-shim start it again" ;;
    on-failure:*) [ "$count" -ge "${policy#on-failure:}" ] &&
      explain "$policy allows at most ${policy#on-failure:} restart(s): the shim gave up after $count, before the run that stays up" ;;
  esac
  fail "lab12 is $state after $runs run(s); it should have been restarted until it stays up"
fi
[ "$policy" != no ] || fail "lab12 runs with restart policy 'no': start it with --restart on-failure:5"
[ "$runs" -ge 3 ] || fail "flaky.sh ran $runs time(s); it stays up only from its third run"
[ "$count" -eq $((runs - 1)) ] ||
  fail "restartCount is $count but flaky.sh ran $runs times: was lab12 created more than once? (capsa lab start 12 again)"

# 2. The process running now is the last run, a new process: a new host pid, a later start.
{ [ -n "$pid" ] && [ -d "/proc/$pid" ]; } || fail "lab12's pid '$pid' is not a live process on the host"
[ "$(cat "/proc/$pid/comm")" = sleep ] || fail "lab12's host pid $pid runs $(cat "/proc/$pid/comm"), not the sleep of a successful run"
[ "$(readlink "/proc/$pid/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] || fail "lab12's pid $pid is in the host's pid namespace"
tick=$(awk '{print $22}' "/proc/$pid/stat")
first=$(awk 'NR == 1 {print $4}' "$WORK/state/history")
last=$(awk 'END {print $4}' "$WORK/state/history")
[ "$tick" = "$last" ] || fail "host pid $pid started at tick $tick, but flaky.sh's last run logged tick $last"
[ "$tick" != "$first" ] || fail "host pid $pid started at the first run's tick $first: it was never restarted"
while read -r _ n _ t; do explain "  run $n started at boot tick $t$([ "$t" = "$tick" ] && echo " <- host pid $pid, running now")"; done <"$WORK/state/history"
explain "each restart is a new container: a new process (host pid $pid now) in a new pid namespace ($(readlink "/proc/$pid/ns/pid"))"
explain "backoff between runs: 100 ms, then 200 ms, doubling up to 10 s (capsa logs -t lab12 shows the times)"

# 3. The student's count.
got=$(answer restarts)
[ -n "$got" ] || fail "no answer in $WORK/restarts: write the number of restarts of lab12 there"
if [ "$got" != "$count" ]; then
  [ "$got" = "$runs" ] && explain "$runs is the number of runs: the first start is not a restart"
  fail "restarts says $got, but capsa inspect lab12 shows restartCount $count"
fi

# 4. The pod: its restartPolicy brought the crashed app back.
pinfo=$(capsa inspect lab12-pod-app 2>/dev/null | jq -c '.[0] // empty') || true
[ -n "$pinfo" ] || fail "no pod lab12-pod (container lab12-pod-app): apply $WORK/pod.yaml (step 5)"
ppolicy=$(jq -r .restart <<<"$pinfo")
pstate=$(jq -r .state <<<"$pinfo")
pcount=$(jq -r .restartCount <<<"$pinfo")
explain "lab12-pod-app: restart '$ppolicy' (from the manifest's restartPolicy), state $pstate, restartCount $pcount"
if [ "$ppolicy" = no ]; then
  explain "restartPolicy: Never becomes --restart no: the app crashed on its first start and stays down (capsa pod ls: READY 0/1)"
  fail "lab12-pod's restartPolicy is Never: change it to OnFailure (or Always), then capsa pod delete -f and apply again"
fi
[ "$pstate" = running ] || fail "lab12-pod-app is $pstate, expected running again"
[ "$pcount" -ge 1 ] || fail "lab12-pod-app was never restarted (restartCount $pcount)"
ppid=$(jq -r .pid <<<"$pinfo")
[ "$(cat "/proc/$ppid/comm" 2>/dev/null)" = sleep ] || fail "lab12-pod-app's host pid $ppid is not its sleep"
explain "the emptyDir /scratch outlived the crash (the restart found /scratch/crashed) but not the pod: a new pod crashes once again"
pass "lab12 came back after $count restarts as host pid $pid; lab12-pod's app after $pcount ($ppolicy)"
