#!/bin/bash
# Lab 02 reset: remove the container, any mount left under the lab's directory, and the lab's files.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab02
findmnt -rn -o TARGET | { grep "^$WORK/" || true; } | sort -r | while read -r m; do umount -l "$m"; done
rm -rf "$WORK"
