#!/bin/bash
# Lab 05 check: lab05-sidecar shares lab05-web's network namespace and fetched its page over 127.0.0.1; the pod IP answers.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
running() { capsa state "$1" 2>/dev/null | jq -r 'select(.status == "running") | .pid' || true; }
pinned=$(capsa pod inspect lab05 2>/dev/null | jq -r '.namespaces.net // empty') || true
[ -n "$pinned" ] || fail "pod lab05 is gone (run: capsa lab start 5)"
ip=$(capsa pod inspect lab05 | jq -r '.pod.ip // empty')
token=$(cat "$WORK/token" 2>/dev/null || true)
[ -n "$token" ] || fail "the page's token $WORK/token is missing (run: capsa lab start 5)"
pw=$(running lab05-web)
[ -n "$pw" ] || fail "lab05-web is not running (run: capsa lab start 5)"
ps=$(running lab05-sidecar)
[ -n "$ps" ] || fail "no running container lab05-sidecar: start it in the pod (capsa run -d --pod lab05 --name lab05-sidecar ...)"
nw=$(readlink "/proc/$pw/ns/net") ns=$(readlink "/proc/$ps/ns/net") np="net:[$(stat -Lc %i "$pinned")]"
explain "network namespaces: lab05-web $nw, lab05-sidecar $ns, the pod's pinned $pinned $np, here $(readlink /proc/self/ns/net)"
log=$(capsa logs lab05-sidecar 2>&1 || true)
problems=()
if [ "$ns" != "$np" ]; then
  pod=$(capsa inspect lab05-sidecar | jq -r '.[0].pod // empty')
  where="no pod"; [ -z "$pod" ] || where="pod $pod"
  explain "lab05-sidecar is in $where, with a network namespace of its own: its 127.0.0.1 is its own lo, where nothing listens"
  grep -q 'Connection refused' <<<"$log" && explain "its log says so: $(grep -m1 'Connection refused' <<<"$log")"
  explain "start it with --pod lab05 to join the pod's namespaces (capsa rm -f lab05-sidecar first)"
  problems+=("lab05-sidecar is not in lab05's network namespace")
else
  # the sidecar polls every 2 s: give its first fetch a moment
  for _ in 1 2 3 4 5 6; do grep -q "$token" <<<"$log" && break; sleep 0.5; log=$(capsa logs lab05-sidecar 2>&1 || true); done
  if grep -q "$token" <<<"$log"; then
    explain "lab05-sidecar's log (capsa logs lab05-sidecar) shows the page: $(grep -m1 "$token" <<<"$log")"
  else
    explain "lab05-sidecar's log: $(tail -n 2 <<<"$log" | paste -sd' ')"
    problems+=("lab05-sidecar's log does not show lab05-web's page (it should fetch http://127.0.0.1:8080/)")
  fi
fi
got=$(answer pod-ip)
if [ -z "$got" ]; then
  problems+=("no answer in $WORK/pod-ip: write the pod's IP (capsa pod inspect lab05)")
elif [ "$got" != "$ip" ]; then
  [ "$got" = 127.0.0.1 ] && explain "127.0.0.1 is every network namespace's own loopback, not an address of the pod on the network"
  explain "the pod's eth0 has $ip (capsa pod ls, capsa pod inspect lab05 | jq .pod.ip)"
  problems+=("pod-ip says $got, but the pod's IP is $ip")
fi
if [ -n "$ip" ]; then
  page=""
  for _ in 1 2 3; do page=$(curl -sS -m 2 "http://$ip:8080/" 2>&1) && break; sleep 0.5; done
  if grep -q "$token" <<<"$page"; then
    explain "from here, over the bridge, http://$ip:8080/ answers: $page"
  else
    problems+=("http://$ip:8080/ does not answer with lab05-web's page from this network namespace: $page")
  fi
fi
if [ ${#problems[@]} -gt 0 ]; then msg=$(printf '%s; ' "${problems[@]}"); fail "${msg%; }"; fi
pass "lab05-web and lab05-sidecar share $np: the sidecar reads the page over 127.0.0.1, the host over $ip"
