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
#   run_detached BUNDLE ID   capsa run -d of a bundle, its stdio away from the caller's
#   bundle_jq DIR FILTER [JQ ARGS]   edits DIR/config.json in place with a jq filter
#   cg_prune PATH  removes the cgroup PATH (e.g. /capsa-lab) in every hierarchy where it
#                  is empty: a runtime removes the parents it made, but only when it can
#   cg_get also knows (appended below): memory.peak cpu.usage_usec cpu.throttled_usec
#                  pids.events_max, and per device (third argument MAJ:MIN)
#                  io.rbps io.wbps (limits, "max" = none) io.rbytes io.wbytes (bytes done)
# shellcheck shell=bash
# shellcheck disable=SC2317 # the first cg_get is called as _cg_get_base (see the end)

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

# cgroup.controllers exists only at the root of a cgroup2 mount (busybox's stat -f
# does not name cgroup2, so the file tells, not the filesystem type).
cg_mode() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo v2
  elif [ -f /sys/fs/cgroup/unified/cgroup.controllers ]; then echo hybrid
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
  for mnt in "/sys/fs/cgroup/$v1" "/sys/fs/cgroup/$v1",* /sys/fs/cgroup/*,"$v1" /sys/fs/cgroup/*,"$v1",*; do
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

# bundle_jq DIR FILTER [JQ ARGS...]: edit a bundle's config.json in place, e.g.
#   bundle_jq "$WORK/bundle" '.linux.resources.pids.limit = $n' --argjson n 20
bundle_jq() {
  local dir=$1 filter=$2; shift 2
  jq "$@" "$filter" "$dir/config.json" >"$dir/config.json.tmp"
  mv "$dir/config.json.tmp" "$dir/config.json"
}

# cg_prune /ABS/PATH: rmdir the cgroup in every hierarchy (v1 controllers, hybrid's
# unified, v2); the kernel refuses (EBUSY) while it has processes or children, so a
# parent still used by another container stays.
cg_prune() {
  local d dirs=("/sys/fs/cgroup$1")
  [ "$(cg_mode)" = v2 ] || dirs=(/sys/fs/cgroup/*"$1")
  for d in "${dirs[@]}"; do
    if [ -d "$d" ]; then rmdir "$d" 2>/dev/null || true; fi
  done
}

# More cg_get keys (labs 07-10), the same meaning on v1 and v2; every other key goes to
# the cg_get above, unchanged (kept as _cg_get_base):
#   memory.peak        highest usage in bytes: v2 memory.peak (kernel >= 5.19, else
#                      empty), v1 memory.max_usage_in_bytes
#   cpu.usage_usec     CPU time used: v2 cpu.stat usage_usec, v1 cpuacct.usage / 1000
#   cpu.throttled_usec time spent throttled: v2 cpu.stat throttled_usec, v1 cpu.stat
#                      throttled_time / 1000
#   pids.events_max    forks refused because of pids.max ("max" in pids.events, v1 and v2)
#   io.rbps io.wbps    cg_get PID|PATH io.rbps MAJ:MIN: the read/write bytes-per-second
#                      limit of that device, "max" when none: v2 io.max, v1
#                      blkio.throttle.read_bps_device / write_bps_device
#   io.rbytes io.wbytes  bytes read/written on MAJ:MIN by the cgroup: v2 io.stat, v1
#                      blkio.throttle.io_service_bytes (0 when the device has no line)
eval "$(declare -f cg_get | sed '1s/^cg_get /_cg_get_base /')"
cg_get() {
  local who=$1 key=$2 dev=${3:-} d v
  case $key in
    memory.peak | cpu.usage_usec | cpu.throttled_usec | pids.events_max | io.*) ;;
    *) _cg_get_base "$@"; return ;;
  esac
  case $key in
    memory.*) d=$(cg_dir memory "$who") ;;
    pids.*) d=$(cg_dir pids "$who") ;;
    cpu.usage_usec) if [ "$(cg_mode)" = v2 ]; then d=$(cg_dir cpu "$who"); else d=$(cg_dir cpuacct "$who"); fi ;;
    cpu.*) d=$(cg_dir cpu "$who") ;;
    io.*) d=$(cg_dir io "$who") ;;
  esac
  if [ "$(cg_mode)" = v2 ]; then
    case $key in
      memory.peak) if [ -f "$d/memory.peak" ]; then cat "$d/memory.peak"; fi ;;
      cpu.usage_usec | cpu.throttled_usec) awk -v k="${key#cpu.}" '$1 == k {print $2}' "$d/cpu.stat" ;;
      pids.events_max) awk '$1 == "max" {print $2}' "$d/pids.events" ;;
      io.rbps | io.wbps)
        v=$(awk -v dev="$dev" -v k="${key#io.}" '$1 == dev {for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2)}' "$d/io.max")
        echo "${v:-max}" ;;
      io.rbytes | io.wbytes)
        v=$(awk -v dev="$dev" -v k="${key#io.}" '$1 == dev {for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2)}' "$d/io.stat")
        echo "${v:-0}" ;;
    esac
  else
    case $key in
      memory.peak) cat "$d/memory.max_usage_in_bytes" ;;
      cpu.usage_usec) echo $(($(cat "$d/cpuacct.usage") / 1000)) ;;
      cpu.throttled_usec) awk '$1 == "throttled_time" {printf "%d\n", $2 / 1000}' "$d/cpu.stat" ;;
      pids.events_max) awk '$1 == "max" {print $2}' "$d/pids.events" ;;
      io.rbps | io.wbps)
        if [ "$key" = io.rbps ]; then v="read"; else v="write"; fi
        v=$(awk -v dev="$dev" '$1 == dev {print $2}' "$d/blkio.throttle.${v}_bps_device")
        echo "${v:-max}" ;;
      io.rbytes | io.wbytes)
        if [ "$key" = io.rbytes ]; then v=Read; else v=Write; fi
        v=$(awk -v dev="$dev" -v op="$v" '$1 == dev && $2 == op {print $3}' "$d/blkio.throttle.io_service_bytes")
        echo "${v:-0}" ;;
    esac
  fi
}

# run_detached BUNDLE ID: `capsa run -d --bundle BUNDLE ID`, the container's stdio
# away from ours (a detached container would hold a caller's pipe open: `out=$(capsa
# lab start N)` would never return); capsa's own error, if any, is shown.
run_detached() {
  local log="$WORK/$2.run.log"
  capsa run -d --bundle "$1" "$2" </dev/null >"$log" 2>&1 || { cat "$log" >&2; return 1; }
}
