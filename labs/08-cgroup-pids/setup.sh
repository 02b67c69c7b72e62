#!/bin/bash
# Lab 08 setup: a container `lab08` limited to 20 processes (pids.max), with a bounded fork bomb in /bomb.sh.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab08
rm -rf "$WORK/bundle" "$WORK/started"
bundle "$WORK/bundle" sleep 1d
bundle_jq "$WORK/bundle" '.linux.cgroupsPath = "/capsa-lab/lab08" | .linux.resources.pids = {limit: 20}'
cat >"$WORK/bundle/rootfs/bomb.sh" <<'BOMB'
#!/bin/sh
# A bounded fork bomb: try to start 100 background `sleep 3600`, count those the kernel
# refused. awk's system() forks a sh, which forks the sleep; a fork that fails returns
# a status to awk (a plain sh loop would stop at its first failed fork instead).
exec awk 'BEGIN {
  for (i = 1; i <= 100; i++)
    if (system("sleep 3600 >/dev/null 2>&1 &") == 0) ok++
  printf "%d started, %d refused\n", ok, 100 - ok
}'
BOMB
chmod 755 "$WORK/bundle/rootfs/bomb.sh"
run_detached "$WORK/bundle" lab08
echo "lab08 is running with pids.max 20; its fork bomb is /bomb.sh (capsa exec lab08 cat /bomb.sh)"
