#!/usr/bin/env bash
# cgroup v2 test lane: runs capsa's integration tests inside a VM whose kernel
# has a pure cgroup v2 ("unified") hierarchy, the layout most hosts use today,
# while CI's own machine is a v1/v2 hybrid. See tests/vm/README.md.
#
#   tests/vm/run.sh [--boot-only] [TEST-BINARY-NAMES...]     (default: cgroups lifecycle)
#
# The names are the integration test files under tests/ without ".rs". The last
# line printed is "N passed, M failed", summed over the test binaries; the exit
# status is 0 only when M is 0 and every requested binary reported a result.
#
# Steps: (1) install the tools, (2) fetch Debian's kernel, (3) build the test
# binaries on the host with cargo, (4) pack them with busybox into an
# initramfs, (5) boot it in qemu (software emulation, TCG), and (6) read the
# results off the serial console.
#
# Environment (all optional):
#   VM_TIMEOUT=900        seconds the whole VM may run before it is killed
#   VM_TEST_TIMEOUT=360   seconds one test binary may run inside the VM (then its processes are shown and it is killed)
#   VM_MEM=2048 VM_CPUS=2 guest memory (MiB) and CPUs
#   VM_QUIET=1            do not echo the serial console while the VM runs
#   CAPSA_VM_CACHE=DIR    kernel cache (default ${XDG_CACHE_HOME:-/var/cache}/capsa-vm)
#   CAPSA_VM_WORK=DIR     build dir and console log (default <repo>/target/capsa-vm)
set -euo pipefail

# ------------------------------------------------------------------ settings
# Everything is found relative to this script: tests/vm/ inside the repo.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

VM_TIMEOUT=${VM_TIMEOUT:-900}
VM_TEST_TIMEOUT=${VM_TEST_TIMEOUT:-360}
VM_MEM=${VM_MEM:-2048}
VM_CPUS=${VM_CPUS:-2}
VM_QUIET=${VM_QUIET:-0}
CACHE_DIR=${CAPSA_VM_CACHE:-${XDG_CACHE_HOME:-/var/cache}/capsa-vm}
WORK_DIR=${CAPSA_VM_WORK:-$REPO/target/capsa-vm}
CONSOLE_LOG=$WORK_DIR/console.log

# Kernel command line. cgroup_no_v1=all keeps every controller off cgroup v1,
# systemd.unified_cgroup_hierarchy=1 is what a systemd host would be booted
# with (harmless here: our /init mounts cgroup2 itself). panic=-1 reboots at
# once on a panic, and qemu's -no-reboot turns that reboot into an exit.
KERNEL_CMDLINE="console=ttyS0 quiet panic=-1 systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all"

BOOT_ONLY=0
TESTS=()
for arg in "$@"; do
    case "$arg" in
        --boot-only) BOOT_ONLY=1 ;;
        -h | --help)
            # The comment block at the top of this file.
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        -*)
            echo "run.sh: unknown option $arg (try --help)" >&2
            exit 2
            ;;
        *) TESTS+=("$arg") ;;
    esac
done
if [ "$BOOT_ONLY" = 1 ]; then
    TESTS=()
elif [ ${#TESTS[@]} -eq 0 ]; then
    TESTS=(cgroups lifecycle)
fi

# Progress lines go to stderr so that stdout ends with the summary line.
say() { echo "capsa-vm: $*" >&2; }
die() {
    echo "capsa-vm: error: $*" >&2
    exit 1
}

# Seconds since the script started, per step, for the timing report.
STEP_START=$SECONDS
TIMINGS=()
step_done() {
    TIMINGS+=("$1 $((SECONDS - STEP_START))s")
    STEP_START=$SECONDS
}

mkdir -p "$WORK_DIR"
# /var/cache is root's; anyone else falls back to /var/tmp.
if ! mkdir -p "$CACHE_DIR" 2>/dev/null || [ ! -w "$CACHE_DIR" ]; then
    CACHE_DIR=/var/tmp/capsa-vm-$(id -u)
    mkdir -p "$CACHE_DIR"
fi

# ------------------------------------------------------------ 1. tools
# command -> Debian package that provides it. busybox must be the static
# build: it is the VM's whole userland and, since the tests copy /bin/busybox
# into every container rootfs, it must run without any shared library.
declare -A TOOL_PKG=(
    [qemu-system-x86_64]=qemu-system-x86
    [cpio]=cpio
    [jq]=jq
    [gzip]=gzip
)
missing=()
for tool in "${!TOOL_PKG[@]}"; do
    command -v "$tool" >/dev/null || missing+=("${TOOL_PKG[$tool]}")
done
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages (install them as root): ${missing[*]}"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found (package busybox-static)"
# ldd fails on a static executable, which is what we want.
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    die "$BUSYBOX is dynamically linked: install busybox-static"
fi
step_done tools

# ------------------------------------------------------------ 2. kernel
# Debian's stock kernel (what the package linux-image-amd64 points to), cached.
# Only boot/vmlinuz-* is needed: the VM has no disk and no network card, and
# everything it uses is built into Debian's kernel rather than a module
# (checked below against the kernel's config); the one module taken is the loop
# driver, for the io lab (see fetch_kernel).

# apt-get download into the current directory. As root, apt would try to drop
# to its sandbox user _apt, who cannot write here: stay root instead of
# printing a warning. If the package lists are missing or stale, update once.
apt_download() {
    local opts=()
    [ "$(id -u)" = 0 ] && opts=(-o APT::Sandbox::User=root)
    apt-get "${opts[@]}" -q download "$1" >&2 ||
        { apt-get update -q >&2 && apt-get "${opts[@]}" -q download "$1" >&2; }
}

fetch_kernel() {
    local tmp meta pkg deb
    tmp=$(mktemp -d "$CACHE_DIR/fetch.XXXXXX")
    # The metapackage is tiny; its Depends names the versioned package,
    # e.g. "linux-image-6.1.0-56-amd64 (= 6.1.192-2)".
    (cd "$tmp" && apt_download linux-image-amd64) || die "apt-get download linux-image-amd64 failed"
    meta=$(find "$tmp" -name 'linux-image-amd64_*.deb' | head -n 1)
    pkg=$(dpkg-deb -f "$meta" Depends | tr ',|' '\n' |
        sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n 1)
    [ -n "$pkg" ] || die "cannot find the kernel package in linux-image-amd64's Depends"
    say "downloading $pkg (~70 MB, once)"
    (cd "$tmp" && apt_download "$pkg") || die "apt-get download $pkg failed"
    deb=$(find "$tmp" -name "${pkg}_*.deb" | head -n 1)
    # dpkg-deb -x would unpack ~400 MB of modules we do not need; take only
    # boot/ out of the package's data archive.
    mkdir -p "$tmp/x"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --wildcards './boot/vmlinuz-*' './boot/config-*'
    mkdir -p "$CACHE_DIR/kernel"
    cp "$tmp"/x/boot/vmlinuz-* "$tmp"/x/boot/config-* "$CACHE_DIR/kernel/"
    # The loop driver, when it is a module (loop.ko, or compressed): kept as loop.ko.
    # "loop.none" records that there is none to take (built in, or absent).
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --wildcards '*/drivers/block/loop.ko*' 2>/dev/null || true
    local ko
    ko=$(find "$tmp/x" -name 'loop.ko*' | head -n 1)
    case "$ko" in
        *.ko) cp "$ko" "$CACHE_DIR/kernel/loop.ko" ;;
        *.ko.xz) xz -dc "$ko" >"$CACHE_DIR/kernel/loop.ko" ;;
        *.ko.zst) zstd -dcq "$ko" >"$CACHE_DIR/kernel/loop.ko" ;;
        *.ko.gz) gzip -dc "$ko" >"$CACHE_DIR/kernel/loop.ko" ;;
        *) : >"$CACHE_DIR/kernel/loop.none" ;;
    esac
    rm -rf "$tmp"
}

# The newest cached kernel, if any.
cached_kernel() {
    [ -d "$CACHE_DIR/kernel" ] || return 0
    find "$CACHE_DIR/kernel" -name 'vmlinuz-*' | sort -V | tail -n 1
}
VMLINUZ=$(cached_kernel)
# A cache from before loop.ko was kept: fetch the package once more.
if [ -n "$VMLINUZ" ] && [ ! -f "$CACHE_DIR/kernel/loop.ko" ] && [ ! -f "$CACHE_DIR/kernel/loop.none" ]; then
    rm -rf "$CACHE_DIR/kernel"
    VMLINUZ=
fi
if [ -z "$VMLINUZ" ]; then
    fetch_kernel
    VMLINUZ=$(cached_kernel)
    [ -n "$VMLINUZ" ] || die "no vmlinuz in the kernel package"
fi
KVER=${VMLINUZ##*/vmlinuz-}
KCONFIG=$CACHE_DIR/kernel/config-$KVER
# What the VM relies on being built in (=y), not modular.
for opt in BLK_DEV_INITRD RD_GZIP DEVTMPFS TMPFS SERIAL_8250_CONSOLE \
    CGROUPS MEMCG CPUSETS CGROUP_SCHED CFS_BANDWIDTH CGROUP_PIDS BLK_CGROUP \
    CGROUP_HUGETLB CGROUP_FREEZER CGROUP_BPF BPF_SYSCALL \
    NAMESPACES USER_NS PID_NS NET_NS UTS_NS IPC_NS SECCOMP_FILTER; do
    grep -q "^CONFIG_$opt=y" "$KCONFIG" || die "kernel $KVER: CONFIG_$opt is not built in (see $KCONFIG)"
done
say "kernel $KVER ($VMLINUZ)"
step_done kernel

# ------------------------------------------------------------ 3. build
# The same build as `cargo test --release` (so nothing is rebuilt when CI has
# just run it); --message-format=json tells us where each binary landed.
say "building test binaries (cargo test --release --no-run)"
(cd "$REPO" && cargo test --release --locked --no-run --message-format=json) >"$WORK_DIR/cargo.json" ||
    die "cargo build failed"

# The runtime itself: the `capsa` bin target, not its unit-test build.
CAPSA_BIN=$(jq -r 'select(.reason == "compiler-artifact" and .target.name == "capsa"
        and (.target.kind | index("bin")) and (.profile.test | not)) | .executable' \
    "$WORK_DIR/cargo.json" | tail -n 1)
[ -x "$CAPSA_BIN" ] || die "cargo did not report the capsa binary"
declare -A TEST_BIN=()
for name in "${TESTS[@]}"; do
    exe=$(jq -r --arg n "$name" 'select(.reason == "compiler-artifact" and .target.name == $n
            and (.target.kind | index("test")) and .profile.test) | .executable' \
        "$WORK_DIR/cargo.json" | tail -n 1)
    if [ -z "$exe" ] || [ ! -x "$exe" ]; then
        die "no integration test binary named '$name' (the names are tests/*.rs without .rs)"
    fi
    TEST_BIN[$name]=$exe
done
step_done build

# ------------------------------------------------------------ 4. initramfs
# The guest's whole filesystem, packed as a cpio archive (newc format, as the
# kernel wants it), gzip -1: the kernel unpacks it into memory at boot.
ROOT=$WORK_DIR/initramfs
INITRD=$WORK_DIR/initramfs.cpio.gz
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,proc,sys,dev,tmp,run,root,tests}

# busybox and a symlink per applet (sh, mount, ip, timeout, ...).
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list-full); do
    [ -e "$ROOT/$applet" ] || ln -s /bin/busybox "$ROOT/$applet"
done

# Copies a dynamically linked ELF's shared libraries and its dynamic loader
# (every absolute path ldd prints) to the same paths in the initramfs.
copy_libs() {
    local lib
    for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
        [ -e "$ROOT$lib" ] && continue
        mkdir -p "$ROOT$(dirname "$lib")"
        cp -L "$lib" "$ROOT$lib"
    done
}

cp "$CAPSA_BIN" "$ROOT/usr/local/bin/capsa"
copy_libs "$CAPSA_BIN"
for name in "${TESTS[@]}"; do
    cp "${TEST_BIN[$name]}" "$ROOT/tests/$name"
    copy_libs "${TEST_BIN[$name]}"
done

# The labs (tests/labs.rs) are bash scripts over the runtime: they need bash, jq,
# the labs and rootfs-examples (at /usr/local/share/capsa, where `make install` puts
# them and the test looks).
if [[ " ${TESTS[*]} " == *" labs "* ]]; then
    for tool in bash jq; do
        t=$(command -v "$tool") || die "$tool is needed in the VM for the labs"
        rm -f "$ROOT/bin/$tool" # may be a busybox applet link: never copy through it
        cp -L "$t" "$ROOT/bin/$tool"
        copy_libs "$t"
    done
    mkdir -p "$ROOT/usr/local/share/capsa"
    cp -a "$REPO/labs" "$REPO/rootfs-examples" "$ROOT/usr/local/share/capsa/"
fi

# The loop driver, loaded by /init (insmod) for the io lab's loop device.
if [ -f "$CACHE_DIR/kernel/loop.ko" ]; then
    mkdir -p "$ROOT/lib/modules"
    cp "$CACHE_DIR/kernel/loop.ko" "$ROOT/lib/modules/loop.ko"
fi

# /init (the guest's PID 1) and its settings.
cp "$HERE/init.sh" "$ROOT/init"
chmod 755 "$ROOT/init"
cat >"$ROOT/etc/capsa-vm.conf" <<EOF
CAPSA_VM_TESTS="${TESTS[*]}"
CAPSA_VM_TEST_TIMEOUT=$VM_TEST_TIMEOUT
CAPSA_VM_BOOT_ONLY=$BOOT_ONLY
EOF
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnobody:x:65534:\n' >"$ROOT/etc/group"

# -R 0:0: every file is root's in the guest, whoever builds the archive.
(cd "$ROOT" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) |
    gzip -1 >"$INITRD"
say "initramfs $(du -h "$INITRD" | cut -f1) with: ${TESTS[*]:-(boot only)}"
step_done initramfs

# ------------------------------------------------------------ 5. boot
# Software emulation (TCG): nested KVM hangs at boot on the CI machines, and
# TCG needs no /dev/kvm. -cpu max gives the guest every CPU feature TCG
# emulates, so host-built binaries do not hit an illegal instruction. No
# network card (-nic none): the tests only need loopback, and the NIC's boot
# ROM would cost boot time.
# -nographic puts the serial console (ttyS0) on stdio; stdin is /dev/null so
# the VM never reads the terminal. The outer timeout kills a hung VM.
say "booting the VM (timeout ${VM_TIMEOUT}s, console log: $CONSOLE_LOG)"
qemu=(qemu-system-x86_64 -accel tcg -cpu max -m "$VM_MEM" -smp "$VM_CPUS"
    -nic none -nographic -no-reboot -kernel "$VMLINUZ" -initrd "$INITRD" -append "$KERNEL_CMDLINE")
vm_start=$SECONDS
# The console is cleaned on the way to the log: no carriage returns, and no
# terminal escape sequences (the firmware sends "reset terminal" and "clear
# screen", which would wipe the screen of whoever runs this).
clean_console() { sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[a-z]//g'; }
set +e
if [ "$VM_QUIET" = 1 ]; then
    timeout "$VM_TIMEOUT" "${qemu[@]}" </dev/null 2>&1 | clean_console >"$CONSOLE_LOG"
else
    # Echo the console live (to stderr, like the other progress output).
    timeout "$VM_TIMEOUT" "${qemu[@]}" </dev/null 2>&1 | clean_console | tee "$CONSOLE_LOG" >&2
fi
qemu_rc=${PIPESTATUS[0]}
set -e
vm_secs=$((SECONDS - vm_start))
step_done vm

# ------------------------------------------------------------ 6. results
# Marker lines written by init.sh ("CAPSA-VM: ..."), without the serial
# console's carriage returns. grep -o also finds a marker that a kernel
# message happened to start on the same line.
markers=$(grep -o 'CAPSA-VM: .*' "$CONSOLE_LOG" || true)

# Value of key=VALUE in a marker line.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

show_console_tail() {
    echo "---- last 40 lines of $CONSOLE_LOG ----" >&2
    tail -n 40 "$CONSOLE_LOG" >&2
    echo "----" >&2
}

booted=$(grep '^CAPSA-VM: booted' <<<"$markers" || true)
failed_vm=0
if [ "$qemu_rc" = 124 ]; then
    say "error: the VM was still running after VM_TIMEOUT=${VM_TIMEOUT}s and was killed"
    failed_vm=1
elif [ -z "$booted" ]; then
    say "error: the VM did not boot (qemu exit status $qemu_rc; no 'booted' marker on the console)"
    failed_vm=1
fi
[ "$failed_vm" = 1 ] && show_console_tail

if [ -n "$booted" ]; then
    say "booted in $(field uptime "$booted")s of guest uptime (VM ran ${vm_secs}s in all)"
    grep -E '^CAPSA-VM: (cgroup|v1|warning)' <<<"$markers" | sed 's/^CAPSA-VM: /capsa-vm:   /' >&2 || true
fi
say "timings: ${TIMINGS[*]}"

if [ "$BOOT_ONLY" = 1 ]; then
    [ "$failed_vm" = 0 ] || exit 1
    echo "boot-only: the VM booted and powered off in ${vm_secs}s"
    exit 0
fi

# One result line per requested binary; a binary that never reported (the VM
# died or timed out first) counts as one failure.
total_passed=0
total_failed=0
missing_bins=()
for name in "${TESTS[@]}"; do
    res=$(grep "^CAPSA-VM: result bin=$name " <<<"$markers" | tail -n 1 || true)
    if [ -z "$res" ]; then
        say "$name: no result (the VM stopped before it finished)"
        missing_bins+=("$name")
        total_failed=$((total_failed + 1))
        continue
    fi
    p=$(field passed "$res")
    f=$(field failed "$res")
    u=$(field unfinished "$res")
    say "$name: $(field status "$res"), $p passed, $f failed${u:+ (killed while running $u)}"
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
done

# The failing tests by name, as libtest listed them under "failures:".
if [ "$total_failed" -gt 0 ]; then
    grep -E '^test .* \.\.\. FAILED$' "$CONSOLE_LOG" | sed 's/^/capsa-vm:   /' >&2 || true
fi

echo "$total_passed passed, $total_failed failed"
[ "$failed_vm" = 0 ] && [ ${#missing_bins[@]} -eq 0 ] && [ "$total_failed" -eq 0 ]
