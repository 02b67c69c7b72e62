//! The container process: args/env/cwd, user and groups, umask, rlimits,
//! capabilities, no_new_privs, OOM score, seccomp, terminal and stdio.

mod common;

use common::{Bundle, Rt};
use serde_json::{json, Value};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

fn run(b: &Bundle) -> String {
    Rt::new().run(b).ok().stdout
}

/// Value of a `Key:\tvalue` line of /proc/self/status as printed inside.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} missing from {status}"))
        .trim()
}

#[test]
fn args_env_and_cwd() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::new("args", &["sh", "-c", "echo \"$0|$1|$FOO\"; pwd", "zero", "one two"]).edit(|c| {
        c["process"]["env"] = json!(["PATH=/bin:/usr/bin", "FOO=bar baz"]);
        c["process"]["cwd"] = json!("/etc");
    });
    assert_eq!(run(&b), "zero|one two|bar baz\n/etc\n");
}

/// Only the spec's env reaches the process; nothing leaks from the runtime's
/// own environment.
#[test]
fn env_is_exactly_the_spec_env() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::new("env", &["env"]).edit(|c| c["process"]["env"] = json!(["PATH=/bin:/usr/bin", "A=1"]));
    let rt = Rt::new();
    let mut cmd = rt.command(&["run", "--bundle", b.path_str(), &b.id]);
    cmd.env("CAPSA_LEAK_CHECK", "leaked");
    let _guard = rt.guard(&b);
    let out = common::run_cmd(cmd, common::TIMEOUT).ok();
    let mut vars: Vec<&str> = out.stdout.lines().collect();
    vars.sort();
    // runc adds HOME (from /etc/passwd) when the spec has none.
    vars.retain(|v| !v.starts_with("HOME="));
    assert_eq!(vars, ["A=1", "PATH=/bin:/usr/bin"]);
}

/// A missing cwd is created by the runtime.
#[test]
fn missing_cwd_is_created() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("cwd-new", "pwd").edit(|c| c["process"]["cwd"] = json!("/work/dir"));
    assert_eq!(run(&b), "/work/dir\n");
    assert!(b.rootfs().join("work/dir").is_dir());
}

#[test]
fn user_uid_gid_and_additional_gids() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("user", "id -u; id -g; grep -E '^(Uid|Gid|Groups):' /proc/self/status")
        .edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 65534]}));
    let out = run(&b);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1000"));
    assert_eq!(lines.next(), Some("1000"));
    let rest: String = lines.collect::<Vec<_>>().join("\n");
    // Real, effective, saved and fs ids all switched.
    assert_eq!(status_field(&rest, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&rest, "Gid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&rest, "Groups"), "5 65534");
}

/// Without additionalGids the supplementary group list is empty (root's
/// host groups are dropped).
#[test]
fn supplementary_groups_empty_by_default() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("groups", "grep '^Groups:' /proc/self/status")
        .edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    assert_eq!(status_field(&run(&b), "Groups"), "");
}

#[test]
fn umask_from_spec() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("umask", "umask; touch /tmp/f; stat -c %a /tmp/f")
        .edit(|c| c["process"]["user"]["umask"] = json!(0o027));
    assert_eq!(run(&b), "0027\n640\n");
}

#[test]
fn rlimit_nofile() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("rlimit", "ulimit -Sn; ulimit -Hn")
        .edit(|c| c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}]));
    assert_eq!(run(&b), "512\n512\n");
}

/// Soft limit below the hard one; a second rlimit type too.
#[test]
fn rlimit_soft_below_hard_and_nproc() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("rlimit2", "ulimit -Sn; ulimit -Hn; ulimit -Su").edit(|c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 1024},
            {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400}
        ])
    });
    assert_eq!(run(&b), "256\n1024\n300\n");
}

/// Prints the capability sets (hex bit masks) from /proc/self/status.
const CAPS: &str = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status";

#[test]
fn capabilities_only_chown() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh(
        "caps",
        &format!(
            "{CAPS}; touch /tmp/f; chown 1000 /tmp/f && echo chown-ok; \
             mknod /tmp/n c 1 3 || echo mknod-denied"
        ),
    )
    .edit(|c| common::set_caps(c, &["CAP_CHOWN"]));
    let out = run(&b);
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&out, set), "0000000000000001", "{set}: {out}");
    }
    // CAP_CHOWN works, CAP_MKNOD is gone.
    assert!(out.contains("chown-ok\n"), "{out}");
    assert!(out.contains("mknod-denied\n"), "{out}");
}

/// The default spec grants CAP_AUDIT_WRITE(29), CAP_KILL(5) and
/// CAP_NET_BIND_SERVICE(10), nothing else.
#[test]
fn capabilities_default_spec() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("caps-default", CAPS);
    let out = run(&b);
    let want = format!("{:016x}", (1u64 << 29) | (1 << 5) | (1 << 10));
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(status_field(&out, set), want, "{set}: {out}");
    }
}

/// A non-root user keeps the spec's effective caps only via ambient caps.
#[test]
fn capabilities_for_non_root_user() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("caps-user", CAPS).edit(|c| {
        common::set_caps(c, &["CAP_KILL"]);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let out = run(&b);
    for set in ["CapPrm", "CapEff", "CapAmb", "CapBnd"] {
        assert_eq!(status_field(&out, set), "0000000000000020", "{set}: {out}");
    }
}

#[test]
fn no_new_privileges() {
    if !common::require_root() {
        return;
    }
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let b = Bundle::sh("nnp", "grep NoNewPrivs /proc/self/status")
            .edit(|c| c["process"]["noNewPrivileges"] = json!(nnp));
        assert_eq!(status_field(&run(&b), "NoNewPrivs"), want, "nnp={nnp}");
    }
}

#[test]
fn oom_score_adj() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("oom", "cat /proc/self/oom_score_adj").edit(|c| c["process"]["oomScoreAdj"] = json!(500));
    assert_eq!(run(&b), "500\n");
}

/// One oom_score_adj policy for `create` and `exec`, runc's: the new process writes
/// it before joining any namespace, and a failed write fails the spawn. Lowering it
/// below what a privileged writer set needs CAP_SYS_RESOURCE: where a child of ours
/// can (as `sh` shows), both give the process the value; where it cannot (root
/// without CAP_SYS_RESOURCE), both fail with the same error and hint, and a failed
/// exec leaves the container running.
#[test]
fn oom_score_adj_below_ours_same_for_create_and_exec() {
    if !common::require_root() {
        return;
    }
    let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap().trim().parse().unwrap();
    if own <= -1000 {
        return; // nothing lies below
    }
    let low = (own - 10).max(-1000);
    let can = common::host("sh", &["-c", &format!("echo {low} > /proc/self/oom_score_adj")]).success();
    let failure = format!("write \"{low}\" to /proc/self/oom_score_adj");
    let check = |what: &str, out: &common::Output, fail_code: i32| {
        if can {
            assert_eq!(out.stdout, format!("{low}\n"), "{what}: {out:?}");
        } else {
            assert_eq!(out.code, fail_code, "{what}: {out:?}");
            assert!(out.stderr.contains(&failure), "{what}: {out:?}");
            assert!(out.stderr.contains("EACCES"), "{what}: {out:?}");
            assert!(out.stderr.contains("lowering oom_score_adj needs CAP_SYS_RESOURCE"), "{what}: {out:?}");
        }
    };

    let rt = Rt::new();
    let b = Bundle::sh("oom-low", "cat /proc/self/oom_score_adj").edit(|c| c["process"]["oomScoreAdj"] = json!(low));
    check("create", &rt.run(&b), 1);
    assert!(rt.try_state(&b.id).is_none(), "a failed create leaves no container");

    let b = Bundle::new("oom-low-exec", &["sleep", "30"]);
    let _c = rt.start_new(&b);
    let mut process = b.config["process"].clone();
    process["args"] = json!(["cat", "/proc/self/oom_score_adj"]);
    process["oomScoreAdj"] = json!(low);
    let pf = b.path().join("process.json");
    std::fs::write(&pf, process.to_string()).unwrap();
    check("exec", &rt.exec(&b.id, &["--process", pf.to_str().unwrap()], &[]), 255);
    assert_eq!(rt.status(&b.id), "running", "a failed exec leaves the container running");
}

fn seccomp(c: &mut Value, syscalls: Value) {
    c["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": syscalls
    });
}

/// An errno rule makes the kernel fail the syscall with errnoRet (1 = EPERM)
/// while everything else is allowed.
#[test]
fn seccomp_errno_rule() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("seccomp", "mkdir /tmp/x 2>&1; touch /tmp/y && echo touch-ok")
        .edit(|c| seccomp(c, json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}])));
    let out = run(&b);
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.ends_with("touch-ok\n"), "{out}");
    assert!(!b.rootfs().join("tmp/x").exists());
}

/// A rule with an argument condition only matches when the argument
/// compares equal: chmod to 0777 fails, chmod to 0755 works.
#[test]
fn seccomp_rule_with_arg_condition() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh(
        "seccomp-args",
        "touch /tmp/f; chmod 755 /tmp/f && echo 755-ok; chmod 777 /tmp/f 2>&1; stat -c %a /tmp/f",
    )
    .edit(|c| {
        seccomp(
            c,
            json!([
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 1, "value": 0o777, "op": "SCMP_CMP_EQ"}]},
                {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 2, "value": 0o777, "op": "SCMP_CMP_EQ"}]}
            ]),
        )
    });
    let out = run(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "755-ok", "{out}");
    // errnoRet 13 = EACCES.
    assert!(lines[1].contains("Permission denied"), "{out}");
    assert_eq!(lines[2], "755", "{out}");
}

/// SCMP_ACT_ERRNO without errnoRet defaults to EPERM.
#[test]
fn seccomp_errno_default_is_eperm() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("seccomp-def", "mkdir /tmp/x 2>&1")
        .edit(|c| seccomp(c, json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}])));
    let out = Rt::new().run(&b);
    assert!(out.stdout.contains("Operation not permitted"), "{out:?}");
}

/// Receives one fd sent with SCM_RIGHTS on `stream`.
fn recv_fd(stream: &UnixStream) -> OwnedFd {
    let mut buf = [0u8; 4096];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut cmsg = [0u64; 16];
    // SAFETY: msghdr is plain C data: all-zero (null pointers, zero lengths) is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg);
    // SAFETY: `msg` points to `iov` (over `buf`) and to `cmsg` with their true lengths, all live locals.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    // SAFETY: `msg` describes the live `cmsg`; `c` is checked non-null and SCM_RIGHTS before its data
    // (one int, inside `cmsg`) is read unaligned; the received fd is new and owned by nothing else.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        assert!(!c.is_null(), "no control message on the console socket");
        assert_eq!((*c).cmsg_level, libc::SOL_SOCKET);
        assert_eq!((*c).cmsg_type, libc::SCM_RIGHTS);
        OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const i32))
    }
}

/// Reads from `fd` until `want` appears or the deadline passes.
fn read_until(fd: &OwnedFd, want: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while Instant::now() < deadline && !String::from_utf8_lossy(&got).contains(want) {
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `pfd` is one live local pollfd, the count passed.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            continue;
        }
        let mut buf = [0u8; 1024];
        // SAFETY: `buf` is a live local buffer of `buf.len()` writable bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        got.extend_from_slice(&buf[..n as usize]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Runs `f` (a runtime call given the path of a console socket, which it must
/// connect to) while accepting on that socket; returns what `f` returned and
/// the pty master the runtime sent.
fn with_console_socket<T: Send>(f: impl FnOnce(&str) -> T + Send) -> (T, OwnedFd) {
    let sockdir = tempfile::tempdir().unwrap();
    let sock = sockdir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let (out, master) = std::thread::scope(|s| {
        let call = s.spawn(|| f(sock.to_str().unwrap()));
        let deadline = Instant::now() + common::TIMEOUT;
        let stream = loop {
            match listener.accept() {
                Ok((st, _)) => break Some(st),
                Err(_) if Instant::now() < deadline && !call.is_finished() => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(_) => break None,
            }
        };
        let master = stream.map(|st| {
            st.set_nonblocking(false).unwrap();
            recv_fd(&st)
        });
        (call.join().unwrap(), master)
    });
    (out, master.expect("runtime never connected to the console socket"))
}

/// terminal: true with --console-socket: the runtime sends the pty master
/// over the unix socket (SCM_RIGHTS); the process's stdio is the pty slave.
#[test]
fn terminal_via_console_socket() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::sh("tty", "tty; echo hello; sleep 5").edit(|c| c["process"]["terminal"] = json!(true));
    let ((out, _guard), master) = with_console_socket(|sock| rt.try_create(&b, &["--console-socket", sock]));
    out.ok();
    rt.cmd(&["start", &b.id]).ok();
    let text = read_until(&master, "hello\r\n", Duration::from_secs(10));
    // The pty turns "\n" into "\r\n".
    assert!(text.contains("/dev/pts/0\r\n"), "{text:?}");
    assert!(text.contains("hello\r\n"), "{text:?}");
}

/// The terminal belongs to the process's user (runc changes the uid only: the
/// pty keeps devpts's tty group), for the init and for `exec -t`, so that a
/// non-root process can reopen it (`/dev/stdout`, `$(tty)`).
#[test]
fn terminal_is_owned_by_the_process_user() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let show = "stat -c tty-owner=%u:%g $(tty)";
    let b = Bundle::sh("tty-owner", &format!("{show}; sleep 30")).edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let ((out, _guard), master) = with_console_socket(|sock| rt.try_create(&b, &["--console-socket", sock]));
    out.ok();
    rt.cmd(&["start", &b.id]).ok();
    let text = read_until(&master, "tty-owner=1000:5\r\n", Duration::from_secs(10));
    assert!(text.contains("tty-owner=1000:5\r\n"), "init's terminal: {text:?}");
    let (out, master) = with_console_socket(|sock| {
        let flags = ["-t", "-d", "--console-socket", sock, "--user", "1000:1000"];
        rt.exec(&b.id, &flags, &["sh", "-c", &format!("{show}; sleep 5")])
    });
    out.ok();
    let text = read_until(&master, "tty-owner=1000:5\r\n", Duration::from_secs(10));
    assert!(text.contains("tty-owner=1000:5\r\n"), "exec -t terminal: {text:?}");
}

/// A capability the runtime itself does not have (capset fails with EPERM)
/// fails `create`, not the container after `start` (runc: "unable to apply
/// caps: operation not permitted"), and leaves nothing behind. The runtime is
/// started without CAP_SYS_RESOURCE in its bounding set, so the test does not
/// depend on the host.
#[test]
fn unsettable_capability_fails_create() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("caps-eperm", &["sleep", "30"]).edit(|c| common::add_caps(c, &["CAP_SYS_RESOURCE"]));
    let _guard = rt.guard(&b);
    let mut cmd = rt.command(&["create", "--bundle", b.path_str(), &b.id]);
    // SAFETY: pre_exec runs in the forked child; prctl is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::prctl(libc::PR_CAPBSET_DROP, 24 /* CAP_SYS_RESOURCE */, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = common::run_cmd(cmd, common::TIMEOUT).failed();
    assert_eq!(out.code, 1, "{out:?}");
    let err = out.stderr.to_lowercase();
    assert!(err.contains("cap") && err.contains("not permitted"), "{out:?}");
    common::assert_no_leftovers(&rt, &b);
}

/// runc looks the program up before `create` returns: a missing or
/// non-executable args[0] (or a directory) fails `create` with exit 1 and the
/// reason, and leaves nothing behind.
#[test]
fn missing_or_non_executable_program_fails_create() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let cases: [(&[&str], &str); 5] = [
        (&["/tmp/text"], "permission denied"),
        (&["./text"], "permission denied"),
        (&["/tmp"], "permission denied"),
        (&["/nonexistent"], "no such file"),
        (&["nonexistent"], "not found in $path"),
    ];
    for (args, want) in cases {
        let b = Bundle::new("lookup", args).edit(|c| c["process"]["cwd"] = json!("/tmp"));
        std::fs::write(b.rootfs().join("tmp/text"), "echo hi\n").unwrap();
        let (out, _c) = rt.try_create(&b, &[]);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(out.stderr.to_lowercase().contains(want), "{args:?}: {out:?}");
        common::assert_no_leftovers(&rt, &b);
    }
}

/// When execve itself fails after `start` (the lookup passed), the process
/// exits like a shell would: 126 for a program that cannot run (no valid
/// format), 127 for one that is missing (here its #! interpreter).
/// capsa-only: runc's init exits 1 in both cases.
#[test]
fn failed_execve_exits_126_or_127() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let rt = Rt::new();
    for (file, content, want) in [("garbage", "\x01\x02garbage\n", 126), ("script", "#!/nonexistent/sh\n", 127)] {
        let b = Bundle::new("execve-fail", &[&format!("/{file}")]);
        let p = b.rootfs().join(file);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let out = rt.run(&b);
        assert_eq!(out.code, want, "{file}: {out:?}");
        assert!(out.stderr.contains("execve"), "{file}: {out:?}");
    }
}

/// The cwd is entered while still privileged (runc), then again as the user
/// if that was refused: a user may start in a 0700 directory of another uid,
/// and root without CAP_DAC_OVERRIDE may start in a user's 0700 home. The
/// same holds for `exec --user ... --cwd ...`.
#[test]
fn cwd_in_a_private_directory_of_another_uid() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let prepare = |b: &Bundle| {
        use std::os::unix::fs::PermissionsExt;
        let home = b.rootfs().join("home1000");
        std::fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(1000), Some(1000)).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(b.rootfs().join("root"), std::fs::Permissions::from_mode(0o700)).unwrap();
    };
    for (uid, cwd) in [(1000, "/root"), (0, "/home1000")] {
        let b = Bundle::sh("cwd-private", "id -u; pwd").edit(|c| {
            c["process"]["user"] = json!({"uid": uid, "gid": uid});
            c["process"]["cwd"] = json!(cwd);
        });
        prepare(&b);
        let out = rt.run(&b);
        assert_eq!(out.stdout, format!("{uid}\n{cwd}\n"), "uid {uid} in {cwd}: {out:?}");
    }
    let b = Bundle::new("cwd-private-exec", &["sleep", "30"]);
    prepare(&b);
    let _c = rt.start_new(&b);
    for (user, cwd) in [("1000:1000", "/root"), ("0:0", "/home1000")] {
        let out = rt.exec(&b.id, &["--user", user, "--cwd", cwd], &["sh", "-c", "id -u; pwd"]);
        let uid = user.split(':').next().unwrap();
        assert_eq!(out.stdout, format!("{uid}\n{cwd}\n"), "exec --user {user} --cwd {cwd}: {out:?}");
    }
}

#[test]
fn stdout_and_stderr_are_separate() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("stdio", "echo to-out; echo to-err >&2; echo more-out");
    let out = Rt::new().run(&b).ok();
    assert_eq!(out.stdout, "to-out\nmore-out\n");
    assert_eq!(out.stderr, "to-err\n");
}

/// Without a terminal the runtime's stdin is the process's stdin.
#[test]
fn stdin_is_passed_through() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("stdin", &["cat"]);
    let mut input = tempfile::tempfile().unwrap();
    input.write_all(b"through-stdin\n").unwrap();
    use std::io::Seek;
    input.rewind().unwrap();
    let _guard = rt.guard(&b);
    let cmd = rt.command(&["run", "--bundle", b.path_str(), &b.id]);
    let out = common::run_cmd_stdin(cmd, input, common::TIMEOUT).ok();
    assert_eq!(out.stdout, "through-stdin\n");
}
