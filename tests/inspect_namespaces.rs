//! `capsa inspect --namespaces` against the kernel itself (root): for a runtime
//! container made from a bundle and for pod members, the namespace inodes it prints
//! are those of `/proc/PID/ns` (the container's and the host's), the verdicts say whose
//! each namespace is (own, host, a pod's pin, another container's), the processes are
//! those of the container's cgroup with the pids of NSpid, and the limits are those of
//! the config.

mod pod_common;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pod_common::{capsa_bin, root_or_skip, run, wait_until, Env, Out};
use serde_json::{json, Value};

const TYPES: [&str; 9] = ["cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "user", "uts"];

/// `capsa --root R ARGS` (runtime verbs take no --store). Output goes through files:
/// what `run -d` and `exec -d` start keeps their stdio open for as long as it runs.
fn runtime(env: &Env, args: &[&str]) -> Out {
    let (out, err) = (env.path("runtime.out"), env.path("runtime.err"));
    let mut c = Command::new(capsa_bin());
    c.arg("--root").arg(env.root()).args(args);
    c.stdout(std::fs::File::create(&out).unwrap()).stderr(std::fs::File::create(&err).unwrap());
    let status = c.stdin(std::process::Stdio::null()).status().unwrap();
    let o = Out {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    };
    assert_eq!(o.code, 0, "capsa {args:?}: {}{}", o.stdout, o.stderr);
    o
}

/// Deletes runtime containers on drop (Env removes managed ones and pods only).
struct Delete<'a>(&'a Env, Vec<&'static str>);

impl Drop for Delete<'_> {
    fn drop(&mut self) {
        for id in &self.1 {
            let _ = run(Command::new(capsa_bin()).arg("--root").arg(self.0.root()).args(["delete", "--force", id]));
        }
    }
}

fn link(pid: &str, ty: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{ty}")).ok().map(|l| l.to_string_lossy().into_owned())
}

/// The host's namespaces as capsa reads them: pid 1's, or its own where pid 1's are hidden.
fn host_link(ty: &str) -> Option<String> {
    if link("1", "mnt").is_some() {
        link("1", ty)
    } else {
        link("self", ty)
    }
}

fn inode(l: &str) -> u64 {
    l.rsplit_once(":[").unwrap().1.trim_end_matches(']').parse().unwrap()
}

/// `inspect --namespaces --format json NAME`, the one report.
fn report(env: &Env, name: &str) -> Value {
    let o = env.ok(&["inspect", "--namespaces", "--format", "json", name]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v:#}");
    v[0].clone()
}

fn ns<'a>(r: &'a Value, ty: &str) -> &'a Value {
    r["namespaces"].as_array().unwrap().iter().find(|n| n["type"] == ty).unwrap_or_else(|| panic!("no {ty}: {r:#}"))
}

/// Every namespace: the container's side is /proc/PID/ns, the host's /proc/1/ns.
fn check_namespaces(r: &Value, pid: i64) {
    for ty in TYPES {
        let n = ns(r, ty);
        let want = link(&pid.to_string(), ty);
        assert_eq!(n["container"].as_str().map(str::to_owned), want, "{ty}: {n:#}");
        if let Some(w) = &want {
            assert_eq!(n["inode"], inode(w), "{ty}");
        }
        assert_eq!(n["host"].as_str().map(str::to_owned), host_link(ty), "{ty}: {n:#}");
    }
}

/// The container pid of `pid` in the pid namespace of `init`: its NSpid entry at init's depth.
fn container_pid(pid: i32, init: i64) -> i64 {
    let nspid = |p: String| -> Vec<i64> {
        let s = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap();
        let l = s.lines().find(|l| l.starts_with("NSpid:")).unwrap().to_owned();
        l.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect()
    };
    nspid(pid.to_string())[nspid(init.to_string()).len() - 1]
}

/// The processes printed are those of the cgroup (`procs`), with their NSpid pids.
fn check_processes(r: &Value, procs: &Path, init: i64) -> Vec<Value> {
    let want: BTreeSet<i32> =
        std::fs::read_to_string(procs).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect();
    let ps = r["processes"].as_array().unwrap().clone();
    let got: BTreeSet<i32> = ps.iter().map(|p| p["hostPid"].as_i64().unwrap() as i32).collect();
    assert_eq!(got, want, "{ps:#?}");
    for p in &ps {
        let host = p["hostPid"].as_i64().unwrap() as i32;
        assert_eq!(p["containerPid"], container_pid(host, init), "{p}");
    }
    assert_eq!(ps[0]["hostPid"], init, "the init comes first: {ps:#?}");
    assert_eq!(ps[0]["containerPid"], 1);
    ps
}

/// A cgroup directory of the report, by controller.
fn cgroup_dir(r: &Value, controller: &str) -> PathBuf {
    let dirs = r["cgroups"]["dirs"].as_array().unwrap();
    let d = dirs.iter().find(|d| d["controllers"].as_array().unwrap().iter().any(|c| c == controller));
    let d = d.or_else(|| dirs.iter().find(|d| d["controllers"][0] == "unified")).unwrap();
    PathBuf::from(d["path"].as_str().unwrap())
}

/// A block device (major, minor) to throttle: a disk's if there is one.
fn block_device() -> Option<(u64, u64)> {
    let mut devs: Vec<(String, String)> = std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            Some((n, std::fs::read_to_string(e.path().join("dev")).ok()?.trim().to_owned()))
        })
        .collect();
    devs.sort_by_key(|(n, _)| ["loop", "zram", "ram"].iter().any(|p| n.starts_with(p)));
    let (maj, min) = devs.first()?.1.split_once(':')?;
    Some((maj.parse().ok()?, min.parse().ok()?))
}

#[test]
fn runtime_container_from_a_bundle() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(false);
    let _guard = Delete(&env, vec!["rt-join", "rt"]);
    let bundle = env.path("bundle");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-examples/make-busybox-bundle.sh");
    let o = run(Command::new(script).arg(&bundle).args(["--args", r#"["sh","-c","sleep 1000 & sleep 1001"]"#]));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let cfg_path = bundle.join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let dev = block_device();
    cfg["linux"]["cgroupsPath"] = json!(format!("{}/rt", env.cgroup_parent));
    cfg["linux"]["resources"] = json!({
        "memory": {"limit": 32 << 20},
        "pids": {"limit": 20},
        "cpu": {"quota": 20000, "period": 100000},
    });
    if let Some((major, minor)) = dev {
        cfg["linux"]["resources"]["blockIO"] =
            json!({"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]});
    }
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    runtime(&env, &["run", "-d", "--bundle", bundle.to_str().unwrap(), "rt"]);
    let state: Value = serde_json::from_str(&runtime(&env, &["state", "rt"]).stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let r = report(&env, "rt");
    // Both sleeps are up before the procs are compared.
    let pids_dir = cgroup_dir(&r, "pids");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(pids_dir.join("cgroup.procs")).unwrap_or_default().lines().count() == 2
    }));
    let r = report(&env, "rt");
    assert_eq!(
        (r["kind"].as_str(), r["pid"].as_i64(), r["status"].as_str()),
        (Some("runtime"), Some(pid), Some("running"))
    );
    check_namespaces(&r, pid);
    for ty in ["ipc", "mnt", "net", "pid", "uts"] {
        assert_eq!(ns(&r, ty)["verdict"], "own", "{ty}: {r:#}");
    }
    assert_eq!(ns(&r, "user")["verdict"], "host", "{r:#}");
    let ps = check_processes(&r, &pids_dir.join("cgroup.procs"), pid);
    assert_eq!(ps.len(), 2);
    assert_eq!((ps[0]["command"].as_str(), ps[1]["command"].as_str()), (Some("sleep 1001"), Some("sleep 1000")));
    assert_eq!((ps[1]["depth"].as_i64(), ps[1]["containerPid"].as_i64()), (Some(1), Some(2)), "{ps:#?}");
    // The limits are the config's.
    let cg = &r["cgroups"];
    assert_eq!(cg["memory"]["limit"], 32 << 20, "{cg:#}");
    assert!(cg["memory"]["usage"].as_u64().unwrap() > 0, "{cg:#}");
    assert_eq!((cg["pids"]["limit"].as_u64(), cg["pids"]["current"].as_u64()), (Some(20), Some(2)), "{cg:#}");
    assert_eq!((cg["cpu"]["quotaUs"].as_u64(), cg["cpu"]["periodUs"].as_u64()), (Some(20000), Some(100000)));
    if let Some((major, minor)) = dev {
        assert_eq!(
            cg["io"]["throttles"],
            json!([{"major": major, "minor": minor, "rbps": 1048576,
            "wbps": null, "riops": null, "wiops": null}])
        );
    }

    // Text: the same inodes, the verdicts, limits and pids in words.
    let text = env.ok(&["inspect", "--namespaces", "rt"]).stdout;
    for ty in ["net", "mnt", "pid"] {
        let c = link(&pid.to_string(), ty).unwrap();
        let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{ty} "))).unwrap();
        assert!(line.contains(&c) && line.ends_with("own"), "{line}");
    }
    assert!(text.contains("2 of 20"), "{text}");
    assert!(text.contains("quota 20000 us per 100000 us period (0.20 CPUs)"), "{text}");
    // busybox sh execs its last command: the init is `sleep 1001`, its child `sleep 1000`.
    let row = |host: i64| -> Vec<String> {
        let l = text.lines().find(|l| l.split_whitespace().next() == Some(host.to_string().as_str())).unwrap();
        l.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(row(pid)[1..], ["1", "sleep", "1001"], "{text}");
    assert_eq!(row(ps[1]["hostPid"].as_i64().unwrap())[1..], ["2", "\\_", "sleep", "1000"], "{text}");

    // A second container joining rt's network namespace by path: shared, both ways.
    let b2 = env.path("bundle2");
    let o = run(Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-examples/make-busybox-bundle.sh"))
        .arg(&b2)
        .args(["--args", "sleep 1000"]));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut cfg2: Value = serde_json::from_str(&std::fs::read_to_string(b2.join("config.json")).unwrap()).unwrap();
    cfg2["linux"]["cgroupsPath"] = json!(format!("{}/rt-join", env.cgroup_parent));
    for n in cfg2["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "network" {
            n["path"] = json!(format!("/proc/{pid}/ns/net"));
        }
    }
    std::fs::write(b2.join("config.json"), cfg2.to_string()).unwrap();
    runtime(&env, &["run", "-d", "--bundle", b2.to_str().unwrap(), "rt-join"]);
    assert_eq!(ns(&report(&env, "rt-join"), "net")["verdict"], "shared with container rt");
    assert_eq!(ns(&report(&env, "rt"), "net")["owner"], json!({"kind": "container", "name": "rt-join"}));
    assert_eq!(ns(&report(&env, "rt-join"), "pid")["verdict"], "own");

    // Unknown and stopped containers: errors that say so.
    let o = env.fails(&["inspect", "--namespaces", "nope"]);
    assert!(o.stderr.contains("no container \"nope\" under the runtime root"), "{}", o.stderr);
    runtime(&env, &["kill", "rt-join", "KILL"]);
    assert!(wait_until(Duration::from_secs(5), || {
        runtime(&env, &["state", "rt-join"]).stdout.contains("\"stopped\"")
    }));
    let o = env.fails(&["inspect", "--namespaces", "rt-join"]);
    assert!(o.stderr.contains("container rt-join is stopped"), "{}", o.stderr);
    runtime(&env, &["delete", "--force", "rt-join"]);
    runtime(&env, &["delete", "--force", "rt"]);
    assert!(env.leftover_cgroups().is_empty(), "{:?}", env.leftover_cgroups());
}

#[test]
fn pod_member_shares_the_pods_pinned_namespaces() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(false);
    env.with_busybox();
    env.ok(&["pod", "create", "--network", "none", "pm"]);
    env.ok(&[
        "run",
        "-d",
        "--pod",
        "pm",
        "--name",
        "pm-a",
        "-m",
        "48m",
        "--pids-limit",
        "30",
        "busybox",
        "sh",
        "-c",
        "sleep 1000 & exec sleep 1001",
    ]);
    env.ok(&["run", "-d", "--pod", "pm", "--name", "pm-b", "busybox", "sleep", "1000"]);
    let a = env.wait_state("pm-a", "running", Duration::from_secs(5));
    let b = env.wait_state("pm-b", "running", Duration::from_secs(5));
    let (pid, pid_b) = (a["pid"].as_i64().unwrap(), b["pid"].as_i64().unwrap());
    // One more process, exec'd from outside: its parent is not in the container.
    runtime(&env, &["exec", "-d", "pm-a", "sleep", "999"]);
    let r = report(&env, "pm-a");
    let procs = cgroup_dir(&r, "pids").join("cgroup.procs");
    assert!(wait_until(Duration::from_secs(5), || std::fs::read_to_string(&procs).unwrap().lines().count() == 3));
    let r = report(&env, "pm-a");
    assert_eq!((r["kind"].as_str(), r["pod"].as_str()), (Some("pod-member"), Some("pm")), "{r:#}");
    check_namespaces(&r, pid);
    let pins = env.store().join("pods/pm/ns");
    for ty in ["net", "ipc", "uts"] {
        let n = ns(&r, ty);
        assert_eq!(n["verdict"], "shared with pod pm", "{ty}: {n:#}");
        assert_eq!(n["owner"], json!({"kind": "pod", "name": "pm"}));
        assert_eq!(n["inode"], std::fs::metadata(pins.join(ty)).unwrap().ino(), "{ty}: the pin's inode");
        assert_eq!(n["container"].as_str().map(str::to_owned), link(&pid_b.to_string(), ty), "{ty}: pm-b's");
    }
    for ty in ["mnt", "pid"] {
        assert_eq!(ns(&r, ty)["verdict"], "own", "{ty}");
    }
    let ps = check_processes(&r, &procs, pid);
    let exec = ps.iter().find(|p| p["command"] == "sleep 999").unwrap();
    assert_eq!(exec["depth"], 0, "exec'd: its parent is outside: {ps:#?}");
    // The limits are those of the container's config.json.
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(env.store().join("containers/pm-a/config.json")).unwrap())
            .unwrap();
    let res = &cfg["linux"]["resources"];
    assert_eq!(r["cgroups"]["memory"]["limit"], res["memory"]["limit"], "{res:#}");
    assert_eq!(r["cgroups"]["memory"]["limit"], 48 << 20);
    assert_eq!(r["cgroups"]["pids"]["limit"], res["pids"]["limit"]);
    assert_eq!(r["cgroups"]["pids"]["current"], 3);
    // Text names the pod.
    let text = env.ok(&["inspect", "--namespaces", "pm-a"]).stdout;
    assert!(text.starts_with(&format!("pm-a: pod member of pod pm, running, init pid {pid} on the host\n")), "{text}");
    let net = text.lines().find(|l| l.trim_start().starts_with("net ")).unwrap();
    assert!(net.ends_with("shared with pod pm") && net.contains(&link(&pid.to_string(), "net").unwrap()), "{net}");
    assert!(text.contains("3 of 30"), "{text}");
    // Both containers at once, in JSON.
    let o = env.ok(&["inspect", "--namespaces", "--format", "json", "pm-a", "pm-b"]);
    let both: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(both[1]["pid"], pid_b);
    let o = env.fails(&["inspect", "--namespaces", "--format", "yaml", "pm-a"]);
    assert!(o.stderr.contains("text or json"), "{}", o.stderr);
    env.ok(&["pod", "rm", "-f", "pm"]);
    assert_eq!(env.ok(&["ps", "-a", "-q"]).stdout, "");
    assert!(env.leftover_cgroups().is_empty(), "{:?}", env.leftover_cgroups());
}
