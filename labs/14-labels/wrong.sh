#!/bin/bash
# Lab 14, common mistakes: one label of the selector only (and -a), a key without its value, and stopping by name.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bash "$LAB_DIR/setup.sh" >/dev/null   # start from the state setup leaves (also after a solution)
capsa ps -a -q --filter label=app=shop >"$WORK/selected"
capsa pod ls -q --filter label=env >"$WORK/pods"
# shellcheck disable=SC2046 # one name per word
capsa stop -t 5 $(capsa ps -q --filter name=web) >/dev/null
