#!/bin/bash
# idle-containers.sh: N idle containers (default 1,000), each a busybox `sleep` under
# its own capsa-shim, all started by one capsa binary; then what they cost:
#   - the shims' summed RSS, PSS and USS (kB, /proc/PID/smaps_rollup), and the
#     mean per shim (target, issue 12: RSS <= 1 MB each);
#   - the memory the whole set took from the machine (MemAvailable before - after:
#     shims, containers, their namespaces, cgroups and kernel objects);
#   - how long `ps -e` and `capsa list` take with them all running;
#   - how long starting and removing them all took.
# Every container has its own mount/pid/ipc/uts/net namespaces and its own cgroup
# (/capsa-idle/cN); they share one read-only busybox rootfs. Root.
#   bench/idle-containers.sh [N]
# Env: CAPSA, SHIM (binaries; default this repo's release build).
set -euo pipefail
N=${1:-1000}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CAPSA=${CAPSA:-$REPO/target/release/capsa}
SHIM=${SHIM:-$REPO/target/release/capsa-shim}
W=$(mktemp -d /tmp/capsa-idle.XXXXXX)
ROOT=$W/state
started=0
cleanup() {
  local t0=$SECONDS i
  for i in $(seq "$started"); do "$CAPSA" --root "$ROOT" delete --force "idle-$i" >/dev/null 2>&1 || true; done
  # The shims exit when their container does.
  for _ in $(seq 100); do
    pgrep -f "^$SHIM --id idle-" >/dev/null || break
    sleep 0.1
  done
  for i in $(seq "$started"); do
    for h in /sys/fs/cgroup/*/capsa-idle/c"$i"; do [ -d "$h" ] && rmdir "$h" 2>/dev/null || true; done
  done
  for h in /sys/fs/cgroup/*/capsa-idle; do [ -d "$h" ] && rmdir "$h" 2>/dev/null || true; done
  rm -rf "$W"
  [ "$started" = 0 ] || echo "removed $started containers in $((SECONDS - t0)) s"
}
trap cleanup EXIT
avail() { awk '/^MemAvailable:/ {print $2}' /proc/meminfo; }
"$REPO/rootfs-examples/make-busybox-bundle.sh" "$W/base" --args "sleep 100000" >/dev/null
sync; echo 1 >/proc/sys/vm/compact_memory 2>/dev/null || true
before=$(avail)
t0=$(date +%s.%N)
for i in $(seq "$N"); do
  b=$W/b$i
  mkdir -p "$b"
  jq --arg r "$W/base/rootfs" --arg c "/capsa-idle/c$i" \
    '.root = {path: $r, readonly: true} | .linux.cgroupsPath = $c' "$W/base/config.json" >"$b/config.json"
  "$SHIM" --id "idle-$i" --bundle "$b" --state-dir "$W/shim-$i" --runtime "$CAPSA" --root "$ROOT" >/dev/null
  started=$i
done
t1=$(date +%s.%N)
sleep 2
after=$(avail)
pids=$(cat "$W"/shim-*/shim.pid)
read -r n rss pss uss < <(for p in $pids; do
  awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Private_(Clean|Dirty):/{u+=$2} END{print r, p, u}' "/proc/$p/smaps_rollup"
done | awk '{n++; r+=$1; p+=$2; u+=$3} END {print n, r, p, u}')
running=$("$CAPSA" --root "$ROOT" list -q | wc -l)
tps=$( { /usr/bin/time -f %e ps -e >/dev/null; } 2>&1)
nps=$(ps -e --no-headers | wc -l)
tlist=$( { /usr/bin/time -f %e "$CAPSA" --root "$ROOT" list >/dev/null; } 2>&1)
echo "== $N idle containers ($running running, $n shims), started in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}') s"
printf 'shims: RSS %d MB total, %d kB each; PSS %d MB total (%d kB each); USS %d MB total (%d kB each)\n' \
  $((rss / 1024)) $((rss / n)) $((pss / 1024)) $((pss / n)) $((uss / 1024)) $((uss / n))
printf 'machine: MemAvailable down %d MB for the %d containers (%d kB each: shim, sleep, namespaces, cgroup, kernel)\n' \
  $(((before - after) / 1024)) "$N" $(((before - after) / N))
echo "ps -e: $tps s for $nps processes; capsa list: $tlist s"
awk -v r=$((rss / n)) 'BEGIN { printf "target: idle capsa-shim RSS <= 1024 kB: %d kB  %s\n", r, (r <= 1024 ? "PASS" : "MISS") }'
