#!/bin/bash
# Lab 11, a common mistake: the changes are right, but the answer is the merged mount point.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
capsa exec lab11 sh -c 'echo "student:x:1000:1000:lab 11:/home:/bin/sh" >> /etc/passwd'
capsa exec lab11 rm -f /var/www/index.html
capsa exec lab11 sh -c 'echo "welcome to lab 11" > /etc/motd'
# The bundle's rootfs/ is where the overlay is mounted: the merged view, not the upper dir.
echo "$(capsa inspect lab11 | jq -r '.[0].bundle')/rootfs" >"$WORK/upperdir"
