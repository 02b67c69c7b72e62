#!/bin/sh
# /init of the cgroup v2 test VM (see tests/vm/README.md). Runs as PID 1 under
# busybox sh inside the guest; run.sh copies it into the initramfs as /init.
#
# It talks to run.sh only through the serial console: every line starting with
# "CAPSA-VM:" is a marker that run.sh parses. Everything else is for humans.
#
# There is no disk: the whole system is the initramfs. Settings come from
# /etc/capsa-vm.conf, written by run.sh:
#   CAPSA_VM_TESTS         test binaries to run (names under /tests), in order
#   CAPSA_VM_TEST_TIMEOUT  seconds one test binary may run before it is killed
#   CAPSA_VM_BOOT_ONLY     1: only boot, print the cgroup setup, power off

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
umask 022

# Powers the VM off; run.sh's qemu has -no-reboot, so qemu exits. If the
# poweroff syscall does not work, the sysrq fallback does; if both fail, PID 1
# exits, the kernel panics and (panic=-1 + -no-reboot) qemu exits too.
shutdown_vm() {
    sync
    poweroff -f
    echo o >/proc/sysrq-trigger
    sleep 10
    exit 1
}

# ---------------------------------------------------------------- stage 1
# The kernel unpacked the initramfs into "rootfs", a special filesystem that
# can never be unmounted; pivot_root(2), which container runtimes use to enter
# the container's root, fails with EINVAL while the caller's root is rootfs.
# So copy everything into an ordinary tmpfs and make that the root
# (switch_root deletes the old copy to give the memory back).
if [ ! -e /.capsa-vm-stage2 ]; then
    # The initramfs has no /dev/console node (creating one would need root on
    # the build host), so the kernel started us without stdin/stdout/stderr.
    # devtmpfs has the node: open it as our stdio.
    mkdir -p /dev
    mount -t devtmpfs devtmpfs /dev
    exec </dev/console >/dev/console 2>&1
    mkdir -p /newroot
    mount -t tmpfs -o mode=0755 tmpfs /newroot
    for f in /*; do
        case "$f" in
            /newroot | /proc | /sys | /dev) ;;
            *) cp -a "$f" /newroot/ ;;
        esac
    done
    mkdir -p /newroot/proc /newroot/sys /newroot/dev
    mount --move /dev /newroot/dev
    : >/newroot/.capsa-vm-stage2
    exec switch_root /newroot /init
fi

# ---------------------------------------------------------------- stage 2
# Kernel API filesystems (devtmpfs, which gives /dev/null, /dev/console,
# ttys..., is already there: stage 1 moved it here).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
grep -q ' /dev devtmpfs ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
ln -sf /proc/self/mounts /etc/mtab
# Scratch space: the tests put bundles and state in tempdirs under /tmp.
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run

# The point of this VM: one pure cgroup v2 ("unified") hierarchy at
# /sys/fs/cgroup, as systemd mounts it. The kernel command line has
# cgroup_no_v1=all, so no controller can be bound to a v1 hierarchy. The
# mount options are the ones systemd uses on Debian 12 / Ubuntu 22.04+.
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot none /sys/fs/cgroup
# Loop devices (a module in Debian's kernel), for the io lab.
[ -f /lib/modules/loop.ko ] && insmod /lib/modules/loop.ko max_loop=8
# Delegate the controllers to child cgroups (what systemd does for its
# slices). One at a time, so one missing controller does not block the rest.
for c in cpuset cpu io memory hugetlb pids; do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control ||
        echo "CAPSA-VM: warning: could not enable controller $c"
done

# Kernel messages would otherwise land on the console in the middle of the
# tests' output lines (an OOM kill prints one, and the cgroup tests cause
# some on purpose). Keep only emergencies on the console; print the rest in
# blocks, between test binaries (see kernel_messages).
dmesg -n 1

# Prints the kernel's errors (levels 0-3: emergency to error, e.g. the one
# line "Memory cgroup out of memory: Killed process ...") logged since the
# last call, then clears the log. Warnings are left out: under emulation the
# kernel warns about the virtual hardware, and an OOM kill's full report
# (a stack trace) is logged as a warning. At most 40 lines.
kernel_messages() {
    dmesg -r -c | grep '^<[0-3]>' | sed 's/^<[0-3]>/kernel: /' >/run/kmsg
    if [ -s /run/kmsg ]; then
        echo "CAPSA-VM: kernel messages ($1): $(wc -l </run/kmsg) lines"
        head -n 40 /run/kmsg
    fi
}

hostname capsa-vm
ip link set lo up
# The settings file is written by run.sh at build time.
# shellcheck source=/dev/null
. /etc/capsa-vm.conf

echo "CAPSA-VM: booted uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"
echo "CAPSA-VM: cgroup mount: $(grep ' /sys/fs/cgroup ' /proc/mounts)"
echo "CAPSA-VM: cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "CAPSA-VM: cgroup.subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "CAPSA-VM: v1 hierarchies in /proc/cgroups: $(awk 'NR > 1 && $2 != 0' /proc/cgroups | wc -l)"
kernel_messages boot

if [ "${CAPSA_VM_BOOT_ONLY:-0}" = 1 ]; then
    echo "CAPSA-VM: summary passed=0 failed=0 boot-only"
    shutdown_vm
fi

# The state letter of a process (R, S, D, Z...), empty once it is gone.
proc_state() { sed 's/.*) \([A-Za-z]\) .*/\1/' "/proc/$1/stat" 2>/dev/null; }

# Shows why a test binary is stuck before the watchdog kills it: every user
# process with its state, wait channel and kernel stack (the tests' runtime
# processes included), then the kernel's list of blocked tasks (sysrq w) and
# the tail of the kernel log, warnings included.
diagnose_hang() {
    echo "CAPSA-VM: watchdog: $1 still running after ${CAPSA_VM_TEST_TIMEOUT}s; processes:"
    for d in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null | cut -c1-120)
        [ -n "$cmd" ] || continue # kernel threads
        pid=${d#/proc/}
        state=$(proc_state "$pid")
        echo "  pid=$pid state=$state wchan=$(cat "$d/wchan" 2>/dev/null) cmd=$cmd"
        if [ "$state" = D ] || [ "$state" = T ] || [ "$state" = t ]; then
            sed 's/^/      /' "$d/stack" 2>/dev/null | head -n 20
        fi
    done
    echo w >/proc/sysrq-trigger 2>/dev/null
    echo "CAPSA-VM: watchdog: kernel log tail:"
    dmesg -r | tail -n 60
}

# Each binary runs as cargo would run it, one test at a time, with a
# watchdog. Its output goes to /run/<name>.log (a file, not a pipe: a process
# the binary leaves behind cannot hold the console back) and is followed on
# the console; the result marker is computed from the file.
total_passed=0
total_failed=0
for name in $CAPSA_VM_TESTS; do
    log="/run/$name.log"
    echo "CAPSA-VM: start bin=$name uptime=$(cut -d' ' -f1 /proc/uptime)"
    : >"$log"
    tail -n +1 -f "$log" &
    follower=$!
    (
        cd /tmp || exit 1
        CI=true CAPSA_TEST_RUNTIME=/usr/local/bin/capsa RUST_BACKTRACE=0 \
            exec "/tests/$name" --test-threads=1 </dev/null >"$log" 2>&1
    ) &
    test_pid=$!
    # busybox has no "wait with a timeout": poll the process state instead
    # (Z = exited, waiting to be reaped), against a deadline in guest uptime.
    deadline=$(($(cut -d. -f1 /proc/uptime) + CAPSA_VM_TEST_TIMEOUT))
    timed_out=0
    while [ "$(proc_state "$test_pid")" ] && [ "$(proc_state "$test_pid")" != Z ]; do
        if [ "$(cut -d. -f1 /proc/uptime)" -ge "$deadline" ]; then
            timed_out=1
            sleep 1 # let the follower print the last lines
            diagnose_hang "$name"
            kill -TERM "$test_pid" 2>/dev/null
            sleep 2
            kill -KILL "$test_pid" 2>/dev/null
            break
        fi
        sleep 1
    done
    # A process stuck in the kernel (state D) ignores even SIGKILL: give it
    # 10 s, then go on without it rather than hang the whole VM.
    waited=0
    while [ "$(proc_state "$test_pid")" ] && [ "$(proc_state "$test_pid")" != Z ] && [ "$waited" -lt 10 ]; do
        sleep 1
        waited=$((waited + 1))
    done
    if [ "$(proc_state "$test_pid")" = Z ] || [ -z "$(proc_state "$test_pid")" ]; then
        wait "$test_pid"
        rc=$?
    else
        echo "CAPSA-VM: watchdog: $name (pid $test_pid) did not die after SIGKILL (state $(proc_state "$test_pid"))"
        rc=143
    fi
    [ "$timed_out" = 1 ] && rc=143
    sleep 1
    kill "$follower" 2>/dev/null
    wait "$follower" 2>/dev/null

    # "test result: FAILED. 20 passed; 3 failed; 0 ignored; ..."
    counts=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed;.*/\1 \2/p' "$log" | tail -n 1)
    hung=""
    if [ -n "$counts" ]; then
        passed=${counts% *}
        failed=${counts#* }
        if [ "$rc" = 0 ]; then status=ok; else status=failed; fi
    else
        # No summary: the binary was killed by the watchdog (exit 143 =
        # SIGTERM) or crashed. Count what finished, plus one failure for the
        # binary itself, and name the test that never finished.
        passed=$(grep -c ' \.\.\. ok$' "$log")
        failed=$(($(grep -c ' \.\.\. FAILED$' "$log") + 1))
        if [ "$rc" = 143 ]; then status=timeout; else status=crashed; fi
        # libtest prints "test NAME ... " when a test starts and "ok" or
        # "FAILED" when it ends; after the kill the shell adds "Terminated".
        hung=$(grep '^test [^ ]* \.\.\. ' "$log" | grep -vE ' \.\.\. (ok|FAILED|ignored.*)$' |
            tail -n 1 | sed 's/^test \([^ ]*\) .*/\1/')
    fi
    kernel_messages "$name"
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    echo "CAPSA-VM: result bin=$name status=$status exit=$rc passed=$passed failed=$failed${hung:+ unfinished=$hung} uptime=$(cut -d' ' -f1 /proc/uptime)"
done

echo "CAPSA-VM: summary passed=$total_passed failed=$total_failed"
shutdown_vm
