#!/bin/bash
# Lab 13 check: pod A's IP in its own netns, veths on capsa0, and pod B fetching pod A's page by that IP.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
a=$(capsa pod inspect lab13-a 2>/dev/null) || fail "no pod lab13-a (run: capsa lab start 13)"
b=$(capsa pod inspect lab13-b 2>/dev/null) || fail "no pod lab13-b (run: capsa lab start 13)"
ipa=$(jq -r '.pod.ip // empty' <<<"$a")
ipb=$(jq -r '.pod.ip // empty' <<<"$b")
nsa=$(jq -r '.namespaces.net // empty' <<<"$a")
nsb=$(jq -r '.namespaces.net // empty' <<<"$b")
{ [ -n "$ipa" ] && [ -n "$nsa" ]; } || fail "lab13-a has no IP or no network namespace: $(jq -c .pod <<<"$a")"
{ [ -n "$ipb" ] && [ -n "$nsb" ]; } || fail "lab13-b has no IP or no network namespace: $(jq -c .pod <<<"$b")"

# 1. Each pod's IP lives on eth0 in the pod's own network namespace.
addr_in() { nsenter --net="$1" ip -4 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]; exit}'; }
gota=$(addr_in "$nsa")
gotb=$(addr_in "$nsb")
[ "$gota" = "$ipa" ] || fail "capsa pod inspect says lab13-a has $ipa, but eth0 in $nsa has '$gota'"
[ "$gotb" = "$ipb" ] || fail "capsa pod inspect says lab13-b has $ipb, but eth0 in $nsb has '$gotb'"
ina=$(stat -L -c %i "$nsa")
inb=$(stat -L -c %i "$nsb")
[ "$ina" != "$inb" ] || fail "lab13-a and lab13-b share one network namespace"
[ "net:[$ina]" != "$(readlink /proc/self/ns/net)" ] || fail "lab13-a uses the host's network namespace"
explain "lab13-a: eth0 $ipa in net:[$ina] (pinned at $nsa); lab13-b: eth0 $ipb in net:[$inb]"

# 2. The wiring: each eth0 is one end of a veth pair; the other end is on the host, a port of capsa0.
gw=$(ip -4 -o addr show dev capsa0 2>/dev/null | awk '{print $4; exit}')
[ -n "$gw" ] || fail "no bridge capsa0 with an IPv4 address in this network namespace"
for p in "lab13-a:$nsa" "lab13-b:$nsb"; do
  peer=$(nsenter --net="${p#*:}" ip -o link show dev eth0 | sed -n 's/^[0-9]*: eth0@if\([0-9]*\):.*/\1/p')
  host=$(ip -o link show | awk -v i="$peer:" '$1 == i {sub(/@.*/, "", $2); print $2; exit}')
  [ -n "$host" ] || fail "${p%%:*}'s eth0 has no peer interface (index $peer) on the host side"
  ip -o link show dev "$host" | grep -q ' master capsa0 ' || fail "${p%%:*}'s veth peer $host is not a port of capsa0"
  explain "${p%%:*}: eth0 <-veth-> $host (ifindex $peer on the host), a port of bridge capsa0 ($gw, the pods' gateway)"
done

# 3. The answer: pod A's address, as pod B must use it.
got=$(answer pod-a-ip)
[ -n "$got" ] || fail "no answer in $WORK/pod-a-ip: write lab13-a's IP there"
if [ "$got" != "$ipa" ]; then
  case $got in
    127.* | localhost) explain "$got in lab13-b is lab13-b's own loopback: each pod has its own network namespace, its own lo, and nothing listens on lab13-b's port 80" ;;
    "$ipb") explain "$got is lab13-b's own address (eth0 in lab13-b), not lab13-a's" ;;
    "${gw%/*}") explain "$got is capsa0, the bridge on the host: the pods' gateway, not a pod" ;;
  esac
  fail "pod-a-ip says $got, but lab13-a's IP is $ipa (capsa pod inspect lab13-a, or ip addr in its netns)"
fi

# 4. The traffic: pod B fetches pod A's page by that address, now, and the student saw the same page.
page=$(capsa exec lab13-a-web cat /www/index.html 2>/dev/null) || fail "lab13-a-web is not running (capsa lab start 13 again)"
live=$(capsa exec lab13-b-client timeout 5 wget -qO- "http://$got/" 2>/dev/null) || true
[ "$live" = "$page" ] || fail "lab13-b could not fetch http://$got/ now (got '$live'); lab13-a serves '$page'"
explain "lab13-b ($ipb) -> capsa0 -> lab13-a ($ipa) port 80: '$live'"
fetched=$(cat "$WORK/fetched" 2>/dev/null) || true
[ -n "$fetched" ] || fail "$WORK/fetched is empty: save what lab13-b fetched from http://$ipa/ there"
[ "$fetched" = "$page" ] || fail "$WORK/fetched has '$fetched', but lab13-a serves '$page' (from this setup)"
pass "lab13-b reached lab13-a at $ipa over capsa0 and got its page"
