#!/bin/bash
# busybox-rootfs.sh ROOTFS_DIR
#
# Populate ROOTFS_DIR with a tiny root filesystem made from Debian's static
# busybox (package busybox-static), with no network access:
#   /bin/busybox + one symlink per applet (`busybox --list-full`: sh, ls, ps, httpd, ...)
#   /etc/passwd (root 0, nobody 65534), /etc/group, /etc/hostname
#   /tmp (mode 1777), /proc /sys /dev mount points, /root, /home
#   /var/www/index.html ("hello from capsa"), to serve with busybox httpd
#
# Shared by make-busybox-bundle.sh and make-busybox-image.sh, which `source` this
# file and call build_busybox_rootfs; it can also be run on its own.
# Environment: BUSYBOX=path of the busybox binary to copy (default /bin/busybox).
# An existing ROOTFS_DIR is emptied first, so running it twice gives the same tree.

# check_busybox: fail with a helpful message unless $BUSYBOX is a static binary
# (a dynamically linked busybox would need the host's libc inside the container).
check_busybox() {
  local bb=${BUSYBOX:-/bin/busybox}
  if [ ! -x "$bb" ]; then
    echo "error: no busybox at $bb; install it with: apt-get install busybox-static" >&2
    return 1
  fi
  # `file` may be absent on minimal hosts; fall back to looking for an ELF interpreter.
  if command -v file >/dev/null 2>&1; then
    if ! file -L "$bb" | grep -q 'statically linked'; then
      echo "error: $bb is not statically linked; install the static one with: apt-get install busybox-static" >&2
      return 1
    fi
  elif LC_ALL=C grep -aqE '/lib(64)?/ld-linux' "$bb"; then
    echo "error: $bb looks dynamically linked; install the static one with: apt-get install busybox-static" >&2
    return 1
  fi
}

# build_busybox_rootfs DIR: (re)create the busybox root filesystem in DIR.
build_busybox_rootfs() {
  local r=${1:?build_busybox_rootfs: missing directory}
  local bb=${BUSYBOX:-/bin/busybox} app d apps dirs
  check_busybox || return 1
  umask 022
  # Safety net: only ever empty a directory that is clearly a rootfs we may own.
  case "$(readlink -m "$r" 2>/dev/null || readlink -f "$r")" in
    /|/bin|/usr|/etc|/home|/root|/tmp|/var) echo "error: refusing to use $r as a rootfs" >&2; return 1 ;;
  esac
  rm -rf "$r"
  mkdir -p "$r"
  for d in bin sbin usr/bin usr/sbin etc proc sys dev tmp root home var/www; do
    mkdir -p "$r/$d"
  done
  chmod 1777 "$r/tmp"
  chmod 700 "$r/root"

  cp "$bb" "$r/bin/busybox"
  chmod 755 "$r/bin/busybox"
  # One absolute symlink per applet, e.g. usr/sbin/httpd -> /bin/busybox.
  # Absolute targets resolve inside the container, where / is this rootfs.
  # All ~400 of them by one perl (perl-base is Essential on Debian and Ubuntu): a
  # mkdir + ln per applet took seconds on a busy machine.
  mapfile -t apps < <("$r/bin/busybox" --list-full)
  dirs=()
  for app in "${apps[@]}"; do [[ $app == */* ]] && dirs+=("$r/${app%/*}"); done
  mkdir -p "${dirs[@]}"
  if command -v perl >/dev/null; then
    (cd "$r" && perl -e 'for (@ARGV) { next if $_ eq "bin/busybox"; symlink("/bin/busybox", $_) or die "symlink $_: $!\n" }' "${apps[@]}")
  else
    # No perl (a minimal system, such as the cgroup v2 test VM): one ln per applet.
    for app in "${apps[@]}"; do [ "$app" = bin/busybox ] || ln -s /bin/busybox "$r/$app"; done
  fi
  [ -e "$r/bin/sh" ] || ln -sfn /bin/busybox "$r/bin/sh"

  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/home:/bin/false' >"$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$r/etc/group"
  echo 'capsa-demo' >"$r/etc/hostname"
  echo 'hello from capsa' >"$r/var/www/index.html"
}

# Run directly (not sourced): build the rootfs given on the command line.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  [ $# -eq 1 ] || { echo "usage: $0 ROOTFS_DIR" >&2; exit 2; }
  build_busybox_rootfs "$1"
  echo "rootfs ready: $1"
fi
