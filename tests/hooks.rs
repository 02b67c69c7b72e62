//! OCI hooks: order of the six hook points, state JSON on stdin, env,
//! failure and timeout handling, what hooks inherit from the runtime.

mod common;

use common::{Bundle, Rt};
use serde_json::{json, Value};
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const POINTS: [&str; 6] = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

/// A hook running `/bin/sh -c script`. The log dir is bind-mounted into the
/// container at its host path, so the same script works whether the hook
/// runs with the host's view of the filesystem (prestart, createRuntime,
/// poststart, poststop; createContainer in runc) or the container's
/// (startContainer, which resolves /bin/sh to the rootfs's busybox).
fn sh_hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

/// Bundle whose every hook point appends its name to `<log>/log` and saves
/// its stdin to `<log>/<name>.json`.
fn logging_bundle(log: &Path, args: &[&str]) -> Bundle {
    let dir = log.to_str().unwrap().to_string();
    let d = dir.clone();
    Bundle::new("hooks", args)
        .edit(move |c| {
            let mut hooks = json!({});
            for p in POINTS {
                hooks[p] = json!([sh_hook(&format!("echo {p} >> {d}/log; cat > {d}/{p}.json"))]);
            }
            c["hooks"] = hooks;
        })
        .mount(json!({"destination": dir, "type": "bind", "source": dir, "options": ["rbind"]}))
}

fn log_lines(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("log")).unwrap_or_default().lines().map(str::to_string).collect()
}

fn pos(log: &[String], p: &str) -> usize {
    log.iter().position(|l| l == p).unwrap_or_else(|| panic!("{p} did not run: {log:?}"))
}

/// Every hook point runs exactly once: prestart, createRuntime and
/// createContainer during `create` (in that order), startContainer during
/// `start`, poststop last during `delete`.
#[test]
fn all_hook_points_run_in_order() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let log = common::host_dir();
    let b = logging_bundle(log.path(), &["true"]);
    let _c = rt.create(&b);
    let after_create = log_lines(log.path());
    assert_eq!(after_create[..3], ["prestart", "createRuntime", "createContainer"], "after create: {after_create:?}");
    rt.cmd(&["start", &b.id]).ok();
    rt.wait_status(&b.id, "stopped");
    let after_start = log_lines(log.path());
    assert!(after_start.contains(&"startContainer".to_string()), "{after_start:?}");
    assert!(!after_start.contains(&"poststop".to_string()), "{after_start:?}");
    rt.cmd(&["delete", &b.id]).ok();
    let all = log_lines(log.path());
    let mut sorted = all.clone();
    sorted.sort();
    let mut want: Vec<String> = POINTS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(sorted, want, "each hook exactly once: {all:?}");
    assert_eq!(all.last().unwrap(), "poststop");
}

/// Spec order: poststart runs after the user process started, i.e. during
/// `start` and after startContainer.
/// capsa-only: runc 1.1 runs poststart hooks at the end of `create`.
#[test]
fn poststart_runs_at_start_after_start_container() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let rt = Rt::new();
    let log = common::host_dir();
    let b = logging_bundle(log.path(), &["true"]);
    let _c = rt.create(&b);
    assert_eq!(log_lines(log.path()), ["prestart", "createRuntime", "createContainer"]);
    rt.cmd(&["start", &b.id]).ok();
    rt.wait_status(&b.id, "stopped");
    rt.cmd(&["delete", &b.id]).ok();
    let all = log_lines(log.path());
    assert_eq!(all, POINTS);
    assert!(pos(&all, "startContainer") < pos(&all, "poststart"));
}

/// Each hook gets the container state as JSON on stdin. Hooks run in the
/// runtime's namespaces see the init's host pid; createContainer and
/// startContainer run inside the container's pid namespace, where runc
/// reports pid 1. poststop's state has no pid.
#[test]
fn hooks_receive_state_on_stdin() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let log = common::host_dir();
    let b = logging_bundle(log.path(), &["sleep", "30"]);
    let _c = rt.start_new(&b);
    let pid = rt.pid(&b.id);
    rt.cmd(&["delete", "--force", &b.id]).ok();
    for p in POINTS {
        let text = fs::read_to_string(log.path().join(format!("{p}.json")))
            .unwrap_or_else(|e| panic!("{p} hook did not run: {e}"));
        let st: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p} stdin not JSON ({e}): {text}"));
        assert_eq!(st["id"], b.id.as_str(), "{p}: {st}");
        assert_eq!(st["bundle"], b.path_str(), "{p}: {st}");
        assert!(st["ociVersion"].is_string(), "{p}: {st}");
        let want_status = match p {
            // runtime-spec: prestart runs once the environment is created (hooks
            // such as NVIDIA's check for "created"); runc 1.1 says "creating".
            "prestart" if common::is_capsa() => "created",
            "prestart" | "createRuntime" | "createContainer" => "creating",
            "startContainer" => "created",
            "poststop" => "stopped",
            // runc 1.1 runs poststart during create ("created"); after
            // start the process is running.
            _ => {
                if common::is_capsa() {
                    "running"
                } else {
                    "created"
                }
            }
        };
        assert_eq!(st["status"], want_status, "{p}: {st}");
        match p {
            "createContainer" | "startContainer" => {
                assert!(st["pid"] == 1 || st["pid"] == pid, "{p}: {st}")
            }
            "poststop" => {}
            _ => assert_eq!(st["pid"], pid, "{p}: {st}"),
        }
    }
}

/// Hook `env` and `args` are used as given.
#[test]
fn hook_env_and_args() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let log = common::host_dir();
    let out = log.path().join("out");
    let b = Bundle::new("hook-env", &["true"]).edit(|c| {
        c["hooks"] = json!({"createRuntime": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo \"$0 $1 $HOOKVAR\" > {}", out.display()), "arg0", "arg1"],
            "env": ["HOOKVAR=from-env"]
        }]});
    });
    let _c = rt.create(&b);
    assert_eq!(fs::read_to_string(&out).unwrap(), "arg0 arg1 from-env\n");
}

/// A failing createRuntime hook fails `create` and the runtime cleans up
/// everything it had set up.
#[test]
fn failing_create_runtime_hook_fails_create_and_cleans_up() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b =
        Bundle::new("hook-fail", &["sleep", "30"]).edit(|c| c["hooks"] = json!({"createRuntime": [sh_hook("exit 7")]}));
    let (out, _c) = rt.try_create(&b, &[]);
    out.failed();
    common::assert_no_leftovers(&rt, &b);
}

#[test]
fn failing_prestart_hook_fails_create() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b =
        Bundle::new("prestart-fail", &["sleep", "30"]).edit(|c| c["hooks"] = json!({"prestart": [sh_hook("exit 1")]}));
    let (out, _c) = rt.try_create(&b, &[]);
    out.failed();
    common::assert_no_leftovers(&rt, &b);
}

/// A hook exceeding its `timeout` (seconds) is killed and fails `create`
/// promptly instead of after the hook's natural runtime.
#[test]
fn hook_timeout_fails_create() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("hook-timeout", &["sleep", "30"]).edit(|c| {
        c["hooks"] = json!({"createRuntime": [
            {"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}
        ]})
    });
    let started = Instant::now();
    let (out, _c) = rt.try_create(&b, &[]);
    let took = started.elapsed();
    out.failed();
    assert!(took < Duration::from_millis(3500), "create took {took:?} with a 1 s hook timeout");
    common::assert_no_leftovers(&rt, &b);
}

/// Hooks run where runc runs them: prestart and createRuntime in the bundle,
/// createContainer in the rootfs (in the container's mount namespace, before
/// pivot_root), startContainer in the process's cwd (after the init entered
/// it). The runtime itself is started elsewhere.
#[test]
fn hooks_run_in_runc_s_directories() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let log = common::host_dir();
    let d = log.path().to_str().unwrap().to_string();
    let points = ["prestart", "createRuntime", "createContainer", "startContainer"];
    let b = Bundle::new("hook-cwd", &["true"])
        .edit(|c| {
            c["process"]["cwd"] = json!("/tmp");
            for p in points {
                c["hooks"][p] = json!([sh_hook(&format!("pwd > {d}/{p}.cwd"))]);
            }
        })
        .mount(json!({"destination": d, "type": "bind", "source": d, "options": ["rbind"]}));
    let _c = rt.create(&b);
    rt.cmd(&["start", &b.id]).ok();
    rt.wait_status(&b.id, "stopped");
    let cwd = |p: &str| fs::read_to_string(log.path().join(format!("{p}.cwd"))).unwrap().trim().to_string();
    let bundle = fs::canonicalize(b.path()).unwrap();
    assert_eq!(Path::new(&cwd("prestart")), bundle);
    assert_eq!(Path::new(&cwd("createRuntime")), bundle);
    assert_eq!(Path::new(&cwd("createContainer")), fs::canonicalize(b.rootfs()).unwrap());
    assert_eq!(cwd("startContainer"), "/tmp");
}

/// The seccomp filter is in place before startContainer hooks run, whether
/// no_new_privs is set or not (runc 1.1.5 loads it before `create` returns in
/// both cases): a hook's mkdir hits the profile's errno rule.
#[test]
fn start_container_hooks_run_under_seccomp() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    for nnp in [false, true] {
        let b = Bundle::new("hook-seccomp", &["true"]).edit(|c| {
            c["process"]["noNewPrivileges"] = json!(nnp);
            c["hooks"] = json!({"startContainer": [sh_hook("mkdir /tmp/by-hook 2> /tmp/hook.err; true")]});
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
            });
        });
        let _c = rt.create(&b);
        rt.cmd(&["start", &b.id]).ok();
        rt.wait_status(&b.id, "stopped");
        assert!(!b.rootfs().join("tmp/by-hook").exists(), "nnp={nnp}: the hook ran before the filter");
        let err = fs::read_to_string(b.rootfs().join("tmp/hook.err")).unwrap();
        assert!(err.contains("not implemented"), "nnp={nnp}: {err}");
        rt.cmd(&["delete", &b.id]).ok();
    }
}

/// Hooks get stdio only, as in runc: an fd the runtime's caller left open without
/// close-on-exec (fd 7 here) does not reach them.
#[test]
fn hooks_get_only_stdio() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let dir = common::host_dir();
    let d = dir.path().display().to_string();
    let b = Bundle::new("hook-fds", &["true"])
        .edit(|c| c["hooks"] = json!({"createRuntime": [sh_hook(&format!("ls /proc/$$/fd > {d}/fds"))]}));
    let _guard = rt.guard(&b);
    let file = fs::File::open("/etc/hostname").unwrap();
    let raw = file.as_raw_fd();
    let mut cmd = rt.command(&["create", "--bundle", b.path_str(), &b.id]);
    // SAFETY: dup2 between fork and exec; it leaves fd 7 without close-on-exec.
    unsafe {
        cmd.pre_exec(move || if libc::dup2(raw, 7) < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
    }
    common::run_cmd(cmd, common::TIMEOUT).ok();
    let fds = fs::read_to_string(dir.path().join("fds")).unwrap();
    assert!(!fds.lines().any(|l| l == "7"), "the hook got the caller's fd 7: {fds:?}");
}

/// A hook dies with the runtime that runs it: after `create` is killed, its
/// createRuntime hook does not run on, unsupervised. runc 1.1.5 leaves it running.
#[test]
fn hooks_die_with_a_killed_runtime() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let rt = Rt::new();
    let dir = common::host_dir();
    let pid_file = dir.path().join("pid");
    let hook = sh_hook(&format!("echo $$ > {}; exec sleep 60", pid_file.display()));
    let b = Bundle::new("hook-orphan", &["true"]).edit(|c| c["hooks"] = json!({"createRuntime": [hook]}));
    let _guard = rt.guard(&b);
    let mut create = rt.command(&["create", "--bundle", b.path_str(), &b.id]);
    let mut create = create.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let read_pid = || fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<i32>().ok());
    let started = common::wait_until(common::TIMEOUT, || read_pid().is_some());
    create.kill().unwrap();
    create.wait().unwrap();
    assert!(started, "the hook never ran");
    let pid = read_pid().unwrap();
    // Running (not a zombie) and still the hook (not a recycled pid).
    let alive = || {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let comm_state = stat.split_once(") ").map(|(c, rest)| (c.rsplit('(').next().unwrap_or(""), rest));
        matches!(comm_state, Some(("sh" | "sleep", rest)) if !rest.starts_with('Z'))
    };
    let gone = common::wait_until(common::TIMEOUT, || !alive());
    if !gone {
        // SAFETY: kill with integer arguments; the hook this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(gone, "hook {pid} outlived the killed runtime");
    rt.cmd(&["delete", "--force", &b.id]).ok();
    common::assert_no_leftovers(&rt, &b);
}
