#!/bin/bash
# bench/pod.sh [RUNS]: how long from `capsa pod apply` to the sidecar's first
# answer from its app over localhost, against one `capsa run` of /bin/true.
#
#   pod:   `pod apply` of app (busybox httpd) + sidecar (wget localhost:8080 in a
#          loop until it answers, then prints READY) on capsa's CNI bridge network;
#          the time is READY's timestamp in the sidecar's CRI log minus the start
#          of `pod apply` (so no polling cost is counted).
#   run:   `capsa run --rm busybox true` (image mode: overlay rootfs, no network)
#          and runc mode `capsa run` of a /bin/true bundle.
#
# Every command runs the same way, through nsenter into a network namespace made
# for the purpose (bridge, veths and
# iptables rules never touch the machine's own network) with a temp store; both
# are removed at exit. Medians of RUNS (default 10). Needs root, busybox-static,
# /usr/lib/cni (containernetworking-plugins) and a release build.
set -euo pipefail
RUNS=${1:-10}
HERE=$(cd "$(dirname "$0")/.." && pwd)
CAPSA=${CAPSA:-$HERE/target/release/capsa}
WORK=$(mktemp -d /tmp/capsa-bench-pod.XXXXXX)
NS=capsa-bench-$$
STORE=$WORK/store
export CAPSA_CGROUP_PARENT=/capsa-bench-$$

cleanup() {
    ip netns exec "$NS" true 2>/dev/null && nsenter --net=/run/netns/$NS "$CAPSA" pod rm -f --store "$STORE" bench >/dev/null 2>&1 || true
    ip netns del "$NS" 2>/dev/null || true
    for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do rmdir "$h/capsa-bench-$$" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS"
IN="nsenter --net=/run/netns/$NS"
$IN ip link set lo up
"$HERE/rootfs-examples/make-busybox-image.sh" "$WORK/img" latest >/dev/null
"$CAPSA" image --store "$STORE" import -q "oci:$WORK/img" busybox >/dev/null
"$HERE/rootfs-examples/make-busybox-bundle.sh" "$WORK/bundle" >/dev/null 2>&1 || true
if [ -f "$WORK/bundle/config.json" ]; then
    jq '.process.args=["/bin/true"] | .process.terminal=false | .linux.cgroupsPath="/capsa-bench-'$$'/true"' \
        "$WORK/bundle/config.json" >"$WORK/bundle/c.json" && mv "$WORK/bundle/c.json" "$WORK/bundle/config.json"
fi

cat >"$WORK/pod.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: bench
spec:
  containers:
    - name: app
      image: busybox
      command: ["httpd", "-f", "-p", "8080", "-h", "/etc"]
    - name: sidecar
      image: busybox
      command: ["sh", "-c", "until wget -q -O /dev/null http://localhost:8080/hostname 2>/dev/null; do usleep 1000; done; echo READY; exec sleep 3600"]
EOF

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
LOG=$STORE/containers/bench-sidecar/shim/container.log

pod_ms=(); apply_ms=()
for _ in $(seq "$RUNS"); do
    t0=$(now)
    $IN "$CAPSA" pod apply -q --store "$STORE" -f "$WORK/pod.yaml" >/dev/null
    t1=$(now)
    until grep -q READY "$LOG" 2>/dev/null; do sleep 0.002; done
    ts=$(awk '/READY/ {print $1; exit}' "$LOG")
    ready=$(date -d "$ts" +%s.%N)
    pod_ms+=("$(echo "($ready - $t0) * 1000" | bc -l)")
    apply_ms+=("$(echo "($t1 - $t0) * 1000" | bc -l)")
    $IN "$CAPSA" pod rm -f --store "$STORE" bench >/dev/null
done

run_ms=(); runc_ms=()
for i in $(seq "$RUNS"); do
    t0=$(now); $IN "$CAPSA" run --rm -q --store "$STORE" busybox true; t1=$(now)
    run_ms+=("$(echo "($t1 - $t0) * 1000" | bc -l)")
    if [ -f "$WORK/bundle/config.json" ]; then
        t0=$(now); $IN "$CAPSA" --root "$WORK/state" run --bundle "$WORK/bundle" "true-$i" >/dev/null; t1=$(now)
        runc_ms+=("$(echo "($t1 - $t0) * 1000" | bc -l)")
    fi
done

P=$(printf '%s\n' "${pod_ms[@]}" | median)
A=$(printf '%s\n' "${apply_ms[@]}" | median)
R=$(printf '%s\n' "${run_ms[@]}" | median)
printf 'pod apply -> sidecar first answer (median of %d): %7.1f ms  (pod apply returns after %.1f ms)\n' "$RUNS" "$P" "$A"
printf 'capsa run --rm busybox true (image mode):          %7.1f ms  ratio %.2f\n' "$R" "$(echo "$P / $R" | bc -l)"
if [ ${#runc_ms[@]} -gt 0 ]; then
    B=$(printf '%s\n' "${runc_ms[@]}" | median)
    printf 'capsa run of a /bin/true bundle (runc mode):       %7.1f ms  ratio %.2f\n' "$B" "$(echo "$P / $B" | bc -l)"
fi
