#!/bin/bash
# Unpack benchmark: capsa's applier (examples/unpack.rs) vs GNU tar vs umoci,
# on a ~100 MB layer (a tar of /usr/lib/python3*, ~5000 entries) as plain,
# gzip -1 and zstd -3, unpacked into tmpfs (/dev/shm). Runs are interleaved;
# prints the median wall time and CPU time (user+sys, children included).
#
#   bench/unpack.sh [RUNS]        (needs gzip, zstd, bc, /usr/bin/time; umoci optional)
set -euo pipefail
N=${1:-7}
HERE=$(cd "$(dirname "$0")/.." && pwd)
: "${CARGO_TARGET_DIR:=$HERE/target}"
W=${BENCH_DIR:-/tmp/capsa-unpack-bench}
D=/dev/shm/capsa-unpack-bench
mkdir -p "$W"
(cd "$HERE" && cargo build -q --release -p capsa-image --example unpack)
U=$CARGO_TARGET_DIR/release/examples/unpack
if [ ! -f "$W/layer.tar" ]; then
  tar -C / -cf "$W/layer.tar" usr/lib/python3 usr/lib/python3.11 2>/dev/null || true
  gzip -1 -k -f "$W/layer.tar"
  zstd -q -3 -f "$W/layer.tar" -o "$W/layer.tar.zst"
fi
if command -v umoci >/dev/null && [ ! -d "$W/layout" ]; then
  python3 - "$W" <<'PY'
import json, hashlib, os, sys
w = sys.argv[1]; d = w + "/layout"; os.makedirs(d + "/blobs/sha256", exist_ok=True)
def put(b):
    h = hashlib.sha256(b).hexdigest(); open(f"{d}/blobs/sha256/{h}", "wb").write(b); return "sha256:" + h
g = open(w + "/layer.tar.gz", "rb").read(); t = open(w + "/layer.tar", "rb").read()
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
      "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest()]}}).encode()
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(g), "size": len(g)}]}).encode()
md = put(m)
open(d + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
open(d + "/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [{"mediaType":
    "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(m),
    "annotations": {"org.opencontainers.image.ref.name": "b"}}]}))
PY
fi
ls -l "$W"/layer.tar*
t() { /usr/bin/time -f "%e %U %S" "$@" 2>&1 >/dev/null | tail -1; }
med() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for L in layer.tar.gz layer.tar.zst layer.tar; do
  case $L in *.gz) TF=-xzf;; *.zst) TF="--zstd -xf";; *) TF=-xf;; esac
  declare -A WALL=() CPU=()
  run() { local k=$1; shift; rm -rf $D; mkdir -p $D; read w u s < <(t "$@"); WALL[$k]+="$w "; CPU[$k]+="$(echo "$u+$s" | bc) "; }
  for i in $(seq "$N"); do
    run capsa "$U" "$W/$L" $D
    run capsa-one-thread "$U" --one-thread "$W/$L" $D
    run gnu-tar tar $TF "$W/$L" -C $D
    if [ $L = layer.tar.gz ] && command -v umoci >/dev/null; then
      rm -rf $D; run umoci umoci raw unpack --image "$W/layout:b" $D/rootfs
    fi
  done
  for k in capsa capsa-one-thread gnu-tar umoci; do
    [ -n "${WALL[$k]:-}" ] && printf '%-14s %-18s wall %5ss  cpu %5ss\n' "$L" "$k" "$(med "${WALL[$k]}")" "$(med "${CPU[$k]}")"
  done
done
rm -rf $D
