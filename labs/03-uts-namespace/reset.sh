#!/bin/bash
# Lab 03 reset: remove the container and the lab's files.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab03
rm -rf "$WORK"
