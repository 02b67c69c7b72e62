#!/bin/bash
# Lab 14 setup: three labelled pods (--network none) and six labelled containers, one of them exited.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
for p in lab14-shop lab14-shop-canary lab14-blog; do capsa pod rm -f "$p" >/dev/null 2>&1 || true; done
rm_containers lab14
rm -f "$WORK/selected" "$WORK/pods" "$WORK/started"
busybox_image
# A service that ends on SIGTERM at once (a shell as pid 1 that waits, so `capsa stop` needs no SIGKILL).
serve='trap "exit 0" TERM; sleep 1d & wait'
pod() { capsa pod create --network none "$@" >/dev/null; }
run() { capsa run -d -q "$@" >/dev/null; }
pod -l app=shop -l env=prod lab14-shop
pod -l app=shop -l env=staging -l track=canary lab14-shop-canary
pod -l app=blog -l env=prod lab14-blog
run --pod lab14-shop --name lab14-shop-web -l app=shop -l env=prod -l tier=frontend busybox sh -c "$serve"
run --pod lab14-shop --name lab14-shop-db -l app=shop -l env=prod -l tier=backend busybox sh -c "$serve"
run --pod lab14-shop-canary --name lab14-canary-web -l app=shop -l env=staging -l tier=frontend -l track=canary \
  busybox sh -c "$serve"
run --pod lab14-blog --name lab14-blog-web -l app=blog -l env=prod -l tier=frontend busybox sh -c "$serve"
run --name lab14-cache -l app=shop -l env=prod -l tier=cache busybox sh -c "$serve"
run --name lab14-batch -l app=shop -l env=prod -l tier=batch busybox sh -c 'echo report done'
# What runs now, for check.sh: NAME HOST-PID START-TIME (field 22 of /proc/PID/stat), so
# it can tell a container the student stopped from the batch job that ended by itself.
for c in lab14-shop-web lab14-shop-db lab14-canary-web lab14-blog-web lab14-cache; do
  pid=$(capsa state "$c" | jq -r .pid)
  echo "$c $pid $(awk '{print $22}' "/proc/$pid/stat")"
done >"$WORK/started"
echo "3 pods and 6 containers with labels are up (capsa pod ls; capsa ps -a --format json): select them by label"
