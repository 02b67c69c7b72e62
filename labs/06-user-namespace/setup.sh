#!/bin/bash
# Lab 06 setup: a container `lab06` in a user namespace (root inside = uid 100000 outside).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab06
rm -rf "$WORK/bundle" "$WORK/host-only" "$WORK/host-uid" "$WORK/file-owner"
bundle "$WORK/bundle" sleep 1d
# Container ids 0..65535 are host ids 100000..165535; the rootfs belongs to the
# container's root, so it is chowned to the host id that root maps to.
# CAP_CHOWN, CAP_DAC_OVERRIDE and CAP_FOWNER make root inside a "real" root, to show
# where that power ends: at files whose owner is not mapped into the namespace.
# shellcheck disable=SC2016 # $names are jq variables
bundle_jq "$WORK/bundle" '
    .linux.namespaces += [{"type": "user"}]
  | .linux.uidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}]
  | .linux.gidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}]
  | .process.capabilities |= with_entries(.value += ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"])
  | .linux.cgroupsPath = "/capsa-lab/lab06"
  | .mounts += [{"destination": "/mnt/host", "type": "bind", "source": $src, "options": ["rbind", "rw"]}]
' --arg src "$WORK/host-only"
chown -R 100000:100000 "$WORK/bundle/rootfs"
mkdir -p "$WORK/host-only" "$WORK/bundle/rootfs/mnt/host"
chown 100000:100000 "$WORK/bundle/rootfs/mnt" "$WORK/bundle/rootfs/mnt/host"
echo "only the host's root may read this" >"$WORK/host-only/secret"
chmod 600 "$WORK/host-only/secret"
run_detached "$WORK/bundle" lab06
echo "lab06 is running as root in its own user namespace: compare capsa exec lab06 id with grep Uid /proc/\$(capsa state lab06 | jq .pid)/status"
