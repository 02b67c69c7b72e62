#!/bin/bash
# local-registry.sh start|stop|status
#
# A private image registry on 127.0.0.1:5000 to try `capsa image pull` without the
# internet: Debian's docker-registry (apt-get install docker-registry) serving a
# throw-away storage directory, with the busybox image of make-busybox-image.sh pushed
# to it by skopeo (apt-get install skopeo) as
#     127.0.0.1:5000/busybox:latest
#
#   start   build the image, start the registry in the background, push the image
#           (fails if something already listens on the port)
#   stop    stop the registry this script started and remove its directory
#   status  say whether it runs
#
# Everything lives in one directory (default /tmp/capsa-local-registry): config.yml,
# storage/, registry.pid, registry.log, image/ (the OCI layout that was pushed).
# Environment: CAPSA_REGISTRY_DIR (that directory), CAPSA_REGISTRY_ADDR (default
# 127.0.0.1:5000; keep it on a loopback address: the registry has no TLS and no auth).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${CAPSA_REGISTRY_DIR:-/tmp/capsa-local-registry}
ADDR=${CAPSA_REGISTRY_ADDR:-127.0.0.1:5000}
die() { echo "error: $*" >&2; exit 1; }

# The pid of the registry we started, if it still runs (checked by its command line,
# so a recycled pid is never signalled).
running_pid() {
  local pid
  pid=$(cat "$DIR/registry.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "docker-registry serve $DIR/config.yml" || return 1
  echo "$pid"
}

start() {
  local tool pid
  for tool in docker-registry skopeo curl; do
    command -v "$tool" >/dev/null || die "$tool is needed (apt-get install $tool)"
  done
  if pid=$(running_pid); then
    echo "registry already running on $ADDR (pid $pid)"; return 0
  fi
  if curl -s -o /dev/null "http://$ADDR/"; then
    die "something already answers on $ADDR; stop it or set CAPSA_REGISTRY_ADDR"
  fi
  mkdir -p "$DIR/storage"
  cat >"$DIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DIR/storage
  delete:
    enabled: true
http:
  addr: $ADDR
EOF
  rm -f "$DIR/registry.pid"
  # In a session of its own (Ctrl-C in this shell does not stop it); it writes its pid
  # before it becomes docker-registry.
  # shellcheck disable=SC2016  # expanded by the inner sh
  setsid -f sh -c 'echo $$ >"$1/registry.pid"; exec docker-registry serve "$1/config.yml" >"$1/registry.log" 2>&1 </dev/null' sh "$DIR"
  for _ in $(seq 100); do
    curl -fs -o /dev/null "http://$ADDR/v2/" && break
    if [ -s "$DIR/registry.pid" ] && ! kill -0 "$(cat "$DIR/registry.pid")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  curl -fs -o /dev/null "http://$ADDR/v2/" || { cat "$DIR/registry.log" >&2; stop >/dev/null; die "the registry did not come up on $ADDR"; }

  "$HERE/make-busybox-image.sh" "$DIR/image" >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci:$DIR/image:latest" "docker://$ADDR/busybox:latest"
  echo "registry running on $ADDR (pid $(cat "$DIR/registry.pid")), serving $ADDR/busybox:latest"
  echo "stop it with: $0 stop"
}

stop() {
  local pid
  if pid=$(running_pid); then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "registry stopped (pid $pid)"
  else
    echo "no registry of this script is running"
  fi
  # Only ever remove a directory this script made.
  if [ -f "$DIR/config.yml" ]; then rm -rf "$DIR"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if pid=$(running_pid); then echo "running on $ADDR (pid $pid)"; else echo "not running"; exit 1; fi ;;
  -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
