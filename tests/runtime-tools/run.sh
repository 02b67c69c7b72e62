#!/bin/bash
# tests/runtime-tools/run.sh [RUNTIME] [VALIDATIONS]
#
# Run opencontainers/runtime-tools' validation programs (validation/*) against an
# OCI runtime, one after another, and print one TAP line per validation and a
# closing "N passed, M failed, K skipped" line.
#
#   RUNTIME      runtime binary or command name (default: this repo's
#                target/release/capsa, built with `cargo build --release` if
#                missing).  `runc` is the reference.
#   VALIDATIONS  comma-separated shell globs over validation names (default
#                'linux_cgroups_*'); '@quick' is the fast non-cgroup list
#                below, '@all' is every validation that was built.
#
# Environment:
#   RTT_SRC      a runtime-tools source tree (a checkout holding validation/
#                and cmd/runtimetest).  Default: Debian's
#                /usr/share/gocode/src/github.com/opencontainers/runtime-tools
#                if it ships them (bookworm's -dev package does not), else
#                $RTT_CACHE/upstream/src/github.com/opencontainers/runtime-tools.
#   RTT_CACHE    build and log directory (default /var/cache/capsa-rtt)
#   RTT_TIMEOUT  seconds allowed per validation program (default 300)
#   RTT_VERBOSE  1: print every validation's full TAP stream, not only failures
#
# What it needs, installed with apt-get when missing: golang-go, the runtime-tools
# library and its Go dependencies (golang-github-opencontainers-runtime-tools-dev,
# golang-github-google-uuid-dev, golang-gopkg-yaml.v3-dev), busybox-static (the
# test rootfs), util-linux (unshare).  github.com/mndrix/tap-go is not packaged by
# Debian: tap-go/tap.go beside this script provides its API.
#
# Safety: the validations create containers with an absolute cgroupsPath
# (/cgrouptest), a relative one (testdir/cgrouptest/container, which a runc-like
# runtime puts under the CALLER's cgroup) or none.  So every validation runs in
# a subshell first moved into fresh cgroups of this script's own
# (<current cgroup of each hierarchy>/capsa-rtt-PID) and then into a private
# mount namespace, with its bundles in a private TMPDIR.  After each validation
# and at exit the script removes: containers whose bundle is in that TMPDIR
# (RUNTIME delete --force), processes left in the capsa-rtt-PID cgroups, mounts
# under the TMPDIR; at exit the capsa-rtt-PID cgroups and the /cgrouptest and
# /testdir cgroups it saw appear at the root of a hierarchy.  It skips the
# absolute-path cgroup validations when a /cgrouptest cgroup already exists (not
# ours), and never removes a cgroup that still holds a process (rmdir only).
#
# Verdicts: a validation fails when it exits non-zero, prints a "not ok" point
# (TODO points excepted), or prints no point but a YAML diagnostic; it is skipped
# when the host lacks what it needs (see skip_reason) or when all its points are
# SKIP.  Full TAP streams: $RTT_CACHE/logs/<runtime>/<validation>.{tap,err,rc}.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${RTT_CACHE:-/var/cache/capsa-rtt}
TIMEOUT=${RTT_TIMEOUT:-300}
VERBOSE=${RTT_VERBOSE:-0}
CGROOT=/sys/fs/cgroup
SANDBOX_NAME=capsa-rtt-$$
QUICK='default,linux_ns_*,hooks,process,process_*,linux_masked_paths,linux_readonly_paths,linux_sysctl,linux_devices,mounts,create,delete,kill,hostname,pidfile,prestart,poststart,poststop'

die() { echo "run.sh: $*" >&2; exit 2; }
note() { echo "# $*"; }

[ "$(id -u)" = 0 ] || die "must run as root (the validations create containers and cgroups)"

# ---------------------------------------------------------------- arguments
RUNTIME_ARG=${1:-}
PATTERNS=${2:-linux_cgroups_*}
if [ -z "$RUNTIME_ARG" ]; then
  RUNTIME="$REPO/target/release/capsa"
  if [ ! -x "$RUNTIME" ]; then
    note "building $RUNTIME (cargo build --release)"
    (cd "$REPO" && cargo build --release >&2) || die "cargo build --release failed"
  fi
else
  RUNTIME=$(command -v "$RUNTIME_ARG") || die "runtime not found: $RUNTIME_ARG"
fi
RUNTIME=$(readlink -f "$RUNTIME")
RT_NAME=$(basename "$RUNTIME")
case "$PATTERNS" in
  @quick) PATTERNS=$QUICK ;;
  @all) PATTERNS='*' ;;
esac

# ---------------------------------------------------------------- packages
need_pkgs=()
command -v go >/dev/null 2>&1 || need_pkgs+=(golang-go)
[ -d /usr/share/gocode/src/github.com/opencontainers/runtime-tools/generate ] ||
  need_pkgs+=(golang-github-opencontainers-runtime-tools-dev)
[ -d /usr/share/gocode/src/github.com/google/uuid ] || need_pkgs+=(golang-github-google-uuid-dev)
[ -d /usr/share/gocode/src/gopkg.in/yaml.v3 ] || need_pkgs+=(golang-gopkg-yaml.v3-dev)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v unshare >/dev/null 2>&1 || need_pkgs+=(util-linux)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  note "installing ${need_pkgs[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"; } >&2 ||
    die "apt-get install ${need_pkgs[*]} failed"
fi

# ---------------------------------------------------------------- sources
has_suite() { [ -d "$1/validation/util" ] && [ -d "$1/cmd/runtimetest" ]; }
SRC=
for cand in ${RTT_SRC:+"$RTT_SRC"} \
  /usr/share/gocode/src/github.com/opencontainers/runtime-tools \
  "$CACHE/upstream/src/github.com/opencontainers/runtime-tools"; do
  if has_suite "$cand"; then SRC=$(cd "$cand" && pwd); break; fi
done
if [ -z "$SRC" ]; then
  cat >&2 <<EOF
run.sh: no runtime-tools validation sources.
  Debian's golang-github-opencontainers-runtime-tools-dev ships only the library
  packages (generate, cgroups, specerror, validate), not validation/ nor
  cmd/runtimetest.  Point RTT_SRC at a runtime-tools tree that has both (e.g. a
  checkout of github.com/opencontainers/runtime-tools), or put one at
  $CACHE/upstream/src/github.com/opencontainers/runtime-tools.
EOF
  exit 2
fi

# ---------------------------------------------------------------- build
# GOPATH mode, offline: scratch GOPATH (tap-go + the suite) first, then Debian's
# /usr/share/gocode for every library the suite imports.
GOP="$CACHE/gopath"
BIN="$CACHE/bin"
mkdir -p "$GOP/src/github.com/mndrix/tap-go" "$GOP/src/github.com/opencontainers" "$BIN" "$CACHE/gocache" ||
  die "cannot create $CACHE"
cmp -s "$HERE/tap-go/tap.go" "$GOP/src/github.com/mndrix/tap-go/tap.go" ||
  cp "$HERE/tap-go/tap.go" "$GOP/src/github.com/mndrix/tap-go/tap.go"
ln -sfn "$SRC" "$GOP/src/github.com/opencontainers/runtime-tools"
export GO111MODULE=off GOFLAGS='' CGO_ENABLED=0 GOCACHE="$CACHE/gocache"
export GOPATH="$GOP:/usr/share/gocode"
stamp=$( {
  go version
  echo "$SRC"
  find -L "$SRC/validation" "$SRC/cmd/runtimetest" "$GOP/src/github.com/mndrix" -name '*.go' -print0 |
    sort -z | xargs -0 sha256sum
} | sha256sum | cut -d' ' -f1)
if [ "$(cat "$BIN/.stamp" 2>/dev/null)" != "$stamp" ]; then
  note "building runtimetest and the validation programs from $SRC into $BIN"
  rm -f "$BIN"/*
  pkg=github.com/opencontainers/runtime-tools
  go build -o "$BIN/runtimetest" "$pkg/cmd/runtimetest" || die "building runtimetest failed"
  for d in "$SRC"/validation/*/; do
    v=$(basename "$d")
    [ "$v" = util ] && continue
    ls "$d"*.go >/dev/null 2>&1 || continue
    go build -o "$BIN/$v" "$pkg/validation/$v" || note "warning: validation $v does not build; left out"
  done
  echo "$stamp" >"$BIN/.stamp"
fi

# ---------------------------------------------------------------- rootfs
GOARCH=$(go env GOARCH)
WORK="$CACHE/work"
mkdir -p "$WORK"
if [ ! -s "$WORK/rootfs-$GOARCH.tar.gz" ]; then
  note "building the test rootfs (busybox-static) in $WORK/rootfs-$GOARCH.tar.gz"
  (
    set -e
    # shellcheck source=/dev/null
    . "$REPO/rootfs-examples/busybox-rootfs.sh"
    build_busybox_rootfs "$WORK/rootfs" >/dev/null
    tar -C "$WORK/rootfs" -czf "$WORK/rootfs-$GOARCH.tar.gz.tmp" .
    mv "$WORK/rootfs-$GOARCH.tar.gz.tmp" "$WORK/rootfs-$GOARCH.tar.gz"
    rm -rf "$WORK/rootfs"
  ) || die "building the rootfs failed"
fi
cp "$BIN/runtimetest" "$WORK/runtimetest"

# ---------------------------------------------------------------- selection
mapfile -t ALL < <(find "$BIN" -maxdepth 1 -type f -perm -u+x ! -name runtimetest -printf '%f\n' | sort)
SELECTED=()
IFS=, read -r -a pats <<<"$PATTERNS"
for v in "${ALL[@]}"; do
  for p in "${pats[@]}"; do
    # shellcheck disable=SC2053 # $p is a glob on purpose
    if [[ $v == $p ]]; then SELECTED+=("$v"); break; fi
  done
done
[ "${#SELECTED[@]}" -gt 0 ] || die "no validation matches '$PATTERNS' (built: ${ALL[*]})"

# ---------------------------------------------------------------- host checks
# cgroup v1 hierarchies mounted under /sys/fs/cgroup, by controller name.
declare -A V1MOUNT=()
while read -r mp opts; do
  IFS=, read -r -a os <<<"$opts"
  for o in "${os[@]}"; do V1MOUNT[$o]=$mp; done
done < <(awk '{ split($0, p, " - "); split(p[2], q, " ");
               if (q[1] == "cgroup" && index($5, "/sys/fs/cgroup/") == 1) print $5, q[3] }' /proc/self/mountinfo)

# missing_caps: "caller lacks ..." when this shell's bounding set is not full.
missing_caps() {
  local bnd last i miss=() names
  bnd=$((16#$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)))
  last=$(cat /proc/sys/kernel/cap_last_cap)
  for ((i = 0; i <= last; i++)); do
    (((bnd >> i) & 1)) || miss+=("$i")
  done
  [ "${#miss[@]}" = 0 ] && return 0
  names="capability number(s) ${miss[*]}"
  if command -v capsh >/dev/null 2>&1; then
    local mask=0
    for i in "${miss[@]}"; do mask=$((mask | (1 << i))); done
    names=$(capsh --decode="$(printf '%x' "$mask")" | sed 's/^[^=]*=//' | tr '[:lower:]' '[:upper:]')
  fi
  echo "the caller's bounding set lacks $names; the validation asks for every capability"
}

# skip_reason VALIDATION: why this host cannot run it (empty: it can).
skip_reason() {
  local v=$1 c
  case "$v" in
    linux_cgroups_*) ;;
    process_capabilities)
      # It asks for every capability (SetupPrivileged): a caller whose bounding
      # set lacks one cannot grant it, whatever the runtime.
      missing_caps
      return 0
      ;;
    *) return 0 ;;
  esac
  c=${v#linux_cgroups_}
  c=${c#relative_}
  local ctrls=()
  case "$c" in
    blkio) ctrls=(blkio) ;;
    cpus) ctrls=(cpu cpuset) ;;
    devices) ctrls=(devices) ;;
    hugetlb) ctrls=(hugetlb) ;;
    memory) ctrls=(memory) ;;
    network) ctrls=(net_cls net_prio) ;;
    pids) ctrls=(pids) ;;
  esac
  local x
  for x in "${ctrls[@]}"; do
    if [ -z "${V1MOUNT[$x]:-}" ]; then
      if grep -qw "$x" "$CGROOT/unified/cgroup.controllers" 2>/dev/null; then
        echo "no cgroup v1 $x hierarchy ($x is only on cgroup2 at $CGROOT/unified; runtime-tools checks v1 files only)"
      else
        echo "no cgroup v1 $x hierarchy on this host"
      fi
      return 0
    fi
  done
  if [ "$c" = blkio ] && [ ! -e /sys/dev/block/8:0 ]; then
    echo "needs block device 8:0 (/dev/sda): the validation sets blkio weight_device/throttle rules for it"
    return 0
  fi
  if [[ $v != linux_cgroups_relative_* ]]; then
    for x in "${ctrls[@]}"; do
      if [ -n "${PRE_CGTEST[${V1MOUNT[$x]}/cgrouptest]:-}" ]; then
        echo "${V1MOUNT[$x]}/cgrouptest already exists and is not this run's: not touching it"
        return 0
      fi
    done
  fi
}

# ---------------------------------------------------------------- sandbox
# Every cgroup hierarchy under /sys/fs/cgroup with this process's path in it:
# "MOUNTPOINT PATH" lines.
cg_hierarchies() {
  local mp fstype opts id ctrls path ok c
  while read -r mp fstype opts; do
    if [ "$fstype" = cgroup2 ]; then
      path=$(sed -n 's/^0:://p' /proc/self/cgroup)
      [ -n "$path" ] && echo "$mp $path"
      continue
    fi
    while IFS=: read -r id ctrls path; do
      [ "$id" = 0 ] && continue
      ok=1
      IFS=, read -r -a cs <<<"$ctrls"
      for c in "${cs[@]}"; do
        [[ ",$opts," == *",$c,"* ]] || ok=0
      done
      if [ "$ok" = 1 ]; then echo "$mp $path"; break; fi
    done </proc/self/cgroup
  done < <(awk '{ split($0, p, " - "); split(p[2], q, " ");
                 if ((q[1] == "cgroup" || q[1] == "cgroup2") && index($5, "/sys/fs/cgroup/") == 1) print $5, q[1], q[3] }' /proc/self/mountinfo)
}

SANDBOXES=()
while read -r mp path; do
  SANDBOXES+=("${mp%/}${path%/}/$SANDBOX_NAME")
done < <(cg_hierarchies)

# The cgroups the validations make at the root of a hierarchy: /cgrouptest
# (absolute cgroupsPath) and, with runc in hybrid mode, testdir/ on cgroup2 (the
# relative path, which runc does not nest under the caller there).  Those that
# exist before we start are not ours; those that appear during the run are.
CG_ROOTS=()
while read -r mp _; do CG_ROOTS+=("$mp"); done < <(cg_hierarchies)
declare -A PRE_CGTEST=() OURS_CGTEST=()
for mp in "${CG_ROOTS[@]}"; do
  for nm in cgrouptest testdir; do
    [ -e "$mp/$nm" ] && PRE_CGTEST[$mp/$nm]=1
  done
done

RUN_TMP=$(mktemp -d /tmp/capsa-rtt.XXXXXX) || die "mktemp failed"
# Like /tmp itself, searchable by everyone: a container whose root is mapped to
# another host uid (linux_ns_nopath) must reach its bundle.
chmod 755 "$RUN_TMP"
LOGDIR="$CACHE/logs/$RT_NAME"
mkdir -p "$LOGDIR"
for v in "${SELECTED[@]}"; do rm -f "$LOGDIR/$v".*; done

# rmdir_tree DIR: remove DIR and its sub-cgroups, deepest first (cgroup dirs
# only go away with rmdir, and only when no process is left in them).
rmdir_tree() {
  [ -d "$1" ] || return 0
  find "$1" -depth -type d -exec rmdir {} + 2>/dev/null
  [ ! -d "$1" ]
}

# Containers (of RUNTIME) whose bundle is inside RUN_TMP: this run's.
our_containers() {
  local id
  "$RUNTIME" list -q 2>/dev/null | while read -r id; do
    [ -n "$id" ] || continue
    if "$RUNTIME" state "$id" 2>/dev/null | tr -d ' \n' | grep -q "\"bundle\":\"$RUN_TMP/"; then
      echo "$id"
    fi
  done
}

reap() {
  local id m d pid
  # Processes a validation left behind in the sandbox itself (e.g. the
  # `unshare ... sleep` helpers of linux_ns_path after a timeout): ours.
  for d in "${SANDBOXES[@]}"; do
    [ -r "$d/cgroup.procs" ] || continue
    while read -r pid; do
      [ -n "$pid" ] || continue
      note "cleanup: kill -KILL $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)) left in $d"
      kill -KILL "$pid" 2>/dev/null
    done <"$d/cgroup.procs"
  done
  for id in $(our_containers); do
    note "cleanup: $RT_NAME delete --force $id (left by a validation)"
    "$RUNTIME" delete --force "$id" >/dev/null 2>&1
  done
  # Mounts left under our TMPDIR (deepest first).
  awk -v t="$RUN_TMP/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    note "cleanup: umount -l $m"
    umount -l "$m" 2>/dev/null
  done
}

cleanup() {
  local d mp
  reap
  for d in "${SANDBOXES[@]}"; do
    rmdir_tree "$d" || note "warning: could not remove cgroup $d"
  done
  for d in "${!OURS_CGTEST[@]}"; do
    rmdir_tree "$d" || note "warning: could not remove cgroup $d"
  done
  rm -rf "$RUN_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for d in "${SANDBOXES[@]}"; do
  mkdir "$d" || die "cannot create cgroup $d"
  case "$d" in
    "${V1MOUNT[cpuset]:-/nonexistent}"/*)
      cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
      cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
      ;;
  esac
done

# run_one VALIDATION: run it in the sandbox; writes $LOGDIR/VALIDATION.{tap,err,rc}
run_one() {
  local v=$1
  (
    for d in "${SANDBOXES[@]}"; do
      echo "$BASHPID" >"$d/cgroup.procs" || { echo "cannot join cgroup $d" >&2; exit 125; }
    done
    cd "$WORK" || exit 125
    export TMPDIR="$RUN_TMP" RUNTIME
    # A private mount namespace: a container that inherits the "runtime's" mount
    # namespace (linux_ns_itype) gets this throwaway one, not the host's, so
    # whatever a runtime mounts there (runc mounts /proc, /dev... onto the
    # bundle and sets / rslave) goes away with it.
    exec unshare --mount --propagation private timeout -k 10 "$TIMEOUT" "$BIN/$v"
  ) >"$LOGDIR/$v.tap" 2>"$LOGDIR/$v.err" </dev/null
  echo $? >"$LOGDIR/$v.rc"
}

# ---------------------------------------------------------------- run
echo "TAP version 13"
note "runtime: $RUNTIME ($("$RUNTIME" --version 2>/dev/null | head -n1))"
note "suite: $SRC"
note "logs: $LOGDIR"
echo "1..${#SELECTED[@]}"
n=0 passed=0 failed=0 skipped=0
START=$SECONDS
for v in "${SELECTED[@]}"; do
  n=$((n + 1))
  reason=$(skip_reason "$v")
  if [ -n "$reason" ]; then
    echo "ok $n - $v # SKIP $reason"
    skipped=$((skipped + 1))
    continue
  fi
  t0=$SECONDS
  run_one "$v"
  for mp in "${CG_ROOTS[@]}"; do
    for nm in cgrouptest testdir; do
      [ -e "$mp/$nm" ] && [ -z "${PRE_CGTEST[$mp/$nm]:-}" ] && OURS_CGTEST[$mp/$nm]=1
    done
  done
  reap
  rc=$(cat "$LOGDIR/$v.rc")
  tap="$LOGDIR/$v.tap"
  points=$(grep -cE '^(not )?ok [0-9]+' "$tap")
  bad=$(grep -E '^not ok [0-9]+' "$tap" | grep -vc '# TODO')
  skips=$(grep -cE '^ok [0-9]+ # SKIP' "$tap")
  yaml=$(grep -c '^  ---$' "$tap")
  detail="$points points, $bad not ok, $skips skipped, $((SECONDS - t0))s"
  verdict=pass
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    verdict=fail detail="timed out after ${TIMEOUT}s; $detail"
  elif [ "$rc" != 0 ]; then
    verdict=fail detail="exit status $rc; $detail"
  elif [ "$bad" -gt 0 ]; then
    verdict=fail
  elif [ "$points" = 0 ] && [ "$yaml" -gt 0 ]; then
    verdict=fail detail="no test points, only a diagnostic"
  elif [ "$points" -gt 0 ] && [ "$points" = "$skips" ]; then
    verdict=skip
  fi
  case $verdict in
    pass)
      # A validation that expects the runtime to refuse a config, or that reports
      # only failures (prestart, poststart, poststop), prints no point when all is well.
      [ "$points" = 0 ] && detail="no test points, no diagnostic, exit 0; $((SECONDS - t0))s"
      echo "ok $n - $v # $detail"
      passed=$((passed + 1))
      ;;
    skip)
      echo "ok $n - $v # SKIP the validation skipped all its points ($detail)"
      skipped=$((skipped + 1))
      ;;
    fail)
      echo "not ok $n - $v # $detail"
      failed=$((failed + 1))
      ;;
  esac
  if [ "$VERBOSE" = 1 ]; then
    sed 's/^/    /' "$tap"
  elif [ "$verdict" = fail ]; then
    if [ "$bad" -gt 0 ]; then
      # Each failing point with the diagnostics that follow it.
      awk '/^(not )?ok [0-9]+/ { show = ($0 ~ /^not ok/ && $0 !~ /# TODO/) }
           /^1\.\.[0-9]+$/ { show = 0 } show' "$tap" | head -n 60 | sed 's/^/    /'
    else
      head -n 60 "$tap" | sed 's/^/    /'
    fi
  fi
  if [ "$verdict" != fail ] && [ "$VERBOSE" != 1 ]; then
    # e.g. poststart/poststop pass with "WARNING: The poststart hook invoke fails".
    grep '^WARNING' "$LOGDIR/$v.err" | sed 's/^/    # /'
  fi
  if { [ "$verdict" = fail ] || [ "$VERBOSE" = 1 ]; } && [ -s "$LOGDIR/$v.err" ]; then
    echo "    --- stderr (last lines; full log: $LOGDIR/$v.err)"
    tail -n 12 "$LOGDIR/$v.err" | sed 's/^/    /'
  fi
done
note "$n validations in $((SECONDS - START))s with $RT_NAME"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
