#!/bin/bash
# Lab 10 setup: a loop device given to container `lab10` as /dev/lab10disk, reads and writes throttled to 1 MiB/s.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
img=$(cd "$WORK" && pwd -P)/disk.img # as sysfs shows it, symlinks resolved
rm_containers lab10
for b in /sys/block/loop*; do # loop devices left by an earlier setup
  if [ "$(cat "$b/loop/backing_file" 2>/dev/null)" = "$img" ]; then losetup -d "/dev/${b##*/}"; fi
done
rm -rf "$WORK/bundle" "$img" "$WORK/loopdev" "$WORK/read-rate"
dd if=/dev/zero of="$img" bs=1M count=16 2>/dev/null
# util-linux and busybox both attach FILE to the first free device with -f; sysfs says which.
losetup -f "$img"
dev=
for b in /sys/block/loop*; do
  if [ "$(cat "$b/loop/backing_file" 2>/dev/null)" = "$img" ]; then dev=/dev/${b##*/}; fi
done
[ -n "$dev" ] || { echo "error: could not attach $img to a loop device" >&2; exit 1; }
echo "$dev" >"$WORK/loopdev"
major=$((0x$(stat -c %t "$dev")))
minor=$((0x$(stat -c %T "$dev")))
bundle "$WORK/bundle" sleep 1d
# linux.devices makes the node in the container's /dev; the devices rule lets it open
# it; blockIO asks the kernel for 1 MiB/s each way on that major:minor.
# shellcheck disable=SC2016 # $names are jq variables
bundle_jq "$WORK/bundle" '
    .linux.cgroupsPath = "/capsa-lab/lab10"
  | .linux.devices = [{path: "/dev/lab10disk", type: "b", major: $maj, minor: $min, fileMode: 432, uid: 0, gid: 0}]
  | .linux.resources.devices += [{allow: true, type: "b", major: $maj, minor: $min, access: "rw"}]
  | .linux.resources.blockIO = {
      throttleReadBpsDevice: [{major: $maj, minor: $min, rate: 1048576}],
      throttleWriteBpsDevice: [{major: $maj, minor: $min, rate: 1048576}]}
' --argjson maj "$major" --argjson min "$minor"
run_detached "$WORK/bundle" lab10
echo "lab10 is running with $dev ($major:$minor, backed by $img) as /dev/lab10disk, throttled to 1 MiB/s for reads and writes"
