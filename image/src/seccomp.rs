//! The default seccomp profile of containers made from images (image mode, managed
//! containers, pods): Kubernetes' "RuntimeDefault", the profile docker, containerd
//! and podman apply. And profile files in docker's format.
//!
//! [`default_profile`] follows moby's `profiles/seccomp/default.json` and
//! containerd's `contrib/seccomp`: default action EPERM, an allow list of the
//! syscalls ordinary programs use, syscalls allowed only with the capability that
//! makes them useful (mount with CAP_SYS_ADMIN, ptrace's relatives with
//! CAP_SYS_PTRACE, ...), clone without namespace flags unless CAP_SYS_ADMIN,
//! clone3 answering ENOSYS (its flags are behind a pointer seccomp cannot read:
//! glibc falls back to clone), personality limited to the harmless values, and
//! AF_VSOCK sockets refused. Syscalls newer than the profile get ENOSYS from the
//! runtime (runc's rule, see capsa-runtime's `seccomp_bpf`). The profile is built
//! for the host architecture.
//!
//! Deliberate differences from podman's `/usr/share/containers/seccomp.json`
//! (containers/common 0.50, Debian 12) are listed and checked in the tests below.
//!
//! [`from_profile`] reads docker's profile format (`archMap`, `includes`/`excludes`
//! by architecture, capability and kernel version, `name` or `names`) as well as a
//! plain OCI `linux.seccomp` object, and returns the OCI form for a container with
//! the given capabilities, as docker and podman do for `--security-opt seccomp=FILE`.

use serde_json::{json, Map, Value};

/// A profile file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("seccomp profile: {0}")]
pub struct SeccompError(pub String);

/// Which syscalls are allowed, and when.
enum When {
    Always,
    /// On these architectures (Go's names, as docker's `includes.arches`).
    Arch(&'static [&'static str]),
    /// When the bounding set holds this capability.
    Cap(&'static str),
}

/// The allow list, names separated by whitespace. Names libseccomp does not know
/// (newer than it) are skipped when the filter is built, and then answer ENOSYS.
const ALLOWED: &[(When, &str)] = &[
    (
        When::Always,
        concat!(
            // files and directories
            "access chdir chmod chown chown32 close close_range copy_file_range creat dup dup2 dup3 ",
            "faccessat faccessat2 fadvise64 fadvise64_64 fallocate fchdir fchmod fchmodat fchmodat2 ",
            "fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock ",
            "fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ",
            "ftruncate64 futimesat getcwd getdents getdents64 getxattr lchown lchown32 lgetxattr ",
            "link linkat listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 ",
            "mkdir mkdirat mknod mknodat name_to_handle_at newfstatat open openat openat2 pread64 ",
            "preadv preadv2 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv ",
            "removexattr rename renameat renameat2 rmdir sendfile sendfile64 setxattr splice stat ",
            "stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs tee truncate ",
            "truncate64 umask unlink unlinkat utime utimensat utimensat_time64 utimes vmsplice write ",
            "writev cachestat ",
            // polling, events, pipes, async I/O
            "epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait ",
            "epoll_wait_old eventfd eventfd2 fanotify_mark inotify_add_watch inotify_init ",
            "inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents ",
            "io_pgetevents_time64 io_setup io_submit io_uring_enter io_uring_register io_uring_setup ",
            "ioctl pipe pipe2 poll ppoll ppoll_time64 pselect6 pselect6_time64 select _newselect ",
            "signalfd signalfd4 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime ",
            "timerfd_settime64 ",
            // memory
            "brk madvise membarrier memfd_create memfd_secret mincore mlock mlock2 mlockall mmap ",
            "mmap2 mprotect mremap msync munlock munlockall munmap mseal map_shadow_stack pkey_alloc ",
            "pkey_free pkey_mprotect remap_file_pages ",
            // processes, threads, signals
            "capget capset execve execveat exit exit_group fork futex futex_requeue futex_time64 ",
            "futex_wait futex_waitv futex_wake get_robust_list get_thread_area getcpu getegid ",
            "getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpgid ",
            "getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid ",
            "getresuid32 getrlimit getrusage getsid gettid getuid getuid32 ioprio_get ioprio_set ",
            "kill landlock_add_rule landlock_create_ruleset landlock_restrict_self pause pidfd_open ",
            "pidfd_send_signal prctl prlimit64 process_mrelease restart_syscall rseq rt_sigaction ",
            "rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait ",
            "rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min ",
            "sched_getaffinity sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval ",
            "sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam ",
            "sched_setscheduler sched_yield seccomp set_robust_list set_thread_area set_tid_address ",
            "setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer ",
            "setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 ",
            "setreuid setreuid32 setrlimit setsid setuid setuid32 sigaltstack sigprocmask sigreturn ",
            "tgkill tkill ugetrlimit vfork wait4 waitid waitpid ",
            // ptrace of the container's own processes: the kernel's ptrace checks
            // (and the missing CAP_SYS_PTRACE) keep it inside; allowed since Linux 4.8
            // closed the seccomp bypass through ptrace.
            "process_vm_readv process_vm_writev ptrace ",
            // time
            "adjtimex alarm clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 ",
            "clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 gettimeofday ",
            "nanosleep time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 ",
            "timer_settime timer_settime64 times ",
            // sockets (socket itself has its own rule), IPC
            "accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom ",
            "recvmmsg recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown ",
            "socketcall socketpair ipc mq_getsetattr mq_notify mq_open mq_timedreceive ",
            "mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink msgctl msgget msgrcv ",
            "msgsnd semctl semget semop semtimedop semtimedop_time64 shmat shmctl shmdt shmget ",
            // system information
            "sysinfo uname ",
        ),
    ),
    (When::Arch(&["ppc64le"]), "sync_file_range2 swapcontext"),
    (
        When::Arch(&["arm", "arm64"]),
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
    ),
    (When::Arch(&["amd64", "x32"]), "arch_prctl"),
    (When::Arch(&["amd64", "x32", "386"]), "modify_ldt"),
    (When::Arch(&["s390", "s390x"]), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (When::Arch(&["riscv64"]), "riscv_flush_icache"),
    (When::Cap("CAP_DAC_READ_SEARCH"), "open_by_handle_at"),
    (
        When::Cap("CAP_SYS_ADMIN"),
        concat!(
            "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount ",
            "mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname ",
            "sethostname setns syslog umount umount2 unshare ",
        ),
    ),
    (When::Cap("CAP_SYS_BOOT"), "reboot"),
    (When::Cap("CAP_SYS_CHROOT"), "chroot"),
    (When::Cap("CAP_SYS_MODULE"), "delete_module init_module finit_module"),
    (When::Cap("CAP_SYS_PACCT"), "acct"),
    (When::Cap("CAP_SYS_PTRACE"), "kcmp pidfd_getfd process_madvise"),
    (When::Cap("CAP_SYS_RAWIO"), "iopl ioperm"),
    (When::Cap("CAP_SYS_TIME"), "settimeofday stime clock_settime clock_settime64"),
    (When::Cap("CAP_SYS_TTY_CONFIG"), "vhangup"),
    (When::Cap("CAP_SYS_NICE"), "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    (When::Cap("CAP_SYSLOG"), "syslog"),
    (When::Cap("CAP_BPF"), "bpf"),
    (When::Cap("CAP_PERFMON"), "perf_event_open"),
];

/// The namespace flags clone may not carry without CAP_SYS_ADMIN: CLONE_NEWNS,
/// NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (0x7E020000).
const CLONE_NS_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;
/// personality(2) values programs use: PER_LINUX, PER_LINUX32, UNAME26,
/// PER_LINUX32|UNAME26, and 0xffffffff (query).
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
/// AF_VSOCK: reaches the hypervisor's host, outside any network namespace.
const AF_VSOCK: u64 = 40;

/// The host architecture in Go's naming (what docker profiles' `arches` use).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The native architecture in libseccomp's naming, and the ones that run on it
/// (moby's `archMap`).
fn arches_for(go_arch: &str) -> (&'static str, &'static [&'static str]) {
    match go_arch {
        "amd64" => ("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
        "386" => ("SCMP_ARCH_X86", &[]),
        "arm64" => ("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
        "arm" => ("SCMP_ARCH_ARM", &[]),
        "mips64" => ("SCMP_ARCH_MIPS64", &["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]),
        "mips64le" => ("SCMP_ARCH_MIPSEL64", &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"]),
        "s390x" => ("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
        "ppc64le" => ("SCMP_ARCH_PPC64LE", &[]),
        "ppc64" => ("SCMP_ARCH_PPC64", &["SCMP_ARCH_PPC"]),
        "riscv64" => ("SCMP_ARCH_RISCV64", &[]),
        "loong64" => ("SCMP_ARCH_LOONGARCH64", &[]),
        _ => ("", &[]),
    }
}

fn architectures(go_arch: &str) -> Vec<&'static str> {
    let (native, subs) = arches_for(go_arch);
    if native.is_empty() {
        return Vec::new();
    }
    std::iter::once(native).chain(subs.iter().copied()).collect()
}

/// The default ("RuntimeDefault") profile for a container whose bounding set is
/// `caps` (names with the `CAP_` prefix), as an OCI `linux.seccomp` object for
/// the host architecture.
pub fn default_profile(caps: &[String]) -> Value {
    profile_for(host_arch(), caps)
}

fn profile_for(arch: &str, caps: &[String]) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut names: Vec<&str> = Vec::new();
    for (when, list) in ALLOWED {
        let on = match when {
            When::Always => true,
            When::Arch(a) => a.contains(&arch),
            When::Cap(c) => has(c),
        };
        for n in list.split_whitespace().filter(|_| on) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    let allow = |names: &[&str], args: Value| json!({"names": names, "action": "SCMP_ACT_ALLOW", "args": args});
    let mut syscalls = vec![json!({"names": names, "action": "SCMP_ACT_ALLOW"})];
    syscalls.push(allow(&["socket"], json!([{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}])));
    for p in PERSONALITIES {
        syscalls.push(allow(&["personality"], json!([{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}])));
    }
    if !has("CAP_SYS_ADMIN") {
        // The flags are clone's first argument, except on s390 (second).
        let index = if arch.starts_with("s390") { 1 } else { 0 };
        syscalls.push(allow(
            &["clone"],
            json!([{"index": index, "value": CLONE_NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]),
        ));
        syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}));
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": architectures(arch),
        "syscalls": syscalls,
    })
}

/// The running kernel's (major, minor).
fn kernel_version() -> Option<(u32, u32)> {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut it = r.trim().split(['.', '-']).map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split('.').map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next().flatten().unwrap_or(0)))
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, SeccompError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_owned).ok_or_else(|| SeccompError(format!("{what}: {x} is not a string"))))
            .collect(),
        Some(other) => Err(SeccompError(format!("{what}: expected a list of strings, found {other}"))),
    }
}

/// Converts a profile (docker's format or a plain OCI `linux.seccomp`) into the
/// OCI form for a container with bounding set `caps` on the host architecture.
/// Errors name what is wrong; the result's actions and operators are checked by
/// the runtime.
pub fn from_profile(profile: &Value, caps: &[String]) -> Result<Value, SeccompError> {
    from_profile_for(profile, caps, host_arch(), kernel_version())
}

fn from_profile_for(
    profile: &Value,
    caps: &[String],
    arch: &str,
    kernel: Option<(u32, u32)>,
) -> Result<Value, SeccompError> {
    let top = profile.as_object().ok_or_else(|| SeccompError("not a JSON object".into()))?;
    if !top.get("defaultAction").is_some_and(Value::is_string) {
        return Err(SeccompError("defaultAction: missing (a profile needs a default action)".into()));
    }
    let mut out = Map::new();
    for key in ["defaultAction", "defaultErrnoRet", "flags", "listenerPath", "listenerMetadata"] {
        if let Some(v) = top.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    let listed = strings(top.get("architectures"), "architectures")?;
    let arch_map = top.get("archMap").filter(|v| !v.is_null());
    if !listed.is_empty() && arch_map.is_some() {
        return Err(SeccompError("both architectures and archMap are given; use one of them".into()));
    }
    let mut arches = listed;
    if let Some(m) = arch_map {
        let (native, _) = arches_for(arch);
        for (i, e) in m.as_array().ok_or_else(|| SeccompError("archMap: expected a list".into()))?.iter().enumerate() {
            let a = e.get("architecture").and_then(Value::as_str);
            let a = a.ok_or_else(|| SeccompError(format!("archMap[{i}].architecture: missing")))?;
            if a == native {
                arches.push(a.to_owned());
                arches.extend(strings(e.get("subArchitectures"), &format!("archMap[{i}].subArchitectures"))?);
            }
        }
    }
    if !arches.is_empty() {
        out.insert("architectures".into(), json!(arches));
    }
    let mut calls = Vec::new();
    let list = match top.get("syscalls") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(SeccompError("syscalls: expected a list".into())),
    };
    for (i, c) in list.iter().enumerate() {
        let at = |f: &str| format!("syscalls[{i}].{f}");
        let c = c.as_object().ok_or_else(|| SeccompError(format!("syscalls[{i}]: expected an object")))?;
        let mut names = strings(c.get("names"), &at("names"))?;
        match c.get("name").filter(|v| !v.is_null()) {
            Some(_) if !names.is_empty() => {
                return Err(SeccompError(format!("syscalls[{i}]: both name and names are given; use one of them")))
            }
            Some(Value::String(n)) => names.push(n.clone()),
            Some(other) => return Err(SeccompError(format!("{}: {other} is not a string", at("name")))),
            None => {}
        }
        if names.is_empty() {
            return Err(SeccompError(format!("{}: missing or empty", at("names"))));
        }
        if !c.get("action").is_some_and(Value::is_string) {
            return Err(SeccompError(format!("{}: missing", at("action"))));
        }
        let (inc, exc) = (c.get("includes"), c.get("excludes"));
        let inc_arches = strings(inc.and_then(|v| v.get("arches")), &at("includes.arches"))?;
        let exc_arches = strings(exc.and_then(|v| v.get("arches")), &at("excludes.arches"))?;
        let inc_caps = strings(inc.and_then(|v| v.get("caps")), &at("includes.caps"))?;
        let exc_caps = strings(exc.and_then(|v| v.get("caps")), &at("excludes.caps"))?;
        if (!inc_arches.is_empty() && !inc_arches.iter().any(|a| a == arch)) || exc_arches.iter().any(|a| a == arch) {
            continue;
        }
        if !inc_caps.iter().all(|c| caps.contains(c)) || exc_caps.iter().any(|c| caps.contains(c)) {
            continue;
        }
        if let Some(min) = inc.and_then(|v| v.get("minKernel")).filter(|v| !v.is_null()) {
            let want = min.as_str().and_then(parse_version);
            let want =
                want.ok_or_else(|| SeccompError(format!("{}: {min} is not a version", at("includes.minKernel"))))?;
            if kernel.is_some_and(|k| k < want) {
                continue;
            }
        }
        let mut call = Map::new();
        call.insert("names".into(), json!(names));
        for key in ["action", "errnoRet", "args"] {
            if let Some(v) = c.get(key).filter(|v| !v.is_null()) {
                call.insert(key.into(), v.clone());
            }
        }
        calls.push(Value::Object(call));
    }
    out.insert("syscalls".into(), Value::Array(calls));
    Ok(Value::Object(out))
}

/// Reads a profile file as JSON (docker's format or OCI `linux.seccomp`; converted
/// later, for the container's capabilities, by [`from_profile`]), checking that it
/// converts.
pub fn read_file(path: &std::path::Path) -> Result<Value, SeccompError> {
    let data = std::fs::read(path).map_err(|e| SeccompError(format!("read {}: {e}", path.display())))?;
    let v: Value = serde_json::from_slice(&data)
        .map_err(|e| SeccompError(format!("{}: not a JSON seccomp profile: {e}", path.display())))?;
    from_profile(&v, &[]).map_err(|e| SeccompError(format!("{}: {}", path.display(), e.0)))?;
    Ok(v)
}

#[cfg(test)]
mod tests;
