#!/bin/bash
# Lab 02 solution: read the container's root from its mountinfo, then mount a tmpfs inside it.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
pid=$(capsa state lab02 | jq -r .pid)
echo "+ capsa exec lab02 ls $WORK   (the host's marker is not there)"
capsa exec lab02 ls "$WORK" 2>&1 || true
echo "+ awk '\$5 == \"/\"' /proc/$pid/mountinfo"
awk '$5 == "/"' "/proc/$pid/mountinfo"
# field 3: the device; field 4: the directory inside that filesystem which became /.
read -r dev fsdir < <(awk '$5 == "/" {print $3, $4}' "/proc/$pid/mountinfo")
# where the host mounts that filesystem: the host's line with the same device whose
# own root (field 4) is the longest prefix of fsdir; then path = mount point + the rest
echo "+ awk '\$3 == \"$dev\"' /proc/self/mountinfo"
awk -v d="$dev" '$3 == d' /proc/self/mountinfo
read -r _ hroot hmnt < <(awk -v d="$dev" -v r="$fsdir" '$3 == d && index(r, $4) == 1 {print length($4), $4, $5}' \
  /proc/self/mountinfo | sort -rn | head -1)
realpath -m "$hmnt/${fsdir#"$hroot"}" | tee "$WORK/rootfs-dir"
echo "+ capsa exec --cap CAP_SYS_ADMIN lab02 mount -t tmpfs lab02-scratch /tmp"
capsa exec --cap CAP_SYS_ADMIN lab02 mount -t tmpfs lab02-scratch /tmp
grep lab02-scratch "/proc/$pid/mountinfo"
echo "host: $(grep -c lab02-scratch /proc/self/mountinfo || true) lab02-scratch mounts"
