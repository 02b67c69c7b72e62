#!/bin/bash
# bench/cri.sh -- capsa-cri vs containerd 1.6 (CRI plugin, io.containerd.runc.v2 + runc),
# side by side in one run, driven by the same crictl.
#
# Both daemons run at once, each with its own root/state/socket/CNI bridge, inside one
# network namespace this script makes (bridges, veths, pod IPs never touch the host),
# pulling from a local registry in that namespace (busybox from
# rootfs-examples/local-registry.sh, plus a pause image for containerd built from a
# static C program). Pods are kubelet-like: cgroupfs parent /capsa-bench-cri-PID/...,
# pid namespace per container, a log directory; the container runs busybox `sleep`.
#
#   cycle   runp -> create -> start -> exec -s -> stopp -> rmp, RUNS times per runtime,
#           the runtimes alternating; median of each step and of the whole cycle; then
#           the whole cycle again with host-network pods (no CNI plugins run), and both
#           also without crictl's own cost (6 x the median of `crictl version`)
#   pods    PODS pods started one after another (runp + create + start each): total
#   memory  idle daemon RSS (after start, pull and one warm-up cycle, no pod left);
#           with the PODS pods running: per pod = (daemon RSS growth + shims + pause
#           processes + anything else the runtime keeps per pod) / PODS, as RSS and PSS
#           (/proc/PID/status VmRSS, /proc/PID/smaps_rollup Pss); the workload
#           (`sleep`) is not counted
#
# Targets (issue 9): lifecycle <= 0.3x containerd's, idle daemon RSS <= 0.25x, memory
# per pod <= 0.2x. Prints the figures, the ratios capsa-cri/containerd and PASS/MISS.
#
# Usage: sudo bench/cri.sh          (after `cargo build --release`)
# Needs root, containerd + runc (Debian's containerd 1.6), crictl v1.26 (CRICTL=, else
# ../shared/tools/crictl, else crictl on PATH), the CNI plugins, docker-registry, skopeo,
# umoci, gcc (static libc: libc6-dev), iproute2, jq, busybox-static.
# Environment:
#   RUNS=N        lifecycle cycles per runtime (default 10)
#   PODS=N        pods for the "one after another" and memory figures (default 10)
#   CAPSA_CRI=P   capsa-cri binary (default target/release/capsa-cri; capsa and
#                 capsa-shim must be next to it)
#   CRICTL=P      crictl binary
#   KEEP_TMP=1    keep the temp dir (daemon logs)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-10}
PODS=${PODS:-10}
CAPSA_CRI=${CAPSA_CRI:-$REPO/target/release/capsa-cri}
if [ -z "${CRICTL:-}" ]; then
  for c in "$REPO/../shared/tools/crictl" "$REPO/../../shared/tools/crictl" "$(command -v crictl || true)"; do
    [ -n "$c" ] && [ -x "$c" ] && { CRICTL=$c; break; }
  done
fi
die() { echo "bench/cri.sh: $*" >&2; exit 1; }
# ../shared/tools/crictl is a wrapper that checks the 36 MB binary's sha256 on every call
# (~0.2 s): let it unpack the binary once, then run the binary itself
if [ -n "${CRICTL:-}" ] && head -c2 "$CRICTL" | grep -q '#!'; then
  "$CRICTL" --version >/dev/null
  c=${CRICTL_CACHE:-/var/cache/crictl-v1.26.1}/crictl
  [ -x "$c" ] && CRICTL=$c
fi
[ "$(id -u)" = 0 ] || die "run as root"
[ -n "${CRICTL:-}" ] || die "crictl not found (CRICTL=/path/to/crictl)"
[ -x "$CAPSA_CRI" ] || die "$CAPSA_CRI not built (cargo build --release)"
for b in capsa capsa-shim; do [ -x "$(dirname "$CAPSA_CRI")/$b" ] || die "$b is not next to $CAPSA_CRI"; done
for t in containerd containerd-shim-runc-v2 runc ip nsenter docker-registry skopeo umoci gcc jq curl; do
  command -v "$t" >/dev/null || die "$t is needed"
done
CNI_BIN=/usr/lib/cni; [ -x $CNI_BIN/bridge ] || CNI_BIN=/opt/cni/bin
[ -x $CNI_BIN/bridge ] || die "CNI plugins not found (apt-get install containernetworking-plugins)"

T=$(mktemp -d /tmp/capsa-bench-cri.XXXXXX)
NS=capsa-bench-cri$$
CG=/capsa-bench-cri$$
RUN_CTRD_EXISTED=0; [ -e /run/containerd ] && RUN_CTRD_EXISTED=1
declare -A DPID SOCK
RTS=(containerd capsa)

# ---- cleanup: pods through the daemons, then whatever is left ----------------------
cleanup() {
  set +e
  for rt in "${RTS[@]}"; do
    [ -n "${DPID[$rt]:-}" ] || continue
    for p in $(cri "$rt" pods -q 2>/dev/null); do cri "$rt" stopp "$p" >/dev/null 2>&1; cri "$rt" rmp -f "$p" >/dev/null 2>&1; done
    kill "${DPID[$rt]}" 2>/dev/null
  done
  for rt in "${RTS[@]}"; do
    [ -n "${DPID[$rt]:-}" ] || continue
    for _ in $(seq 1 100); do kill -0 "${DPID[$rt]}" 2>/dev/null || break; sleep 0.1; done
    kill -9 "${DPID[$rt]}" 2>/dev/null
  done
  for pid in $(shims); do kill -9 "$pid" 2>/dev/null; done
  sleep 0.3
  grep -F " $T/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h${CG#/}" ] && find "$h${CG#/}" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  [ -d /sys/fs/cgroup/${CG#/} ] && find /sys/fs/cgroup/${CG#/} -depth -type d -exec rmdir {} \; 2>/dev/null
  [ -f "$T/registry/registry.pid" ] && CAPSA_REGISTRY_DIR=$T/registry "$REPO/rootfs-examples/local-registry.sh" stop >/dev/null 2>&1
  ip netns del "$NS" 2>/dev/null
  if [ "$RUN_CTRD_EXISTED" = 0 ]; then rmdir /run/containerd/s /run/containerd 2>/dev/null; fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

innet() { nsenter --net="/run/netns/$NS" "$@"; }
cri() { local rt=$1; shift; innet "$CRICTL" --timeout 60s --runtime-endpoint "unix://${SOCK[$rt]}" --image-endpoint "unix://${SOCK[$rt]}" "$@"; }
# shims of either runtime (their command lines name this run's directory)
shims() {
  local p c
  for p in /proc/[0-9]*; do
    c=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    case "$c" in
      *containerd-shim-runc-v2*"$T/"*|*capsa-shim*"$T/"*) echo "${p#/proc/}" ;;
    esac
  done
}

# ---- namespace, registry, images ----------------------------------------------------
ip netns add "$NS"
innet ip link set lo up
mkdir -p "$T"/{net.d-containerd,net.d-capsa,logs,cni,opt,runc,pause}
echo "# building images and starting the registry in netns $NS ..."
innet env CAPSA_REGISTRY_DIR="$T/registry" CAPSA_REGISTRY_ADDR=127.0.0.1:5000 \
  "$REPO/rootfs-examples/local-registry.sh" start >"$T/registry.log" 2>&1 || { cat "$T/registry.log"; die "registry"; }
REG=127.0.0.1:5000
IMAGE=$REG/busybox:latest
cat >"$T/pause/pause.c" <<'EOF'
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void on_term(int s) { (void)s; _exit(0); }
static void on_chld(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction t = {.sa_handler = on_term}, c = {.sa_handler = on_chld, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &t, 0); sigaction(SIGTERM, &t, 0); sigaction(SIGCHLD, &c, 0);
  for (;;) pause();
}
EOF
(
  cd "$T/pause"
  gcc -static -Os -s -o pause pause.c
  umoci init --layout layout
  umoci new --image layout:3.9
  umoci unpack --image layout:3.9 b >/dev/null
  install -m 0755 pause b/rootfs/pause
  umoci repack --image layout:3.9 b >/dev/null
  umoci config --image layout:3.9 --config.entrypoint /pause --config.user 65535:65535 --architecture amd64 --os linux >/dev/null
  rm -rf b
) >"$T/pause.log" 2>&1 || { cat "$T/pause.log"; die "pause image"; }
innet skopeo copy -q --dest-tls-verify=false "oci:$T/pause/layout:3.9" "docker://$REG/pause:3.9"

# ---- daemons ------------------------------------------------------------------------
conflist() {  # bridge subnet
  cat <<EOF
{"cniVersion":"1.0.0","name":"bench-$1","plugins":[
 {"type":"bridge","bridge":"$1","isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","dataDir":"$T/cni/leases-$1","ranges":[[{"subnet":"$2"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true},"snat":true}]}
EOF
}
conflist bcd0 10.91.0.0/16 >"$T/net.d-containerd/10-bench.conflist"
conflist bcc0 10.92.0.0/16 >"$T/net.d-capsa/10-bench.conflist"

SOCK[containerd]=$T/containerd/containerd.sock
mkdir -p "$T/containerd"
cat >"$T/containerd/config.toml" <<EOF
version = 2
root = "$T/containerd/root"
state = "$T/containerd/state"
[grpc]
  address = "${SOCK[containerd]}"
[ttrpc]
  address = "${SOCK[containerd]}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REG/pause:3.9"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$T/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$T/net.d-containerd"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REG"]
    endpoint = ["http://$REG"]
EOF

SOCK[capsa]=$T/capsa/cri.sock
mkdir -p "$T/capsa"
cat >"$T/capsa/cri.toml" <<EOF
listen = "${SOCK[capsa]}"
state_dir = "$T/capsa/state"
store_dir = "$T/capsa/store"
runtime_root = "$T/capsa/root"
restrict_oom_score_adj = true
[cni]
conf_dir = "$T/net.d-capsa"
bin_dirs = ["$CNI_BIN"]
cache_dir = "$T/capsa/cni"
[log]
level = "warn"
EOF

# (nsenter execs the daemon: $! is the daemon's pid)
nsenter --net="/run/netns/$NS" containerd --config "$T/containerd/config.toml" >"$T/containerd.log" 2>&1 &
DPID[containerd]=$!
nsenter --net="/run/netns/$NS" "$CAPSA_CRI" --config "$T/capsa/cri.toml" >"$T/capsa.log" 2>&1 &
DPID[capsa]=$!
for rt in "${RTS[@]}"; do
  for _ in $(seq 1 300); do cri "$rt" version >/dev/null 2>&1 && break; sleep 0.1; done
  cri "$rt" version >/dev/null 2>&1 || { tail -20 "$T/$rt.log"; die "$rt did not come up"; }
done

# ---- helpers ------------------------------------------------------------------------
now() { local t=${EPOCHREALTIME/./}; echo "${t}"; }   # microseconds, no fork
NPOD=0
pod_json() {  # rt name [network mode: 0 pod (CNI), 2 node] -> path
  local f="$T/$1-$2.pod.json" host=""
  mkdir -p "$T/logs/$1-$2"
  # (a host-network pod has the node's hostname, as kubelet does it)
  [ "${3:-0}" = 0 ] && host="\"hostname\":\"$2\","
  cat >"$f" <<EOF
{"metadata":{"name":"$2","namespace":"bench","uid":"$1-$2-uid","attempt":0},
 $host"log_directory":"$T/logs/$1-$2",
 "linux":{"cgroup_parent":"$CG/$1-$2","security_context":{"namespace_options":{"pid":1,"network":${3:-0}}}}}
EOF
  echo "$f"
}
CTR_JSON=$T/ctr.json
cat >"$CTR_JSON" <<EOF
{"metadata":{"name":"sleeper"},"image":{"image":"$IMAGE"},"command":["sleep","3600"],"log_path":"sleeper.log",
 "linux":{"security_context":{"namespace_options":{"pid":1}}}}
EOF

# one cycle; prints "runp create start exec stopp rmp total" in microseconds
cycle() {  # rt [network mode]
  local rt=$1 name p c t0 t1 t2 t3 t4 t5 t6
  NPOD=$((NPOD + 1)); name=c$NPOD
  p=$(pod_json "$rt" "$name" "${2:-0}")
  t0=$(now); local id; id=$(cri "$rt" runp "$p")
  t1=$(now); local cid; cid=$(cri "$rt" create "$id" "$CTR_JSON" "$p")
  t2=$(now); cri "$rt" start "$cid" >/dev/null
  t3=$(now); cri "$rt" exec -s "$cid" true >/dev/null
  t4=$(now); cri "$rt" stopp "$id" >/dev/null
  t5=$(now); cri "$rt" rmp "$id" >/dev/null
  t6=$(now)
  echo "$((t1 - t0)) $((t2 - t1)) $((t3 - t2)) $((t4 - t3)) $((t5 - t4)) $((t6 - t5)) $((t6 - t0))"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print ""; else if (NR % 2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
ms() { awk -v u="$1" 'BEGIN{printf "%.1f", u/1000}'; }
mb() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN{print (r != "-" && r <= t) ? "PASS" : "MISS"}'; }
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kb() { awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

# per-pod processes of a runtime besides the daemon: its shims, and the shims'
# children that are not the workload (containerd: the pause processes)
infra_pids() {
  local rt=$1 pat p c
  case $rt in containerd) pat="containerd-shim-runc-v2" ;; capsa) pat="capsa-shim" ;; esac
  for p in $(shims); do
    c=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
    case "$c" in *"$pat"*) ;; *) continue ;; esac
    echo "$p"
    for k in $(cat /proc/"$p"/task/*/children 2>/dev/null); do
      [ "$(cat "/proc/$k/comm" 2>/dev/null)" = sleep ] || echo "$k"
    done
  done
}
sum() { local f=$1 s=0 p; shift; for p in "$@"; do s=$((s + $($f "$p"))); done; echo "$s"; }

# ---- warm-up: pull, one cycle each (containerd pulls its pause image here) -----------
for rt in "${RTS[@]}"; do
  cri "$rt" pull "$IMAGE" >/dev/null
  cycle "$rt" >/dev/null
done
sleep 2
declare -A IDLE_RSS IDLE_PSS
for rt in "${RTS[@]}"; do
  IDLE_RSS[$rt]=$(rss_kb "${DPID[$rt]}"); IDLE_PSS[$rt]=$(pss_kb "${DPID[$rt]}")
done

# ---- crictl's own cost: `crictl version` (one connection, one trivial RPC) ----------
declare -A FLOOR
for rt in "${RTS[@]}"; do
  : >"$T/floor.$rt"
  for _ in $(seq 1 "$RUNS"); do t0=$(now); cri "$rt" version >/dev/null; echo $(( $(now) - t0 )) >>"$T/floor.$rt"; done
  FLOOR[$rt]=$(median <"$T/floor.$rt")
done

# ---- lifecycle: RUNS cycles, alternating --------------------------------------------
echo "# $RUNS cycles per runtime (runp -> create -> start -> exec -s -> stopp -> rmp), alternating ..."
for i in $(seq 1 "$RUNS"); do
  for rt in "${RTS[@]}"; do cycle "$rt" >>"$T/cycles.$rt"; done
done
# the same with host-network pods: no CNI ADD/DEL (the bridge, host-local and portmap
# plugins cost both runtimes the same)
for i in $(seq 1 "$RUNS"); do
  for rt in "${RTS[@]}"; do cycle "$rt" 2 >>"$T/hostnet.$rt"; done
done
declare -A MED
STEPS=(runp create start exec stopp rmp total)
for rt in "${RTS[@]}"; do
  for k in "${!STEPS[@]}"; do
    MED[${STEPS[$k]},$rt]=$(awk -v c=$((k + 1)) '{print $c}' "$T/cycles.$rt" | median)
  done
  MED[createstart,$rt]=$(awk '{print $2 + $3}' "$T/cycles.$rt" | median)
  MED[hostnet,$rt]=$(awk '{print $7}' "$T/hostnet.$rt" | median)
  MED[hostnetrunp,$rt]=$(awk '{print $1}' "$T/hostnet.$rt" | median)
  MED[hostnetstopp,$rt]=$(awk '{print $5}' "$T/hostnet.$rt" | median)
  MED[net,$rt]=$(( MED[total,$rt] - 6 * FLOOR[$rt] ))
  MED[hostnetnet,$rt]=$(( MED[hostnet,$rt] - 6 * FLOOR[$rt] ))
done

# ---- PODS pods one after another, then memory with them running ----------------------
declare -A PODS_US RUN_RSS RUN_PSS INFRA_RSS INFRA_PSS NINFRA
for rt in "${RTS[@]}"; do
  echo "# $PODS pods one after another on $rt ..."
  t0=$(now)
  for i in $(seq 1 "$PODS"); do
    p=$(pod_json "$rt" "p$i")
    id=$(cri "$rt" runp "$p")
    cid=$(cri "$rt" create "$id" "$CTR_JSON" "$p")
    cri "$rt" start "$cid" >/dev/null
  done
  PODS_US[$rt]=$(( $(now) - t0 ))
  sleep 2
  RUN_RSS[$rt]=$(rss_kb "${DPID[$rt]}"); RUN_PSS[$rt]=$(pss_kb "${DPID[$rt]}")
  mapfile -t pids < <(infra_pids "$rt")
  NINFRA[$rt]=${#pids[@]}
  INFRA_RSS[$rt]=$(sum rss_kb "${pids[@]}"); INFRA_PSS[$rt]=$(sum pss_kb "${pids[@]}")
  for p in $(cri "$rt" pods -q); do cri "$rt" stopp "$p" >/dev/null; cri "$rt" rmp "$p" >/dev/null; done
done

# ---- report ---------------------------------------------------------------------------
per_pod() {  # daemon growth + infra, per pod, KB
  local rt=$1 kind=$2 grow infra
  if [ "$kind" = rss ]; then grow=$((RUN_RSS[$rt] - IDLE_RSS[$rt])); infra=${INFRA_RSS[$rt]}
  else grow=$((RUN_PSS[$rt] - IDLE_PSS[$rt])); infra=${INFRA_PSS[$rt]}; fi
  [ "$grow" -lt 0 ] && grow=0
  echo $(( (grow + infra) / PODS ))
}
echo
echo "CRI bench: $RUNS cycles, $PODS pods; $(nproc) CPUs; containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), crictl $("$CRICTL" --version | awk '{print $3}')"
printf '%-34s %12s %12s %8s\n' "" containerd capsa-cri ratio
printf '%-34s %12s %12s\n' "crictl version (median ms)" "$(ms "${FLOOR[containerd]}")" "$(ms "${FLOOR[capsa]}")"
for s in runp create start exec stopp rmp; do
  printf '%-34s %12s %12s %8s\n' "$s (median ms)" "$(ms "${MED[$s,containerd]}")" "$(ms "${MED[$s,capsa]}")" "$(ratio "${MED[$s,capsa]}" "${MED[$s,containerd]}")"
done
printf '%-34s %12s %12s %8s\n' "create+start (median ms)" "$(ms "${MED[createstart,containerd]}")" "$(ms "${MED[createstart,capsa]}")" "$(ratio "${MED[createstart,capsa]}" "${MED[createstart,containerd]}")"
R_CYCLE=$(ratio "${MED[total,capsa]}" "${MED[total,containerd]}")
printf '%-34s %12s %12s %8s\n' "whole cycle (median ms)" "$(ms "${MED[total,containerd]}")" "$(ms "${MED[total,capsa]}")" "$R_CYCLE"
printf '%-34s %12s %12s %8s\n' "  minus crictl (6 x crictl version)" "$(ms "${MED[net,containerd]}")" "$(ms "${MED[net,capsa]}")" "$(ratio "${MED[net,capsa]}" "${MED[net,containerd]}")"
printf '%-34s %12s %12s %8s\n' "whole cycle, host network (no CNI)" "$(ms "${MED[hostnet,containerd]}")" "$(ms "${MED[hostnet,capsa]}")" "$(ratio "${MED[hostnet,capsa]}" "${MED[hostnet,containerd]}")"
for s in runp stopp; do
  printf '%-34s %12s %12s %8s\n' "  $s, host network" "$(ms "${MED[hostnet$s,containerd]}")" "$(ms "${MED[hostnet$s,capsa]}")" "$(ratio "${MED[hostnet$s,capsa]}" "${MED[hostnet$s,containerd]}")"
done
printf '%-34s %12s %12s %8s\n' "  minus crictl" "$(ms "${MED[hostnetnet,containerd]}")" "$(ms "${MED[hostnetnet,capsa]}")" "$(ratio "${MED[hostnetnet,capsa]}" "${MED[hostnetnet,containerd]}")"
R_PODS=$(ratio "${PODS_US[capsa]}" "${PODS_US[containerd]}")
printf '%-34s %12s %12s %8s\n' "$PODS pods one after another (ms)" "$(ms "${PODS_US[containerd]}")" "$(ms "${PODS_US[capsa]}")" "$R_PODS"
R_IDLE=$(ratio "${IDLE_RSS[capsa]}" "${IDLE_RSS[containerd]}")
printf '%-34s %12s %12s %8s\n' "idle daemon RSS (MB)" "$(mb "${IDLE_RSS[containerd]}")" "$(mb "${IDLE_RSS[capsa]}")" "$R_IDLE"
printf '%-34s %12s %12s %8s\n' "idle daemon PSS (MB)" "$(mb "${IDLE_PSS[containerd]}")" "$(mb "${IDLE_PSS[capsa]}")" "$(ratio "${IDLE_PSS[capsa]}" "${IDLE_PSS[containerd]}")"
declare -A PP_RSS PP_PSS
for rt in "${RTS[@]}"; do PP_RSS[$rt]=$(per_pod "$rt" rss); PP_PSS[$rt]=$(per_pod "$rt" pss); done
R_POD=$(ratio "${PP_RSS[capsa]}" "${PP_RSS[containerd]}")
printf '%-34s %12s %12s %8s\n' "memory per running pod, RSS (MB)" "$(mb "${PP_RSS[containerd]}")" "$(mb "${PP_RSS[capsa]}")" "$R_POD"
printf '%-34s %12s %12s %8s\n' "memory per running pod, PSS (MB)" "$(mb "${PP_PSS[containerd]}")" "$(mb "${PP_PSS[capsa]}")" "$(ratio "${PP_PSS[capsa]}" "${PP_PSS[containerd]}")"
for rt in "${RTS[@]}"; do
  printf '  %s: daemon %s -> %s MB RSS with %s pods; %s per-pod processes (shims, pause) %s MB RSS, %s MB PSS\n' "$rt" \
    "$(mb "${IDLE_RSS[$rt]}")" "$(mb "${RUN_RSS[$rt]}")" "$PODS" "${NINFRA[$rt]}" "$(mb "${INFRA_RSS[$rt]}")" "$(mb "${INFRA_PSS[$rt]}")"
done
echo "target: whole cycle capsa-cri/containerd <= 0.30: $R_CYCLE  $(verdict "$R_CYCLE" 0.30)"
echo "target: $PODS pods one after another capsa-cri/containerd <= 0.30: $R_PODS  $(verdict "$R_PODS" 0.30)"
echo "target: idle daemon RSS capsa-cri/containerd <= 0.25: $R_IDLE  $(verdict "$R_IDLE" 0.25)"
echo "target: memory per running pod (RSS) capsa-cri/containerd <= 0.20: $R_POD  $(verdict "$R_POD" 0.20)"
echo "(every step is one crictl process: its start-up and connection, the \"crictl version\" line, are in"
echo " each figure, for both runtimes; figures are specific to this machine and its load: compare ratios)"
