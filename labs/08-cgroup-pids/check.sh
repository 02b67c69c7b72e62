#!/bin/bash
# Lab 08 check: pids.max held (current <= max, refused forks counted by the kernel), the answer is the number of bomb sleeps alive, and the host still forks.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
pid=$(capsa state lab08 2>/dev/null | jq -r 'select(.status == "running") | .pid') || true
[ -n "$pid" ] || fail "container lab08 is not running (run: capsa lab start 8)"
max=$(cg_get "$pid" pids.max)
cur=$(cg_get "$pid" pids.current)
refused=$(cg_get "$pid" pids.events_max)
dir=$(cg_dir pids "$pid")
explain "lab08's cgroup $dir: pids.max $max, pids.current $cur, forks refused (max in pids.events) $refused"
[ "$max" = 20 ] || fail "lab08's pids.max is $max; the lab is about a limit of 20, leave it"
[ "$cur" -le "$max" ] ||
  explain "pids.current $cur is above pids.max $max: fork never gets there, only processes moved in (capsa exec) do"
[ "${refused:-0}" -ge 1 ] || fail "the kernel has refused no fork in lab08 yet: run the bomb (capsa exec lab08 sh /bomb.sh)"
sleeps=0
while read -r p; do
  if [ "$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")" = "sleep 3600 " ]; then sleeps=$((sleeps + 1)); fi
done <"$dir/cgroup.procs"
explain "the bomb's forks beyond the limit failed with EAGAIN (\"Resource temporarily unavailable\"); $sleeps of its sleeps are alive in lab08"
explain "each sleep needs two free slots, one for the sh that awk's system() forks and one for the sleep: 20 = init (sleep 1d) + awk + sh + $((max - 3)) sleeps"
# The host is unaffected: it can still start processes, far below its own limit.
if sh -c true; then
  procs=(/proc/[0-9]*)
  explain "meanwhile the host forks as usual: ${#procs[@]} processes on the host, kernel.pid_max $(cat /proc/sys/kernel/pid_max)"
else
  fail "the host itself cannot fork"
fi
got=$(answer started)
[ -n "$got" ] || fail "no answer in $WORK/started: write how many of the bomb's sleeps are running in lab08"
if [ "$got" != "$sleeps" ]; then
  [ "$got" = 100 ] && explain "100 is what the bomb asked for; the kernel refused every fork past pids.max"
  [ "$got" = 20 ] && explain "20 is pids.max, for every process of the cgroup, not only the sleeps"
  fail "started says $got, but $sleeps of the bomb's sleeps are running in lab08"
fi
pass "the bomb got $sleeps sleeps; $refused forks were refused at pids.max $max (pids.current $cur)"
