#!/bin/bash
# Lab 14 solution: the selector app=shop,env=prod on running containers, env=prod on pods, and stop track=canary.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
echo "+ capsa ps --filter label=app=shop --filter label=env=prod"
capsa ps --filter label=app=shop --filter label=env=prod
capsa ps -q --filter label=app=shop --filter label=env=prod >"$WORK/selected"
echo "+ capsa pod ls --filter label=env=prod"
capsa pod ls --filter label=env=prod
capsa pod ls -q --filter label=env=prod >"$WORK/pods"
echo "+ capsa stop -t 5 \$(capsa ps -q --filter label=track=canary)"
# shellcheck disable=SC2046 # one name per word
capsa stop -t 5 $(capsa ps -q --filter label=track=canary)
