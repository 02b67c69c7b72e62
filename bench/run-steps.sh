#!/bin/bash
# run-steps.sh: where the time of `capsa run` (of /bin/true, a busybox bundle) goes,
# step by step, from `strace -f -ttt` of one run after a warm-up. Steps are cut at
# the syscalls that begin them (the binary guard's fsopen, the first cgroup write,
# clone3, the init's unshare, its first mount, pivot_root, the container's execve,
# the exit). strace slows every syscall by ~10-20 us, so the absolute times are
# inflated and vary from run to run: each step is the median of TRACES (default 7)
# traced runs; the shares and the syscall counts are what to read. The same count for
# crun (in a private mount namespace without the cgroup2 mount on a hybrid host, as
# lifecycle.sh does) is printed for comparison.
#   bench/run-steps.sh          (root; needs strace, busybox-static, jq; crun optional)
# Env: CAPSA (default: this repo's release build).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CAPSA=${CAPSA:-$REPO/target/release/capsa}
W=$(mktemp -d /tmp/capsa-run-steps.XXXXXX)
cleanup() {
  "$CAPSA" --root "$W/root" delete -f steps >/dev/null 2>&1 || true
  for h in /sys/fs/cgroup/*/capsa-run-steps/c /sys/fs/cgroup/*/capsa-run-steps; do [ -d "$h" ] && rmdir "$h" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
"$REPO/rootfs-examples/make-busybox-bundle.sh" "$W/b" --args /bin/true --cgroups-path /capsa-run-steps/c >/dev/null
for _ in 1 2 3; do
  "$CAPSA" --root "$W/root" run --bundle "$W/b" steps </dev/null
  "$CAPSA" --root "$W/root" delete -f steps 2>/dev/null || true
done
TRACES=${TRACES:-7}
for i in $(seq "$TRACES"); do
  strace -f -ttt -o "$W/trace.$i" "$CAPSA" --root "$W/root" run --bundle "$W/b" steps </dev/null
done
for i in $(seq "$TRACES"); do
awk '
  function mark(name) { if (!(name in seen)) { seen[name] = 1; order[++n] = name; at[name] = t } }
  { t = $2 + 0; if (NR == 1) t0 = t; last = t; calls++ }
  /execve\(/ && NR == 1 { mark("exec capsa, parse, load config") }
  /fsopen\(/ { mark("guard: detached overlay of the binary, re-exec") }
  /openat\(.*\/sys\/fs\/cgroup\/.*O_WRONLY/ { mark("cgroups: create, limits, devices") }
  /clone3\(|clone\(/ { mark("clone the init (CLONE_INTO_CGROUP)") }
  /unshare\(/ { mark("init: unshare mount/uts/ipc/net") }
  /mount\(/ && !("init: mounts, /dev, masking" in seen) && ("init: unshare mount/uts/ipc/net" in seen) { mark("init: mounts, /dev, masking") }
  /pivot_root\(/ { mark("init: pivot_root, caps, seccomp, rlimits") }
  /execve\("\/bin\/true"/ { mark("container process: exec /bin/true and run") }
  /exited with|\+\+\+ exited/ && $1 != pid1 && !("wait, record the exit, delete" in seen) && ("container process: exec /bin/true and run" in seen) { mark("wait, record the exit, delete") }
  NR == 1 { pid1 = $1 }
  END {
    at["end"] = last; order[n + 1] = "end"; at[order[1]] = t0
    for (i = 1; i <= n; i++) printf "%d\t%s\t%.3f\n", i, order[i], (at[order[i + 1]] - at[order[i]]) * 1000
    printf "%d\t%s\t%.3f\n", n + 1, "total", (last - t0) * 1000
    printf "%d\t%s\t%d\n", n + 2, "syscalls", calls
  }' "$W/trace.$i"
done | sort -t"$(printf '\t')" -k1,1n -k3,3n | awk -F'\t' -v k="$TRACES" '
  { v[$1, ++c[$1]] = $3; name[$1] = $2; if ($1 > m) m = $1 }
  END {
    for (i = 1; i <= m; i++) med[i] = v[i, int((c[i] + 1) / 2)]
    printf "%-48s %8s %6s   (median of %d traced runs)\n", "step (capsa run, under strace)", "ms", "share", k
    tot = 0; for (i = 1; i <= m - 2; i++) tot += med[i]
    for (i = 1; i <= m - 2; i++) printf "%-48s %8.2f %5.0f%%\n", name[i], med[i], 100 * med[i] / tot
    printf "%-48s %8.2f  (%d syscalls; total of the medians %.2f)\n", "total", med[m - 1], med[m], tot
  }'
printf 'syscalls by process (last trace): '; awk '{c[$1]++} END {for (p in c) printf "%d ", c[p]; print ""}' "$W/trace.$TRACES"
if command -v crun >/dev/null; then
  cat >"$W/crun.sh" <<EOS
set -e
if [ "\$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
  umount /sys/fs/cgroup/unified 2>/dev/null || umount -l /sys/fs/cgroup/unified
  mount -t tmpfs -o size=1m,mode=755 capsa-bench-scratch /sys/fs/cgroup/unified
fi
crun --root $W/crun run --bundle $W/b steps </dev/null; crun --root $W/crun delete -f steps 2>/dev/null || true
strace -f -o $W/crun.trace crun --root $W/crun run --bundle $W/b steps </dev/null
crun --root $W/crun delete -f steps 2>/dev/null || true
EOS
  if unshare -m --propagation private bash "$W/crun.sh" >/dev/null 2>&1; then
    echo "crun run, same bundle: $(wc -l <"$W/crun.trace") syscalls"
  fi
fi
