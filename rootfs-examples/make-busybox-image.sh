#!/bin/bash
# make-busybox-image.sh OUTDIR [TAG]
#
# Build an OCI *image* (not a bundle) of the busybox rootfs, by hand: only tar, gzip,
# sha256sum and jq -- no umoci, skopeo or registry. It shows what an image is made of:
#
#   OUTDIR/oci-layout                {"imageLayoutVersion":"1.0.0"}
#   OUTDIR/index.json                entry point: lists the manifest, tagged
#                                    org.opencontainers.image.ref.name = TAG (default latest)
#   OUTDIR/blobs/sha256/<digest>     content-addressed files, named by their sha256:
#       - the layer:    tar.gz of the rootfs (application/vnd.oci.image.layer.v1.tar+gzip)
#       - the config:   architecture, os, Cmd ["sh"], Env PATH, WorkingDir /,
#                       rootfs.diff_ids = sha256 of the *uncompressed* layer tar
#       - the manifest: points at the config and the layer (digest + size each)
#   OUTDIR.tar                       the whole layout as one tar (for skopeo
#                                    oci-archive:, `podman load`, `ctr images import`)
#
# The layer is deterministic (sorted names, mtime 0, owner 0:0, gzip -n), so building
# twice gives the same digests. Running it again with another TAG adds that tag to the
# existing layout (a tag that already exists is replaced).
#
# Check the result with, e.g.:
#   umoci unpack --image OUTDIR:TAG /tmp/unpacked      (gives a runnable bundle)
#   skopeo inspect oci:OUTDIR:TAG
# Environment: BUSYBOX (default /bin/busybox, must be statically linked).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/busybox-rootfs.sh
. "$HERE/busybox-rootfs.sh"

die() { echo "error: $*" >&2; exit 1; }
case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") echo "usage: $0 OUTDIR [TAG]" >&2; exit 2 ;;
esac
OUT=${1%/}
TAG=${2:-latest}
[[ $TAG =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$ ]] || die "bad tag '$TAG' (letters, digits, . _ -)"
for tool in tar gzip sha256sum jq; do
  command -v "$tool" >/dev/null || die "$tool is needed (apt-get install $tool)"
done

check_busybox   # before creating anything

# An existing OUTDIR must be an OCI layout (we add our tag to it) or empty.
if [ -d "$OUT" ] && [ ! -f "$OUT/oci-layout" ] && [ -n "$(ls -A "$OUT")" ]; then
  die "$OUT exists, is not empty and is not an OCI image layout"
fi
mkdir -p "$OUT/blobs/sha256"
OUT=$(cd "$OUT" && pwd)
BLOBS="$OUT/blobs/sha256"
umask 022

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# sha256 of a file, hex only
sha() { sha256sum "$1" | cut -d' ' -f1; }
# add_blob FILE: move FILE into blobs/sha256/<its digest>, print the digest (hex)
add_blob() {
  local d; d=$(sha "$1")
  mv "$1" "$BLOBS/$d"
  echo "$d"
}

# 1. The layer: the rootfs as a tar, made reproducible (no host uids, times or order).
build_busybox_rootfs "$WORK/rootfs"
tar -C "$WORK/rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -cf "$WORK/layer.tar" .
DIFF_ID=$(sha "$WORK/layer.tar")            # identifies the *uncompressed* content
gzip -n -9 "$WORK/layer.tar"                # -n: no file name/time in the gzip header
LAYER_SIZE=$(stat -c %s "$WORK/layer.tar.gz")
LAYER=$(add_blob "$WORK/layer.tar.gz")      # identifies the compressed blob

# 2. The image config: how to run it, and the diff_ids that tie it to the layer.
jq -cn --arg diff "sha256:$DIFF_ID" '{
  created: "1970-01-01T00:00:00Z",
  architecture: "amd64",
  os: "linux",
  config: {
    Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    Cmd: ["sh"],
    WorkingDir: "/"
  },
  rootfs: { type: "layers", diff_ids: [$diff] },
  history: [{ created: "1970-01-01T00:00:00Z", created_by: "make-busybox-image.sh: busybox-static rootfs" }]
}' >"$WORK/config.json"
CONFIG_SIZE=$(stat -c %s "$WORK/config.json")
CONFIG=$(add_blob "$WORK/config.json")

# 3. The manifest: config + layers, each by digest and size.
jq -cn --arg c "sha256:$CONFIG" --argjson cs "$CONFIG_SIZE" \
       --arg l "sha256:$LAYER" --argjson ls "$LAYER_SIZE" '{
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs },
  layers: [ { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls } ]
}' >"$WORK/manifest.json"
MANIFEST_SIZE=$(stat -c %s "$WORK/manifest.json")
MANIFEST=$(add_blob "$WORK/manifest.json")

# 4. index.json (keeping other tags already in the layout) and oci-layout.
[ -f "$OUT/index.json" ] || echo '{"schemaVersion":2,"manifests":[]}' >"$OUT/index.json"
jq -c --arg m "sha256:$MANIFEST" --argjson ms "$MANIFEST_SIZE" --arg tag "$TAG" '{
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.index.v1+json",
  manifests: ([.manifests[]? | select(.annotations["org.opencontainers.image.ref.name"] != $tag)]
    + [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
         platform: { architecture: "amd64", os: "linux" },
         annotations: { "org.opencontainers.image.ref.name": $tag } }])
}' "$OUT/index.json" >"$WORK/index.json"
mv "$WORK/index.json" "$OUT/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$OUT/oci-layout"

# 5. Drop blobs no tag refers to any more (e.g. from an older build of the same tag).
mapfile -t KEEP < <(jq -r '.manifests[].digest | ltrimstr("sha256:")' "$OUT/index.json")
for m in "${KEEP[@]}"; do
  [ -f "$BLOBS/$m" ] && jq -r '.config.digest, .layers[].digest | ltrimstr("sha256:")' "$BLOBS/$m"
done >"$WORK/keep"
printf '%s\n' "${KEEP[@]}" >>"$WORK/keep"
for b in "$BLOBS"/*; do
  grep -qxF "$(basename "$b")" "$WORK/keep" || rm -f "$b"
done

# 6. The same layout as a single tar file, next to OUTDIR.
tar -C "$OUT" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$OUT.tar.tmp" .
mv "$OUT.tar.tmp" "$OUT.tar"

echo "image ready: $OUT:$TAG  (and $OUT.tar)"
echo "  manifest sha256:$MANIFEST"
echo "  config   sha256:$CONFIG"
echo "  layer    sha256:$LAYER ($LAYER_SIZE bytes gzip, diff_id sha256:$DIFF_ID)"
