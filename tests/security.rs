//! Isolation properties: no leaked file descriptors, no escape from the
//! rootfs through cwd or symlinked mount destinations, refusing /proc on a
//! symlink, host /proc and /sys hidden under --no-pivot; seccomp's ENOSYS for
//! syscalls newer than the profile; LSM labels refused on a host without the
//! LSM. Masked and read-only paths and /dev/console: tests/masking.rs.

mod common;
mod syscall_helper;

use common::{Bundle, Rt};
use serde_json::json;
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

/// Runs the bundle with the runtime process holding `file` at `target`
/// (without FD_CLOEXEC) and `extra` flags for `run`.
fn run_with_fd(b: &Bundle, file: &fs::File, target: i32, extra: &[&str]) -> common::Output {
    let rt = Rt::new();
    let _guard = rt.guard(b);
    let mut args = vec!["run", "--bundle", b.path_str()];
    args.extend_from_slice(extra);
    args.push(&b.id);
    let mut cmd = rt.command(&args);
    common::with_inherited_fd(&mut cmd, file.as_raw_fd(), target);
    common::run_cmd(cmd, common::TIMEOUT)
}

fn fds(listing: &str) -> Vec<u32> {
    let mut v: Vec<u32> = listing.split_whitespace().map(|s| s.parse().unwrap()).collect();
    v.sort();
    v
}

/// Descriptors the runtime inherited (here fd 3 and fd 9, without
/// FD_CLOEXEC) never reach the container process: it sees 0, 1, 2 and the
/// directory fd `ls` itself opened (3).
#[test]
fn inherited_fds_are_not_leaked() {
    if !common::require_root() {
        return;
    }
    let null = fs::File::open("/dev/null").unwrap();
    let b = Bundle::new("fd-leak", &["ls", "/proc/self/fd"]);
    let rt = Rt::new();
    let _guard = rt.guard(&b);
    let mut cmd = rt.command(&["run", "--bundle", b.path_str(), &b.id]);
    common::with_inherited_fd(&mut cmd, null.as_raw_fd(), 9);
    common::with_inherited_fd(&mut cmd, null.as_raw_fd(), 3);
    let out = common::run_cmd(cmd, common::TIMEOUT).ok();
    assert_eq!(fds(&out.stdout), [0, 1, 2, 3], "{out:?}");
}

/// --preserve-fds N passes fds 3..3+N through to the process.
#[test]
fn preserve_fds_passes_fd_3() {
    if !common::require_root() {
        return;
    }
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(b"preserved-content\n").unwrap();
    use std::io::Seek;
    f.rewind().unwrap();
    let b = Bundle::sh("fd-preserve", "cat <&3; ls /proc/self/fd");
    let out = run_with_fd(&b, &f, 3, &["--preserve-fds", "1"]).ok();
    let mut lines = out.stdout.splitn(2, '\n');
    assert_eq!(lines.next(), Some("preserved-content"), "{out:?}");
    // 0-2, the preserved 3, and ls's own directory fd 4.
    assert_eq!(fds(lines.next().unwrap_or("")), [0, 1, 2, 3, 4], "{out:?}");
}

/// Without --preserve-fds the same fd 3 is closed in the container.
#[test]
fn fd_3_not_passed_without_preserve_fds() {
    if !common::require_root() {
        return;
    }
    let f = tempfile::tempfile().unwrap();
    let b = Bundle::sh("fd-nopreserve", "cat <&3 && echo readable || echo closed");
    let out = run_with_fd(&b, &f, 3, &[]).ok();
    assert!(out.stdout.ends_with("closed\n"), "{out:?}");
}

/// A cwd full of ".." cannot climb above the container's root.
#[test]
fn cwd_dotdot_stays_inside_rootfs() {
    if !common::require_root() {
        return;
    }
    let b =
        Bundle::sh("cwd-dotdot", "pwd; ls /etc/passwd; cd ..; pwd").edit(|c| c["process"]["cwd"] = json!("/../../../"));
    let out = Rt::new().run(&b).ok();
    assert_eq!(out.stdout, "/\n/etc/passwd\n/\n");
}

/// A mount destination that is a symlink in the rootfs pointing to an
/// absolute host path (via "/../../..") is resolved inside the rootfs: the
/// mount appears at that path inside the container, and the host directory
/// is left alone.
#[test]
fn symlinked_mount_destination_stays_in_rootfs() {
    if !common::require_root() {
        return;
    }
    let victim = common::host_dir();
    let victim_path = victim.path().to_str().unwrap().to_string();
    let b = Bundle::sh("mnt-symlink", "touch /evil/x; cat /proc/self/mounts").mount(json!({
        "destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]
    }));
    symlink(format!("/../../..{victim_path}"), b.rootfs().join("evil")).unwrap();
    let out = Rt::new().run(&b).ok().stdout;
    // The tmpfs landed on <rootfs>/<victim path>, seen inside at that path.
    assert!(out.lines().any(|l| l.split_whitespace().nth(1) == Some(victim_path.as_str())), "{out}");
    assert_eq!(fs::read_dir(victim.path()).unwrap().count(), 0);
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&victim_path), "{mounts}");
}

/// Same with a relative symlink climbing out with "../../..".
#[test]
fn relative_symlinked_mount_destination_stays_in_rootfs() {
    if !common::require_root() {
        return;
    }
    let victim = common::host_dir();
    let victim_path = victim.path().to_str().unwrap().to_string();
    let source = common::host_dir();
    fs::write(source.path().join("marker"), "m").unwrap();
    let b = Bundle::sh("mnt-relsym", "ls /up/marker; cat /proc/self/mounts").bind(source.path(), "/up", &["ro"]);
    symlink(format!("../../../../../../../..{victim_path}"), b.rootfs().join("up")).unwrap();
    let out = Rt::new().run(&b).ok().stdout;
    assert!(out.starts_with("/up/marker\n"), "{out}");
    assert!(out.lines().any(|l| l.split_whitespace().nth(1) == Some(victim_path.as_str())), "{out}");
    assert_eq!(fs::read_dir(victim.path()).unwrap().count(), 0);
}

/// procfs must be mounted on a real directory: a /proc that is a symlink
/// (which could redirect the mount to a host path) makes create fail.
#[test]
fn proc_on_symlink_is_refused() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("proc-symlink", &["true"]);
    fs::remove_dir(b.rootfs().join("proc")).unwrap();
    fs::create_dir(b.rootfs().join("fakeproc")).unwrap();
    symlink("/fakeproc", b.rootfs().join("proc")).unwrap();
    let (out, _c) = rt.try_create(&b, &[]);
    out.failed();
    common::assert_no_leftovers(&rt, &b);
    assert_eq!(fs::read_dir(b.rootfs().join("fakeproc")).unwrap().count(), 0);
}

/// `--no-pivot` leaves the host's root in the mount namespace; its full /proc and
/// /sys would let a nested user namespace mount a fresh procfs or sysfs (the kernel
/// only allows that when one is already fully visible). They are detached first, as
/// runc does, so both mounts are refused as they are in a pivoted container.
#[test]
fn no_pivot_hides_host_proc_and_sys() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh(
        "nopivot-proc",
        "unshare -Ur true && echo userns-ok; \
         unshare -Urpf --mount-proc true 2>/dev/null && echo proc-mounted; \
         unshare -Urnm sh -c 'mount -t sysfs sysfs /sys' 2>/dev/null && echo sys-mounted; \
         echo done",
    )
    .edit(|c| common::add_caps(c, &["CAP_SETFCAP", "CAP_SYS_ADMIN"]));
    for extra in [&["--no-pivot"][..], &[]] {
        let out = Rt::new().run_with(&b, extra).ok().stdout;
        assert_eq!(out, "userns-ok\ndone\n", "{extra:?}");
    }
}

/// A full procfs covered by another mount at the same mount point (here a tmpfs)
/// is hidden too under `--no-pivot`: a path reaches only the cover, so the mounts
/// there are detached until the procfs itself is gone, not just its cover (which
/// would uncover it). runc 1.1.5 detaches the cover only.
#[test]
fn no_pivot_hides_a_covered_proc() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let dir = common::host_dir();
    let p = dir.path().join("proc");
    fs::create_dir(&p).unwrap();
    let _mounts = common::UnmountAt(p.clone());
    let ps = p.to_str().unwrap();
    common::host("mount", &["-t", "proc", "proc", ps]).ok();
    common::host("mount", &["-t", "tmpfs", "cover", ps]).ok();
    let b = Bundle::sh("nopivot-cover", "unshare -Urpf --mount-proc true 2>/dev/null && echo proc-mounted; echo done")
        .edit(|c| common::add_caps(c, &["CAP_SETFCAP", "CAP_SYS_ADMIN"]));
    let out = Rt::new().run_with(&b, &["--no-pivot"]).ok().stdout;
    assert_eq!(out, "done\n");
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(mi.matches(&format!(" {ps} ")).count(), 2, "the host's mounts at {ps} are untouched: {mi}");
}

/// The container cannot see or signal host processes.
#[test]
fn host_processes_are_invisible() {
    if !common::require_root() {
        return;
    }
    let me = std::process::id();
    let b = Bundle::sh(
        "hostpid",
        &format!("test -e /proc/{me} && echo visible; kill -0 {me} 2>/dev/null && echo signalled; echo done"),
    );
    assert_eq!(Rt::new().run(&b).ok().stdout, "done\n");
}

/// Harness check: the fd handed to the runtime by `with_inherited_fd` really
/// is inherited across exec (so the leak tests above can fail).
#[test]
fn inherited_fd_helper_passes_fd() {
    if !common::require_root() {
        return;
    }
    let null = fs::File::open("/dev/null").unwrap();
    let mut cmd = std::process::Command::new("/bin/ls");
    cmd.arg("/proc/self/fd");
    common::with_inherited_fd(&mut cmd, null.as_raw_fd(), 9);
    let out = common::run_cmd(cmd, common::TIMEOUT).ok();
    assert!(fds(&out.stdout).contains(&9), "{out:?}");
}

/// CVE-2019-5736: until the init execs, it runs the runtime's binary (a
/// protected copy), so `/proc/<init>/exe` leads there. A second container joined to the
/// first one's user and pid namespaces, with every capability of that user
/// namespace (CAP_SYS_PTRACE included), must still not open it: the init is
/// non-dumpable (capsa sets it explicitly; the kernel also clears dumpability when
/// the init switches to the mapped root), and opening a non-dumpable process's exe
/// needs CAP_SYS_PTRACE in the namespace its memory belongs to: the host's. Fails if
/// the runtime ever makes its init dumpable again before exec (as some runtimes do
/// to reach /proc/self).
#[test]
fn runtime_binary_unreachable_from_container() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let rt = Rt::new();
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // A created (not started) container: its init is still the runtime binary.
    let a = Bundle::new("exe-guard-a", &["/bin/true"]).edit(|c| {
        common::add_ns(c, json!({"type": "user"}));
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map.clone();
    });
    common::host("chown", &["-hR", "100000:100000", a.rootfs().to_str().unwrap()]).ok();
    let _ca = rt.create(&a);
    let pid_a = rt.pid(&a.id);
    // Its binary, as the host sees it: capsa's protected copy, not the installed
    // file (runc's init runs from a memfd too).
    let exe = fs::metadata(format!("/proc/{pid_a}/exe")).unwrap();
    assert_ne!(dev_ino(&exe), dev_ino(&fs::metadata(common::runtime()).unwrap()));
    let b = Bundle::sh(
        "exe-guard-b",
        "head -c 4 /proc/1/exe >/dev/null && echo EXE-OPENED; grep CapEff /proc/self/status; echo done",
    )
    .edit(|c| {
        let all: Vec<String> = (0..=40).filter_map(cap_name).collect();
        let all: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
        common::set_caps(c, &all);
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            match n["type"].as_str().unwrap() {
                "pid" => n["path"] = json!(format!("/proc/{pid_a}/ns/pid")),
                "network" => n["path"] = json!(format!("/proc/{pid_a}/ns/net")),
                _ => {}
            }
        }
        common::add_ns(c, json!({"type": "user", "path": format!("/proc/{pid_a}/ns/user")}));
    });
    common::host("chown", &["-hR", "100000:100000", b.rootfs().to_str().unwrap()]).ok();
    let out = rt.run(&b).ok().stdout;
    assert!(out.contains("done"), "{out}");
    assert!(out.contains("CapEff:\t000001ffffffffff"), "B must hold every capability: {out}");
    assert!(!out.contains("EXE-OPENED"), "a container opened the runtime binary: {out}");
}

fn cap_name(n: u32) -> Option<String> {
    const NAMES: [&str; 41] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    NAMES.get(n as usize).map(|s| format!("CAP_{s}"))
}

/// What the syscall helper reports inside a container running `profile` (with
/// no_new_privs, so the filter is loaded right before exec and only the helper's
/// own syscalls need allowing).
fn syscalls_under(profile: serde_json::Value, calls: &[&str]) -> String {
    syscalls_under_in(&Rt::new(), profile, calls)
}

fn syscalls_under_in(rt: &Rt, profile: serde_json::Value, calls: &[&str]) -> String {
    let mut args = vec!["/h/syscall"];
    args.extend_from_slice(calls);
    let b = Bundle::new("seccomp-nosys", &args)
        .edit(|c| {
            c["process"]["noNewPrivileges"] = json!(true);
            c["linux"]["seccomp"] = profile;
        })
        .bind(syscall_helper::dir(), "/h", &["ro"]);
    rt.run(&b).ok().stdout
}

/// What the static syscall helper needs to start and print, plus what runc's Go
/// init does after loading the filter (to compare with runc), and capsa's init
/// (send/recv on its sync channel before Ready). x86_64 names; the
/// highest is rseq (334).
const HELPER_SYSCALLS: &str =
    "execve arch_prctl brk exit_group exit getpid getrandom ioctl mprotect mmap munmap newfstatat fstat \
     prlimit64 readlink rseq set_robust_list set_tid_address write uname close futex rt_sigprocmask \
     rt_sigaction rt_sigreturn sigaltstack nanosleep sched_yield getppid gettid tgkill fcntl epoll_ctl \
     epoll_pwait epoll_create1 read openat madvise clone pipe2 dup3 getdents64 statfs fstatfs lseek \
     getuid geteuid getgid getegid readlinkat faccessat access waitid wait4 kill socket connect sendmsg \
     recvmsg sendto recvfrom writev pread64 setns unshare capget capset prctl setgroups setresuid setresgid chdir fchdir \
     getcwd umask";

/// runc's ENOSYS stub: with an ERRNO default, a syscall above the highest one the
/// profile names (for its architectures) gets ENOSYS, so glibc falls back
/// (faccessat2 → faccessat, clone3 → clone); a syscall below it that the profile
/// does not allow keeps the default EPERM. Without `architectures` there is no
/// stub (runc's rule), and a KILL default answers ENOSYS too instead of killing.
#[test]
#[cfg(target_arch = "x86_64")]
fn seccomp_newer_syscalls_get_enosys() {
    if !common::require_root() {
        return;
    }
    // rseq (334) is the highest syscall the profile names.
    let profile = |default: &str, arches: bool| {
        let names: Vec<&str> = HELPER_SYSCALLS.split_whitespace().collect();
        let mut p = json!({"defaultAction": default, "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]});
        if arches {
            p["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
        }
        p
    };
    // getpid (39): allowed; keyctl (250): known, not allowed; faccessat2 (439) and
    // 1000: above the profile's highest; x32's 1000 (bit 30 set; x32 has its own
    // maximum: set_robust_list is x32's 530, so x32's faccessat2 stays EPERM, as in runc).
    let calls = ["39", "250,0,-3", "439,-100,0,0,0", "1000", "0x400003e8", "0x400001b7"];
    let out = syscalls_under(profile("SCMP_ACT_ERRNO", true), &calls);
    let r = |c| syscall_helper::result_of(&out, c);
    assert_eq!(r("39"), None, "{out}");
    assert_eq!(r("250,0,-3"), Some(libc::EPERM), "{out}");
    assert_eq!(r("439,-100,0,0,0"), Some(libc::ENOSYS), "{out}");
    assert_eq!(r("1000"), Some(libc::ENOSYS), "{out}");
    assert_eq!(r("0x400003e8"), Some(libc::ENOSYS), "{out}");
    assert_eq!(r("0x400001b7"), Some(libc::EPERM), "{out}");

    // (No x32 call here: without X32 in the filter, libseccomp kills it as a bad arch.)
    let out = syscalls_under(profile("SCMP_ACT_ERRNO", false), &calls[..4]);
    let r = |c| syscall_helper::result_of(&out, c);
    assert_eq!((r("250,0,-3"), r("1000")), (Some(libc::EPERM), Some(libc::EPERM)), "no architectures, no stub: {out}");

    let out = syscalls_under(profile("SCMP_ACT_KILL_PROCESS", true), &["1000", "39"]);
    let r = |c| syscall_helper::result_of(&out, c);
    assert_eq!((r("1000"), r("39")), (Some(libc::ENOSYS), None), "{out}");
}
/// capsa compiles a profile once per state root (`<root>/.seccomp-cache/`, which
/// `list` does not show); a damaged cache entry is not used but replaced.
#[test]
#[cfg(target_arch = "x86_64")]
fn seccomp_programs_are_cached() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let rt = Rt::new();
    let names: Vec<&str> = HELPER_SYSCALLS.split_whitespace().collect();
    let profile = json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                         "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]});
    let check = |out: &str| {
        assert_eq!(syscall_helper::result_of(out, "39"), None, "{out}");
        assert_eq!(syscall_helper::result_of(out, "250,0,-3"), Some(libc::EPERM), "{out}");
        assert_eq!(syscall_helper::result_of(out, "1000"), Some(libc::ENOSYS), "{out}");
    };
    let cache = rt.root().join(".seccomp-cache");
    let entries = || -> Vec<std::path::PathBuf> { fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect() };
    check(&syscalls_under_in(&rt, profile.clone(), &["39", "250,0,-3", "1000"]));
    let files = entries();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(rt.list_ids().is_empty());
    let good = fs::read(&files[0]).unwrap();
    check(&syscalls_under_in(&rt, profile.clone(), &["39", "250,0,-3", "1000"]));
    // Damaged (the last instruction, before the checksum, made `ret ALLOW`): not
    // used, recompiled and rewritten.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 16..n - 8].copy_from_slice(&[6, 0, 0, 0, 0, 0, 0xff, 0x7f]);
    fs::write(&files[0], &bad).unwrap();
    check(&syscalls_under_in(&rt, profile, &["39", "250,0,-3", "1000"]));
    assert_eq!(entries(), files);
    assert_eq!(fs::read(&files[0]).unwrap(), good);
}

/// A host without AppArmor or SELinux (this one, and CI's): runc refuses a config
/// that asks for an AppArmor profile, an SELinux process label or a mount label
/// (exit 1, nothing left behind); so does capsa, naming the field. Skipped on a
/// host that has the LSM.
#[test]
fn lsm_labels_without_the_lsm_are_refused() {
    if !common::require_root() {
        return;
    }
    let apparmor = std::path::Path::new("/sys/kernel/security/apparmor").exists();
    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    let cases: [(&str, &str, &str, bool); 3] = [
        ("process", "apparmorProfile", "docker-default", apparmor),
        ("process", "selinuxLabel", "system_u:system_r:container_t:s0", selinux),
        ("linux", "mountLabel", "system_u:object_r:container_file_t:s0", selinux),
    ];
    let rt = Rt::new();
    for (section, field, value, host_has_it) in cases {
        if host_has_it {
            eprintln!("skipping {field}: the host has the LSM");
            continue;
        }
        let b = Bundle::new("lsm", &["true"]).edit(|c| c[section][field] = json!(value));
        let out = rt.run(&b);
        assert_eq!(out.code, 1, "{field}: {out:?}");
        if common::is_capsa() {
            assert!(out.stderr.contains(&format!("{section}.{field}")), "{field}: {}", out.stderr);
            common::assert_no_leftovers(&rt, &b);
        }
    }
}

/// `exec --apparmor` and `exec --process-label` on a host without the LSM fail
/// as runc's do (runc: exit 255 with "apparmor failed to apply profile" / "selinux
/// label is specified ... but selinux is disabled"), and the container runs on.
#[test]
fn exec_lsm_flags_without_the_lsm_fail() {
    if !common::require_root() {
        return;
    }
    if std::path::Path::new("/sys/kernel/security/apparmor").exists()
        || std::path::Path::new("/sys/fs/selinux/enforce").exists()
    {
        eprintln!("skipping: the host has an LSM");
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("lsm-exec", &["sleep", "30"]);
    let _c = rt.start_new(&b);
    for flag in [["--apparmor", "docker-default"], ["--process-label", "system_u:system_r:container_t:s0"]] {
        let out = rt.exec(&b.id, &flag, &["true"]);
        assert_ne!(out.code, 0, "{flag:?}: {out:?}");
        if common::is_capsa() {
            let what = if flag[0] == "--apparmor" { "AppArmor" } else { "SELinux" };
            assert!(out.stderr.contains(what), "{flag:?}: {}", out.stderr);
        }
    }
    // An empty value means "none", as in runc.
    rt.exec(&b.id, &["--apparmor", ""], &["true"]).ok();
    assert_eq!(rt.status(&b.id), "running");
}

fn dev_ino(m: &fs::Metadata) -> String {
    format!("{}:{}", m.dev(), m.ino())
}

/// sha256 of a host file, with sha256sum(1).
fn sha256(p: &Path) -> String {
    common::host("sha256sum", &[p.to_str().unwrap()]).ok().stdout.split_whitespace().next().unwrap().to_string()
}

/// Makes `rootfs` a trap for the runtime binary, so that a runtime binary exec'd
/// inside the container (`#!/proc/self/exe`, `exec /proc/self/exe`) stays alive,
/// blocked, until killed: a process whose `/proc/<pid>/exe` is the runtime binary
/// as the container reaches it. A dynamically linked runtime blocks in its
/// loader: the host's ELF loader is copied in and every shared library it needs
/// is a FIFO. A statically linked one (capsa's own build) blocks opening its log:
/// `/trap` is a FIFO and the callers run it as `/proc/self/exe --log /trap`.
fn trap_rootfs(rootfs: &Path) {
    common::host("mkfifo", &[rootfs.join("trap").to_str().unwrap()]).ok();
    let rt = common::runtime();
    let ldd = common::host("ldd", &[rt.to_str().unwrap()]);
    if ldd.stdout.contains("statically linked") || ldd.stderr.contains("not a dynamic executable") {
        return;
    }
    let ldd = ldd.ok().stdout;
    let mut libs = Vec::new();
    let mut loader = None;
    for l in ldd.lines().map(str::trim) {
        match l.split_once(" => ") {
            Some((name, _)) => libs.push(name.to_string()),
            None if l.starts_with('/') => loader = l.split_whitespace().next().map(str::to_string),
            None => {}
        }
    }
    let loader = loader.unwrap_or_else(|| panic!("{} is not dynamically linked: {ldd}", rt.display()));
    assert!(!libs.is_empty(), "no libraries in: {ldd}");
    let dst = rootfs.join(loader.trim_start_matches('/'));
    fs::create_dir_all(dst.parent().unwrap()).unwrap();
    fs::copy(&loader, &dst).unwrap();
    for dir in ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64", "lib", "usr/lib"] {
        fs::create_dir_all(rootfs.join(dir)).unwrap();
        for lib in &libs {
            common::host("mkfifo", &[rootfs.join(dir).join(lib).to_str().unwrap()]).ok();
        }
    }
}

/// Run inside the container with T = the pid of the trapped runtime process:
/// keep an fd of its binary, kill it, wait until it no longer runs the binary,
/// then reopen that fd for writing (CVE-2019-5736's last step) and, when that is
/// not the host's file itself (a copy), write to it. The host's binary is never
/// written to: opening it for appending changes nothing, and that is reported.
const REACH_FOR_THE_BINARY: &str = r#"
while [ -z "$T" ]; do
  for p in /proc/[0-9]*; do
    case "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" in "/proc/self/exe"*) T=${p#/proc/};; esac
  done
  [ -n "$T" ] || sleep 0.05
done
exec 3< /proc/$T/exe || { echo NO-OPEN > /out/result; exit 0; }
id=$(stat -L -c %d:%i /proc/self/fd/3)
kill -9 $T
while readlink /proc/$T/exe >/dev/null 2>&1; do sleep 0.01; done
res=$( (exec 4>>/proc/self/fd/3 || exit 3
        if [ "$id" = "$HOSTBIN" ]; then echo HOST-BINARY-WRITABLE; exit 0; fi
        echo -n x >&4 || exit 4
        echo COPY-WRITABLE) 2>&1 )
case "$res" in
  *WRITABLE*) echo "REACHED $id $res" ;;
  *) echo "WRITE-REFUSED $id $res" ;;
esac > /out/result
"#;

/// Waits for the in-container check's verdict.
fn verdict(out: &Path) -> String {
    let f = out.join("result");
    let ok = common::wait_until(common::TIMEOUT, || fs::read_to_string(&f).is_ok_and(|s| s.ends_with('\n')));
    assert!(ok, "the in-container check never reported");
    fs::read_to_string(&f).unwrap()
}

fn assert_binary_safe(verdict: &str, sum_before: &str, ino_before: &str) {
    assert!(verdict.starts_with("WRITE-REFUSED"), "the container reached the runtime binary: {verdict}");
    // Busy means someone still runs that very file: no protection of its own.
    assert!(!verdict.to_lowercase().contains("busy"), "refused only while in use: {verdict}");
    let rt = common::runtime();
    assert_eq!(dev_ino(&fs::metadata(&rt).unwrap()), ino_before, "the runtime binary was replaced");
    assert_eq!(sha256(&rt), sum_before, "the runtime binary changed");
}

/// A container whose entry point is a script starting `#!/proc/self/exe`: the
/// kernel runs the binary the init execs from, inside the container. Another
/// process of the container keeps an fd to it and, once it is gone, reopens it
/// for writing. It must hold a file other than the host's binary, and writing
/// must be refused. No pid namespace, so that process outlives the init.
#[test]
fn shebang_proc_self_exe_entrypoint_cannot_write_runtime() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let out = common::host_dir();
    let bin = common::runtime();
    let (sum, ino) = (sha256(&bin), dev_ino(&fs::metadata(&bin).unwrap()));
    let b = Bundle::new("exe-shebang", &["/entry", "--log", "/trap"]).edit(|c| common::without_ns(c, "pid")).bind(
        out.path(),
        "/out",
        &[],
    );
    trap_rootfs(&b.rootfs());
    // Run as `/proc/self/exe --log /entry --log /trap`: the last --log counts.
    fs::write(b.rootfs().join("entry"), "#!/proc/self/exe --log\n").unwrap();
    fs::set_permissions(b.rootfs().join("entry"), fs::Permissions::from_mode(0o755)).unwrap();
    let _c = rt.start_new(&b);
    let init = rt.pid(&b.id).to_string();
    let env_t = format!("T={init}");
    let env_bin = format!("HOSTBIN={ino}");
    rt.exec(&b.id, &["-d", "--env", &env_t, "--env", &env_bin], &["sh", "-c", REACH_FOR_THE_BINARY]).ok();
    assert_binary_safe(&verdict(out.path()), &sum, &ino);
}

/// A process exec'd into the container as `/proc/self/exe`: the exec'd child
/// runs the runtime's binary inside the container. The container's init keeps
/// an fd to it, kills it, and reopens the fd for writing.
#[test]
fn exec_of_proc_self_exe_cannot_write_runtime() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let out = common::host_dir();
    let bin = common::runtime();
    let (sum, ino) = (sha256(&bin), dev_ino(&fs::metadata(&bin).unwrap()));
    let b = Bundle::sh("exe-exec", REACH_FOR_THE_BINARY)
        .edit(|c| c["process"]["env"].as_array_mut().unwrap().push(json!(format!("HOSTBIN={ino}"))))
        .bind(out.path(), "/out", &[]);
    trap_rootfs(&b.rootfs());
    let _c = rt.start_new(&b);
    // -d: the runtime returns once the process runs (blocked in the loader, or
    // opening its log).
    rt.exec(&b.id, &["-d"], &["/proc/self/exe", "--log", "/trap"]).ok();
    assert_binary_safe(&verdict(out.path()), &sum, &ino);
}

/// Spawns `RT args...` (whose container process is `sleep 20`) with every
/// capability but CAP_SYS_PTRACE, waits for its child `sleep`, and tells whether
/// a host process with the same uid and capabilities can resolve
/// `/proc/<pid>/exe` of (the runtime, its child). Without CAP_SYS_PTRACE that
/// works for dumpable processes only.
fn exe_links_resolvable(rt: &Rt, args: &[&str]) -> (bool, bool) {
    const CAP_SYS_PTRACE: libc::c_ulong = 19;
    fn without_ptrace(c: &mut std::process::Command) {
        // SAFETY: prctl with integer arguments, in the forked child before exec.
        unsafe {
            c.pre_exec(|| {
                if libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let resolvable = |pid: u32| {
        let mut c = std::process::Command::new("readlink");
        c.arg(format!("/proc/{pid}/exe"));
        without_ptrace(&mut c);
        common::run_cmd(c, common::TIMEOUT).success()
    };
    let mut cmd = rt.command(args);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
    without_ptrace(&mut cmd);
    let mut runtime = cmd.spawn().unwrap();
    let pid = runtime.id();
    let mut child = None;
    common::wait_until(Duration::from_secs(10), || {
        let kids = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        child = kids
            .split_whitespace()
            .filter_map(|k| k.parse::<u32>().ok())
            .find(|k| fs::read_to_string(format!("/proc/{k}/cmdline")).is_ok_and(|c| c.starts_with("sleep\0")));
        child.is_some()
    });
    let child = child.expect("the container's process never appeared");
    let seen = (resolvable(pid), resolvable(child));
    let _ = runtime.kill();
    let _ = runtime.wait();
    seen
}

/// `exec` is non-dumpable from before it joins the container's pid namespace
/// (its child is born there and inherits it) until it exits, and so is `run`
/// (its init may be born into a joined pid namespace). The container's process,
/// dumpable after its execve, shows that the observer could see it otherwise.
#[test]
fn runtime_is_not_dumpable_while_it_forks_container_processes() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("exec-dumpable", &["sleep", "30"]);
    let _c = rt.start_new(&b);
    let (runtime, child) = exe_links_resolvable(&rt, &["exec", &b.id, "sleep", "20"]);
    assert!(child, "the observer cannot see even a dumpable process: the check proves nothing");
    assert!(!runtime, "capsa exec is dumpable while it waits in the container's pid namespace");

    let r = Bundle::new("run-dumpable", &["sleep", "20"]);
    let _g = rt.guard(&r);
    let (runtime, child) = exe_links_resolvable(&rt, &["run", "--bundle", r.path_str(), &r.id]);
    assert!(child, "the observer cannot see even a dumpable process: the check proves nothing");
    assert!(!runtime, "capsa run is dumpable while its init is set up");
}

/// When no overlayfs can show the binary (here: it was deleted after it
/// started, as in an upgrade), capsa copies itself into a sealed memfd: the
/// init of a created container runs from `memfd:capsa`, and the container
/// works as usual.
#[test]
fn sealed_memfd_copy_when_no_overlayfs_can_be_made() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("capsa");
    fs::copy(common::runtime(), &copy).unwrap();
    let keep = fs::File::open(&copy).unwrap();
    fs::remove_file(&copy).unwrap();
    let rt = Rt::new();
    let b = Bundle::new("exe-memfd", &["true"]);
    let _c = rt.guard(&b);
    let mut cmd = std::process::Command::new("/proc/self/fd/9");
    cmd.arg("--root").arg(rt.root()).args(["create", "--bundle", b.path_str(), &b.id]);
    common::with_inherited_fd(&mut cmd, keep.as_raw_fd(), 9);
    common::run_cmd(cmd, common::TIMEOUT).ok();
    let init = rt.pid(&b.id);
    let exe = fs::read_link(format!("/proc/{init}/exe")).unwrap();
    assert!(exe.to_string_lossy().starts_with("/memfd:capsa"), "init runs from {}", exe.display());
    rt.cmd(&["start", &b.id]).ok();
    rt.wait_status(&b.id, "stopped");
}
