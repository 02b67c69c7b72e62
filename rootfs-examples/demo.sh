#!/bin/bash
# demo.sh [WORKDIR]
#
# A guided tour of capsa for newcomers. Needs root, no network.
#   1. builds two busybox bundles (make-busybox-bundle.sh) in a temp dir, or in WORKDIR
#      if given (then they are kept afterwards, to play with)
#   2. `capsa run`: one container in the foreground, which prints hello, its hostname, id, ls /
#   3. the lifecycle, one command at a time, on a second container running `sleep 30`:
#        create -> state -> start -> ps -> exec -> pause -> resume -> kill -> delete
# All container state goes to a private --root (a temp dir), so the demo never sees or
# touches other containers; on exit (even after an error or Ctrl-C) it force-deletes its
# containers and removes its temp dirs. Exits non-zero if any step fails.
# Environment: CAPSA=/path/to/capsa (default: this repo's target/release/capsa, else PATH).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- setup -----------------------------------------------------------------------------
if [ -z "${CAPSA:-}" ]; then
  CAPSA="$(cd "$HERE/.." && pwd)/target/release/capsa"
  [ -x "$CAPSA" ] || CAPSA=$(command -v capsa) || {
    echo "error: no capsa binary; run 'cargo build --release' first (or set CAPSA=...)" >&2; exit 1; }
fi
export CAPSA   # make-busybox-bundle.sh uses the same binary for `capsa spec`
[ "$(id -u)" -eq 0 ] || { echo "error: containers need root here; try: sudo $0 $*" >&2; exit 1; }

HELLO=demo-hello   # container ids (also the bundle directory names, hence the cgroup names
SLEEP=demo-sleep   # /capsa-examples/demo-hello and /capsa-examples/demo-sleep)

if [ $# -ge 1 ]; then
  WORK=$1; KEEP_WORK=1
  mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
else
  WORK=$(mktemp -d /tmp/capsa-demo.XXXXXX); KEEP_WORK=0
fi
STATE=$(mktemp -d /tmp/capsa-demo-state.XXXXXX)

cleanup() {
  local rc=$?
  set +e
  for id in "$SLEEP" "$HELLO"; do
    "$CAPSA" --root "$STATE" delete --force "$id" >/dev/null 2>&1
  done
  # capsa removes a container's cgroup on delete; this only catches leftovers after a
  # failure. rmdir never removes a cgroup that still has processes or children.
  for cg in /sys/fs/cgroup/*/capsa-examples/"$HELLO" /sys/fs/cgroup/*/capsa-examples/"$SLEEP" \
            /sys/fs/cgroup/capsa-examples/"$HELLO" /sys/fs/cgroup/capsa-examples/"$SLEEP"; do
    [ -d "$cg" ] && rmdir "$cg" 2>/dev/null
  done
  rm -rf "$STATE"
  [ "$KEEP_WORK" = 1 ] || rm -rf "$WORK"
  if [ "$rc" -ne 0 ]; then echo; echo "demo FAILED (exit code $rc)" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers ---------------------------------------------------------------------------
B=$'\e[1m'; N=$'\e[0m'
[ -t 1 ] || { B=""; N=""; }
say()  { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }      # a section / explanation
note() { printf '   %s\n' "$@"; }                        # extra explanation lines
# shown ARGS...: the arguments as you would type them in a shell (quoted where needed)
shown() {
  local a out=""
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=" $a"; else out+=" '${a//\'/\'\\\'\'}'"; fi
  done
  echo "${out# }"
}
# cap ARGS...: show the command (without the --root noise), then run it; stop on failure.
cap() {
  printf '%s$ capsa %s%s\n' "$B" "$(shown "$@")" "$N"
  "$CAPSA" --root "$STATE" "$@" || { echo "!! 'capsa $(shown "$@")' failed" >&2; exit 1; }
}
# status ID: the container's status as reported by `capsa state`
status() { "$CAPSA" --root "$STATE" state "$1" | jq -r .status; }
# expect_status ID WANT: check it (the demo must fail loudly if the runtime misbehaves)
expect_status() {
  local got; got=$(status "$1")
  echo "   -> status: $got"
  [ "$got" = "$2" ] || { echo "!! expected status '$2', got '$got'" >&2; exit 1; }
}

# ---- 1. bundles ------------------------------------------------------------------------
say "Building two OCI bundles (a folder with rootfs/ + config.json) in $WORK"
note "A bundle is all a runtime needs: a root filesystem and a config.json that says" \
     "what to run and how to isolate it. Ours are made from the static busybox binary."
"$HERE/make-busybox-bundle.sh" "$WORK/$HELLO" | sed 's/^/   /'
"$HERE/make-busybox-bundle.sh" "$WORK/$SLEEP" --args 'sleep 30' | sed 's/^/   /'
note "(capsa keeps this demo's container state in $STATE via --root;" \
     " the commands below leave that option out for readability)"

# ---- 2. capsa run ----------------------------------------------------------------------
say "1) capsa run: create + start + wait + delete, in one command (the container's output follows)"
note "The container has its own hostname (UTS namespace), PID numbers, mounts and network."
cap run --bundle "$WORK/$HELLO" "$HELLO"
echo "   -> exit code 0; the container is already gone (run deletes it when it exits)"

# ---- 3. the lifecycle, step by step --------------------------------------------------------
say "2) capsa create: set up namespaces, mounts and cgroup, but do not run the program yet"
cap create --bundle "$WORK/$SLEEP" --pid-file "$STATE/$SLEEP.pid" "$SLEEP"
note "An init process now waits inside the container (pid $(cat "$STATE/$SLEEP.pid") on the host)."

say "3) capsa state: the OCI state of the container, as JSON"
cap state "$SLEEP"
expect_status "$SLEEP" created

say "4) capsa start: let the waiting process exec the configured program (sleep 30)"
cap start "$SLEEP"
expect_status "$SLEEP" running

say "5) capsa ps: the container's processes, as seen from the host"
cap ps "$SLEEP"

say "6) capsa exec: run one more program inside the running container"
note "Inside, sleep is PID 1: the container has its own PID namespace."
# shellcheck disable=SC2016  # $(hostname) is meant to expand inside the container
cap exec "$SLEEP" sh -c 'echo "hello from exec in $(hostname)"; ps'

say "7) capsa pause: freeze every process of the container (cgroup freezer)"
cap pause "$SLEEP"
expect_status "$SLEEP" paused

say "8) capsa resume: thaw it again"
cap resume "$SLEEP"
expect_status "$SLEEP" running

say "9) capsa kill: send a signal to the container's init (here SIGKILL)"
note "The default SIGTERM would be ignored: sleep is the PID namespace's init and has no" \
     "SIGTERM handler, and the kernel only lets SIGKILL through to such a process."
cap kill "$SLEEP" KILL
for _ in $(seq 50); do [ "$(status "$SLEEP")" = stopped ] && break; sleep 0.1; done
expect_status "$SLEEP" stopped

say "10) capsa delete: remove the stopped container (its state and its cgroup)"
cap delete "$SLEEP"
cap list
note "No containers left."

say "Done. Build your own bundle with:  $HERE/make-busybox-bundle.sh DIR --args 'httpd -f -v -h /var/www'"
