#!/bin/bash
# bench/lifecycle.sh -- container lifecycle latency and peak RSS: capsa vs crun vs runc
#
# Every runtime found on the host is measured in the SAME hyperfine invocation per
# scenario (same machine state, interleaved warm-up), each container running /bin/true:
#
#   run    RT run --bundle B ID </dev/null ; RT delete -f ID
#   cold   as run, but every timed run follows 250 ms of idle (hyperfine --prepare
#          'sleep 0.25'): the start finds the kernel quiet; on cgroup v1 the first
#          cgroup.procs write then pays a full RCU grace period that back-to-back runs share
#   split  RT create --bundle B --pid-file P ID ; RT start ID ;
#          wait until the container's process has exited ; RT delete ID
#
# plus the peak RSS (GNU time %M, KB, median of 5) of `RT run` and of `RT create`.
# Prints medians in ms and the ratios capsa/crun and capsa/runc (below 1 = capsa faster).
# Targets (see bench/README.md; issue 12): capsa `run` median <= 0.5 x crun's, peak RSS <= 0.7 x crun's.
#
# Each runtime gets its own copy of the bundle (built by ../rootfs-examples/
# make-busybox-bundle.sh, config from `capsa spec`) with its own ABSOLUTE
# linux.cgroupsPath /capsa-bench/<runtime>, and its own private --root state dir.
# On a hybrid cgroup host (cgroup v1 controllers + cgroup2 at /sys/fs/cgroup/unified)
# the whole benchmark re-runs itself inside `unshare -m --propagation private` with
# /sys/fs/cgroup/unified unmounted, because crun 1.8 refuses hybrid hosts; nothing
# outside that private mount namespace changes. Pure v1 or v2 hosts run directly.
# On exit it force-deletes its containers and rmdirs only the cgroup dirs it created.
#
# Usage: sudo bench/lifecycle.sh            (needs root, hyperfine, jq, busybox-static;
#                                             GNU time (package `time`) for peak RSS)
# Environment:
#   RUNS=N          timed runs per scenario and runtime (default 20)
#   CAPSA=PATH      capsa binary (default: this repo's target/release/capsa, else PATH)
#   CRUN=PATH RUNC=PATH   other runtimes (default: from PATH; missing ones are skipped)
#   SCENARIOS="run cold split"   subset / order of scenarios
#   RESULTS=DIR     also keep hyperfine's JSON exports in DIR
#   RUN_TIMEOUT=S   kill a measured `RT run` after S seconds (default 0 = no watchdog:
#                   `timeout` would add ~1 ms to every measurement). The sanity run
#                   before the timings always has a 30 s watchdog.
#
# Internal modes (the measured commands; keep them lean, every line is in the figures):
#   lifecycle.sh --one-run   RT_BIN STATE_ROOT BUNDLE
#   lifecycle.sh --one-split RT_BIN STATE_ROOT BUNDLE
#   lifecycle.sh --noop      (harness overhead baseline)

# ---- measured commands -----------------------------------------------------------------
one_run() {
  local rt=$1 root=$2 b=$3 id="br$$-$RANDOM" rc=0
  if [ "${RUN_TIMEOUT:-0}" != 0 ]; then
    timeout -s KILL "$RUN_TIMEOUT" "$rt" --root "$root" run --bundle "$b" "$id" </dev/null >/dev/null 2>&1 || rc=$?
  else
    "$rt" --root "$root" run --bundle "$b" "$id" </dev/null >/dev/null 2>&1 || rc=$?
  fi
  "$rt" --root "$root" delete -f "$id" >/dev/null 2>&1 || true   # usually already gone
  return "$rc"
}

wait_exit() {   # spin (bash builtins only, no forks) until PID is gone or a zombie
  local pid=$1 st s
  while [ -e "/proc/$pid" ]; do
    read -r st <"/proc/$pid/stat" 2>/dev/null || break
    s=${st##*) }; s=${s%% *}
    if [ "$s" = Z ] || [ "$s" = X ]; then break; fi
  done
}

one_split() {
  local rt=$1 root=$2 b=$3 id="bs$$-$RANDOM" pf pid
  pf="$root/$id.pid"
  if ! "$rt" --root "$root" create --bundle "$b" --pid-file "$pf" "$id" </dev/null >/dev/null 2>&1; then
    rm -f "$pf"; "$rt" --root "$root" delete -f "$id" >/dev/null 2>&1; return 1
  fi
  read -r pid <"$pf"; rm -f "$pf"
  "$rt" --root "$root" start "$id" >/dev/null 2>&1 || { "$rt" --root "$root" delete -f "$id" >/dev/null 2>&1; return 1; }
  wait_exit "$pid"
  if ! "$rt" --root "$root" delete "$id" >/dev/null 2>&1; then
    "$rt" --root "$root" delete -f "$id" >/dev/null 2>&1; return 2
  fi
}

case "${1:-}" in
  --one-run)   shift; one_run "$@"; exit $? ;;
  --one-split) shift; one_split "$@"; exit $? ;;
  --noop)      exit 0 ;;
esac

# ---- main ------------------------------------------------------------------------------
set -euo pipefail
SELF=$(readlink -f "${BASH_SOURCE[0]}")
HERE=$(dirname "$SELF")
REPO=$(dirname "$HERE")
RTS=(capsa crun runc)          # column order

die() { echo "error: $*" >&2; exit 1; }
case "${1:-}" in
  -h|--help) sed -n '2,/^# Internal modes/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) die "unknown argument '$1' (see --help)" ;;
esac
[ "$(id -u)" -eq 0 ] || die "needs root (containers with cgroups): sudo $0"
for t in hyperfine jq; do command -v "$t" >/dev/null || die "$t is needed (apt-get install $t)"; done

is_cgroup2() { [ "$(stat -f -c %T "$1" 2>/dev/null)" = cgroup2fs ]; }
if is_cgroup2 /sys/fs/cgroup; then
  CGMODE="cgroup v2"
elif is_cgroup2 /sys/fs/cgroup/unified; then
  CGMODE=hybrid
  if [ -z "${_CAPSA_BENCH_IN_NS:-}" ]; then
    # Re-run this script in a private mount namespace without the cgroup2 mount.
    # A throwaway tmpfs then goes on the bare directory: crun 1.8 (in v1 mode, seeing the
    # "0::/" line of /proc/self/cgroup) still mkdirs its container path under
    # /sys/fs/cgroup/unified and writes a plain cgroup.procs *file* there; without the
    # tmpfs that litter would land on the host's /sys/fs/cgroup tmpfs, hidden under the
    # real cgroup2 mount. The tmpfs disappears with the namespace.
    # shellcheck disable=SC2016  # $0/$@ belong to the inner shell
    exec env _CAPSA_BENCH_IN_NS=1 unshare -m --propagation private bash -c '
      umount /sys/fs/cgroup/unified 2>/dev/null || umount -l /sys/fs/cgroup/unified
      mount -t tmpfs -o size=1m,mode=755 capsa-bench-scratch /sys/fs/cgroup/unified
      exec "$0" "$@"' "$SELF" "$@"
  fi
else
  CGMODE="cgroup v1"
fi
CGNOTE=$CGMODE
if [ -n "${_CAPSA_BENCH_IN_NS:-}" ]; then
  CGMODE="hybrid host; benchmark run in a private mount namespace with /sys/fs/cgroup/unified unmounted (a scratch tmpfs in its place): a pure cgroup v1 view, so crun can run"
  CGNOTE="hybrid host seen as cgroup v1 (private mount ns without /sys/fs/cgroup/unified)"
  [ "$(stat -f -c %T /sys/fs/cgroup/unified)" = tmpfs ] \
    || echo "warning: no scratch tmpfs on /sys/fs/cgroup/unified; crun may leave files there" >&2
  is_cgroup2 /sys/fs/cgroup/unified && echo "warning: could not unmount /sys/fs/cgroup/unified; crun will probably fail" >&2
fi

RUNS=${RUNS:-20}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
SCENARIOS=${SCENARIOS:-run cold split}

# ---- runtimes ----
declare -A BIN=()
if [ -z "${CAPSA:-}" ]; then
  CAPSA="$REPO/target/release/capsa"
  [ -x "$CAPSA" ] || CAPSA=$(command -v capsa) || CAPSA=""
fi
if [ -z "$CAPSA" ] || [ ! -x "$CAPSA" ]; then
  die "no capsa binary: run 'cargo build --release' in $REPO, or set CAPSA=/path/to/capsa"
fi
export CAPSA                     # make-busybox-bundle.sh uses it for `capsa spec`
BIN[capsa]=$CAPSA
for rt in crun runc; do
  var=${rt^^}
  p=${!var:-$(command -v "$rt" || true)}
  if [ -n "$p" ] && [ -x "$p" ]; then BIN[$rt]=$p; else echo "note: $rt not found, skipped"; fi
done

# ---- temp dirs, cleanup ----
TMP=$(mktemp -d /tmp/capsa-bench.XXXXXX)
# cgroup dirs that already exist are never removed (another benchmark may be using them)
CG_CANDIDATES=()
for h in /sys/fs/cgroup /sys/fs/cgroup/*/; do
  h=${h%/}
  for rt in "${RTS[@]}"; do CG_CANDIDATES+=("$h/capsa-bench/$rt"); done
  CG_CANDIDATES+=("$h/capsa-bench")
done
declare -A CG_PRE=()
for d in "${CG_CANDIDATES[@]}"; do [ -d "$d" ] && CG_PRE[$d]=1; done
[ ${#CG_PRE[@]} -eq 0 ] || echo "note: already there, so left alone (another run?): ${!CG_PRE[*]}"

cleanup() {
  local rc=$? rt id d
  set +e
  for rt in "${!BIN[@]}"; do
    [ -d "$TMP/state/$rt" ] || continue
    for d in "$TMP/state/$rt"/*/; do      # one state dir per leftover container
      [ -d "$d" ] || continue
      id=$(basename "$d")
      "${BIN[$rt]}" --root "$TMP/state/$rt" delete -f "$id" >/dev/null 2>&1
    done
  done
  for d in "${CG_CANDIDATES[@]}"; do      # children first, then /capsa-bench; rmdir only
    [ -d "$d" ] && [ -z "${CG_PRE[$d]:-}" ] && rmdir "$d" 2>/dev/null
  done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- bundles + sanity check ----
ACTIVE=()
for rt in "${RTS[@]}"; do
  [ -n "${BIN[$rt]:-}" ] || continue
  mkdir -p "$TMP/state/$rt"
  "$REPO/rootfs-examples/make-busybox-bundle.sh" "$TMP/bundles/$rt" \
    --args /bin/true --cgroups-path "/capsa-bench/$rt" >/dev/null
  if RUN_TIMEOUT=30 "$SELF" --one-run "${BIN[$rt]}" "$TMP/state/$rt" "$TMP/bundles/$rt"; then
    ACTIVE+=("$rt")
  else
    echo "note: $rt cannot run the benchmark bundle, skipped; its error:" >&2
    timeout -s KILL 30 "${BIN[$rt]}" --root "$TMP/state/$rt" run --bundle "$TMP/bundles/$rt" sanity </dev/null 2>&1 | tail -5 | sed 's/^/    /' >&2 || true
    "${BIN[$rt]}" --root "$TMP/state/$rt" delete -f sanity >/dev/null 2>&1 || true
    [ "$rt" = capsa ] && die "capsa failed the sanity run; nothing to compare"
  fi
done

echo "capsa lifecycle benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc) CPUs, RUNS=$RUNS"
echo "cgroups: $CGMODE"
for rt in "${ACTIVE[@]}"; do
  printf '  %-6s %s (%s)\n' "$rt" "${BIN[$rt]}" "$("${BIN[$rt]}" --version 2>/dev/null | head -1)"
done

# ---- timings ----
q() { printf '%q' "$1"; }
cmd_for() {  # SCENARIO RT -> the measured command line (hyperfine -N splits it like a shell)
  local mode=--one-run
  [ "$1" = split ] && mode=--one-split
  echo "$(q "$SELF") $mode $(q "${BIN[$2]}") $(q "$TMP/state/$2") $(q "$TMP/bundles/$2")"
}

# harness overhead: what the bash wrapper alone costs (included in every figure below)
hyperfine -N -w 3 -r 30 --export-json "$TMP/noop.json" "$(q "$SELF") --noop" >/dev/null 2>&1 \
  && echo "harness overhead (bash wrapper, no runtime): $(jq -r '.results[0].median * 1000 | . * 10 | round / 10' "$TMP/noop.json") ms, included in every time below"
echo

declare -A MED=() NFAIL=()
for s in $SCENARIOS; do
  case $s in run|cold|split) ;; *) echo "unknown scenario '$s', skipped"; continue ;; esac
  args=(-N -i -w 2 -r "$RUNS" --export-json "$TMP/$s.json")
  [ "$s" = cold ] && args+=(--prepare 'sleep 0.25')
  for rt in "${ACTIVE[@]}"; do args+=(-n "$rt" "$(cmd_for "$s" "$rt")"); done
  echo "scenario $s: ${#ACTIVE[@]} runtimes x $RUNS runs ..."
  if ! hyperfine "${args[@]}" >"$TMP/$s.out" 2>&1; then
    echo "  hyperfine failed: $(tail -3 "$TMP/$s.out")"; continue
  fi
  [ -z "${RESULTS:-}" ] || { mkdir -p "$RESULTS"; cp "$TMP/$s.json" "$RESULTS/lifecycle-$s.json"; }
  for i in "${!ACTIVE[@]}"; do
    rt=${ACTIVE[$i]}
    MED[$s,$rt]=$(jq -r --argjson i "$i" '.results[$i].median * 1000' "$TMP/$s.json")
    NFAIL[$s,$rt]=$(jq -r --argjson i "$i" '[.results[$i].exit_codes[] | select(. != 0)] | length' "$TMP/$s.json")
    [ "${NFAIL[$s,$rt]}" = 0 ] || echo "  WARNING: $rt failed ${NFAIL[$s,$rt]}/$RUNS timed runs of $s"
  done
done

# ---- peak RSS ----
declare -A RSS=()
rss_median() {  # RT SUBCMD -> median of 5 peak RSS values (KB) of `RT SUBCMD`
  local rt=$1 sub=$2 i id extra=() vals=()
  [ "$sub" = create ] && extra=(--pid-file "$TMP/rss.pid")
  for i in 1 2 3 4 5; do
    id="rss-$sub-$i"
    /usr/bin/time -f '%M' -o "$TMP/rss" \
      "${BIN[$rt]}" --root "$TMP/state/$rt" "$sub" --bundle "$TMP/bundles/$rt" "${extra[@]}" "$id" \
      </dev/null >/dev/null 2>&1 || true
    vals+=("$(tail -1 "$TMP/rss")")
    "${BIN[$rt]}" --root "$TMP/state/$rt" delete -f "$id" >/dev/null 2>&1 || true
  done
  printf '%s\n' "${vals[@]}" | sort -n | sed -n 3p
}
if [ -x /usr/bin/time ]; then
  echo "peak RSS: 5 x run and 5 x create per runtime ..."
  for rt in "${ACTIVE[@]}"; do
    for sub in run create; do RSS[$sub,$rt]=$(rss_median "$rt" "$sub"); done
  done
else
  echo "note: /usr/bin/time missing (apt-get install time): peak RSS skipped"
fi

# ---- summary ----
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN{ if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
ms()    { if [ -n "${1:-}" ]; then awk -v v="$1" 'BEGIN{printf "%.1f", v}'; else echo "-"; fi; }
echo
echo "== summary (medians of $RUNS runs; $CGNOTE)"
printf '%-9s %10s %9s %9s %11s %11s\n' scenario 'capsa(ms)' 'crun(ms)' 'runc(ms)' capsa/crun capsa/runc
for s in $SCENARIOS; do
  [ -n "${MED[$s,capsa]:-}" ] || continue
  printf '%-9s %10s %9s %9s %11s %11s' "$s" "$(ms "${MED[$s,capsa]:-}")" "$(ms "${MED[$s,crun]:-}")" \
    "$(ms "${MED[$s,runc]:-}")" "$(ratio "${MED[$s,capsa]:-}" "${MED[$s,crun]:-}")" \
    "$(ratio "${MED[$s,capsa]:-}" "${MED[$s,runc]:-}")"
  for rt in "${ACTIVE[@]}"; do
    [ "${NFAIL[$s,$rt]:-0}" = 0 ] || printf '  (%s FAILED %s/%s)' "$rt" "${NFAIL[$s,$rt]}" "$RUNS"
  done
  echo
done
for sub in run create; do
  [ -n "${RSS[$sub,capsa]:-}" ] || continue
  printf 'peak RSS (KB): %-6s capsa %s  crun %s  runc %s   capsa/crun %s  capsa/runc %s\n' "$sub" \
    "${RSS[$sub,capsa]}" "${RSS[$sub,crun]:--}" "${RSS[$sub,runc]:--}" \
    "$(ratio "${RSS[$sub,capsa]}" "${RSS[$sub,crun]:-}")" "$(ratio "${RSS[$sub,capsa]}" "${RSS[$sub,runc]:-}")"
done

# ---- targets ----
if [ -n "${MED[run,crun]:-}" ] && [ -n "${MED[run,capsa]:-}" ]; then
  r=$(ratio "${MED[run,capsa]}" "${MED[run,crun]}")
  v=$(awk -v r="$r" 'BEGIN{print (r <= 0.5) ? "PASS" : "MISS"}')
  echo "target: run median capsa/crun <= 0.50: $r  $v"
fi
for sub in run create; do
  if [ -n "${RSS[$sub,crun]:-}" ] && [ -n "${RSS[$sub,capsa]:-}" ]; then
    r=$(ratio "${RSS[$sub,capsa]}" "${RSS[$sub,crun]}")
    v=$(awk -v r="$r" 'BEGIN{print (r <= 0.7) ? "PASS" : "MISS"}')
    echo "target: peak RSS of $sub, capsa/crun <= 0.70: ${RSS[$sub,capsa]} vs ${RSS[$sub,crun]} KB = $r  $v"
  fi
done
echo "(figures are specific to this machine and its load; compare ratios, not absolute ms)"
