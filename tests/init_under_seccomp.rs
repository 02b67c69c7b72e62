//! The container's init after its seccomp filter is loaded: whatever the profile
//! denies of what the init itself still does (its sync channel, fd hygiene), the
//! container must start, and its own errors must still reach the caller. Also the
//! fds `--preserve-fds` names, and a `start` killed while it waits for the exec.

mod common;

use common::{Bundle, Rt};
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;

/// A profile that allows everything but `names`, which fail with EACCES.
fn denying(names: &[&str]) -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    })
}

fn bundle(names: &[&str], nnp: bool, args: &[&str]) -> Bundle {
    let profile = denying(names);
    Bundle::new("init-seccomp", args).edit(move |c| {
        c["process"]["noNewPrivileges"] = json!(nnp);
        c["linux"]["seccomp"] = profile;
    })
}

/// runc syncs with its parent before the filter can get in the way; capsa's init
/// talks to the runtime with write(2)/read(2) once the filter is loaded, and does its
/// fd hygiene before loading it. So a "no network" profile (sendto/sendmsg/recvfrom
/// denied) and one that denies close_range both run, with and without no_new_privs.
#[test]
fn profiles_denying_the_inits_own_syscalls_still_run() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    for names in [&["sendto", "sendmsg", "recvfrom", "recvmsg"][..], &["close_range"][..]] {
        for nnp in [false, true] {
            let b = bundle(names, nnp, &["echo", "ok"]);
            let _c = rt.guard(&b);
            let out = rt.run(&b);
            assert_eq!((out.code, out.stdout.as_str()), (0, "ok\n"), "{names:?} nnp={nnp}: {}", out.stderr);
        }
    }
}

/// An error the init meets after its filter is loaded (here: the program does not
/// exist, found only once the init is the process's user) still reaches `create`
/// with its own message, not "exited with status 1".
#[test]
fn errors_after_the_filter_keep_their_message() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    for nnp in [false, true] {
        let b = bundle(&["sendto", "sendmsg"], nnp, &["/no/such/program"]);
        let c = rt.guard(&b);
        let out = rt.run(&b);
        assert_ne!(out.code, 0);
        assert!(out.stderr.contains("/no/such/program"), "nnp={nnp}: {}", out.stderr);
        drop(c);
    }
}

/// `--preserve-fds 1` with fd 3 closed: runc refuses ("unable to stat preserved-fd"),
/// and so does capsa, before anything exists. Without the check the runtime's own
/// exec.fifo took fd 3 and was handed to the container (and `start` then hung).
#[test]
fn preserve_fds_must_name_open_fds() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("preserve-closed", &["sleep", "30"]);
    let _c = rt.guard(&b);
    let mut cmd = rt.command(&["create", "--preserve-fds", "1", "--bundle", b.path_str(), &b.id]);
    // SAFETY: close(2) on fd 3 in the child before exec; nothing else runs there.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::close(3);
            Ok(())
        });
    }
    let out = common::run_cmd(cmd, common::TIMEOUT);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("fd 3"), "{}", out.stderr);
    assert!(!rt.list_ids().contains(&b.id), "a refused create left state");
}

/// `start` killed while it waits for the init's exec (a slow startContainer hook):
/// the program still runs, so the container must not stay "created" forever.
#[test]
fn start_killed_while_waiting_leaves_a_running_container() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("start-killed", &["sleep", "30"]).edit(|c| {
        c["hooks"] = json!({"startContainer": [{"path": "/bin/sleep", "args": ["sleep", "2"]}]});
    });
    let _c = rt.create(&b);
    let mut start = rt.command(&["start", &b.id]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    start.kill().unwrap();
    start.wait().unwrap();
    assert!(
        common::wait_until(Duration::from_secs(10), || rt.status(&b.id) == "running"),
        "status stayed {}",
        rt.status(&b.id)
    );
}
