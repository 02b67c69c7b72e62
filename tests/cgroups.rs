//! cgroups (first cut: cgroup v1 hierarchies, as on the hybrid CI host).
//! Every container lives at the absolute path /capsa-test/<id>.

mod common;

use common::{Bundle, Rt, CGROUP_PARENT};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// True on a host with the v1 controllers this file reads; otherwise the
/// test is skipped (a v2 variant is future work).
fn v1() -> bool {
    let ok = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();
    if !ok {
        eprintln!("skipping: no cgroup v1 hierarchies");
    }
    ok
}

/// `/sys/fs/cgroup/<controller>/capsa-test/<id>/<file>`.
fn cg(controller: &str, id: &str, file: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(CGROUP_PARENT)
        .join(id)
        .join(file)
}

fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
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
    if !common::require_root() || !v1() {
        return;
    }
    let (_rt, b, _c) = start_with("mem", json!({"memory": {"limit": 67108864}}));
    assert_eq!(
        read(&cg("memory", &b.id, "memory.limit_in_bytes")),
        "67108864"
    );
}

#[test]
fn memory_reservation() {
    if !common::require_root() || !v1() {
        return;
    }
    let (_rt, b, _c) = start_with(
        "mem-res",
        json!({"memory": {"limit": 67108864, "reservation": 33554432}}),
    );
    assert_eq!(
        read(&cg("memory", &b.id, "memory.soft_limit_in_bytes")),
        "33554432"
    );
}

#[test]
fn cpu_shares_quota_period() {
    if !common::require_root() || !v1() {
        return;
    }
    let (_rt, b, _c) = start_with(
        "cpu",
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000}}),
    );
    assert_eq!(read(&cg("cpu", &b.id, "cpu.shares")), "512");
    assert_eq!(read(&cg("cpu", &b.id, "cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&cg("cpu", &b.id, "cpu.cfs_period_us")), "100000");
}

/// cpuset.cpus restricts the CPUs the kernel schedules the process on.
#[test]
fn cpuset_cpus() {
    if !common::require_root() || !v1() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::sh("cpuset", "grep Cpus_allowed_list /proc/self/status")
        .edit(|c| c["linux"]["resources"] = json!({"cpu": {"cpus": "0", "mems": "0"}}));
    let out = rt.run(&b).ok().stdout;
    assert_eq!(out.split_whitespace().nth(1), Some("0"), "{out}");
    // And while running, the cgroup file says so.
    let (_rt, b, _c) = start_with("cpuset-file", json!({"cpu": {"cpus": "0", "mems": "0"}}));
    assert_eq!(read(&cg("cpuset", &b.id, "cpuset.cpus")), "0");
}

/// pids.max caps the number of tasks: a fork loop inside hits the limit.
#[test]
fn pids_limit() {
    if !common::require_root() || !v1() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::sh("pids", "for i in $(seq 40); do sleep 30 & done; wait")
        .edit(|c| c["linux"]["resources"] = json!({"pids": {"limit": 16}}));
    let _c = rt.start_new(&b);
    assert_eq!(read(&cg("pids", &b.id, "pids.max")), "16");
    // The kernel counts every failed fork in pids.events ("max N").
    let events = cg("pids", &b.id, "pids.events");
    let hit = common::wait_until(Duration::from_secs(10), || {
        read(&events)
            .strip_prefix("max ")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    });
    assert!(hit, "fork loop never hit pids.max: {}", read(&events));
    let current: u64 = read(&cg("pids", &b.id, "pids.current")).parse().unwrap();
    assert!(current <= 16, "pids.current = {current}");
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
    if v1() {
        for ctl in ["memory", "pids", "cpu", "freezer", "devices"] {
            assert!(
                before.contains(&cg(ctl, &b.id, "")),
                "no {ctl} cgroup: {before:?}"
            );
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
