#!/bin/bash
# Lab 01 reset: remove the container and the lab's files.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab01
rm -rf "$WORK"
