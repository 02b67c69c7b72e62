#!/bin/bash
# Lab 07 check: lab07 was OOM-killed at 32 MiB (kernel counter, exit status answered), lab07-fixed ran the same program to the end.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
mib() { if [ "$1" = max ]; then echo max; else awk -v b="$1" 'BEGIN {printf "%.1f MiB\n", b / 1048576}'; fi; }
v1=$([ "$(cg_mode)" = v2 ] && echo false || echo true)
where() { if $v1; then echo "memory.oom_control in $(cg_dir memory "$1")"; else echo "memory.events in $(cg_dir memory "$1")"; fi; }

st=$(capsa state lab07 2>/dev/null | jq -r .status) || true
[ -n "$st" ] || fail "no container lab07: run it, and keep it: capsa run --keep --bundle $WORK/bundle lab07"
[ "$st" = stopped ] || fail "lab07 is $st; it should have run to its end (capsa run --keep, in the foreground)"
cg=/capsa-lab/lab07
[ -d "$(cg_dir memory $cg)" ] || fail "lab07's cgroup $(cg_dir memory $cg) is gone; run it again with --keep"
limit=$(cg_get $cg memory.limit)
kills=$(cg_get $cg memory.oom_kill)
explain "lab07: memory limit $(mib "$limit"), oom_kill $kills ($(where $cg))"
[ "${kills:-0}" -ge 1 ] || fail "the kernel counted no OOM kill in lab07's cgroup; did it run with the 32 MiB bundle?"
got=$(answer exit-status)
[ -n "$got" ] || fail "no answer in $WORK/exit-status: write the exit status of capsa run lab07 there"
if [ "$got" != 137 ]; then
  [ "$got" = 9 ] && explain "9 is the signal (SIGKILL); an exit status reports a death by signal N as 128 + N"
  [ "$got" = 0 ] && explain "0 would mean success; the shell and capsa run report the OOM kill as 128 + 9"
  fail "exit-status says $got, but a process killed by the OOM killer (SIGKILL, 9) exits with status 137"
fi
explain "the OOM killer sent SIGKILL (9) to tail; sh and capsa run passed on its status, 128 + 9 = 137"

st=$(capsa state lab07-fixed 2>/dev/null | jq -r .status) || true
[ -n "$st" ] || fail "no container lab07-fixed: raise the limit in $WORK/fixed/config.json, then capsa run --keep --bundle $WORK/fixed lab07-fixed"
[ "$st" = stopped ] || fail "lab07-fixed is $st; it should have run to its end (capsa run --keep, in the foreground)"
cg=/capsa-lab/lab07-fixed
[ -d "$(cg_dir memory $cg)" ] || fail "lab07-fixed's cgroup $(cg_dir memory $cg) is gone; run it again with --keep"
limit=$(cg_get $cg memory.limit)
kills=$(cg_get $cg memory.oom_kill)
peak=$(cg_get $cg memory.peak)
explain "lab07-fixed: memory limit $(mib "$limit"), oom_kill $kills${peak:+, peak usage $(mib "$peak")} ($(where $cg))"
if [ "${kills:-0}" -ge 1 ]; then
  [ "$limit" != max ] && [ "$limit" -le $((64 * 1048576)) ] &&
    explain "64 MiB is only tail's buffer: sh, head, tail's own code and heap, page tables and kernel memory are charged to the cgroup too"
  fail "lab07-fixed was OOM-killed too ($kills kill(s) at a limit of $(mib "$limit")); give it more room"
fi
[ "$limit" != max ] || fail "lab07-fixed has no memory limit at all; raise it, do not remove it"
if [ -n "$peak" ] && [ "$peak" -lt $((64 * 1048576)) ]; then
  fail "lab07-fixed's peak usage is $(mib "$peak"): it did not run the 64 MiB program (keep process.args as they were)"
fi
pass "lab07 was OOM-killed at 32 MiB (exit 137, oom_kill counted); lab07-fixed ran to the end under $(mib "$limit")"
