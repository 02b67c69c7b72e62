#!/bin/bash
# shim-vs-conmon.sh: resident memory of capsa-shim next to Debian's conmon, each
# monitoring one idle busybox container (`sleep`) run by the same capsa binary.
# Prints RSS and PSS (kB, from /proc/PID/smaps_rollup) of each monitor. Root.
# Env: ARGS (the container's command, default 'sleep 1000'), CAPSA (runtime), SHIM (capsa-shim binary), CONMON (default: conmon on PATH),
#      REPO (capsa checkout, for rootfs-examples/make-busybox-bundle.sh).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${REPO:-$(cd "$HERE/.." && pwd)}
CAPSA=${CAPSA:-$REPO/target/release/capsa}
SHIM=${SHIM:-$REPO/target/release/capsa-shim}
CONMON=${CONMON:-$(command -v conmon)}
W=$(mktemp -d /tmp/shim-vs-conmon.XXXXXX)
ROOT=$W/root
ids=()
cleanup() {
  for id in "${ids[@]}"; do "$CAPSA" --root "$ROOT" delete --force "$id" >/dev/null 2>&1 || true; done
  # the monitors exit when their container does; wait for them before removing their dirs
  for p in ${cp:-} ${sp:-}; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done; done
  sleep 0.3
  for id in "${ids[@]}"; do
    for h in /sys/fs/cgroup/*/capsa-shimbench/"$id"; do [ -d "$h" ] && rmdir "$h" 2>/dev/null || true; done
  done
  for h in /sys/fs/cgroup/*/capsa-shimbench; do [ -d "$h" ] && rmdir "$h" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
mem() { # pid -> "RSS PSS USS"
  awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Private_(Clean|Dirty):/{u+=$2} END{print r, p, u}' "/proc/$1/smaps_rollup"
}
for m in conmon shim; do
  id=bench-$m-$$; ids+=("$id")
  "$REPO/rootfs-examples/make-busybox-bundle.sh" "$W/$id" --args "${ARGS:-sleep 1000}" \
    --cgroups-path "/capsa-shimbench/$id" >/dev/null
done
# conmon: creates the container; the caller starts it (as podman does)
cid=bench-conmon-$$
mkdir -p "$W/conmon-state"
"$CONMON" --cid "$cid" --cuuid "$(cat /proc/sys/kernel/random/uuid)" --name "$cid" \
  --runtime "$CAPSA" --runtime-arg --root --runtime-arg "$ROOT" --bundle "$W/$cid" \
  --exit-dir "$W/conmon-state" --socket-dir-path "$W/conmon-state" \
  --log-path "k8s-file:$W/conmon-state/ctr.log" --container-pidfile "$W/conmon-state/init.pid" \
  --conmon-pidfile "$W/conmon-state/conmon.pid" >/dev/null
# conmon returns before `runtime create` is done (podman waits on its sync pipe): wait
# for the container's pid file
for _ in $(seq 100); do [ -s "$W/conmon-state/init.pid" ] && break; sleep 0.05; done
"$CAPSA" --root "$ROOT" state "$cid" | grep -q '"created"' || sleep 0.2
"$CAPSA" --root "$ROOT" start "$cid"
sid=bench-shim-$$
"$SHIM" --id "$sid" --bundle "$W/$sid" --state-dir "$W/shim-state" --runtime "$CAPSA" --root "$ROOT" >/dev/null
sleep 1
cp=$(cat "$W/conmon-state/conmon.pid"); sp=$(cat "$W/shim-state/shim.pid")
ps -o pid,rss,cmd -p "$cp","$sp" | cut -c1-60 >&2
read -r crss cpss cuss < <(mem "$cp"); read -r srss spss suss < <(mem "$sp")
printf '%-12s %8s %8s %8s\n' monitor RSS_kB PSS_kB USS_kB
printf '%-12s %8s %8s %8s\n' conmon "$crss" "$cpss" "$cuss" capsa-shim "$srss" "$spss" "$suss"
if command -v smem >/dev/null; then smem -P '^(conmon|.*capsa-shim) ' -c 'pid name uss pss rss' -k; fi
# Target (issue 12): the idle shim's RSS <= 1 MB (1024 kB).
awk -v r="$srss" 'BEGIN { printf "target: idle capsa-shim RSS <= 1024 kB: %d kB  %s\n", r, (r <= 1024 ? "PASS" : "MISS") }'
