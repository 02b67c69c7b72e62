#!/bin/bash
# bench/explain.sh -- what --explain costs: `capsa run` of /bin/true, side by side in ONE
# hyperfine invocation:
#
#   base   capsa built from BASE_REV, the commit before --explain existed
#   off    this capsa, without --explain (the target: no measurable cost, ratio <= 1.03)
#   on     this capsa with --explain=json, the narration written to /dev/null
#
# Prints the medians and the ratios off/base (PASS when <= 1.03: within the noise of
# this measurement) and on/off (what narrating costs, for the record).
#
# The base binary is built once per revision with the real release profile (LTO, like
# target/release/capsa) in a git worktree under target/bench-explain-base and cached.
# Each variant gets its own bundle (make-busybox-bundle.sh) with an absolute cgroup
# /capsa-bench-explain/<variant> and its own --root; on exit the containers are deleted
# and only the cgroup dirs made here are removed.
#
# Usage: sudo bench/explain.sh      (after `cargo build --release`; needs hyperfine, jq,
#                                    busybox-static, git)
# Environment: RUNS=N (default 30), CAPSA=PATH (default target/release/capsa),
#              BASE_REV=REV (default: the parent of the commit that added explain/)

one_run() {
  local rt=$1 root=$2 b=$3 id="be$$-$RANDOM"
  shift 3
  "$rt" "$@" --root "$root" run --bundle "$b" "$id" </dev/null >/dev/null 2>&1
  "$rt" --root "$root" delete -f "$id" >/dev/null 2>&1 || true
}
if [ "${1:-}" = --one-run ]; then
  shift
  one_run "$@"
  exit 0
fi

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-30}
CAPSA=${CAPSA:-$REPO/target/release/capsa}
[ "$(id -u)" = 0 ] || { echo "run as root (containers)" >&2; exit 1; }
for t in hyperfine jq git; do command -v "$t" >/dev/null || { echo "$t is needed" >&2; exit 1; }; done
[ -x "$CAPSA" ] || { echo "no $CAPSA: cargo build --release first" >&2; exit 1; }

if [ -z "${BASE_REV:-}" ]; then
  first=$(git -C "$REPO" log --diff-filter=A --format=%H -- explain/src/lib.rs | tail -n 1)
  [ -n "$first" ] || { echo "cannot find the commit that added explain/; set BASE_REV" >&2; exit 1; }
  BASE_REV=$(git -C "$REPO" rev-parse "$first^")
fi
BASE_DIR=$REPO/target/bench-explain-base
BASE=$BASE_DIR/bin-$BASE_REV/capsa
if [ ! -x "$BASE" ]; then
  echo "building capsa at $BASE_REV (the release profile, once; cached in $BASE_DIR)"
  rm -rf "$BASE_DIR/src"
  git -C "$REPO" worktree prune
  git -C "$REPO" worktree add --detach "$BASE_DIR/src" "$BASE_REV" >/dev/null
  (cd "$BASE_DIR/src" && CARGO_TARGET_DIR=$BASE_DIR/target cargo build --release --bin capsa -q)
  mkdir -p "$(dirname "$BASE")"
  cp "$BASE_DIR/target/release/capsa" "$BASE"
  git -C "$REPO" worktree remove --force "$BASE_DIR/src"
fi

WORK=$(mktemp -d /tmp/capsa-bench-explain.XXXXXX)
# The cgroup parent, in each hierarchy where it does not exist yet: removed on exit.
fresh=()
for d in /sys/fs/cgroup/*/capsa-bench-explain /sys/fs/cgroup/capsa-bench-explain; do
  [ -e "$d" ] || fresh+=("$d")
done
cleanup() {
  set +e
  for v in base off on; do
    for id in $("$CAPSA" --root "$WORK/root-$v" list -q 2>/dev/null); do "$CAPSA" --root "$WORK/root-$v" delete -f "$id" >/dev/null 2>&1; done
  done
  for d in "${fresh[@]}"; do
    [ -d "$d" ] && rmdir "$d"/base "$d"/off "$d"/on "$d" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
for v in base off on; do
  "$REPO/rootfs-examples/make-busybox-bundle.sh" "$WORK/$v" --args /bin/true \
    --cgroups-path "/capsa-bench-explain/$v" >/dev/null
  mkdir -p "$WORK/root-$v"
done
# Sanity: each variant runs, and only `on` narrates.
"$BASE" --root "$WORK/root-base" run --bundle "$WORK/base" sanity-base </dev/null >/dev/null
"$CAPSA" --root "$WORK/root-off" run --bundle "$WORK/off" sanity-off </dev/null >/dev/null
steps=$("$CAPSA" --explain=json --root "$WORK/root-on" run --bundle "$WORK/on" sanity-on 2>&1 </dev/null >/dev/null | grep -c '"step"')
echo "capsa --explain=json run narrates $steps steps; base $BASE_REV; $RUNS runs each"

ME=$HERE/explain.sh
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$WORK/h.json" \
  -n base "bash $ME --one-run $BASE $WORK/root-base $WORK/base" \
  -n off "bash $ME --one-run $CAPSA $WORK/root-off $WORK/off" \
  -n on "bash $ME --one-run $CAPSA $WORK/root-on $WORK/on --explain=json" >/dev/null
med() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$WORK/h.json"; }
b=$(med base)
off=$(med off)
on=$(med on)
awk -v b="$b" -v off="$off" -v on="$on" 'BEGIN {
  printf "capsa run /bin/true, median: base %.2f ms, --explain off %.2f ms, --explain=json on %.2f ms\n", b, off, on
  r = off / b
  printf "off/base %.3f (target <= 1.03): %s\n", r, (r <= 1.03 ? "PASS" : "MISS")
  printf "on/off %.3f (what narrating costs)\n", on / off
}'
