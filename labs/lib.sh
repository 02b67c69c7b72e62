# labs/lib.sh: what every lab script sources.
#
# A lab's scripts run as root, from any directory, through `capsa lab start|solve|check|
# reset N` or directly (`bash labs/01-pid-namespace/check.sh`). They get:
#   capsa          a function running the capsa under test ($CAPSA, else the repo's
#                  target/release/capsa, else capsa on PATH)
#   LAB            the lab's folder name (01-pid-namespace), LAB_DIR its directory
#   WORK           the lab's scratch directory, $CAPSA_LAB_WORK/$LAB
#                  (default /tmp/capsa-lab/$LAB): bundles, the student's answer files
#   EXAMPLES       rootfs-examples/ (bundle and image builders)
#   pass MSG / fail MSG   a check's verdict: one PASS or FAIL line, then exit 0 / 1
#   explain TEXT   what the student should have seen (printed by a check, both ways)
#   answer NAME    the student's answer file $WORK/NAME, trimmed ("" when missing)
#   cg_mode        v1, hybrid or v2: how this host mounts cgroups
#   cg_dir CTRL PID|PATH   the directory of PID's cgroup (or of the absolute cgroup
#                  PATH) for controller CTRL (memory, pids, cpu, io), v1 or v2
#   cg_get PID|PATH KEY    a cgroup value by meaning, read from the right file for the host
#                  (KEY: memory.limit memory.oom_kill pids.max pids.current cpu.quota
#                  cpu.period cpu.nr_throttled cpu.nr_periods)
#   busybox_image  makes sure the store holds busybox:latest (built locally, no network)
#   bundle DIR ARGS   a busybox bundle (make-busybox-bundle.sh) with ARGS as command
#   rm_containers PREFIX   force-removes the managed and runtime containers named PREFIX*
# shellcheck shell=bash

set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
LAB=$(basename "$LAB_DIR")
LABS_DIR=$(dirname "$LAB_DIR")
if [ -d "$LABS_DIR/../rootfs-examples" ]; then
  EXAMPLES=$(cd "$LABS_DIR/../rootfs-examples" && pwd)
else
  EXAMPLES=${CAPSA_EXAMPLES:-/usr/local/share/capsa/rootfs-examples}
fi
if [ -z "${CAPSA:-}" ]; then
  CAPSA="$LABS_DIR/../target/release/capsa"
  [ -x "$CAPSA" ] || CAPSA=$(command -v capsa) || { echo "error: no capsa binary (build it, or set CAPSA=)" >&2; exit 2; }
fi
export CAPSA
WORK=${CAPSA_LAB_WORK:-/tmp/capsa-lab}/$LAB
mkdir -p "$WORK"

capsa() { "$CAPSA" "$@"; }

pass() { echo "PASS: $*"; exit 0; }
fail() { echo "FAIL: $*"; exit 1; }
explain() { echo "  $*"; }
answer() { if [ -f "$WORK/$1" ]; then tr -d ' \t\r\n' <"$WORK/$1"; fi; }

cg_mode() {
  if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then echo v2
  elif [ -d /sys/fs/cgroup/unified ] && [ "$(stat -fc %T /sys/fs/cgroup/unified)" = cgroup2fs ]; then echo hybrid
  else echo v1; fi
}

# cg_dir CTRL PID|/CGROUPS/PATH: v1 (and hybrid, for the v1 controllers) has one
# hierarchy per controller, "N:memory:/path" in /proc/PID/cgroup; v2 one tree,
# "0::/path". Given an absolute cgroup path (a bundle's linux.cgroupsPath) instead of a
# pid, it works after the container's processes are gone too (capsa run --keep).
cg_dir() {
  local ctrl=$1 who=$2 v1=$1 line
  [ "$ctrl" = io ] && v1=blkio
  [ "$ctrl" = cpu ] && v1=cpu
  if [ "$(cg_mode)" = v2 ]; then
    if [[ $who == /* ]]; then echo "/sys/fs/cgroup$who"; return; fi
    line=$(grep '^0::' "/proc/$who/cgroup") && echo "/sys/fs/cgroup${line#0::}"
    return
  fi
  local mnt
  for mnt in /sys/fs/cgroup/$v1 /sys/fs/cgroup/$v1,* /sys/fs/cgroup/*,$v1 /sys/fs/cgroup/*,$v1,*; do
    [ -d "$mnt" ] && break
  done
  if [[ $who == /* ]]; then echo "$mnt$who"; return; fi
  line=$(grep -E "^[0-9]+:([^:]*,)?$v1(,[^:]*)?:" "/proc/$who/cgroup" | head -1) || return 1
  echo "$mnt${line##*:}"
}

# cg_get PID KEY: one value, the same meaning on v1 and v2 ("max" = no limit).
cg_get() {
  local pid=$1 key=$2 d v
  case $key in
    memory.*) d=$(cg_dir memory "$pid") ;;
    pids.*) d=$(cg_dir pids "$pid") ;;
    cpu.*) d=$(cg_dir cpu "$pid") ;;
  esac
  if [ "$(cg_mode)" = v2 ]; then
    case $key in
      memory.limit) cat "$d/memory.max" ;;
      memory.oom_kill) awk '$1 == "oom_kill" {print $2}' "$d/memory.events" ;;
      pids.max | pids.current) cat "$d/$key" ;;
      cpu.quota) cut -d' ' -f1 "$d/cpu.max" ;;
      cpu.period) cut -d' ' -f2 "$d/cpu.max" ;;
      cpu.nr_throttled | cpu.nr_periods) awk -v k="${key#cpu.}" '$1 == k {print $2}' "$d/cpu.stat" ;;
    esac
  else
    case $key in
      memory.limit) v=$(cat "$d/memory.limit_in_bytes"); [ "$v" -ge 9223372036854000000 ] && v=max; echo "$v" ;;
      memory.oom_kill) awk '$1 == "oom_kill" {print $2}' "$d/memory.oom_control" ;;
      pids.max | pids.current) cat "$d/$key" ;;
      cpu.quota) v=$(cat "$d/cpu.cfs_quota_us"); [ "$v" = -1 ] && v=max; echo "$v" ;;
      cpu.period) cat "$d/cpu.cfs_period_us" ;;
      cpu.nr_throttled | cpu.nr_periods) awk -v k="${key#cpu.}" '$1 == k {print $2}' "$d/cpu.stat" ;;
    esac
  fi
}

busybox_image() {
  capsa image inspect busybox >/dev/null 2>&1 && return
  local cache=${CAPSA_LAB_CACHE:-/var/tmp/capsa-lab-cache}
  [ -f "$cache/busybox/index.json" ] || "$EXAMPLES/make-busybox-image.sh" "$cache/busybox" >/dev/null
  capsa image import "oci:$cache/busybox" >/dev/null
}

bundle() {
  local dir=$1; shift
  "$EXAMPLES/make-busybox-bundle.sh" "$dir" --args "$*" >/dev/null
}

rm_containers() {
  local prefix=$1 n
  for n in $(capsa ps -a -q 2>/dev/null | grep "^$prefix" || true); do capsa rm -f "$n" >/dev/null 2>&1 || true; done
  for n in $(capsa list -q 2>/dev/null | grep "^$prefix" || true); do capsa delete -f "$n" >/dev/null 2>&1 || true; done
}
