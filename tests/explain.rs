//! `--explain`: the narration names every namespace created, every mount made and every
//! cgroup file written, checked against what /proc and /sys show for the container
//! (created, so its init waits with everything set up); it changes nothing capsa does;
//! a bad format is refused.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

mod common;
use common::{Bundle, Rt};

/// The JSON records on stderr.
fn records(stderr: &str) -> Vec<Value> {
    stderr.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("a JSON step")).collect()
}

fn of_kind<'a>(r: &'a [Value], kind: &str) -> impl Iterator<Item = &'a Value> {
    let k = kind.to_string();
    r.iter().filter(move |s| s["kind"] == k.as_str())
}

/// A bundle that sets limits (so there are cgroup files to write), a hostname, a
/// tmpfs and a read-only bind: every kind of step.
fn bundle(host: &Path) -> Bundle {
    Bundle::new("explain", &["sleep", "30"])
        .edit(|c| {
            c["linux"]["resources"] = json!({
                "memory": {"limit": 67108864},
                "pids": {"limit": 64},
                "cpu": {"quota": 50000, "period": 100000}
            });
            c["hostname"] = json!("explained");
        })
        .mount(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}))
        .bind(host, "/from-host", &["ro"])
}

#[test]
fn names_every_namespace_mount_and_cgroup_file() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let host = common::host_dir();
    let b = bundle(host.path());
    let rt = Rt::new();
    let (out, _c) = rt.try_create(&b, &[]);
    let mut cmd = rt.command(&["--explain=json", "delete", "-f", &b.id]);
    let _ = cmd.output();
    drop(out);
    let mut cmd = rt.command(&["--explain=json", "create", "--bundle", b.path_str(), &b.id]);
    cmd.stdin(std::process::Stdio::null());
    let out = common::run_cmd(cmd, std::time::Duration::from_secs(30));
    assert!(out.success(), "create --explain=json: {}", out.stderr);
    let steps = records(&out.stderr);
    assert!(steps.len() > 20, "too few steps:\n{}", out.stderr);
    // Numbered 1.. in order, across the runtime and its init.
    let nums: Vec<u64> = steps.iter().map(|s| s["step"].as_u64().unwrap()).collect();
    assert_eq!(nums, (1..=nums.len() as u64).collect::<Vec<_>>(), "steps out of order");
    let pid = rt.pid(&b.id);

    // Namespaces: those narrated as created are exactly those the container does not
    // share with us.
    let created: BTreeSet<String> = of_kind(&steps, "namespace")
        .flat_map(|s| s["created"].as_array().cloned().unwrap_or_default())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let ns = |p: &str, n: &str| std::fs::read_link(format!("/proc/{p}/ns/{n}")).ok();
    let differ: BTreeSet<String> = ["pid", "mnt", "net", "ipc", "uts", "user", "cgroup"]
        .iter()
        .filter(|n| ns(&pid.to_string(), n) != ns("self", n))
        .map(|n| n.to_string())
        .collect();
    assert_eq!(created, differ, "namespaces narrated vs /proc/{pid}/ns");

    // Mounts: every mount point of the container is named by a mount step (its target
    // as the container sees it), and every new mount narrated is there.
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let points: BTreeSet<String> = mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).map(str::to_string).collect();
    let targets: BTreeSet<String> =
        of_kind(&steps, "mount").filter_map(|s| s["target"].as_str()).map(str::to_string).collect();
    for p in &points {
        assert!(targets.contains(p), "mount point {p} of the container is not narrated; narrated: {targets:?}");
    }
    for s in of_kind(&steps, "mount").filter(|s| s["fstype"].is_string()) {
        let t = s["target"].as_str().unwrap();
        assert!(points.contains(t), "narrated mount {t} ({}) is not in /proc/{pid}/mountinfo", s["fstype"]);
    }
    for must in ["/", "/proc", "/dev", "/sys", "/scratch", "/from-host"] {
        assert!(points.contains(must) && targets.contains(must), "{must}");
    }
    assert!(of_kind(&steps, "root").any(|s| s["call"].as_str().unwrap().contains("pivot_root")), "no pivot_root");

    // cgroups: every file narrated holds the narrated value now (write-only and
    // membership files aside), and the container's cgroup dirs are among those narrated.
    let mut files = 0;
    for s in of_kind(&steps, "cgroup").filter(|s| s["file"].is_string()) {
        let f = s["file"].as_str().unwrap();
        let name = Path::new(f).file_name().unwrap().to_string_lossy().to_string();
        if ["cgroup.procs", "tasks", "devices.allow", "devices.deny"].contains(&name.as_str()) {
            continue;
        }
        let now = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        let want = s["value"].as_str().unwrap().trim();
        let now = now.trim();
        let same =
            now == want || (want == "max" && now.starts_with("max")) || now.split_whitespace().next() == Some(want);
        assert!(same, "{f}: narrated {want:?}, the kernel shows {now:?}");
        files += 1;
    }
    assert!(files >= 3, "memory, pids and cpu limits narrated: {files}");
    let limit_files: Vec<&str> =
        of_kind(&steps, "cgroup").filter_map(|s| s["file"].as_str()).filter_map(|f| f.rsplit('/').next()).collect();
    assert!(limit_files.iter().any(|f| *f == "memory.max" || *f == "memory.limit_in_bytes"), "{limit_files:?}");
    assert!(limit_files.contains(&"pids.max"), "{limit_files:?}");
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let narrated_dirs: BTreeSet<String> = of_kind(&steps, "cgroup")
        .filter_map(|s| s["dir"].as_str().or(s["file"].as_str().and_then(|f| f.rsplit_once('/').map(|x| x.0))))
        .map(str::to_string)
        .collect();
    let own = b.config["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    for line in cg.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        if path != own {
            continue;
        }
        assert!(narrated_dirs.iter().any(|d| d.ends_with(&own)), "cgroup {line} not narrated: {narrated_dirs:?}");
    }
    // The hostname asked for is the one set.
    assert!(of_kind(&steps, "hostname").any(|s| s["hostname"] == "explained"));
    // The init's host pid is the one state reports.
    assert!(of_kind(&steps, "namespace").any(|s| s["host_pid"] == pid as i64), "no birth step for pid {pid}");

    // The final execve is narrated by the init before it loads its seccomp filter.
    assert!(of_kind(&steps, "process").any(|s| s["path"].as_str().is_some_and(|p| p.ends_with("sleep"))));
    assert!(steps.iter().all(|s| s["container"] == b.id.as_str()), "every record names the container");
    rt.cmd(&["delete", "-f", &b.id]);
}

#[test]
fn text_is_numbered_and_off_is_silent() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let b = Bundle::new("explain-text", &["true"]);
    let rt = Rt::new();
    let _g = rt.guard(&b);
    let on = rt.cmd(&["--explain", "run", "--bundle", b.path_str(), &b.id]);
    assert!(on.success(), "{}", on.stderr);
    let first = on.stderr.lines().next().unwrap_or("");
    assert!(first.trim_start().starts_with("1. ["), "text steps are numbered: {first:?}");
    assert!(on.stderr.contains("execve(\"/bin/true\""), "the final execve is narrated:\n{}", on.stderr);
    // The narration's fd never reaches the container's program: only its stdio (and
    // the directory ls itself opens) are there.
    let b2 = Bundle::new("explain-fds", &["ls", "/proc/self/fd"]);
    let _g2 = rt.guard(&b2);
    let fds = rt.cmd(&["--explain", "run", "--bundle", b2.path_str(), &b2.id]);
    assert!(fds.success(), "{}", fds.stderr);
    let listed: Vec<u32> = fds.stdout.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    assert!(listed.iter().all(|&f| f <= 3), "fds in the container with --explain: {listed:?}");
    assert!(fds.stderr.contains("[process] execve"), "{}", fds.stderr);
    // Asked through the environment (as capsa-image asks the runtimes it spawns): the
    // same narration; a stale path is dropped without failing the run.
    let mut c = rt.command(&["run", "--bundle", b.path_str(), &b.id]);
    c.env("CAPSA_EXPLAIN", "json");
    let env_on = common::run_cmd(c, std::time::Duration::from_secs(30));
    assert!(env_on.success() && env_on.stderr.lines().any(|l| l.starts_with("{\"")), "{}", env_on.stderr);
    let mut c = rt.command(&["run", "--bundle", b.path_str(), &b.id]);
    c.env("CAPSA_EXPLAIN", "json:/proc/1/fd/999@1:1");
    let stale = common::run_cmd(c, std::time::Duration::from_secs(30));
    assert!(stale.success() && stale.stderr.is_empty(), "a stale CAPSA_EXPLAIN: {:?}", stale.stderr);
    // Off: nothing on stderr, same exit.
    let off = rt.cmd(&["run", "--bundle", b.path_str(), &b.id]);
    assert!(off.success() && off.stderr.is_empty(), "without --explain: {:?}", off.stderr);
    // A bad format: refused before anything is done.
    let bad = rt.cmd(&["--explain=yaml", "run", "--bundle", b.path_str(), &b.id]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--explain=yaml"), "{}", bad.stderr);
    assert!(rt.list_ids().is_empty(), "nothing created");
}
