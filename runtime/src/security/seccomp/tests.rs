//! Unit tests of `seccomp` (kept out of the source file).

use super::*;
use crate::security::testutil::{assert_child_ok, in_child, Outcome};

/// Excerpt in the style of moby/podman's default profile (x86 family).
const PROFILE: &str = include_str!("testdata/seccomp_profile.json");

fn profile() -> LinuxSeccomp {
    serde_json::from_str(PROFILE).unwrap()
}

fn rule(names: &[&str], action: &str, errno_ret: Option<u32>) -> LinuxSyscall {
    LinuxSyscall {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: action.to_string(),
        errno_ret,
        args: None,
    }
}

fn allow_with(rules: Vec<LinuxSyscall>) -> LinuxSeccomp {
    LinuxSeccomp { default_action: "SCMP_ACT_ALLOW".into(), syscalls: Some(rules), ..Default::default() }
}

fn with_listener(rules: Vec<LinuxSyscall>) -> LinuxSeccomp {
    LinuxSeccomp { listener_path: Some("/run/agent.sock".into()), ..allow_with(rules) }
}

fn build(r: LinuxSyscall) -> Program {
    compile(&allow_with(vec![r])).unwrap()
}

fn pfc(ctx: &ScmpFilterContext) -> String {
    let path = std::env::temp_dir().join(format!("capsa-pfc-{}", std::process::id()));
    ctx.export_pfc(std::fs::File::create(&path).unwrap()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    text
}

#[test]
fn parses_realistic_profile() {
    let p = profile();
    assert_eq!((&*p.default_action, p.default_errno_ret), ("SCMP_ACT_ERRNO", Some(1)));
    let calls = p.syscalls.as_ref().unwrap();
    assert_eq!((calls.len(), calls[0].names.len()), (7, 30));
    let clone = &calls[2].args.as_ref().unwrap()[0];
    assert_eq!((clone.value, clone.value_two), (2114060288, Some(0)));
    validate(&p).unwrap();
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["defaultErrnoRet"], 1);
    assert_eq!(v["syscalls"][2]["args"][0]["valueTwo"], 0);
    assert_eq!(v["syscalls"][5]["errnoRet"], 38);
    assert!(v.get("listenerPath").is_none());
}

#[test]
fn builds_profile_with_runc_semantics() {
    let ctx = build_filter(&profile()).unwrap();
    let text = pfc(&ctx);
    assert!(!text.contains("nonexistent_syscall_xyz"));
    assert!(!text.contains("reboot"), "rule equal to default must be skipped");
    // Three OR'ed personality conditions, one AND'ed getpriority rule.
    let personality = text.split("\"personality\"").nth(1).unwrap();
    let block = personality.split("# filter for syscall").next().unwrap();
    for v in ["0", "8", "131072"] {
        assert!(block.contains(&format!("$a0.lo32 == {v}")), "{block}");
    }
    assert!(text.contains("\"clone3\""));
    assert!(ctx.get_ctl_nnp().is_ok_and(|nnp| !nnp));
}

fn arg(index: u32, value: u64, op: &str) -> LinuxSeccompArg {
    let op = op.to_string();
    LinuxSeccompArg { index, value, value_two: None, op }
}

#[test]
fn validate_errors_are_clear() {
    let with_args = |args| {
        let r = rule(&["personality"], "SCMP_ACT_ERRNO", None);
        allow_with(vec![LinuxSyscall { args: Some(args), ..r }])
    };
    let base = allow_with(vec![]);
    let cases = [
        (
            allow_with(vec![rule(&["read"], "SCMP_ACT_FOO", None)]),
            r#"seccomp: unknown action "SCMP_ACT_FOO" for syscalls [read]"#,
        ),
        (
            allow_with(vec![rule(&["read", "write"], "SCMP_ACT_ALLOW", Some(5))]),
            "seccomp: errnoRet 5 given with action SCMP_ACT_ALLOW for syscalls [read, write] \
             (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take one)",
        ),
        (
            with_args(vec![arg(0, 1, "SCMP_CMP_BOGUS")]),
            r#"seccomp: unknown operator "SCMP_CMP_BOGUS" in argument 0 for syscalls [personality]"#,
        ),
        (
            with_args(vec![arg(6, 1, "SCMP_CMP_EQ")]),
            "seccomp: argument index 6 out of range (max 5) for syscalls [personality]",
        ),
        (
            LinuxSeccomp { architectures: Some(vec!["SCMP_ARCH_VAX".into()]), ..base.clone() },
            r#"seccomp: unknown architecture "SCMP_ARCH_VAX""#,
        ),
        (
            LinuxSeccomp { flags: Some(vec!["SECCOMP_FILTER_FLAG_NOPE".into()]), ..base.clone() },
            r#"seccomp: unknown flag "SECCOMP_FILTER_FLAG_NOPE""#,
        ),
        (
            LinuxSeccomp { default_errno_ret: Some(1), ..base.clone() },
            "seccomp: errnoRet 1 given with action SCMP_ACT_ALLOW as default action \
             (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take one)",
        ),
        (
            LinuxSeccomp { default_action: "SCMP_ACT_NOTIFY".into(), ..with_listener(vec![]) },
            "seccomp: SCMP_ACT_NOTIFY cannot be used as the default action",
        ),
        (
            allow_with(vec![rule(&["ioctl"], "SCMP_ACT_NOTIFY", None)]),
            "seccomp: SCMP_ACT_NOTIFY needs listenerPath (the unix socket of the seccomp agent)",
        ),
        (
            with_listener(vec![rule(&["read", "write"], "SCMP_ACT_NOTIFY", None)]),
            "seccomp: SCMP_ACT_NOTIFY cannot be used for the write syscall (the runtime needs it \
             to hand the notification fd to the agent)",
        ),
        (
            with_listener(vec![rule(&["mkdir"], "SCMP_ACT_NOTIFY", Some(1))]),
            "seccomp: errnoRet 1 given with action SCMP_ACT_NOTIFY for syscalls [mkdir] \
             (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take one)",
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(validate(&spec).unwrap_err().to_string(), want);
        assert_eq!(build_filter(&spec).unwrap_err().to_string(), want);
    }
    let notify = with_listener(vec![rule(&["mkdir"], "SCMP_ACT_NOTIFY", None)]);
    assert!(uses_notify(&notify) && !uses_notify(&base));
    build_filter(&notify).unwrap();
    build_filter(&LinuxSeccomp { listener_path: Some("/run/a.sock".into()), ..base.clone() }).unwrap();
    let flags = ["TSYNC", "LOG", "SPEC_ALLOW"];
    let flags = flags.map(|f| format!("SECCOMP_FILTER_FLAG_{f}")).to_vec();
    build_filter(&LinuxSeccomp { flags: Some(flags), ..base }).unwrap();
}

/// Found by tests/fuzz_config.rs: errnoRet 4095 passed `validate` and then failed in
/// libseccomp (EINVAL), in the child, after fork.
#[test]
fn errno_ret_beyond_libseccomp_is_refused_by_validate() {
    let errno = |e| rule(&["mount"], "SCMP_ACT_ERRNO", Some(e));
    for e in [0, 1, 4094] {
        let p = allow_with(vec![errno(e)]);
        validate(&p).unwrap();
        build_filter(&p).unwrap();
        let d = LinuxSeccomp { default_action: "SCMP_ACT_ERRNO".into(), default_errno_ret: Some(e), ..p };
        build_filter(&d).unwrap();
    }
    for e in [4095, 4096, 65535] {
        let msg = validate(&allow_with(vec![errno(e)])).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!("seccomp: errnoRet {e} out of range for SCMP_ACT_ERRNO (max 4094) for syscalls [mount]")
        );
        let d =
            LinuxSeccomp { default_action: "SCMP_ACT_ERRNO".into(), default_errno_ret: Some(e), ..allow_with(vec![]) };
        assert!(validate(&d).unwrap_err().to_string().contains("(max 4094) as default action"));
    }
    // SCMP_ACT_TRACE takes the whole 16 bits.
    build_filter(&allow_with(vec![rule(&["mount"], "SCMP_ACT_TRACE", Some(65535))])).unwrap();
    let e = validate(&allow_with(vec![rule(&["mount"], "SCMP_ACT_TRACE", Some(65536))])).unwrap_err();
    assert!(e.to_string().contains("errnoRet 65536 out of range (max 65535)"), "{e}");
}

#[test]
fn all_arches_and_actions_map() {
    for (name, _) in ARCHES {
        parse_arch(name).unwrap();
    }
    let expect = [
        ("SCMP_ACT_KILL", ScmpAction::KillThread),
        ("SCMP_ACT_KILL_THREAD", ScmpAction::KillThread),
        ("SCMP_ACT_KILL_PROCESS", ScmpAction::KillProcess),
        ("SCMP_ACT_TRAP", ScmpAction::Trap),
        ("SCMP_ACT_ERRNO", ScmpAction::Errno(libc::EPERM)),
        ("SCMP_ACT_TRACE", ScmpAction::Trace(libc::EPERM as u16)),
        ("SCMP_ACT_ALLOW", ScmpAction::Allow),
        ("SCMP_ACT_LOG", ScmpAction::Log),
    ];
    for (name, act) in expect {
        assert_eq!(parse_action(name, None, None).unwrap(), act);
    }
    assert_eq!(parse_action("SCMP_ACT_ERRNO", Some(38), None).unwrap(), ScmpAction::Errno(38));
    assert!(parse_action("SCMP_ACT_ERRNO", Some(70000), None).is_err());
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[test]
fn errno_rule_in_child() {
    let ctx = build(rule(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", Some(38)));
    let path = format!("/tmp/capsa-seccomp-{}\0", std::process::id());
    assert_child_ok(|| {
        load(&ctx)?;
        // SAFETY: path is NUL-terminated and outlives the call.
        let r = unsafe { libc::mkdir(path.as_ptr().cast(), 0o700) };
        match (r, errno()) {
            (-1, 38) => Ok(0),
            (r, e) => Err(format!("mkdir returned {r}, errno {e}").into()),
        }
    });
}

#[test]
fn kill_process_rule_in_child() {
    let ctx = build(rule(&["getpid"], "SCMP_ACT_KILL_PROCESS", None));
    // Not calling getpid: exits normally.
    assert_child_ok(|| Ok(load(&ctx).map(|()| 0)?));
    // Calling it: killed by SIGSYS.
    let (outcome, msg) = in_child(|| {
        load(&ctx)?;
        // SAFETY: getpid has no preconditions.
        unsafe { libc::getpid() };
        Ok(0)
    });
    assert_eq!(outcome, Outcome::Signaled(libc::SIGSYS), "{msg}");
}

#[test]
#[cfg(target_arch = "x86_64")]
fn realistic_profile_in_child() {
    use libc::{SYS_clone3, SYS_faccessat2, SYS_getpid, SYS_getpriority, SYS_mkdir, SYS_personality};
    let ctx = compile(&profile()).unwrap();
    assert!(ctx.stub_len() > 0, "an ERRNO default with architectures gets the ENOSYS stub");
    let dir = c"/tmp/capsa-seccomp-denied".as_ptr() as libc::c_long;
    // (label, syscall, args, expected errno or None for success)
    let cases = [
        ("mkdir", SYS_mkdir, [dir, 0o700], Some(libc::EPERM)),
        ("getpid", SYS_getpid, [0, 0], None),
        ("personality(8)", SYS_personality, [8, 0], None),
        ("personality(0)", SYS_personality, [0, 0], None),
        ("personality(4)", SYS_personality, [4, 0], Some(libc::EPERM)),
        ("getpriority(PROCESS, 0)", SYS_getpriority, [0, 0], None),
        ("getpriority(PGRP, 0)", SYS_getpriority, [1, 0], Some(libc::EPERM)),
        ("clone3", SYS_clone3, [0, 0], Some(libc::ENOSYS)),
        ("reboot", libc::SYS_reboot, [0, 0], Some(libc::EPERM)),
        // Above the highest syscall the profile names (clone3, 435): ENOSYS, as runc.
        ("faccessat2", SYS_faccessat2, [0, 0], Some(libc::ENOSYS)),
        ("syscall 1000", 1000, [0, 0], Some(libc::ENOSYS)),
        // An x32 number: x32 is listed, its highest named syscall is lower.
        ("x32 syscall 1000", 0x4000_0000 | 1000, [0, 0], Some(libc::ENOSYS)),
    ];
    assert_child_ok(|| {
        load(&ctx)?;
        let mut errs = Vec::new();
        for (what, nr, [a, b], want) in cases {
            // SAFETY: integer args or a valid C string; failures are only inspected.
            let r = unsafe { libc::syscall(nr, a, b, 0, 0) };
            let got = if r == -1 { Some(errno()) } else { None };
            if got != want {
                errs.push(format!("{what}: r={r} errno={got:?}, want {want:?}"));
            }
        }
        errs.is_empty().then_some(0).ok_or_else(|| errs.join("; ").into())
    });
}

#[test]
fn load_error_has_errno() {
    let ctx = build(rule(&["mkdir"], "SCMP_ACT_ERRNO", None));
    // Without CAP_SYS_ADMIN and without no_new_privs the kernel refuses.
    let (outcome, msg) = in_child(|| {
        // SAFETY: capset-free way to lose CAP_SYS_ADMIN: become nobody (no keep-caps).
        if unsafe { libc::setresuid(65534, 65534, 65534) } != 0 {
            return Err("setresuid failed".into());
        }
        Err(load(&ctx).map_or_else(|e| e.into(), |()| "loaded".into()))
    });
    assert_eq!(outcome, Outcome::Exited(100));
    let want = format!("seccomp(SECCOMP_SET_MODE_FILTER, flags 0x0, {} instructions): ", ctx.len());
    assert_eq!(msg, format!("{want}Permission denied (os error 13)"));
}
