#!/bin/bash
# Lab 02 check: own mount namespace, root = the bundle's rootfs, host files hidden, a mount made inside only.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
pid=$(capsa state lab02 2>/dev/null | jq -r 'select(.status == "running") | .pid') || true
[ -n "$pid" ] || fail "container lab02 is not running (run: capsa lab start 2)"
mine=$(readlink /proc/self/ns/mnt) theirs=$(readlink "/proc/$pid/ns/mnt")
[ "$mine" != "$theirs" ] || fail "lab02 shares the host's mount namespace; it should have its own"
explain "mount namespaces: lab02 $theirs, the host $mine"

# The root: the line for / in the container's mountinfo names the device and the
# directory of that filesystem that pivot_root made the container's /.
read -r dev fsdir < <(awk '$5 == "/" {print $3, $4}' "/proc/$pid/mountinfo")
explain "lab02's / is device $dev, directory $fsdir of that filesystem (field 4 of its / line in /proc/$pid/mountinfo)"
rootfs=$(realpath "$WORK/lab02/rootfs")
[ "$(stat -Lc %d:%i "/proc/$pid/root/")" = "$(stat -c %d:%i "$rootfs")" ] ||
  fail "lab02's root is not $rootfs"
# pivot_root + detach: the host's own / is no mount of the container
read -r hdev hfsroot < <(awk '$5 == "/" {print $3, $4}' /proc/self/mountinfo)
if awk -v d="$hdev" -v r="$hfsroot" '$3 == d && $4 == r {found = 1} END {exit !found}' "/proc/$pid/mountinfo"; then
  fail "the host's / ($hdev $hfsroot) is still mounted in lab02: the old root was not detached"
fi
explain "the host's / ($hdev, root $hfsroot) appears nowhere in lab02's mountinfo: pivot_root moved it away and it was detached"
marker="$WORK/host-marker"
[ -f "$marker" ] || fail "the host's marker $marker is gone (run: capsa lab start 2)"
[ ! -e "/proc/$pid/root$marker" ] || fail "lab02 can see the host's $marker: its root is not the rootfs"
explain "$marker exists on the host; inside lab02 the same path does not exist"

problems=()
# The mount made inside: present in lab02's mountinfo, absent from the host's.
inside=$(awk '{for (i = 7; i < NF; i++) if ($i == "-") {if ($(i + 2) == "lab02-scratch") print $5; break}}' "/proc/$pid/mountinfo")
onhost=$(awk '{for (i = 7; i < NF; i++) if ($i == "-") {if ($(i + 2) == "lab02-scratch") print $5; break}}' /proc/self/mountinfo)
if [ -n "$onhost" ]; then
  explain "a lab02-scratch mount is on the host at $(echo "$onhost" | paste -sd' '): it was made in the host's mount namespace"
  if [ -n "$inside" ]; then
    explain "lab02 sees it too (at $(echo "$inside" | paste -sd' ')) only because the host's mount is shared and lab02's copy is its slave: events flow host -> container, never back"
  else
    explain "lab02 does not see it: its / is its own bind mount of the rootfs, made in its namespace, and nothing propagates from the host's (private) mount"
  fi
  explain "to mount inside the container, run mount in its namespace: capsa exec --cap CAP_SYS_ADMIN lab02 mount -t tmpfs lab02-scratch /tmp"
  problems+=("lab02-scratch is mounted on the host")
elif [ -z "$inside" ]; then
  problems+=("no tmpfs named lab02-scratch in lab02's mountinfo (/proc/$pid/mountinfo)")
else
  explain "lab02-scratch is mounted at $inside in lab02's mount namespace only: the host's mountinfo has no such mount"
fi
got=$(answer rootfs-dir)
if [ -z "$got" ]; then
  problems+=("no answer in $WORK/rootfs-dir: write the host directory that is lab02's /")
elif [ "$(stat -Lc %d:%i "$got" 2>/dev/null)" != "$(stat -Lc %d:%i "/proc/$pid/root/")" ]; then
  [ "$got" = / ] && explain "/ is the container's own view of its root; the host knows that directory under another path"
  [ "$(realpath -m "$got")" = "$(realpath "$WORK/lab02")" ] && explain "$got is the bundle: config.json's root.path (\"rootfs\") is relative to it"
  explain "lab02's / is $rootfs on the host (device $dev, $fsdir in that filesystem)"
  problems+=("rootfs-dir says $got, which is not lab02's root")
fi
if [ ${#problems[@]} -gt 0 ]; then msg=$(printf '%s; ' "${problems[@]}"); fail "${msg%; }"; fi
pass "lab02's / is $rootfs, and lab02-scratch is mounted in its namespace only"
