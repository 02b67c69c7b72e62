#!/bin/bash
# Lab 11 reset: remove the container (its upper dir goes with it) and the lab's files.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab11
rm -rf "$WORK"
