#!/bin/bash
# Lab 03 check: own uts namespace, its hostname is lab03-renamed, the host's name unchanged.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
want=lab03-renamed
pid=$(capsa state lab03 2>/dev/null | jq -r 'select(.status == "running") | .pid') || true
[ -n "$pid" ] || fail "container lab03 is not running (run: capsa lab start 3)"
[ -f "$WORK/host-hostname" ] || fail "setup's note of the host's hostname is missing (run: capsa lab start 3)"
mine=$(readlink /proc/self/ns/uts) theirs=$(readlink "/proc/$pid/ns/uts")
[ "$mine" != "$theirs" ] || fail "lab03 shares the host's uts namespace; it should have its own"
explain "uts namespaces: lab03 $theirs, the host $mine"
# the kernel's names, read by a process inside each uts namespace
inside=$(nsenter --target "$pid" --uts cat /proc/sys/kernel/hostname)
host=$(cat /proc/sys/kernel/hostname)
was=$(cat "$WORK/host-hostname")
explain "hostname in lab03's uts namespace (nsenter --target $pid --uts hostname): $inside; on the host: $host"
if [ "$host" != "$was" ]; then
  explain "the host was called $was when the lab started: a hostname run outside lab03's uts namespace renamed the host"
  explain "put it back with: hostname $was"
  fail "the host's hostname changed from $was to $host"
fi
if [ "$inside" != "$want" ]; then
  file=$(cat "/proc/$pid/root/etc/hostname" 2>/dev/null || true)
  if [ "$file" = "$want" ]; then
    explain "/etc/hostname inside says $want, but that is only a file: init systems read it at boot and call sethostname(2)"
    explain "the kernel keeps the name in the uts namespace; hostname(1) asks for it with uname(2), so it still answers $inside"
  fi
  explain "sethostname(2) needs CAP_SYS_ADMIN: capsa exec --cap CAP_SYS_ADMIN lab03 hostname $want"
  fail "lab03's hostname is $inside, expected $want"
fi
pass "lab03 is called $want in its uts namespace ($theirs); the host is still $host"
