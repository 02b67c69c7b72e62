//! Managed containers end to end (root, real kernel, real shim): `run -d`
//! outlives the CLI, `logs -f` follows, `stop` honours the grace period, a
//! killed shim shows the container stopped (and nothing keeps running),
//! `--restart on-failure` restarts with backoff, attach/exec/stats/inspect, and
//! bad input that changes nothing.

mod pod_common;

use pod_common::{root_or_skip, wait_until, Env};
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(") ").next().and_then(|r| r.split(' ').next()) != Some("Z"))
        .unwrap_or(false)
}

#[test]
fn detached_run_logs_follow_and_stop_with_grace() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(false);
    env.with_busybox();
    // A process that handles SIGTERM (exit 3) and one that ignores it.
    let script = "echo started; trap 'echo got TERM; exit 3' TERM; while true; do sleep 0.05; done";
    let o = env.ok(&["run", "-d", "--name", "polite", "busybox", "sh", "-c", script]);
    assert_eq!(o.stdout.trim(), "polite");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.05; done",
    ]);

    // The CLI has exited; the containers run on under their shims.
    let i = env.wait_state("polite", "running", Duration::from_secs(5));
    let pid = i["pid"].as_i64().unwrap();
    assert!(alive(pid), "container init {pid} is not running");
    assert!(i["monitorPid"].as_i64().is_some_and(alive));
    assert_eq!(i["cgroupsPath"], format!("{}/polite", env.cgroup_parent));
    let ps = env.ok(&["ps", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&ps.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list:#}");

    // logs -f follows until the container exits.
    let mut follow = env.command(&["logs", "-f", "polite"]).stdout(Stdio::piped()).spawn().unwrap();
    assert!(wait_until(Duration::from_secs(5), || env.ok(&["logs", "polite"]).stdout.contains("started")));
    env.ok(&["stop", "-t", "10", "polite"]);
    // Exit 3 (not 137): the stop signal reached the handler, no SIGKILL was needed.
    let i = env.inspect("polite");
    assert_eq!(i["state"], "exited");
    assert_eq!(i["exitCode"], 3, "{i:#}");
    assert!(!alive(pid));
    let mut followed = String::new();
    assert!(wait_until(Duration::from_secs(5), || follow.try_wait().unwrap().is_some()), "logs -f did not end");
    follow.stdout.take().unwrap().read_to_string(&mut followed).unwrap();
    assert!(followed.contains("started\n") && followed.contains("got TERM\n"), "{followed:?}");
    // --tail and --timestamps
    let tail = env.ok(&["logs", "--tail", "1", "-t", "polite"]).stdout;
    assert_eq!(tail.lines().count(), 1, "{tail:?}");
    assert!(tail.ends_with(" got TERM\n") && tail.starts_with("20"), "{tail:?}");

    // SIGTERM ignored: SIGKILL after the grace period.
    let t = Instant::now();
    env.ok(&["stop", "-t", "1", "stubborn"]);
    assert!(t.elapsed() >= Duration::from_secs(1), "stop must wait the grace period before SIGKILL");
    let i = env.inspect("stubborn");
    assert_eq!(i["exitCode"], 137, "{i:#}");

    // rm removes everything: directory, runtime state, cgroups.
    env.ok(&["rm", "polite", "stubborn"]);
    assert_eq!(env.ok(&["ps", "-a", "-q"]).stdout, "");
    assert!(!env.store().join("containers/polite").exists());
    assert!(env.leftover_cgroups().is_empty(), "{:?}", env.leftover_cgroups());
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
}

#[test]
fn killed_shim_shows_the_container_stopped() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(false);
    env.with_busybox();
    env.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "300"]);
    let i = env.wait_state("orphan", "running", Duration::from_secs(5));
    let (pid, shim) = (i["pid"].as_i64().unwrap(), i["monitorPid"].as_i64().unwrap());
    // SAFETY: kill(2) of the shim this test started.
    assert_eq!(unsafe { libc::kill(shim as i32, libc::SIGKILL) }, 0);
    assert!(wait_until(Duration::from_secs(5), || !alive(shim)));
    let ps = env.ok(&["ps", "-a"]).stdout;
    assert!(ps.contains("Stopped (monitor lost)"), "{ps}");
    let i = env.inspect("orphan");
    assert_eq!(i["state"], "lost");
    // Never left running untracked: the container was killed and deleted.
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)), "container {pid} still runs");
    let list = env.ok(&["list", "-q"]).stdout;
    assert!(!list.contains("orphan"), "runtime still knows it: {list}");
    env.ok(&["rm", "orphan"]);
    assert!(env.leftover_cgroups().is_empty(), "{:?}", env.leftover_cgroups());
}

#[test]
fn restart_on_failure_backs_off_then_gives_up() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(false);
    env.with_busybox();
    env.ok(&["run", "-d", "--restart", "on-failure:3", "--name", "flaky", "busybox", "sh", "-c", "echo run; exit 1"]);
    let ok = wait_until(Duration::from_secs(20), || {
        let i = env.inspect("flaky");
        i["state"] == "exited" && i["restartCount"] == 3
    });
    assert!(ok, "{:#}", env.inspect("flaky"));
    assert_eq!(env.inspect("flaky")["exitCode"], 1);
    // Four runs, logged with their times: the gaps grow (100, 200, 400 ms backoff).
    let log = env.ok(&["logs", "-t", "flaky"]).stdout;
    let times: Vec<f64> = log
        .lines()
        .map(|l| {
            let ts = l.split(' ').next().unwrap(); // 2026-11-22T05:00:01.123456789Z
            let hms = ts.split('T').nth(1).unwrap().trim_end_matches('Z');
            let mut it = hms.split(':').map(|x| x.parse::<f64>().unwrap());
            it.next().unwrap() * 3600.0 + it.next().unwrap() * 60.0 + it.next().unwrap()
        })
        .collect();
    assert_eq!(times.len(), 4, "{log}");
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for (g, min) in gaps.iter().zip([0.1, 0.2, 0.4]) {
        assert!(*g >= min, "backoff gap {g:.3}s < {min}s: {gaps:?}");
    }
    env.ok(&["rm", "flaky"]);
}

#[test]
fn attach_exec_stats_inspect() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(false);
    env.with_busybox();
    env.ok(&["run", "-d", "-i", "--memory", "64m", "--name", "cat", "busybox", "cat"]);
    let i = env.wait_state("cat", "running", Duration::from_secs(5));
    for ns in ["net", "pid", "mnt", "ipc", "uts"] {
        assert!(i["namespaces"][ns].as_str().is_some_and(|s| s.starts_with(&format!("{ns}:["))), "{i:#}");
    }
    // exec (runc's verb works on managed containers: same runtime root).
    let o = env.ok(&["exec", "cat", "sh", "-c", "echo hi from exec"]);
    assert_eq!(o.stdout, "hi from exec\n");
    // docker's `exec -i` spelling: stdin reaches the process.
    let mut c = env.command(&["exec", "-i", "cat", "sh", "-c", "read x; echo got $x"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"typed\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got typed\n");
    // stats from the cgroup.
    let s: serde_json::Value = serde_json::from_str(&env.ok(&["stats", "--format", "json", "cat"]).stdout).unwrap();
    assert!(s[0]["memory_bytes"].as_u64().unwrap() > 0, "{s:#}");
    assert_eq!(s[0]["memory_limit"], 64 << 20, "{s:#}");
    assert!(s[0]["pids"].as_u64().unwrap() >= 1, "{s:#}");
    // attach: stdin goes to cat, its output comes back; EOF ends it with exit 0.
    let mut a = env.command(&["attach", "cat"]);
    a.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = a.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello through attach\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello through attach\n");
    assert_eq!(out.status.code(), Some(0));
    let i = env.wait_state("cat", "exited", Duration::from_secs(5));
    assert_eq!(i["exitCode"], 0);
    env.ok(&["rm", "cat"]);
}

#[test]
fn bad_input_changes_nothing() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(false);
    env.with_busybox();
    env.ok(&["run", "-d", "--name", "one", "busybox", "sleep", "300"]);
    let before = env.inspect("one");
    // Duplicate name: refused; the first container is untouched.
    let o = env.fails(&["run", "-d", "--name", "one", "busybox", "true"]);
    assert_eq!(
        o.stderr,
        "capsa: container name \"one\" is in use by a running container: `capsa rm -f one` removes it, or choose another --name\n"
    );
    let after = env.inspect("one");
    assert_eq!((after["state"].clone(), after["pid"].clone()), (before["state"].clone(), before["pid"].clone()));
    // A stopped one by that name: `rm` (no -f) is enough.
    env.ok(&["run", "-d", "--name", "done", "busybox", "true"]);
    env.wait_state("done", "exited", Duration::from_secs(10));
    // (Its monitor holds the name's lock for a moment after the exit: "running" until it is gone.)
    let mut last = String::new();
    let stopped = wait_until(Duration::from_secs(10), || {
        last = env.fails(&["run", "--name", "done", "busybox", "true"]).stderr;
        last.contains("in use by a stopped container: `capsa rm done` removes it")
    });
    assert!(stopped, "{last}");
    env.ok(&["rm", "done"]);
    // Unknown image, bad restart policy: nothing created.
    env.fails(&["run", "-d", "--name", "two", "no-such-image", "true"]);
    let o = env.fails(&["run", "-d", "--restart", "sometimes", "--name", "three", "busybox", "true"]);
    assert!(o.stderr.contains("on-failure"), "{}", o.stderr);
    assert!(!env.store().join("containers/two").exists() && !env.store().join("containers/three").exists());
    // rm of a running container needs -f; unknown names are errors.
    let o = env.fails(&["rm", "one"]);
    assert!(o.stderr.contains("running"), "{}", o.stderr);
    for verb in ["logs", "stop", "rm", "inspect", "attach"] {
        let o = env.fails(&[verb, "nope"]);
        assert!(o.stderr.contains("no such container"), "{verb}: {}", o.stderr);
    }
    env.ok(&["rm", "-f", "one"]);
    assert_eq!(env.ok(&["ps", "-a", "-q"]).stdout, "");
    assert!(env.leftover_cgroups().is_empty(), "{:?}", env.leftover_cgroups());
}

/// `logs NAME | head -1`: when the reader goes away, `logs` ends quietly, killed by
/// SIGPIPE as docker's CLI is, not with a "Broken pipe" error.
#[test]
fn logs_into_a_closed_pipe_is_quiet() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    if !root_or_skip() {
        return;
    }
    let env = Env::new(false);
    env.with_busybox();
    env.ok(&["run", "-d", "--name", "chatty", "busybox", "sh", "-c", "seq 200000; sleep 300"]);
    assert!(wait_until(Duration::from_secs(10), || env.ok(&["logs", "--tail", "1", "chatty"]).stdout == "200000\n"));
    for follow in [false, true] {
        let args: &[&str] = if follow { &["logs", "-f", "chatty"] } else { &["logs", "chatty"] };
        let mut c = env.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut first = String::new();
        std::io::BufReader::new(c.stdout.as_mut().unwrap()).read_line(&mut first).unwrap();
        assert_eq!(first, "1\n");
        drop(c.stdout.take());
        assert!(wait_until(Duration::from_secs(10), || c.try_wait().unwrap().is_some()), "logs kept running");
        let st = c.wait().unwrap();
        let mut err = String::new();
        c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(st.signal(), Some(libc::SIGPIPE), "follow={follow}: {st:?} {err}");
        assert!(err.is_empty(), "follow={follow}: {err}");
    }
    env.ok(&["rm", "-f", "chatty"]);
}

/// `run -d` containers run under the RuntimeDefault seccomp profile, and so do the
/// processes `exec` adds; `--security-opt seccomp=unconfined` runs without one.
#[test]
fn detached_containers_get_the_default_seccomp_profile() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(false);
    env.with_busybox();
    env.ok(&["run", "-d", "--name", "confined", "busybox", "sleep", "300"]);
    env.ok(&["run", "-d", "--name", "free", "--security-opt", "seccomp=unconfined", "busybox", "sleep", "300"]);
    for (name, mode) in [("confined", "2"), ("free", "0")] {
        env.wait_state(name, "running", Duration::from_secs(5));
        let o = env.ok(&["exec", name, "grep", "^Seccomp:", "/proc/1/status", "/proc/self/status"]);
        let want = format!("/proc/1/status:Seccomp:\t{mode}\n/proc/self/status:Seccomp:\t{mode}\n");
        assert_eq!(o.stdout, want, "{name}");
    }
    env.ok(&["rm", "-f", "confined", "free"]);
    assert!(env.leftover_cgroups().is_empty(), "{:?}", env.leftover_cgroups());
}

/// `run --label` / `-l` stores labels; `ps --filter` selects by them as docker does
/// (label=KEY: any value, label=KEY=VALUE: exactly; several: all of them), by name
/// and by status (stopped ones too, without -a); `ps --format json` and `inspect`
/// show them; a bad filter or label is an error that changes nothing.
#[test]
fn labels_and_ps_filters() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(false);
    env.with_busybox();
    env.ok(&["run", "-d", "--name", "web1", "--label", "app=web", "-l", "tier=front", "busybox", "sleep", "300"]);
    env.ok(&["run", "-d", "--name", "web2", "-l", "app=web", "-l", "tier=back", "busybox", "sleep", "300"]);
    env.ok(&["run", "-d", "--name", "db", "-l", "app=db", "-l", "canary", "busybox", "sleep", "300"]);
    env.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "300"]);
    env.ok(&["run", "-d", "--name", "job", "-l", "app=batch", "busybox", "true"]);
    env.wait_state("job", "exited", Duration::from_secs(10));
    let names = |filters: &[&str], all: bool| -> Vec<String> {
        let mut args = vec!["ps", "-q"];
        if all {
            args.push("-a");
        }
        for f in filters {
            args.extend(["--filter", f]);
        }
        let mut v: Vec<String> = env.ok(&args).stdout.lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    assert_eq!(names(&["label=app=web"], false), ["web1", "web2"]);
    assert_eq!(names(&["label=app"], false), ["db", "web1", "web2"], "KEY only: any value, running only");
    assert_eq!(names(&["label=app"], true), ["db", "job", "web1", "web2"]);
    assert_eq!(names(&["label=app=web", "label=tier=front"], false), ["web1"], "several labels: all");
    assert_eq!(names(&["label=canary"], false), ["db"], "a label without a value");
    assert_eq!(names(&["label=canary="], false), ["db"], "its value is empty");
    assert!(names(&["label=app=nginx"], true).is_empty());
    assert!(names(&["label=app=web", "label=tier=middle"], true).is_empty());
    assert!(names(&["label=nosuchkey"], true).is_empty());
    assert_eq!(names(&["name=web"], false), ["web1", "web2"]);
    assert_eq!(names(&["name=web", "name=db"], false), ["db", "web1", "web2"], "several names: any");
    assert_eq!(names(&["status=exited"], false), ["job"], "a status filter shows stopped ones without -a");
    assert_eq!(names(&["status=running", "label=app=batch"], true), Vec::<String>::new());
    // The table keeps its header for no match; json carries the labels.
    let o = env.ok(&["ps", "--filter", "label=app=nginx"]);
    assert!(o.stdout.starts_with("NAME") && o.stdout.lines().count() == 1, "{}", o.stdout);
    let o = env.ok(&["ps", "--format", "json", "--filter", "label=tier=front"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v[0]["labels"], serde_json::json!({"app": "web", "tier": "front"}));
    assert_eq!(env.inspect("db")["labels"], serde_json::json!({"app": "db", "canary": ""}));
    assert_eq!(env.inspect("plain")["labels"], serde_json::json!({}));

    // Bad filters: an error naming the filter, exit non-zero.
    for (f, says) in [
        ("colour=red", "unknown filter \"colour\" (this command takes label, name, status)"),
        ("label", "expected KEY=VALUE"),
        ("label=", "expected label=KEY or label=KEY=VALUE"),
        ("status=up", "unknown status \"up\""),
    ] {
        let o = env.fails(&["ps", "--filter", f]);
        assert!(o.stderr.contains(says) && o.stdout.is_empty(), "{f}: {}", o.stderr);
    }
    // A bad label: refused before anything is made.
    let o = env.fails(&["run", "-d", "--name", "bad", "-l", "=x", "busybox", "true"]);
    assert!(o.stderr.contains("--label \"=x\""), "{}", o.stderr);
    assert!(!env.store().join("containers/bad").exists());
    env.ok(&["rm", "-f", "web1", "web2", "db", "plain", "job"]);
    assert_eq!(env.ok(&["ps", "-a", "-q"]).stdout, "");
    assert!(env.leftover_cgroups().is_empty(), "{:?}", env.leftover_cgroups());
}
