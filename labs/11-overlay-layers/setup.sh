#!/bin/bash
# Lab 11 setup: a container `lab11` from the busybox image, its root an overlay mount.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab11
rm -f "$WORK/upperdir" "$WORK/.lower-sums"
busybox_image
capsa run -d -q --name lab11 busybox sleep 1d >/dev/null
# The image layer's files as they are now: check.sh proves the layer was never written.
pid=$(capsa inspect lab11 | jq -r '.[0].pid')
opts=$(awk '$5 == "/" {sub(/.* - overlay [^ ]* /, ""); print}' "/proc/$pid/mountinfo")
lower=$(tr ',' '\n' <<<"$opts" | sed -n 's/^lowerdir=//p')
for f in etc/passwd var/www/index.html; do
  IFS=: read -ra dirs <<<"$lower"
  for d in "${dirs[@]}"; do
    if [ -f "$d/$f" ]; then sha256sum "$d/$f" >>"$WORK/.lower-sums"; break; fi
  done
done
echo "lab11 is running busybox on an overlay root: change its files (capsa exec lab11 sh) and find where the changes land"
