#!/bin/bash
# Lab 14 reset: remove the pods (and their containers), every lab14 container, and the lab's files.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
for p in lab14-shop lab14-shop-canary lab14-blog; do capsa pod rm -f "$p" >/dev/null 2>&1 || true; done
rm_containers lab14
rm -rf "$WORK"
