#!/bin/bash
# Lab 10 check: the 1 MiB/s limits are in the kernel (io.max / blkio.throttle.*), reads went through them, a fresh measurement is throttled, and the answer is the throttled read rate.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
pid=$(capsa state lab10 2>/dev/null | jq -r 'select(.status == "running") | .pid') || true
[ -n "$pid" ] || fail "container lab10 is not running (run: capsa lab start 10)"
dev=$(cat "$WORK/loopdev" 2>/dev/null) || true
img=$(cd "$WORK" && pwd -P)/disk.img
if [ -z "$dev" ] || [ "$(cat "/sys/block/${dev#/dev/}/loop/backing_file" 2>/dev/null)" != "$img" ]; then
  fail "the lab's loop device is gone (run: capsa lab start 10)"
fi
mm=$((0x$(stat -c %t "$dev"))):$((0x$(stat -c %T "$dev")))
rbps=$(cg_get "$pid" io.rbps "$mm")
wbps=$(cg_get "$pid" io.wbps "$mm")
rbytes=$(cg_get "$pid" io.rbytes "$mm")
wbytes=$(cg_get "$pid" io.wbytes "$mm")
if [ "$(cg_mode)" = v2 ]; then
  explain "$(cg_dir io "$pid")/io.max: $(grep "^$mm " "$(cg_dir io "$pid")/io.max" || echo "no line for $mm")"
  explain "io.stat for $mm: rbytes=$rbytes wbytes=$wbytes"
else
  explain "$(cg_dir io "$pid"): blkio.throttle.read_bps_device $mm $rbps, blkio.throttle.write_bps_device $mm $wbps"
  explain "blkio.throttle.io_service_bytes for $mm: Read $rbytes, Write $wbytes"
fi
if [ "$rbps" != 1048576 ] || [ "$wbps" != 1048576 ]; then
  fail "lab10's limits on $dev ($mm) are read $rbps, write $wbps bytes/s; the lab is about 1048576 each way, leave them"
fi
[ "$rbytes" -ge 1048576 ] ||
  fail "only $rbytes bytes were read from $dev inside lab10: time an O_DIRECT read of /dev/lab10disk in it (capsa exec lab10 time dd ... iflag=direct)"
# A measurement of our own: 512 KiB with O_DIRECT, inside lab10 and on the host.
rate() { # rate KIB SECONDS-START SECONDS-END -> KiB/s
  awk -v k="$1" -v a="$2" -v b="$3" 'BEGIN {d = b - a; if (d < 0.000001) d = 0.000001; printf "%d\n", k / d}'
}
t0=$EPOCHREALTIME
capsa exec lab10 dd if=/dev/lab10disk of=/dev/null bs=64k count=8 skip=128 iflag=direct 2>/dev/null
t1=$EPOCHREALTIME
dd if="$dev" of=/dev/null bs=64k count=8 skip=128 iflag=direct 2>/dev/null
t2=$EPOCHREALTIME
inside=$(rate 512 "$t0" "$t1")
host=$(rate 512 "$t1" "$t2")
explain "512 KiB read with O_DIRECT just now: $inside KiB/s inside lab10 (limit 1024 KiB/s), $host KiB/s on the host, in no throttled cgroup"
if [ "$inside" -ge 2048 ] || [ "$inside" -ge $((host * 6 / 10)) ]; then
  fail "reads in lab10 are not throttled: $inside KiB/s inside, $host KiB/s on the host"
fi
got=$(answer read-rate)
[ -n "$got" ] || fail "no answer in $WORK/read-rate: write the read rate you measured inside lab10, in KiB/s"
[[ $got =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "read-rate says '$got'; write a number of KiB/s, like 4096"
if [ "${got%.*}" -lt 512 ] || [ "${got%.*}" -gt 2048 ]; then
  [ "${got%.*}" -gt 2048 ] && explain "a rate far above 1024 KiB/s was measured outside lab10's cgroup (on the host), or through the page cache (without iflag=direct)"
  fail "read-rate says $got KiB/s, but reads of /dev/lab10disk inside lab10 are throttled to 1024 KiB/s (measured now: $inside)"
fi
pass "reads of $dev in lab10 run at about 1 MiB/s (you: $got KiB/s, now: $inside KiB/s; the host: $host KiB/s)"
