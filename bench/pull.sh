#!/bin/bash
# Pull benchmark (issue 12): the debootstrap minbase image (one 49 MB gzip layer) from
# a registry on 127.0.0.1, into an empty store each time:
#   capsa   `capsa run --rm docker://ADDR/minbase true`: pull + unpack + run, the layer
#           unpacked while it downloads;
#   capsa-pull  `capsa image pull` alone (also unpacks while downloading);
#   podman  `podman pull` (pull + its overlay unpack; it does not run anything).
# Side by side in one hyperfine run; prints the ratio against the target:
#   capsa run (pull + unpack + run) <= 0.15 x podman pull.
#
#   bench/pull.sh [RUNS]     (root; needs umoci, skopeo, docker-registry, podman,
#                             hyperfine, jq, and the layer of bench/unpack-minbase.sh)
# Env: WORK (default /var/tmp/capsa-minbase, as unpack-minbase.sh), ADDR (default
# 127.0.0.1:5055), CAPSA (default: the release build).
set -euo pipefail
RUNS=${1:-7}
HERE=$(cd "$(dirname "$0")/.." && pwd)
W=${WORK:-/var/tmp/capsa-minbase}
ADDR=${ADDR:-127.0.0.1:5055}
CAPSA=${CAPSA:-${CARGO_TARGET_DIR:-$HERE/target}/release/capsa}
[ -d "$W/layout" ] || { echo "run bench/unpack-minbase.sh first (it builds $W/layout)" >&2; exit 1; }
[ -x "$CAPSA" ] || { echo "build capsa first: cargo build --release" >&2; exit 1; }
# Stores on tmpfs: the disk's writeback of earlier runs (~170 MB each) would otherwise
# stall later ones, whichever tool they belong to.
T=$(mktemp -d /dev/shm/capsa-pull-bench.XXXXXX)
export CAPSA_REGISTRY_DIR=$T/registry CAPSA_REGISTRY_ADDR=$ADDR
cleanup() {
  "$HERE/rootfs-examples/local-registry.sh" stop >/dev/null 2>&1 || true
  podman --root "$T/podman" --runroot "$T/podman-run" rmi -af >/dev/null 2>&1 || true
  umount -R "$T/podman/overlay" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
"$HERE/rootfs-examples/local-registry.sh" start >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:latest" "docker://$ADDR/minbase:latest"
S=$T/store R=$T/state P="podman --root $T/podman --runroot $T/podman-run --storage-driver overlay"
hyperfine -N -w 1 -r "$RUNS" --export-json "$T/pull.json" \
  -n capsa --prepare "rm -rf $S" "$CAPSA --root $R run --store $S --rm -q docker://$ADDR/minbase:latest true" \
  -n capsa-pull --prepare "rm -rf $S" "$CAPSA image --store $S pull -q docker://$ADDR/minbase:latest" \
  -n podman --prepare "sh -c '$P rmi -af >/dev/null 2>&1 || true'" "$P pull -q --tls-verify=false $ADDR/minbase:latest"
med() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median' "$T/pull.json"; }
c=$(med capsa); cp=$(med capsa-pull); p=$(med podman)
echo "== summary (medians of $RUNS runs, seconds; minbase from $ADDR)"
printf 'capsa run %.3f  capsa image pull %.3f  podman pull %.3f\n' "$c" "$cp" "$p"
awk -v c="$c" -v cp="$cp" -v p="$p" 'BEGIN {
  printf "capsa-pull/podman %.2f\n", cp / p
  r = c / p; printf "target: pull + unpack + run, capsa run/podman pull <= 0.15: %.2f  %s\n", r, (r <= 0.15 ? "PASS" : "MISS") }'
