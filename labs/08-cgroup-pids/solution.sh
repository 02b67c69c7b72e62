#!/bin/bash
# Lab 08 solution: run the bomb, watch pids.current stay at or below pids.max, count the sleeps that started.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
pid=$(capsa state lab08 | jq -r .pid)
echo "pids.max $(cg_get "$pid" pids.max), pids.current $(cg_get "$pid" pids.current) before the bomb"
echo "\$ capsa exec lab08 sh /bomb.sh"
capsa exec lab08 sh /bomb.sh 2>&1 | sort | uniq -c
echo "pids.current $(cg_get "$pid" pids.current), forks refused (pids.events max) $(cg_get "$pid" pids.events_max)"
capsa ps lab08 | grep -c 'sleep 3600' | tee "$WORK/started"
