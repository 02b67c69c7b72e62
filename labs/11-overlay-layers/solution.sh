#!/bin/bash
# Lab 11 solution: modify, delete and create files in lab11, then read the overlay's upperdir.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
echo "\$ capsa exec lab11 sh -c 'echo \"student:x:1000:1000:lab 11:/home:/bin/sh\" >> /etc/passwd'"
capsa exec lab11 sh -c 'echo "student:x:1000:1000:lab 11:/home:/bin/sh" >> /etc/passwd'
echo "\$ capsa exec lab11 rm /var/www/index.html"
capsa exec lab11 rm -f /var/www/index.html
echo "\$ capsa exec lab11 sh -c 'echo \"welcome to lab 11\" > /etc/motd'"
capsa exec lab11 sh -c 'echo "welcome to lab 11" > /etc/motd'
pid=$(capsa inspect lab11 | jq -r '.[0].pid')
echo "\$ findmnt -N $pid -no OPTIONS /      # lab11's root, as its own mount namespace sees it"
opts=$(findmnt -N "$pid" -no OPTIONS /)
echo "$opts"
upper=$(tr ',' '\n' <<<"$opts" | sed -n 's/^upperdir=//p')
echo "\$ ls -lR $upper"
ls -lR "$upper"
echo "$upper" >"$WORK/upperdir"
