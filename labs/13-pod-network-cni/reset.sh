#!/bin/bash
# Lab 13 reset: remove both pods (their veths, leases, namespaces), the containers and the lab's files.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
capsa pod rm -f lab13-a lab13-b >/dev/null 2>&1 || true
rm_containers lab13
# capsa deletes capsa0 and its masquerade rule when the network's last pod in its store
# goes. Pods of the same store in *other* network namespaces (labs run side by side,
# each in a netns of its own) keep them alive here: if nothing in this network namespace
# is attached to capsa0 any more, remove both, as capsa would.
if ip link show dev capsa0 >/dev/null 2>&1 && [ -z "$(ip -o link show master capsa0)" ]; then
  ip link del dev capsa0 || true
  rule=(POSTROUTING -s 10.99.0.0/16 ! -d 10.99.0.0/16 -m comment --comment "capsa: masquerade network capsa" -j MASQUERADE)
  if iptables -t nat -C "${rule[@]}" 2>/dev/null; then iptables -t nat -D "${rule[@]}" || true; fi
fi
rm -rf "$WORK"
