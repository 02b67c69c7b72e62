#!/bin/bash
# Lab 09 check: the kernel throttled lab09 to about 20% of a CPU (cpu.stat, CPU usage over 2 s) and the answer is that share.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
st=$(capsa state lab09 2>/dev/null | jq -r .status) || true
[ -n "$st" ] || fail "no container lab09: run it, and keep it: capsa run --keep --bundle $WORK/bundle lab09"
[ "$st" = stopped ] || fail "lab09 is $st; let it run its 2 s to the end (capsa run --keep, in the foreground)"
cg=/capsa-lab/lab09
[ -d "$(cg_dir cpu $cg)" ] || fail "lab09's cgroup $(cg_dir cpu $cg) is gone; run it again with --keep"
quota=$(cg_get $cg cpu.quota)
period=$(cg_get $cg cpu.period)
periods=$(cg_get $cg cpu.nr_periods)
throttled=$(cg_get $cg cpu.nr_throttled)
thr_us=$(cg_get $cg cpu.throttled_usec)
usage=$(cg_get $cg cpu.usage_usec)
if [ "$(cg_mode)" = v2 ]; then
  explain "cpu.max in $(cg_dir cpu $cg): $quota $period; cpu.stat: usage_usec $usage, nr_periods $periods, nr_throttled $throttled, throttled_usec $thr_us"
else
  explain "$(cg_dir cpu $cg): cpu.cfs_quota_us $quota, cpu.cfs_period_us $period; cpu.stat: nr_periods $periods, nr_throttled $throttled, throttled_time $((thr_us * 1000)) ns"
  explain "$(cg_dir cpuacct $cg)/cpuacct.usage: $((usage * 1000)) ns"
fi
if [ "$quota" != 20000 ] || [ "$period" != 100000 ]; then
  fail "lab09's quota is $quota per $period us; the lab is about 20000 per 100000, leave it"
fi
[ "${periods:-0}" -ge 5 ] || fail "lab09 ran for only $periods period(s) of $period us; did its 2 s busy loop run?"
share=$((usage * 100 / 2000000))
explain "the loop was runnable for 2 s (2000000 us) and got $usage us of CPU: $share%; it was throttled in $throttled of $periods periods, $((thr_us / 1000)) ms in all"
[ "$share" -le 35 ] || fail "lab09 got $share% of a CPU, far above its 20% quota: the quota was not enforced"
[ "$throttled" -ge $((periods / 2)) ] || fail "lab09 was throttled in only $throttled of $periods periods: the quota was not enforced"
got=$(answer cpu-percent)
got=${got%\%}
[ -n "$got" ] || fail "no answer in $WORK/cpu-percent: write the share of one CPU the loop got, in percent"
[[ $got =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "cpu-percent says '$got'; write a number of percent, like 42"
if [ "${got%.*}" -lt $((share - 8)) ] || [ "${got%.*}" -gt $((share + 8)) ]; then
  [ "${got%.*}" -ge 90 ] && explain "without a quota a busy loop takes 100% of one CPU; with it, the kernel runs it $((quota / 1000)) ms of every $((period / 1000)) ms and stops it until the next period"
  fail "cpu-percent says $got, but lab09 got $usage us of CPU in 2 s of wall time: $share%"
fi
pass "lab09's busy loop got $share% of a CPU ($usage us in 2 s), throttled in $throttled of $periods periods"
