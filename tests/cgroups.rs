//! cgroups on every host kind: legacy v1, hybrid (v1 + cgroup2, like the CI host) and
//! unified v2 (the VM lane, tests/vm). Each test reads back the kernel's own file
//! (memory.limit_in_bytes or memory.max, ...) and checks behaviour where it can: an
//! OOM kill, a fork bomb stopped at pids.max, a frozen container making no progress.
//! Every container lives at the absolute path /capsa-test/<id>.

mod common;

use common::{Bundle, Rt, CGROUP_PARENT};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A pure cgroup v2 host (cgroup2 mounted at /sys/fs/cgroup).
fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The kernel file for a container: `/sys/fs/cgroup/<ctl>/capsa-test/<id>/<v1>` on v1
/// and hybrid hosts, `/sys/fs/cgroup/capsa-test/<id>/<v2>` on unified ones.
fn cgf(id: &str, ctl: &str, v1: &str, v2: &str) -> PathBuf {
    if unified() {
        Path::new("/sys/fs/cgroup").join(CGROUP_PARENT).join(id).join(v2)
    } else {
        Path::new("/sys/fs/cgroup").join(ctl).join(CGROUP_PARENT).join(id).join(v1)
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_string()
}

/// Starts `sleep 30` with `resources` and returns (rt, bundle, guard).
fn start_with(prefix: &str, resources: Value) -> (Rt, Bundle, common::Container) {
    let rt = Rt::new();
    let b = Bundle::new(prefix, &["sleep", "30"]).edit(|c| c["linux"]["resources"] = resources);
    let c = rt.start_new(&b);
    (rt, b, c)
}

#[test]
fn memory_limit() {
    if !common::require_root() {
        return;
    }
    let (_rt, b, _c) = start_with("mem", json!({"memory": {"limit": 67108864, "kernelTCP": 50593792}}));
    assert_eq!(read(&cgf(&b.id, "memory", "memory.limit_in_bytes", "memory.max")), "67108864");
    // v1 still enforces the TCP buffer limit (kernelTCP); v2 has no such file.
    let tcp = cgf(&b.id, "memory", "memory.kmem.tcp.limit_in_bytes", "");
    if !unified() && tcp.exists() && common::is_capsa() {
        assert_eq!(read(&tcp), "50593792");
    }
}

#[test]
fn memory_reservation() {
    if !common::require_root() {
        return;
    }
    let (_rt, b, _c) = start_with("mem-res", json!({"memory": {"limit": 67108864, "reservation": 33554432}}));
    assert_eq!(read(&cgf(&b.id, "memory", "memory.soft_limit_in_bytes", "memory.low")), "33554432");
}

#[test]
fn cpu_shares_quota_period() {
    if !common::require_root() {
        return;
    }
    let (_rt, b, _c) = start_with("cpu", json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000}}));
    if unified() {
        // runc's conversion: weight = 1 + (shares - 2) * 9999 / 262142.
        assert_eq!(read(&cgf(&b.id, "cpu", "", "cpu.weight")), "20");
        assert_eq!(read(&cgf(&b.id, "cpu", "", "cpu.max")), "50000 100000");
    } else {
        assert_eq!(read(&cgf(&b.id, "cpu", "cpu.shares", "")), "512");
        assert_eq!(read(&cgf(&b.id, "cpu", "cpu.cfs_quota_us", "")), "50000");
        assert_eq!(read(&cgf(&b.id, "cpu", "cpu.cfs_period_us", "")), "100000");
    }
}

/// cpuset.cpus restricts the CPUs the kernel schedules the process on.
#[test]
fn cpuset_cpus() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::sh("cpuset", "grep Cpus_allowed_list /proc/self/status")
        .edit(|c| c["linux"]["resources"] = json!({"cpu": {"cpus": "0", "mems": "0"}}));
    let out = rt.run(&b).ok().stdout;
    assert_eq!(out.split_whitespace().nth(1), Some("0"), "{out}");
    let (_rt, b, _c) = start_with("cpuset-file", json!({"cpu": {"cpus": "0", "mems": "0"}}));
    assert_eq!(read(&cgf(&b.id, "cpuset", "cpuset.cpus", "cpuset.cpus")), "0");
}

/// pids.max caps the number of tasks: a fork loop inside hits the limit.
#[test]
fn pids_limit() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::sh("pids", "for i in $(seq 40); do sleep 30 & done; wait")
        .edit(|c| c["linux"]["resources"] = json!({"pids": {"limit": 16}}));
    let _c = rt.start_new(&b);
    assert_eq!(read(&cgf(&b.id, "pids", "pids.max", "pids.max")), "16");
    // The kernel counts every failed fork in pids.events ("max N").
    let events = cgf(&b.id, "pids", "pids.events", "pids.events");
    let hit = common::wait_until(Duration::from_secs(10), || {
        read(&events)
            .lines()
            .find_map(|l| l.strip_prefix("max "))
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    });
    assert!(hit, "fork loop never hit pids.max: {}", read(&events));
    let current: u64 = read(&cgf(&b.id, "pids", "pids.current", "pids.current")).parse().unwrap();
    assert!(current <= 16, "pids.current = {current}");
}

/// A memory hog past memory.limit is killed by the kernel's OOM killer: `run`
/// exits 137 (128 + SIGKILL) and `events` reports the OOM.
#[test]
fn oom_kill_exits_137_and_shows_in_events() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("oom", &["tail", "/dev/zero"])
        .edit(|c| c["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}}));
    let _c = rt.create(&b);
    let mut events = rt.command(&["events", "--interval", "1s", &b.id]);
    events.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut ev = events.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    rt.cmd(&["start", &b.id]).ok();
    rt.wait_status(&b.id, "stopped");
    let st = common::wait_timeout(&mut ev, Duration::from_secs(10));
    let mut text = String::new();
    std::io::Read::read_to_string(ev.stdout.as_mut().unwrap(), &mut text).unwrap();
    assert!(st.is_some(), "events did not end when the container stopped");
    assert!(text.lines().any(|l| l.contains(r#""type":"oom""#)), "no oom event in:\n{text}");
    // The same hog in the foreground: exit status 137.
    let b2 = Bundle::new("oom-run", &["tail", "/dev/zero"])
        .edit(|c| c["linux"]["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}}));
    let out = rt.run(&b2);
    assert_eq!(out.code, 137, "{out:?}");
}

/// A frozen container makes no progress; resumed, it continues.
#[test]
fn frozen_container_makes_no_progress() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let host = common::host_dir();
    let b = Bundle::sh("freeze", "i=0; while :; do i=$((i+1)); echo $i > /h/n; done").bind(host.path(), "/h", &[]);
    let _c = rt.start_new(&b);
    let n = || fs::read_to_string(host.path().join("n")).unwrap_or_default().trim().parse::<u64>().unwrap_or(0);
    assert!(common::wait_until(Duration::from_secs(5), || n() > 10));
    rt.cmd(&["pause", &b.id]).ok();
    let a = n();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(n(), a, "the counter moved while frozen");
    assert_eq!(read(&cgf(&b.id, "freezer", "freezer.state", "cgroup.freeze")), if unified() { "1" } else { "FROZEN" });
    rt.cmd(&["resume", &b.id]).ok();
    assert!(common::wait_until(Duration::from_secs(5), || n() > a + 10), "no progress after resume");
}

/// `update` changes the kernel's limits of a running container.
#[test]
fn update_changes_limits() {
    if !common::require_root() {
        return;
    }
    let (rt, b, _c) = start_with("update", json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}}));
    rt.cmd(&[
        "update",
        "--memory",
        "96m",
        "--pids-limit",
        "30",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        &b.id,
    ])
    .ok();
    assert_eq!(read(&cgf(&b.id, "memory", "memory.limit_in_bytes", "memory.max")), "100663296");
    assert_eq!(read(&cgf(&b.id, "pids", "pids.max", "pids.max")), "30");
    if unified() {
        assert_eq!(read(&cgf(&b.id, "cpu", "", "cpu.max")), "20000 100000");
    } else {
        assert_eq!(read(&cgf(&b.id, "cpu", "cpu.cfs_quota_us", "")), "20000");
    }
    // --resources takes a linux.resources document (here on stdin).
    let mut cmd = rt.command(&["update", "--resources", "-", &b.id]);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), br#"{"pids": {"limit": 25}}"#).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(read(&cgf(&b.id, "pids", "pids.max", "pids.max")), "25");
}

/// Limits that can never work are refused with the field and value named, and the
/// container keeps its old limits.
#[test]
fn bad_update_is_refused_and_changes_nothing() {
    if !common::require_root() {
        return;
    }
    let (rt, b, _c) = start_with("update-bad", json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}}));
    let mem = cgf(&b.id, "memory", "memory.limit_in_bytes", "memory.max");
    let pids = cgf(&b.id, "pids", "pids.max", "pids.max");
    for (args, needle) in [
        (vec!["--cpu-quota", "-5"], "cpu.quota"),
        (vec!["--cpuset-cpus", "0-4095"], "cpu.cpus"),
        (vec!["--pids-limit", "20", "--memory", "0"], "memory.limit"),
    ] {
        let mut a: Vec<&str> = vec!["update"];
        a.extend(args.iter().copied());
        a.push(&b.id);
        let out = rt.cmd(&a).failed();
        if common::is_capsa() {
            assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
        }
        assert_eq!(read(&mem), "67108864");
        assert_eq!(read(&pids), "50");
    }
    // A limit the kernel itself rejects (memory below what is in use) names the file.
    let hog = Bundle::sh("update-busy", "x=$(head -c 20000000 /dev/zero | tr '\\0' a); sleep 30")
        .edit(|c| c["linux"]["resources"] = json!({"memory": {"limit": 134217728}}));
    let _h = rt.start_new(&hog);
    let hm = cgf(&hog.id, "memory", "memory.usage_in_bytes", "memory.current");
    assert!(common::wait_until(Duration::from_secs(10), || read(&hm).parse::<u64>().unwrap_or(0) > 15_000_000));
    let out = rt.cmd(&["update", "--memory", "1m", &hog.id]);
    if !out.success() && common::is_capsa() {
        assert!(out.stderr.contains("memory."), "{}", out.stderr);
    }
}

/// `events --stats` reports what the kernel counts.
#[test]
fn events_stats_reports_usage() {
    if !common::require_root() {
        return;
    }
    let (rt, b, _c) = start_with("stats", json!({"pids": {"limit": 64}}));
    let out = rt.cmd(&["events", "--stats", &b.id]).ok().stdout;
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], b.id.as_str());
    assert_eq!(v["data"]["pids"]["current"], 1, "{out}");
    assert_eq!(v["data"]["pids"]["limit"], 64, "{out}");
    assert!(v["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0, "{out}");
    assert!(v["data"]["cpu"]["usage"]["total"].as_u64().is_some(), "{out}");
}

/// 200 create/start/delete cycles with limits leave no cgroup directory behind.
#[test]
fn many_cycles_leave_no_cgroups() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("cycles", &["true"]).edit(|c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 64}, "cpu": {"shares": 256}})
    });
    for i in 0..200 {
        let out = rt.cmd(&["run", "--bundle", b.path_str(), &b.id]);
        assert!(out.success(), "cycle {i}: {out:?}");
        rt.cmd(&["delete", "--force", &b.id]);
    }
    let left: Vec<PathBuf> =
        common::cgroup_hierarchies().iter().map(|h| h.join(CGROUP_PARENT).join(&b.id)).filter(|p| p.exists()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = Command::new("true").status();
}

/// The init process is placed in /capsa-test/<id> in every hierarchy.
#[test]
fn process_is_in_container_cgroup() {
    if !common::require_root() {
        return;
    }
    let (rt, b, _c) = start_with("cg-member", json!({}));
    let pid = rt.pid(&b.id);
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!("/{CGROUP_PARENT}/{}", b.id);
    for line in text.lines() {
        assert!(line.ends_with(&want), "{line} (want {want}):\n{text}");
    }
}

/// After delete the container's cgroup directory is gone in every hierarchy.
#[test]
fn cgroups_removed_after_delete() {
    if !common::require_root() {
        return;
    }
    let (rt, b, _c) = start_with("cg-delete", json!({"pids": {"limit": 100}}));
    let before = common::leftover_cgroups(&b.id);
    if !unified() {
        for ctl in ["memory", "pids", "cpu", "freezer", "devices"] {
            assert!(before.contains(&cgf(&b.id, ctl, "", "")), "no {ctl} cgroup: {before:?}");
        }
    }
    assert!(!before.is_empty());
    rt.cmd(&["delete", "--force", &b.id]).ok();
    assert_eq!(common::leftover_cgroups(&b.id), Vec::<PathBuf>::new());
}

/// Also after the process exited on its own and the container was deleted
/// without --force.
#[test]
fn cgroups_removed_after_natural_exit_and_delete() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("cg-exit", &["true"]);
    let _c = rt.start_new(&b);
    rt.wait_status(&b.id, "stopped");
    rt.cmd(&["delete", &b.id]).ok();
    assert_eq!(common::leftover_cgroups(&b.id), Vec::<PathBuf>::new());
}

/// capsa-only: with an empty cgroupsPath capsa uses /capsa/<id>, never a
/// path below the caller's own cgroup. (runc would nest it under the
/// caller's cgroup, so this must not run against runc.)
#[test]
fn empty_cgroups_path_uses_capsa_parent() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("cg-default", &["sleep", "30"]).edit(|c| {
        c["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    });
    let c = rt.start_new(&b);
    let pid = rt.pid(&b.id);
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!(":/capsa/{}", b.id);
    for line in text.lines() {
        assert!(line.ends_with(&want), "{line}:\n{text}");
    }
    drop(c);
    for h in common::cgroup_hierarchies() {
        assert!(!h.join("capsa").join(&b.id).exists());
        // rmdir only: the shared parent stays if anything else uses it.
        let _ = fs::remove_dir(h.join("capsa"));
    }
}

/// `sh` lines that report whether /dev/kmsg (1:11, listed in `linux.devices`) exists
/// and can be opened for writing (the open alone writes nothing to the kernel log),
/// after checking the FIFO also listed there (no cgroup rule: not a device).
const KMSG_PROBE: &str =
    "test -p /dev/fifo1 || echo no-fifo; test -c /dev/kmsg && echo node; (: > /dev/kmsg) 2>/dev/null && echo open || echo denied";

fn kmsg_bundle(prefix: &str, devices: Value) -> Bundle {
    Bundle::sh(prefix, KMSG_PROBE).edit(|c| {
        c["linux"]["devices"] =
            json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}, {"path": "/dev/fifo1", "type": "p"}]);
        c["linux"]["resources"] = json!({"devices": devices});
    })
}

/// `linux.devices` only makes nodes: their access is what `linux.resources.devices`
/// says (runc's specconv), so a deny-all still blocks /dev/kmsg (on v2 the device
/// filter program agrees), and an explicit allow opens it.
#[test]
fn linux_devices_do_not_override_a_deny_all() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let out = rt.run(&kmsg_bundle("dev-deny", json!([{"allow": false, "access": "rwm"}]))).ok().stdout;
    assert_eq!(out.lines().collect::<Vec<_>>(), ["node", "denied"], "{out}");
    // Saying nothing about devices is a deny-all too (only the runtime's defaults).
    let out = rt.run(&kmsg_bundle("dev-none", json!([]))).ok().stdout;
    assert_eq!(out.lines().collect::<Vec<_>>(), ["node", "denied"], "{out}");
    let allow = json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}]);
    let out = rt.run(&kmsg_bundle("dev-allow", allow)).ok().stdout;
    assert_eq!(out.lines().collect::<Vec<_>>(), ["node", "open"], "{out}");
    // Allowed, then write taken away again: the later rule wins, as in the kernel.
    let again = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "w"}
    ]);
    let out = rt.run(&kmsg_bundle("dev-again", again)).ok().stdout;
    assert_eq!(out.lines().collect::<Vec<_>>(), ["node", "denied"], "{out}");
    // Allow everything, deny write on 1:11: denied (v2: the program must agree with v1).
    let black = json!([{"allow": true, "access": "rwm"}, {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "w"}]);
    let out = rt.run(&kmsg_bundle("dev-black", black)).ok().stdout;
    assert_eq!(out.lines().collect::<Vec<_>>(), ["node", "denied"], "{out}");
}

/// Access strings as runc reads them: r, w and m in any order, repeated, and letters
/// that mean nothing ignored ("rwa" is "rw").
#[test]
fn device_access_strings_as_runc_reads_them() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    for access in ["rwa", "wr", "wwm", "mrw"] {
        let rules = json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 11, "access": access}]);
        let out = rt.run(&kmsg_bundle("dev-acc", rules)).ok().stdout;
        assert_eq!(out.lines().collect::<Vec<_>>(), ["node", "open"], "{access}: {out}");
    }
}

/// A cgroup of our own in the freezer (v1) or cgroup2 tree, frozen; thawed and
/// removed on drop.
struct FrozenCgroup(PathBuf);

impl FrozenCgroup {
    fn new(id: &str) -> FrozenCgroup {
        let dir = cgf(id, "freezer", "", "");
        fs::create_dir_all(&dir).unwrap();
        let g = FrozenCgroup(dir);
        if unified() {
            fs::write(g.0.join("cgroup.freeze"), "1").unwrap();
        } else {
            fs::write(g.0.join("freezer.state"), "FROZEN").unwrap();
        }
        g
    }
}

impl Drop for FrozenCgroup {
    fn drop(&mut self) {
        let _ = fs::write(self.0.join("cgroup.freeze"), "0");
        let _ = fs::write(self.0.join("freezer.state"), "THAWED");
        // A container process that joined anyway must go before the rmdir.
        for _ in 0..50 {
            let procs = fs::read_to_string(self.0.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: kill(2); these are processes of the test's own container.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A cgroupsPath naming an existing frozen cgroup: `create` refuses it (as runc
/// does) instead of hanging with the init stopped in it.
#[test]
fn frozen_cgroup_is_refused() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("frozen-cg", &["true"]);
    let _frozen = FrozenCgroup::new(&b.id);
    let (out, _c) = rt.try_create(&b, &[]);
    let out = out.failed();
    assert!(out.stderr.contains("frozen"), "{}", out.stderr);
    assert!(rt.list_ids().is_empty(), "state left behind");
}

/// A cgroupsPath that already holds processes works, with runc's warning.
#[test]
fn non_empty_cgroup_warns() {
    if !common::require_root() {
        return;
    }
    let (rt, a, _a) = start_with("shared-cg", json!({}));
    let b = Bundle::new("shared-cg2", &["sleep", "30"])
        .edit(|c| c["linux"]["cgroupsPath"] = a.config["linux"]["cgroupsPath"].clone());
    let (out, _b) = rt.try_create(&b, &[]);
    let out = out.ok();
    assert!(out.stderr.contains("container's cgroup is not empty"), "{}", out.stderr);
}

/// `resources.unified` on a v1 or hybrid host is an invalid configuration (runc:
/// "cannot use unified on cgroup v1"): refused, nothing written to the hybrid's
/// cgroup2 mount, nothing left.
#[test]
fn unified_on_a_v1_host_is_refused() {
    if !common::require_root() || unified() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("unified-v1", &["true"])
        .edit(|c| c["linux"]["resources"] = json!({"unified": {"cgroup.max.descendants": "7"}}));
    let (out, _c) = rt.try_create(&b, &[]);
    let out = out.failed();
    assert!(out.stderr.contains("unified"), "{}", out.stderr);
    common::assert_no_leftovers(&rt, &b);
}

/// `update --pids-limit`: -1 is "no limit" (runc); 0 and other negatives cannot be
/// meant and are refused (runc: 0 leaves the limit as it is, -5 removes it), and an
/// update with nothing to change fails rather than exit 0 doing nothing. In a
/// --resources document a limit of 0 keeps runc's meaning, "unchanged".
#[test]
fn update_pids_limit_values() {
    if !common::require_root() {
        return;
    }
    let (rt, b, _c) = start_with("update-pids", json!({"pids": {"limit": 50}}));
    let pids = cgf(&b.id, "pids", "pids.max", "pids.max");
    rt.cmd(&["update", "--pids-limit", "-1", &b.id]).ok();
    assert_eq!(read(&pids), "max");
    rt.cmd(&["update", "--pids-limit", "40", &b.id]).ok();
    assert_eq!(read(&pids), "40");
    if common::is_capsa() {
        for v in ["0", "-5"] {
            let out = rt.cmd(&["update", "--pids-limit", v, &b.id]).failed();
            assert!(out.stderr.contains("--pids-limit") && out.stderr.contains("-1"), "{v}: {}", out.stderr);
            assert_eq!(read(&pids), "40", "{v}");
        }
        let out = rt.cmd(&["update", &b.id]).failed();
        assert!(out.stderr.contains("nothing to change"), "{}", out.stderr);
    }
    let mut cmd = rt.command(&["update", "--resources", "-", &b.id]);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), br#"{"pids": {"limit": 0}, "cpu": {"shares": 512}}"#)
        .unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(read(&pids), "40");
}
