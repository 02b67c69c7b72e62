#!/bin/bash
# make-busybox-bundle.sh OUTDIR [--args 'cmd arg...'] [--cgroups-path PATH]
#
# Build an OCI runtime bundle from Debian's static busybox, with no network:
#   OUTDIR/rootfs/       busybox + applet symlinks, /etc/passwd, /etc/group, /tmp,
#                        /var/www/index.html (see busybox-rootfs.sh)
#   OUTDIR/config.json   written by `capsa spec`, then adjusted with jq:
#                          process.terminal = false (works without a tty, e.g. in scripts)
#                          process.args     = --args, default:
#                            sh -c 'echo hello from a capsa container; hostname; id; ls /'
#                          root.readonly    = false (so you can create files inside)
#                          hostname         = "capsa-demo"
#                          linux.cgroupsPath = /capsa-examples/<basename of OUTDIR>
#
# Options:
#   --args 'cmd arg...'   the container's command. Split on whitespace, so no quoting;
#                         for arguments containing spaces give a JSON array instead:
#                           --args '["sh","-c","echo hi; sleep 1"]'
#   --cgroups-path PATH   absolute cgroup path for the container
#                         (default /capsa-examples/<basename of OUTDIR>)
#
# The cgroup path is absolute on purpose: with an empty or relative path, runc-style
# runtimes put the container under the *caller's* cgroup. Two containers running at the
# same time need different paths, i.e. bundles in directories with different names.
#
# Environment:
#   CAPSA    capsa binary used for `capsa spec` (default: the repo's target/release/capsa,
#            else `capsa` on PATH)
#   BUSYBOX  busybox binary to copy (default /bin/busybox; must be statically linked)
#
# Idempotent: running it again rebuilds OUTDIR/rootfs and OUTDIR/config.json and leaves
# anything else in OUTDIR alone.
# Then, as root:  capsa run --bundle OUTDIR my-container
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/busybox-rootfs.sh
. "$HERE/busybox-rootfs.sh"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "error: $*" >&2; exit 1; }

OUT=""
ARGS_JSON='["sh","-c","echo hello from a capsa container; hostname; id; ls /"]'
CGP=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --args)
      [ $# -ge 2 ] || die "--args needs a value"
      if [[ $2 == \[* ]]; then
        # JSON array given as is; check that it is a non-empty array of strings.
        ARGS_JSON=$(jq -ce 'if type == "array" and length > 0 and all(type == "string") then . else error("not a non-empty array of strings") end' <<<"$2") \
          || die "--args: '$2' is not a JSON array of strings"
      else
        read -r -a words <<<"$2"
        [ ${#words[@]} -gt 0 ] || die "--args is empty"
        # one word per line -> JSON strings -> array (jq --args would eat words like -p)
        ARGS_JSON=$(printf '%s\n' "${words[@]}" | jq -R . | jq -cs .)
      fi
      shift 2 ;;
    --cgroups-path)
      [ $# -ge 2 ] || die "--cgroups-path needs a value"
      [[ $2 == /* ]] || die "--cgroups-path must be absolute (got '$2')"
      CGP=$2; shift 2 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$OUT" ] || die "only one OUTDIR please (got '$OUT' and '$1')"
       OUT=$1; shift ;;
  esac
done
[ -n "$OUT" ] || { usage >&2; exit 2; }

command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
# The capsa binary: $CAPSA, else the one built in this repo, else capsa on PATH.
if [ -z "${CAPSA:-}" ]; then
  CAPSA="$(cd "$HERE/.." && pwd)/target/release/capsa"
  [ -x "$CAPSA" ] || CAPSA=$(command -v capsa) \
    || die "no capsa binary: build it with 'cargo build --release' in $(cd "$HERE/.." && pwd), or set CAPSA=/path/to/capsa"
fi
[ -x "$CAPSA" ] || die "CAPSA=$CAPSA is not an executable"

check_busybox   # before creating anything
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ -n "$CGP" ] || CGP="/capsa-examples/$(basename "$OUT")"

build_busybox_rootfs "$OUT/rootfs"

# `capsa spec` refuses to overwrite an existing config.json, so write to a scratch dir.
SPECDIR=$(mktemp -d)
trap 'rm -rf "$SPECDIR"' EXIT
"$CAPSA" spec --bundle "$SPECDIR" || die "'$CAPSA spec' failed"
jq --argjson args "$ARGS_JSON" --arg cgp "$CGP" '
    .process.terminal = false
  | .process.args = $args
  | .root.path = "rootfs"
  | .root.readonly = false
  | .hostname = "capsa-demo"
  | .linux.cgroupsPath = $cgp
' "$SPECDIR/config.json" >"$OUT/config.json.tmp"
mv "$OUT/config.json.tmp" "$OUT/config.json"

echo "bundle ready: $OUT"
echo "  args:        $(jq -c .process.args "$OUT/config.json")"
echo "  cgroupsPath: $CGP"
echo "  try:         $CAPSA run --bundle $OUT $(basename "$OUT")"
