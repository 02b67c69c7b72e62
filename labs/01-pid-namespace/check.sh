#!/bin/bash
# Lab 01 check: own pid namespace, sleep is PID 1 inside, the answer is its host pid.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
pid=$(capsa state lab01 2>/dev/null | jq -r 'select(.status == "running") | .pid') || true
[ -n "$pid" ] || fail "container lab01 is not running (run: capsa lab start 1)"
[ "$(readlink "/proc/$pid/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] ||
  fail "lab01 shares the host's pid namespace; it should have its own"
inside=$(capsa exec lab01 sh -c 'echo $PPID' 2>/dev/null) || true
comm=$(capsa exec lab01 cat /proc/1/comm 2>/dev/null) || true
[ "$comm" = sleep ] || fail "PID 1 inside lab01 is '$comm', expected sleep"
explain "inside, sleep is PID 1; a process exec'd into lab01 sees parent pid $inside: its parent lives outside the namespace"
got=$(answer host-pid)
[ -n "$got" ] || fail "no answer in $WORK/host-pid: write the host pid of lab01's PID 1 there"
if [ "$got" != "$pid" ]; then
  [ "$got" = 1 ] && explain "1 is the pid *inside* the namespace; the host numbers the same process differently"
  explain "the host sees lab01's sleep as pid $pid (capsa state lab01 | jq .pid, or capsa ps lab01)"
  fail "host-pid says $got, but the host pid of lab01's PID 1 is $pid"
fi
explain "one process, two pids: 1 in its pid namespace ($(readlink "/proc/$pid/ns/pid")), $pid on the host ($(readlink /proc/self/ns/pid))"
pass "lab01's PID 1 is host pid $pid"
