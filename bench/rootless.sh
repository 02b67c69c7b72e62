#!/bin/bash
# bench/rootless.sh -- `run` of /bin/true by an unprivileged user: capsa against crun and
# runc (those installed), side by side in ONE hyperfine invocation, each rootless:
#
#   capsa --root R run ID        (rootless: auto, as the user is not root)
#   crun --cgroup-manager=disabled --root R run ID
#   runc --rootless true --root R run ID
#
# The user is a bare uid (UID, default 61900: no passwd entry needed); the bundle is
# the busybox rootfs owned by it, its config from `capsa spec --rootless` (a user
# namespace mapping root to the uid, no cgroups, no network namespace change). A
# runtime that cannot run it here is reported and left out. Prints medians and the
# ratios capsa/crun and capsa/runc (target: capsa <= crun, ratio <= 1.0). On a hybrid
# cgroup host it runs in a private mount namespace without the cgroup2 mount (crun 1.8
# refuses hybrid hosts).
#
# Usage: sudo bench/rootless.sh     (after cargo build --release; hyperfine, jq, setpriv)
# Environment: RUNS=N (default 30), CAPSA=PATH, UID_=N (the user, default 61900)

one_run() {
  local rt=$1 root=$2 b=$3 id="rl$$-$RANDOM"
  shift 3
  "$rt" "$@" --root "$root" run --bundle "$b" "$id" </dev/null >/dev/null 2>&1
  local rc=$?
  "$rt" --root "$root" delete -f "$id" >/dev/null 2>&1 || true
  return $rc
}
if [ "${1:-}" = --one-run ]; then
  shift
  one_run "$@"
  exit $?
fi

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-30}
U=${UID_:-61900}
CAPSA=${CAPSA:-$REPO/target/release/capsa}
[ "$(id -u)" = 0 ] || { echo "run as root (it makes the user's bundle, then drops to the user)" >&2; exit 1; }
for t in hyperfine jq setpriv; do command -v "$t" >/dev/null || { echo "$t is needed" >&2; exit 1; }; done

# crun 1.8 refuses a v1/v2 hybrid host: on one, the whole bench re-runs itself in a
# private mount namespace without the cgroup2 mount (as bench/lifecycle.sh does; the
# runtimes use no cgroups here anyway). Nothing outside that namespace changes.
if [ -z "${CAPSA_BENCH_PRIVATE:-}" ] && [ -f /sys/fs/cgroup/unified/cgroup.controllers ]; then
  export CAPSA_BENCH_PRIVATE=1
  exec unshare -m --propagation private bash -c 'umount /sys/fs/cgroup/unified && exec bash "$0" "$@"' "$0" "$@"
fi

WORK=$(mktemp -d /tmp/capsa-bench-rootless.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
# shellcheck source=../rootfs-examples/busybox-rootfs.sh
. "$REPO/rootfs-examples/busybox-rootfs.sh"
build_busybox_rootfs "$WORK/bundle/rootfs" >/dev/null
as_user() { setpriv --reuid "$U" --regid "$U" --clear-groups -- env -u XDG_RUNTIME_DIR HOME="$WORK" "$@"; }
chown -R "$U:$U" "$WORK"
(cd "$WORK/bundle" && as_user "$CAPSA" spec --rootless)
jq '.process.terminal = false | .process.args = ["/bin/true"]' "$WORK/bundle/config.json" >"$WORK/c.json"
mv "$WORK/c.json" "$WORK/bundle/config.json"
chown "$U:$U" "$WORK/bundle/config.json"
install -d -o "$U" -g "$U" -m 0700 "$WORK/state"

ME=$HERE/rootless.sh
names=() cmds=()
try() { # NAME RUNTIME [FLAGS...]
  local name=$1 rt=$2
  shift 2
  install -d -o "$U" -g "$U" -m 0700 "$WORK/state/$name"
  if as_user bash "$ME" --one-run "$rt" "$WORK/state/$name" "$WORK/bundle" "$@"; then
    names+=("$name")
    cmds+=("bash $ME --one-run $rt $WORK/state/$name $WORK/bundle $*")
  else
    echo "$name: cannot run the rootless bundle here; left out"
  fi
}
try capsa "$CAPSA"
command -v crun >/dev/null && try crun "$(command -v crun)" --cgroup-manager=disabled
command -v runc >/dev/null && try runc "$(command -v runc)" --rootless true
args=()
for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
as_user hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$WORK/h.json" "${args[@]}" >/dev/null
med() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$WORK/h.json"; }
c=$(med capsa)
printf 'rootless run of /bin/true, median of %s (uid %s):\n' "$RUNS" "$U"
for n in "${names[@]}"; do printf '  %-6s %.2f ms\n' "$n" "$(med "$n")"; done
for n in crun runc; do
  [[ " ${names[*]} " == *" $n "* ]] || continue
  awk -v c="$c" -v o="$(med "$n")" -v n="$n" 'BEGIN { r = c / o; printf "capsa/%s %.2f (target <= 1.0): %s\n", n, r, (r <= 1.0 ? "PASS" : "MISS") }'
done
