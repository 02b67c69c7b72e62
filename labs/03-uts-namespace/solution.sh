#!/bin/bash
# Lab 03 solution: sethostname from inside the container, with CAP_SYS_ADMIN for that one process.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
echo "+ capsa exec lab03 hostname lab03-renamed"
capsa exec lab03 hostname lab03-renamed || echo "(no CAP_SYS_ADMIN: the container's processes may not rename it)"
echo "+ capsa exec --cap CAP_SYS_ADMIN lab03 hostname lab03-renamed"
capsa exec --cap CAP_SYS_ADMIN lab03 hostname lab03-renamed
echo "inside: $(capsa exec lab03 hostname), host: $(hostname)"
