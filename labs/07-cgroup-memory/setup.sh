#!/bin/bash
# Lab 07 setup: two bundles whose program needs 64 MiB under a 32 MiB memory limit (lab07, and lab07-fixed for you to fix).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab07
rm -rf "$WORK/bundle" "$WORK/fixed" "$WORK/exit-status"
# head writes 64 MiB of zero bytes and no newline; tail keeps the last line in memory
# until its input ends: the whole 64 MiB, as anonymous memory charged to the cgroup.
prog='["sh", "-c", "head -c 64m /dev/zero | tail >/dev/null && echo done: tail held 64 MiB"]'
limit=$((32 * 1024 * 1024))
# swap = limit (memory+swap, v1's meaning) so the cgroup cannot swap. Only where the
# kernel accounts swap: on v2 capsa writes memory.swap.max=0 (and skips it silently
# where that file does not exist); on v1 without memory.memsw.* files a swap value
# would only be warned about and ignored, so ask for swappiness 0 (do not swap) instead.
extra="{\"swap\": $limit}"
if [ "$(cg_mode)" != v2 ] && [ ! -f "$(cg_dir memory /)/memory.memsw.limit_in_bytes" ]; then
  extra='{"swappiness": 0}'
fi
for b in bundle fixed; do
  cgp=/capsa-lab/lab07
  [ $b = fixed ] && cgp=/capsa-lab/lab07-fixed
  bundle "$WORK/$b" "$prog"
  # shellcheck disable=SC2016 # $names are jq variables
  bundle_jq "$WORK/$b" '.linux.cgroupsPath = $cgp | .linux.resources.memory = ({limit: $limit} + $extra)' \
    --arg cgp "$cgp" --argjson limit "$limit" --argjson extra "$extra"
done
echo "bundles ready in $WORK: bundle (for lab07) and fixed (for lab07-fixed), both limited to 32 MiB: capsa run --keep --bundle $WORK/bundle lab07"
