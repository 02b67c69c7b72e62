#!/bin/bash
# Lab 06 check: own user namespace, root inside maps to the host uid answered, and the file made by uid 1000 inside has the host owner answered.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
state=$(capsa state lab06 2>/dev/null) || true
pid=$(jq -r 'select(.status == "running") | .pid' <<<"$state" 2>/dev/null) || true
[ -n "$pid" ] || fail "container lab06 is not running (run: capsa lab start 6)"
rootfs=$(jq -r .rootfs <<<"$state")
[ "$(readlink "/proc/$pid/ns/user")" != "$(readlink /proc/self/ns/user)" ] ||
  fail "lab06 shares the host's user namespace; it should have its own"
# The map the runtime wrote: "inside-id outside-id count" (first line).
read -r in_id base count < <(head -1 "/proc/$pid/uid_map")
host_uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
inside_uid=$(capsa exec lab06 id -u 2>/dev/null) || true
explain "/proc/$pid/uid_map: container uids $in_id..$((in_id + count - 1)) are host uids $base..$((base + count - 1))"
explain "lab06's sleep is uid $inside_uid inside (capsa exec lab06 id) and uid $host_uid on the host (Uid: in /proc/$pid/status)"
got=$(answer host-uid)
[ -n "$got" ] || fail "no answer in $WORK/host-uid: write the host uid of lab06's root there"
if [ "$got" != "$host_uid" ]; then
  [ "$got" = 0 ] && explain "0 is root's uid *inside* the namespace; the kernel stores and shows the host uid outside it"
  fail "host-uid says $got, but lab06's root is host uid $host_uid"
fi
file=$rootfs/tmp/from-1000
[ -e "$file" ] || fail "no /tmp/from-1000 in lab06 (make it as uid 1000: capsa exec -u 1000:1000 lab06 sh -c 'echo hi > /tmp/from-1000')"
owner=$(stat -c %u "$file")
want=$((base + 1000 - in_id))
if [ "$owner" != "$want" ]; then
  explain "on the host, $file belongs to uid $owner, which is container uid $((owner - base + in_id))"
  fail "/tmp/from-1000 was not made by uid 1000 inside lab06 (host owner $owner, expected $want)"
fi
explain "a file made by uid 1000 inside is stored on disk with host uid $base + 1000 = $owner (stat $file)"
got=$(answer file-owner)
[ -n "$got" ] || fail "no answer in $WORK/file-owner: write the host uid that owns /tmp/from-1000 there"
if [ "$got" != "$owner" ]; then
  [ "$got" = 1000 ] && explain "1000 is the owner as the container sees it (ls -ln inside); stat on the host sees $owner"
  fail "file-owner says $got, but the host sees /tmp/from-1000 owned by uid $owner"
fi
explain "host files whose owner is not mapped (like $WORK/host-only/secret, uid 0) show up as 65534 (nobody) inside, and root's capabilities do not reach them"
pass "lab06's root is host uid $host_uid; its uid 1000 writes files owned by host uid $owner"
