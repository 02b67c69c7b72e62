#!/bin/bash
# Unpack benchmark on the acceptance layer of issue 4: a Debian bookworm minbase root
# (debootstrap --variant=minbase, apt caches left out) as one gzip layer, unpacked into
# tmpfs (/dev/shm) by capsa's layer applier, umoci, and `tar -xzf`; plus `gzip -dc`
# alone (the floor for any gzip-based unpacker). Side by side in one run (hyperfine).
#
#   bench/unpack-minbase.sh [RUNS]     (root; needs debootstrap, umoci, hyperfine, jq)
# Env: WORK (default /var/tmp/capsa-minbase), MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
RUNS=${1:-7}
HERE=$(cd "$(dirname "$0")/.." && pwd)
W=${WORK:-/var/tmp/capsa-minbase}
D=/dev/shm/capsa-minbase-target
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p "$W"
if [ ! -d "$W/rootfs" ]; then
  echo "# debootstrap --variant=minbase bookworm ($MIRROR)" >&2
  debootstrap --variant=minbase bookworm "$W/rootfs.tmp" "$MIRROR" >/dev/null
  mv "$W/rootfs.tmp" "$W/rootfs"
fi
if [ ! -f "$W/layer.tar.gz" ]; then
  tar -C "$W/rootfs" --numeric-owner --exclude='./var/cache/apt/archives/*.deb' \
      --exclude='./var/lib/apt/lists/*' -cf "$W/layer.tar" .
  gzip -6 -c "$W/layer.tar" >"$W/layer.tar.gz"
  rm -rf "$W/layout"
  umoci init --layout "$W/layout" >/dev/null
  umoci new --image "$W/layout:latest" >/dev/null
  umoci raw add-layer --image "$W/layout:latest" "$W/layer.tar" >/dev/null
fi
echo "# layer: $(stat -c %s "$W/layer.tar.gz") bytes gzip, $(stat -c %s "$W/layer.tar" 2>/dev/null || echo '?') tar, $(tar -tzf "$W/layer.tar.gz" | wc -l) entries"
(cd "$HERE" && cargo build -q --release -p capsa-image --example unpack)
U=${CARGO_TARGET_DIR:-$HERE/target}/release/examples/unpack
J=$(mktemp -d)
trap 'rm -rf "$D" "$J"' EXIT
hyperfine -N -w 1 -r "$RUNS" --prepare "rm -rf $D" --export-json "$J/unpack.json" \
  -n capsa "$U $W/layer.tar.gz $D" \
  -n capsa-one-thread "$U --one-thread $W/layer.tar.gz $D" \
  -n umoci "umoci raw unpack --image $W/layout:latest $D"
hyperfine -w 1 -r "$RUNS" --prepare "rm -rf $D; mkdir -p $D" --export-json "$J/tar.json" \
  -n "tar -xzf" "tar -xzf $W/layer.tar.gz -C $D" \
  -n "gzip -dc" "gzip -dc $W/layer.tar.gz >/dev/null"
# Medians, the ratio and the target (issue 12: capsa <= 0.25x umoci).
med() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .median' "$J/$1"; }
c=$(med unpack.json capsa); c1=$(med unpack.json capsa-one-thread); u=$(med unpack.json umoci)
t=$(med tar.json "tar -xzf"); g=$(med tar.json "gzip -dc")
echo "== summary (medians of $RUNS runs, seconds)"
printf 'capsa %.3f  capsa-one-thread %.3f  umoci %.3f  tar -xzf %.3f  gzip -dc %.3f\n' "$c" "$c1" "$u" "$t" "$g"
awk -v c="$c" -v u="$u" -v t="$t" 'BEGIN {
  r = c / u; printf "capsa/umoci %.2f  capsa/tar %.2f\n", r, c / t
  printf "target: unpack of the minbase layer, capsa/umoci <= 0.25: %.2f  %s\n", r, (r <= 0.25 ? "PASS" : "MISS") }'
