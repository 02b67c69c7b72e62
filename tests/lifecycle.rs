//! Container lifecycle: run/create/start/state/kill/delete/list/ps/pause/exec.

mod common;

use common::{without_ns, Bundle, Rt};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::Duration;

fn sleeper(prefix: &str) -> Bundle {
    Bundle::new(prefix, &["sleep", "30"])
}

fn host_pid_alive(pid: i32) -> bool {
    // A zombie still has /proc/<pid>; treat it as dead.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn run_prints_stdout_and_returns_exit_code() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::sh("run-exit", "echo hello-out; exit 3");
    let out = rt.run(&b);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "hello-out\n");
}

// The two tests below drop the pid namespace: a pid-namespace init ignores
// default-action signals sent from inside its namespace (even SIGKILL), so
// only a shell that is not an init can die from a signal it sends itself.

#[test]
fn run_reports_death_by_sigkill_as_137() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::sh("run-kill9", "kill -9 $$; sleep 5").edit(|c| without_ns(c, "pid"));
    let out = rt.run(&b);
    assert_eq!(out.code, 137, "{out:?}");
}

#[test]
fn run_reports_death_by_sigterm_as_143() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::sh("run-term", "kill -TERM $$; sleep 5").edit(|c| without_ns(c, "pid"));
    let out = rt.run(&b);
    assert_eq!(out.code, 143, "{out:?}");
}

#[test]
fn create_reports_created_state_and_writes_pid_file() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("create");
    let pidfile = b.path().join("init.pid");
    let (out, _c) = rt.try_create(&b, &["--pid-file", pidfile.to_str().unwrap()]);
    out.ok();
    let st = rt.state(&b.id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], b.id.as_str());
    assert_eq!(st["bundle"], b.path_str());
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    // The init process exists (blocked before exec'ing the user process).
    assert!(host_pid_alive(pid as i32));
    let written = fs::read_to_string(&pidfile).unwrap();
    assert_eq!(written.trim().parse::<i64>().unwrap(), pid);
}

/// runc's modes: state.json 0600 (it holds the process environment), the pid file 0666
/// minus the umask, written by rename (a symlink at its name is replaced, not followed;
/// no temp file stays behind).
#[test]
fn state_json_is_private_and_the_pid_file_is_replaced_atomically() {
    if !common::require_root() {
        return;
    }
    use std::os::unix::fs::{symlink, PermissionsExt};
    let rt = Rt::new();
    let b = sleeper("modes");
    let dir = b.path().join("pids");
    fs::create_dir(&dir).unwrap();
    let pidfile = dir.join("init.pid");
    let victim = dir.join("victim");
    fs::write(&victim, "precious").unwrap();
    symlink(&victim, &pidfile).unwrap();
    // The fixed temp name capsa used to write through (following a planted symlink).
    let old_tmp = dir.join(".init.pid.capsa-tmp");
    symlink(&victim, &old_tmp).unwrap();
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "umask 027; exec \"$0\" \"$@\""]).arg(common::runtime()).arg("--root").arg(rt.root());
    cmd.args(["create", "--bundle", b.path_str(), "--pid-file", pidfile.to_str().unwrap(), &b.id]);
    let _c = rt.guard(&b);
    common::run_cmd(cmd, common::TIMEOUT).ok();
    let pid = rt.state(&b.id)["pid"].as_i64().unwrap();
    let mode = |p: &std::path::Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&rt.root().join(&b.id).join("state.json")), 0o600);
    assert!(fs::symlink_metadata(&pidfile).unwrap().file_type().is_file(), "the symlink was followed");
    assert_eq!(fs::read_to_string(&pidfile).unwrap().trim(), pid.to_string());
    assert_eq!(mode(&pidfile), 0o640);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    let mut names: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, [".init.pid.capsa-tmp", "init.pid", "victim"], "a temp file was left behind");
}

#[test]
fn start_makes_container_running() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("start");
    let _c = rt.create(&b);
    rt.cmd(&["start", &b.id]).ok();
    assert_eq!(rt.status(&b.id), "running");
    // The init process now runs the user's program.
    let pid = rt.pid(&b.id);
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with("sleep\0"), "{cmdline:?}");
}

#[test]
fn kill_accepts_name_number_and_sig_prefix() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    for sig in ["KILL", "9", "SIGKILL"] {
        let b = sleeper("kill-form");
        let _c = rt.start_new(&b);
        rt.cmd(&["kill", &b.id, sig]).ok();
        rt.wait_status(&b.id, "stopped");
    }
}

#[test]
fn kill_term_reaches_a_trapping_init() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let host = common::host_dir();
    // A pid-namespace init only receives signals it has a handler for.
    let b = Bundle::sh("kill-term", "trap 'echo got-term > /h/term; exit 0' TERM; while true; do sleep 0.1; done")
        .bind(host.path(), "/h", &[]);
    let _c = rt.start_new(&b);
    rt.cmd(&["kill", &b.id, "TERM"]).ok();
    rt.wait_status(&b.id, "stopped");
    assert_eq!(fs::read_to_string(host.path().join("term")).unwrap(), "got-term\n");
}

#[test]
fn kill_defaults_to_sigterm() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let host = common::host_dir();
    let b = Bundle::sh("kill-default", "trap 'echo term > /h/sig; exit 0' TERM; while true; do sleep 0.1; done").bind(
        host.path(),
        "/h",
        &[],
    );
    let _c = rt.start_new(&b);
    rt.cmd(&["kill", &b.id]).ok();
    rt.wait_status(&b.id, "stopped");
    assert_eq!(fs::read_to_string(host.path().join("sig")).unwrap(), "term\n");
}

#[test]
fn state_becomes_stopped_after_process_exits() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("stopped", &["true"]);
    let _c = rt.start_new(&b);
    rt.wait_status(&b.id, "stopped");
}

#[test]
fn delete_removes_container() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("delete", &["true"]);
    let _c = rt.start_new(&b);
    rt.wait_status(&b.id, "stopped");
    rt.cmd(&["delete", &b.id]).ok();
    rt.cmd(&["state", &b.id]).failed();
    assert!(rt.list_ids().is_empty());
    assert!(common::leftover_cgroups(&b.id).is_empty());
}

#[test]
fn state_of_unknown_id_fails() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let out = rt.cmd(&["state", "no-such-container"]).failed();
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn list_shows_table_json_and_quiet_forms() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("list");
    let _c = rt.start_new(&b);

    let table = rt.cmd(&["list"]).ok().stdout;
    let header = table.lines().next().unwrap_or("");
    assert!(header.starts_with("ID"), "{table}");
    assert!(header.contains("STATUS"), "{table}");
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(b.id.as_str()))
        .unwrap_or_else(|| panic!("no row for {}: {table}", b.id));
    assert!(row.contains("running"), "{row}");

    let js: Value =
        serde_json::from_str(&rt.cmd(&["list", "--format", "json"]).ok().stdout).expect("list --format json");
    let entries = js.as_array().expect("array");
    assert_eq!(entries.len(), 1, "{js}");
    assert_eq!(entries[0]["id"], b.id.as_str());
    assert_eq!(entries[0]["status"], "running");
    assert_eq!(entries[0]["bundle"], b.path_str());
    assert_eq!(entries[0]["pid"], rt.pid(&b.id));

    assert_eq!(rt.list_ids(), vec![b.id.clone()]);
}

#[test]
fn list_of_empty_root_is_empty_json_array_or_null() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let js: Value = serde_json::from_str(&rt.cmd(&["list", "--format", "json"]).ok().stdout).unwrap();
    // runc prints `null` for no containers.
    assert!(js.is_null() || js.as_array().is_some_and(|a| a.is_empty()), "{js}");
    assert!(rt.list_ids().is_empty());
}

#[test]
fn ps_json_lists_init_pid() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("ps");
    let _c = rt.start_new(&b);
    let pid = rt.pid(&b.id);
    let js: Value = serde_json::from_str(&rt.cmd(&["ps", "--format", "json", &b.id]).ok().stdout).unwrap();
    let pids: Vec<i64> = js.as_array().expect("array").iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(pids, vec![pid as i64]);
}

#[test]
fn pause_and_resume_change_state() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("pause");
    let _c = rt.start_new(&b);
    rt.cmd(&["pause", &b.id]).ok();
    assert_eq!(rt.status(&b.id), "paused");
    // The freezer cgroup really froze the tasks.
    let frozen = common::cgroup_hierarchies()
        .iter()
        .map(|h| h.join(common::CGROUP_PARENT).join(&b.id).join("freezer.state"))
        .find(|p| p.exists());
    if let Some(f) = frozen {
        assert_eq!(fs::read_to_string(&f).unwrap().trim(), "FROZEN");
    }
    rt.cmd(&["resume", &b.id]).ok();
    assert_eq!(rt.status(&b.id), "running");
}

#[test]
fn kill_all_signals_every_process() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    // Without a pid namespace, killing init does not take its children with
    // it; only --all (signal every task in the cgroup) does.
    let b = Bundle::sh("kill-all", "sleep 30 & sleep 31 & wait").edit(|c| without_ns(c, "pid"));
    let _c = rt.start_new(&b);
    let mut pids: Vec<i64> = Vec::new();
    assert!(common::wait_until(Duration::from_secs(5), || {
        let out = rt.cmd(&["ps", "--format", "json", &b.id]).ok();
        pids = serde_json::from_str::<Vec<i64>>(&out.stdout).unwrap();
        pids.len() == 3
    }));
    rt.cmd(&["kill", "--all", &b.id, "KILL"]).ok();
    assert!(
        common::wait_until(Duration::from_secs(5), || pids.iter().all(|p| !host_pid_alive(*p as i32))),
        "some of {pids:?} survived kill --all"
    );
    rt.wait_status(&b.id, "stopped");
}

#[test]
fn delete_of_running_container_needs_force() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("del-force");
    let _c = rt.start_new(&b);
    let pid = rt.pid(&b.id);
    rt.cmd(&["delete", &b.id]).failed();
    assert_eq!(rt.status(&b.id), "running");
    rt.cmd(&["delete", "--force", &b.id]).ok();
    rt.cmd(&["state", &b.id]).failed();
    assert!(common::wait_until(Duration::from_secs(5), || { !host_pid_alive(pid) }));
    assert!(common::leftover_cgroups(&b.id).is_empty());
}

#[test]
fn delete_force_of_created_container() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("del-created");
    let _c = rt.create(&b);
    let pid = rt.pid(&b.id);
    rt.cmd(&["delete", "--force", &b.id]).ok();
    rt.cmd(&["state", &b.id]).failed();
    assert!(common::wait_until(Duration::from_secs(5), || { !host_pid_alive(pid) }));
}

/// A state.json cut short (state is not fsync'd; a power loss on a disk-backed
/// --root can leave it empty): `delete --force` removes what is left, plain `delete`
/// still reports the damage.
#[test]
fn delete_force_of_an_unreadable_state_file() {
    // runc 1.1.5 refuses even with --force ("container does not exist" paths aside).
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("del-torn");
    let c = rt.create(&b);
    let pid = rt.pid(&b.id);
    rt.cmd(&["delete", "--force", &b.id]).ok();
    std::fs::create_dir(rt.root().join(&b.id)).unwrap();
    std::fs::write(rt.root().join(&b.id).join("state.json"), "").unwrap();
    let out = rt.cmd(&["delete", &b.id]).failed();
    assert!(out.stderr.contains("state.json"), "{}", out.stderr);
    rt.cmd(&["delete", "--force", &b.id]).ok();
    assert!(!rt.root().join(&b.id).exists());
    assert!(!rt.list_ids().contains(&b.id));
    assert!(common::wait_until(Duration::from_secs(5), || { !host_pid_alive(pid) }));
    drop(c);
}

#[test]
fn run_detach_returns_while_container_runs() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("run-d");
    let _c = rt.guard(&b);
    rt.cmd(&["run", "--detach", "--bundle", b.path_str(), &b.id]).ok();
    assert_eq!(rt.status(&b.id), "running");
}

#[test]
fn exec_prints_output_and_returns_exit_code() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("exec");
    let _c = rt.start_new(&b);
    let out = rt.exec(&b.id, &[], &["echo", "hi"]).ok();
    assert_eq!(out.stdout, "hi\n");
    let out = rt.exec(&b.id, &[], &["sh", "-c", "exit 5"]);
    assert_eq!(out.code, 5, "{out:?}");
}

#[test]
fn exec_process_file() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("exec-proc");
    let _c = rt.start_new(&b);
    let mut process = b.config["process"].clone();
    process["args"] = json!(["sh", "-c", "echo from-file $WHO; pwd"]);
    process["env"] = json!(["PATH=/bin:/usr/bin", "WHO=process-json"]);
    process["cwd"] = json!("/etc");
    let pf = b.path().join("process.json");
    fs::write(&pf, process.to_string()).unwrap();
    let out = rt.exec(&b.id, &["--process", pf.to_str().unwrap()], &[]).ok();
    assert_eq!(out.stdout, "from-file process-json\n/etc\n");
}

#[test]
fn exec_env_cwd_and_user() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("exec-opts");
    let _c = rt.start_new(&b);
    let out = rt
        .exec(
            &b.id,
            &["--env", "FOO=bar", "--cwd", "/tmp", "--user", "1000:1000"],
            &["sh", "-c", "echo $FOO; pwd; id -u; id -g"],
        )
        .ok();
    assert_eq!(out.stdout, "bar\n/tmp\n1000\n1000\n");
}

#[test]
fn exec_detached_writes_pid_file() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("exec-d");
    let _c = rt.start_new(&b);
    let init = rt.pid(&b.id);
    let pf = b.path().join("exec.pid");
    rt.exec(&b.id, &["-d", "--pid-file", pf.to_str().unwrap()], &["sleep", "29"]).ok();
    let pid: i32 = fs::read_to_string(&pf).unwrap().trim().parse().unwrap();
    assert_ne!(pid, init);
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline.split('\0').collect::<Vec<_>>(), ["sleep", "29", ""]);
    // The exec'd process lives in the container's pid namespace.
    let ns = |p: i32| fs::read_link(format!("/proc/{p}/ns/pid")).unwrap();
    assert_eq!(ns(pid), ns(init));
}

#[test]
fn exec_joins_init_pid_namespace() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("exec-pidns");
    let _c = rt.start_new(&b);
    let out = rt.exec(&b.id, &[], &["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"]).ok();
    assert_eq!(out.stdout.trim(), "sleep 30");
}

#[test]
fn exec_in_stopped_container_fails() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("exec-stopped", &["true"]);
    let _c = rt.start_new(&b);
    rt.wait_status(&b.id, "stopped");
    rt.exec(&b.id, &[], &["true"]).failed();
}

/// Bit of `sig` in a /proc/PID/status signal mask (SigCgt etc.).
fn sig_in_mask(pid: i32, field: &str, sig: i32) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or("0").trim();
    u64::from_str_radix(mask, 16).unwrap_or(0) & (1 << (sig - 1)) != 0
}

/// `start` returns only once the init has exec'd the container's program
/// (runc reads exec.fifo until the init's close-on-exec end closes), even
/// when a startContainer hook delays the exec: a signal sent right after
/// `start` then reaches the program, not the runtime's init (which, as a
/// pid-namespace init without a handler, would drop it).
#[test]
fn start_returns_after_the_program_is_execed() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let host = common::host_dir();
    let b = Bundle::sh("start-exec", "trap 'echo got-term > /h/term; exit 0' TERM; while true; do sleep 0.1; done")
        .bind(host.path(), "/h", &[])
        .edit(|c| c["hooks"] = json!({"startContainer": [{"path": "/bin/sleep", "args": ["sleep", "1"]}]}));
    let _c = rt.create(&b);
    let pid = rt.pid(&b.id);
    rt.cmd(&["start", &b.id]).ok();
    // The kernel switches /proc/PID/exe before it closes the close-on-exec fds
    // that `start` waits on (comm changes a moment later: not a proof).
    // capsa-only: runc 1.1.5 returned before the exec in 3 of 12 runs here
    // (its init was still runc's binary after the hook had run).
    if common::is_capsa() {
        use std::os::unix::fs::MetadataExt;
        let exe = fs::metadata(format!("/proc/{pid}/exe")).unwrap();
        let busybox = fs::metadata(b.rootfs().join("bin/busybox")).unwrap();
        assert_eq!((exe.dev(), exe.ino()), (busybox.dev(), busybox.ino()), "`start` returned before the exec");
    }
    // The shell installs its trap a moment after exec; then TERM must land.
    assert!(common::wait_until(Duration::from_secs(10), || sig_in_mask(pid, "SigCgt", libc::SIGTERM)));
    rt.cmd(&["kill", &b.id, "TERM"]).ok();
    rt.wait_status(&b.id, "stopped");
    assert_eq!(fs::read_to_string(host.path().join("term")).unwrap(), "got-term\n");
}

/// `run --keep` leaves the exited container in place (state `stopped`, its
/// cgroup included) until `delete`, as runc does.
#[test]
fn run_keep_keeps_the_stopped_container() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::sh("run-keep", "exit 3");
    let out = rt.cmd(&["run", "--keep", "--bundle", b.path_str(), &b.id]);
    let _c = rt.guard(&b);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(rt.status(&b.id), "stopped");
    assert_eq!(rt.list_ids(), std::slice::from_ref(&b.id));
    assert!(!common::leftover_cgroups(&b.id).is_empty(), "the cgroup is kept too");
    rt.cmd(&["delete", &b.id]).ok();
    assert!(rt.list_ids().is_empty());
    assert!(common::leftover_cgroups(&b.id).is_empty());
}

/// Signal 0 probes liveness (`kill ID 0`, `kill -a ID 0`) without touching
/// the process (nor the freezer). On a stopped container `kill` fails (exit 1) while `kill -a`
/// succeeds, as in runc.
#[test]
fn kill_signal_zero_probes_liveness() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("kill-0");
    let _c = rt.start_new(&b);
    rt.cmd(&["kill", &b.id, "0"]).ok();
    rt.cmd(&["kill", "--all", &b.id, "0"]).ok();
    assert_eq!(rt.status(&b.id), "running");
    if common::is_capsa() {
        // Only a probe: a paused container stays paused (runc 1.1.5 thaws it).
        rt.cmd(&["pause", &b.id]).ok();
        rt.cmd(&["kill", "--all", &b.id, "0"]).ok();
        assert_eq!(rt.status(&b.id), "paused");
        rt.cmd(&["resume", &b.id]).ok();
    }
    rt.cmd(&["kill", &b.id, "KILL"]).ok();
    rt.wait_status(&b.id, "stopped");
    for args in [&["kill", &b.id, "0"][..], &["kill", &b.id, "KILL"]] {
        let out = rt.cmd(args);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
    }
    rt.cmd(&["kill", "--all", &b.id, "0"]).ok();
    rt.cmd(&["kill", "--all", &b.id, "KILL"]).ok();
}

/// A memory limit too small for the init fails `create` with an error that
/// says the memory limit (and its value) was the cause, and leaves nothing
/// behind.
#[test]
fn memory_limit_too_small_is_named() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("mem-tiny").edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 65536}));
    let (out, _c) = rt.try_create(&b, &[]);
    let out = out.failed();
    assert!(out.stderr.contains("memory limit") && out.stderr.contains("65536"), "{out:?}");
    common::assert_no_leftovers(&rt, &b);
}

/// runc's exit codes for `exec`: 255 when the runtime cannot start the
/// process, 1 for a usage error. A pid file that cannot be written fails the
/// exec and leaves no process behind (runc kills it).
#[test]
fn exec_failures_exit_255() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("exec-codes");
    let _c = rt.start_new(&b);
    let out = rt.exec("capsa-missing", &[], &["true"]);
    assert_eq!(out.code, 255, "no such container: {out:?}");
    let out = rt.exec(&b.id, &[], &[]);
    assert_eq!(out.code, 255, "no command: {out:?}");
    let out = rt.cmd(&["exec"]);
    assert_eq!(out.code, 1, "usage error: {out:?}");
    let out = rt.exec(&b.id, &["-d", "--pid-file", "/nonexistent-dir/exec.pid"], &["sleep", "77"]);
    assert_eq!(out.code, 255, "bad --pid-file: {out:?}");
    let left = common::wait_until(Duration::from_secs(5), || {
        !common::processes_in_cgroup(&b.id)
            .iter()
            .any(|p| fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == "sleep\x0077\0"))
    });
    assert!(left, "the process of a failed exec is still running");
}

/// A program that is not in the container, or cannot be executed: `exec` exits
/// 255 like every runtime failure (runc's code, which containerd and podman
/// expect), and the message says which it is (podman turns it into 127/126).
#[test]
fn exec_of_missing_or_non_executable_program() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("exec-126");
    let _c = rt.start_new(&b);
    for (args, why) in [
        (&["/nonexistent"][..], "no such file"),
        (&["no-such-program"], "not found"),
        (&["./relative-missing"], "no such file"),
        (&["/etc/passwd"], "permission denied"),
        (&["/tmp"], "permission denied"),
    ] {
        let out = rt.exec(&b.id, &[], args);
        assert_eq!(out.code, 255, "{args:?}: {out:?}");
        assert!(out.stderr.to_lowercase().contains(why), "{args:?}: {out:?}");
    }
    let out = rt.exec(&b.id, &["--cwd", "/nonexistent"], &["true"]);
    assert_eq!(out.code, 255, "{out:?}");
}

/// A paused container refuses `exec` (runc's message, exit 255), unless
/// `--ignore-paused`: then the process joins the frozen cgroup and runs once
/// the container is resumed.
#[test]
fn exec_into_paused_container() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("exec-paused");
    let _c = rt.start_new(&b);
    rt.cmd(&["pause", &b.id]).ok();
    let out = rt.exec(&b.id, &[], &["true"]);
    assert_eq!(out.code, 255, "{out:?}");
    assert!(out.stderr.contains("cannot exec in a paused container"), "{out:?}");
    let mut cmd = rt.command(&["exec", "--ignore-paused", &b.id, "sh", "-c", "echo ran; exit 4"]);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Wait until the new process is in the (frozen) cgroup, then resume.
    let joined = common::wait_until(Duration::from_secs(10), || common::processes_in_cgroup(&b.id).len() >= 2);
    rt.cmd(&["resume", &b.id]).ok();
    let out = child.wait_with_output().unwrap();
    assert!(joined, "the exec'd process never joined the container's cgroup");
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
}

/// rmdir's the sub-cgroups a test made (before the container's guard runs).
struct SubCgroups(Vec<std::path::PathBuf>);

impl Drop for SubCgroups {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

/// `exec --cgroup SUB`: the process runs in an existing sub-cgroup of the
/// container's cgroup (every hierarchy; on cgroup v1 also per controller).
/// Missing sub-cgroups and paths leaving the container's cgroup are refused.
#[test]
fn exec_in_sub_cgroup() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = sleeper("exec-cg");
    let _c = rt.start_new(&b);
    let dirs: Vec<_> = common::cgroup_hierarchies()
        .into_iter()
        .map(|h| h.join(common::CGROUP_PARENT).join(&b.id))
        .filter(|d| d.is_dir())
        .map(|d| d.join("sub1"))
        .collect();
    assert!(!dirs.is_empty(), "the container has no cgroup");
    let _subs = SubCgroups(dirs.clone());
    for d in &dirs {
        fs::create_dir(d).unwrap();
        // A new v1 cpuset has no cpus or mems: nobody can join it until set.
        // (On cgroup v2 the file is absent: no controller is enabled below.)
        for f in ["cpuset.cpus", "cpuset.mems"] {
            match fs::read_to_string(d.parent().unwrap().join(f)) {
                Ok(v) if d.join(f).exists() && fs::read_to_string(d.join(f)).unwrap().trim().is_empty() => {
                    fs::write(d.join(f), v.trim()).unwrap()
                }
                _ => {}
            }
        }
    }
    let lines = |flags: &[&str]| -> Vec<String> {
        let out = rt.exec(&b.id, flags, &["cat", "/proc/self/cgroup"]).ok();
        out.stdout.lines().map(str::to_string).collect()
    };
    let mine = format!("/{}/{}", common::CGROUP_PARENT, b.id);
    for l in lines(&["--cgroup", "sub1"]) {
        assert!(l.ends_with(&format!("{mine}/sub1")), "not in sub1: {l}");
    }
    let v1 = Path::new("/sys/fs/cgroup/memory").join(common::CGROUP_PARENT).join(&b.id).is_dir();
    if v1 {
        for l in lines(&["--cgroup", "memory:sub1"]) {
            let memory = l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == "memory"));
            assert_eq!(l.ends_with(&format!("{mine}/sub1")), memory, "only memory is in sub1: {l}");
        }
    } else {
        let out = rt.exec(&b.id, &["--cgroup", "memory:sub1"], &["true"]);
        assert_eq!(out.code, 255, "cgroup v2 has no per-controller paths: {out:?}");
    }
    for bad in ["..", "sub1/../..", "no-such-sub"] {
        let out = rt.exec(&b.id, &["--cgroup", bad], &["true"]);
        assert_eq!(out.code, 255, "--cgroup {bad}: {out:?}");
    }
    if common::is_capsa() {
        let out = rt.exec(&b.id, &["--cgroup", ".."], &["true"]);
        assert!(out.stderr.contains(".. is not a sub cgroup path"), "{out:?}");
    }
}
