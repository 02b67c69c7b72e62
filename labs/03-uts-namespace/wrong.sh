#!/bin/bash
# Lab 03, a common mistake: hostname refuses (EPERM), so the name is written into /etc/hostname instead.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bash "$LAB_DIR/setup.sh" >/dev/null   # start from the state setup leaves (also after a solution)
capsa exec lab03 hostname lab03-renamed 2>/dev/null || true
capsa exec lab03 sh -c 'echo lab03-renamed > /etc/hostname'
