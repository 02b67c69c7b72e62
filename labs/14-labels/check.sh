#!/bin/bash
# Lab 14 check: the recorded names are what the selectors pick in the live state, and exactly the canary was stopped.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
CONTAINERS=(lab14-shop-web lab14-shop-db lab14-canary-web lab14-blog-web lab14-cache lab14-batch)
PODS=(lab14-shop lab14-shop-canary lab14-blog)
ps_json=$(capsa ps -a --format json 2>/dev/null) || fail "capsa ps failed (run: capsa lab start 14)"
pods_json=$(capsa pod ls --format json 2>/dev/null) || fail "capsa pod ls failed (run: capsa lab start 14)"
for c in "${CONTAINERS[@]}"; do
  jq -e --arg n "$c" 'any(.[]; .name == $n)' <<<"$ps_json" >/dev/null || fail "container $c is gone (run: capsa lab start 14)"
done
for p in "${PODS[@]}"; do
  jq -e --arg n "$p" 'any(.[]; .name == $n)' <<<"$pods_json" >/dev/null || fail "pod $p is gone (run: capsa lab start 14)"
done
[ -f "$WORK/started" ] || fail "setup's record $WORK/started is missing (run: capsa lab start 14)"

labels() { jq -r --arg n "$1" '.[] | select(.name == $n) | .labels | to_entries | map("\(.key)=\(.value)") | join(",")' <<<"$ps_json"; }
# setup_pid NAME: the container's host pid at setup (none: it was not running then).
setup_pid() { awk -v n="$1" '$1 == n {print $2}' "$WORK/started"; }
# still_there NAME: the process setup saw for NAME is alive (same pid, same start time), per /proc.
still_there() {
  local pid start
  read -r pid start < <(awk -v n="$1" '$1 == n {print $2, $3}' "$WORK/started") || return 1
  [ -d "/proc/$pid" ] && [ "$(awk '{print $22}' "/proc/$pid/stat" 2>/dev/null)" = "$start" ] &&
    ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}
problems=()

# 1. The selector app=shop,env=prod (both labels, those values) on the running containers,
#    worked out from the labels capsa holds and from what ran at setup.
want=$(for c in "${CONTAINERS[@]}"; do
  if jq -e --arg n "$c" '.[] | select(.name == $n) | .labels.app == "shop" and .labels.env == "prod"' <<<"$ps_json" \
    >/dev/null && [ -n "$(setup_pid "$c")" ]; then echo "$c"; fi
done | sort)
got=$(grep -v '^[[:space:]]*$' "$WORK/selected" 2>/dev/null | tr -d ' \t\r' | sort -u || true)
for c in $want; do
  pid=$(setup_pid "$c")
  if still_there "$c"; then
    explain "app=shop,env=prod picks $c: host pid $pid, cgroup $(cg_dir memory "$pid" 2>/dev/null || echo '?'), $(readlink "/proc/$pid/ns/net")"
  else
    explain "app=shop,env=prod picks $c (host pid $pid at setup, gone now)"
  fi
done
if [ ! -f "$WORK/selected" ]; then
  problems+=("no $WORK/selected: write the running containers app=shop,env=prod selects, one name a line")
elif [ "$got" != "$want" ]; then
  for c in $(comm -13 <(echo "$want") <(echo "$got")); do
    if ! jq -e --arg n "$c" 'any(.[]; .name == $n)' <<<"$ps_json" >/dev/null; then
      explain "$c: no such container"
    elif ! jq -e --arg n "$c" '.[] | select(.name == $n) | .labels.app == "shop" and .labels.env == "prod"' \
      <<<"$ps_json" >/dev/null; then
      explain "$c has $(labels "$c"): not app=shop AND env=prod (several --filter label= must all match)"
    else
      explain "$c has the labels ($(labels "$c")) but had exited before: capsa ps -a lists stopped containers, capsa ps does not"
    fi
  done
  for c in $(comm -23 <(echo "$want") <(echo "$got")); do explain "$c is missing: it runs with $(labels "$c")"; done
  problems+=("$WORK/selected has $(echo "$got" | paste -sd' '), but app=shop,env=prod selects $(echo "$want" | paste -sd' ')")
fi

# 2. Pods with env=prod.
want_pods=$(jq -r '.[] | select((.name | startswith("lab14")) and .labels.env == "prod") | .name' <<<"$pods_json" | sort)
got_pods=$(grep -v '^[[:space:]]*$' "$WORK/pods" 2>/dev/null | tr -d ' \t\r' | sort -u || true)
if [ ! -f "$WORK/pods" ]; then
  problems+=("no $WORK/pods: write the pods env=prod selects, one name a line")
elif [ "$got_pods" != "$want_pods" ]; then
  for p in $(comm -13 <(echo "$want_pods") <(echo "$got_pods")); do
    l=$(jq -r --arg n "$p" '.[] | select(.name == $n) | .labels | to_entries | map("\(.key)=\(.value)") | join(",")' <<<"$pods_json")
    explain "pod $p has ${l:-no such pod}: label=env matches any value of env, label=env=prod only prod"
  done
  problems+=("$WORK/pods has $(echo "$got_pods" | paste -sd' '), but env=prod selects the pods $(echo "$want_pods" | paste -sd' ')")
fi

# 3. Exactly the track=canary container was stopped: its process is gone, the others' are not.
if still_there lab14-canary-web; then
  explain "lab14-canary-web ($(labels lab14-canary-web)) still runs as host pid $(setup_pid lab14-canary-web)"
  problems+=("the track=canary container still runs: stop what capsa ps --filter label=track=canary lists")
else
  explain "lab14-canary-web, host pid $(setup_pid lab14-canary-web) at setup, is gone: $(jq -r '.[] | select(.name == "lab14-canary-web") | .status' <<<"$ps_json")"
fi
for c in lab14-shop-web lab14-shop-db lab14-blog-web lab14-cache; do
  if ! still_there "$c"; then
    explain "$c ($(labels "$c")) was stopped too: it has no track=canary (--filter name= matches names, not labels)"
    problems+=("$c is not running; only the track=canary container was to be stopped")
  fi
done

if [ ${#problems[@]} -gt 0 ]; then msg=$(printf '%s; ' "${problems[@]}"); fail "${msg%; }"; fi
pass "app=shop,env=prod selects $(echo "$want" | paste -sd' '); env=prod the pods $(echo "$want_pods" | paste -sd' '); only the canary was stopped"
