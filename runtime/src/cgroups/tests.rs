//! Tests of the Manager: pure ones on a fake host, and real ones that create
//! cgroups under /capsa-cgtest-<pid>* (root only; skipped otherwise). Every
//! real test removes what it made through a Drop guard, even on failure.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::detect::parse_mountinfo;
use super::path::resolve_path_with;
use super::*;

// ---------- pure ----------

#[test]
fn error_display_names_file_value_errno() {
    let e = CgroupError::Write {
        path: "/sys/fs/cgroup/memory/capsa/x/memory.limit_in_bytes".into(),
        value: "100".into(),
        source: std::io::Error::from_raw_os_error(libc::EBUSY),
    };
    assert_eq!(
        e.to_string(),
        "write \"100\" to /sys/fs/cgroup/memory/capsa/x/memory.limit_in_bytes: Device or resource busy (os error 16)"
    );
    assert_eq!(e.errno(), Some(libc::EBUSY));
    let s = CgroupError::SystemdPath("a:b:c".into()).to_string();
    assert!(s.starts_with("systemd cgroup paths (slice:prefix:name) need --systemd-cgroup and a running systemd; use an absolute cgroupsPath"));
}

const FAKE: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";

#[test]
fn manager_paths_and_serde() {
    let host = parse_mountinfo(FAKE).unwrap();
    let proc = "3:name=systemd:/s\n2:memory:/m\n1:cpu,cpuacct:/c\n0::/u\n";
    let p = resolve_path_with("ctr", "id", proc).unwrap();
    let m = Manager::new(&host, &p);
    let paths = m.paths();
    let get = |c: &str| paths.iter().find(|(n, _)| n == c).unwrap().1.clone();
    assert_eq!(get("cpu"), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c/ctr"));
    assert_eq!(get("cpuacct"), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c/ctr"));
    assert_eq!(get("memory"), PathBuf::from("/sys/fs/cgroup/memory/m/ctr"));
    assert_eq!(get("name=systemd"), PathBuf::from("/sys/fs/cgroup/systemd/s/ctr"));
    assert_eq!(get("unified"), PathBuf::from("/sys/fs/cgroup/unified/u/ctr"));
    assert_eq!(m.mode(), HostMode::Hybrid);
    let json = serde_json::to_string(&m).unwrap();
    let back: Manager = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
}

#[test]
fn manager_on_unified_host() {
    let host = parse_mountinfo("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n").unwrap();
    let m = Manager::new(&host, &resolve_path_with("", "ctr", "").unwrap());
    assert_eq!(m.mode(), HostMode::Unified);
    assert_eq!(m.paths(), vec![("unified".to_string(), PathBuf::from("/sys/fs/cgroup/capsa/ctr"))]);
}

// ---------- real ----------

fn real_host() -> Option<Host> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: skipping real cgroup test");
        return None;
    }
    match detect() {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("no cgroups ({e}): skipping real cgroup test");
            None
        }
    }
}

/// Owns the test prefix `/<name>` in every hierarchy and the children the
/// test started. Drop kills/reaps those children, thaws and removes
/// everything below the prefix (deepest first), then the prefix itself.
struct Guard {
    prefixes: Vec<PathBuf>,
    children: Vec<Child>,
}

impl Guard {
    fn new(host: &Host, name: &str) -> Guard {
        let mut prefixes: Vec<PathBuf> = host.hierarchies.iter().map(|h| h.mount_point.join(name)).collect();
        if let Some(u) = &host.unified {
            prefixes.push(u.mount_point.join(name));
        }
        for p in &prefixes {
            assert!(!p.exists(), "{} exists before the test", p.display());
        }
        Guard { prefixes, children: Vec::new() }
    }

    /// Make the prefix dirs ourselves (a "pre-existing parent").
    fn precreate(&self) {
        for p in &self.prefixes {
            std::fs::create_dir(p).unwrap();
            if p.join("cpuset.cpus").exists() {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let v = std::fs::read_to_string(p.parent().unwrap().join(f)).unwrap();
                    std::fs::write(p.join(f), v.trim()).unwrap();
                }
            }
        }
    }

    fn spawn_sleep(&mut self) -> i32 {
        let c = Command::new("sleep").arg("60").stdin(Stdio::null()).spawn().unwrap();
        let pid = c.id() as i32;
        self.children.push(c);
        pid
    }

    fn child(&mut self, pid: i32) -> &mut Child {
        self.children.iter_mut().find(|c| c.id() as i32 == pid).unwrap()
    }
}

fn cleanup_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                cleanup_tree(&e.path());
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while dir.exists() && std::fs::remove_dir(dir).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Thaw `dir` and every cgroup below it (a SIGKILLed task that is still
/// frozen cannot exit, and waiting for it would hang).
fn thaw_tree(dir: &Path) {
    let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
    let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                thaw_tree(&e.path());
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for p in &self.prefixes {
            thaw_tree(p);
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in &self.prefixes {
            cleanup_tree(p);
            if p.exists() {
                eprintln!("WARNING: could not remove {}", p.display());
            }
        }
    }
}

fn rd(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(f).display()))
        .trim()
        .to_string()
}

fn dir_of(m: &Manager, c: &str) -> PathBuf {
    m.paths().into_iter().find(|(n, _)| n == c).unwrap().1
}

const MIB: i64 = 1024 * 1024;

#[test]
fn real_lifecycle() {
    let Some(host) = real_host() else { return };
    let name = format!("capsa-cgtest-{}", std::process::id());
    let mut g = Guard::new(&host, &name);
    eprintln!("host mode {:?}, {} v1 hierarchies", host.mode, host.hierarchies.len());

    let path = resolve_path(&format!("/{name}/a"), "ctr").unwrap();
    let mut m0 = Manager::new(&host, &path);
    m0.create().unwrap();
    let n_hier = host.hierarchies.len() + usize::from(host.unified.is_some());
    assert_eq!(m0.created().len(), 2 * n_hier, "{:?}", m0.created());
    for (_, d) in m0.paths() {
        assert!(d.is_dir(), "{}", d.display());
    }
    // Reopen from JSON, as a later CLI call would.
    let m: Manager = serde_json::from_str(&serde_json::to_string(&m0).unwrap()).unwrap();

    let mut res = LinuxResources {
        memory: Some(LinuxMemory { limit: Some(64 * MIB), reservation: Some(32 * MIB), ..Default::default() }),
        pids: Some(LinuxPids { limit: 32 }),
        cpu: Some(LinuxCpu {
            shares: Some(512),
            quota: Some(50000),
            period: Some(100000),
            cpus: Some("0".into()),
            mems: Some("0".into()),
            ..Default::default()
        }),
        hugepage_limits: vec![LinuxHugepageLimit { page_size: "2MB".into(), limit: 2 * MIB as u64 }],
        ..Default::default()
    };
    res.devices.push(LinuxDeviceCgroup { allow: false, access: Some("rwm".into()), ..Default::default() });
    res.devices.extend(default_allowed_devices());
    if host.mode == HostMode::Hybrid {
        // runc refuses `unified` on a v1 or hybrid host, before writing anything.
        let mut bad = res.clone();
        bad.unified.insert("cgroup.max.descendants".into(), "7".into());
        let e = m.apply(&bad).unwrap_err().to_string();
        assert!(e.contains("linux.resources.unified"), "{e}");
        assert_ne!(rd(&dir_of(&m, "unified"), "cgroup.max.descendants"), "7");
        if host.v1("pids").is_some() {
            assert_eq!(rd(&dir_of(&m, "pids"), "pids.max"), "max", "written before the refusal");
        }
    }
    m.apply(&res).unwrap();

    if let Some(mem) = host.v1("memory").map(|_| dir_of(&m, "memory")) {
        assert_eq!(rd(&mem, "memory.limit_in_bytes"), (64 * MIB).to_string());
        assert_eq!(rd(&mem, "memory.soft_limit_in_bytes"), (32 * MIB).to_string());
    }
    if host.v1("pids").is_some() {
        assert_eq!(rd(&dir_of(&m, "pids"), "pids.max"), "32");
    }
    if host.v1("cpu").is_some() {
        let cpu = dir_of(&m, "cpu");
        assert_eq!(rd(&cpu, "cpu.cfs_quota_us"), "50000");
        assert_eq!(rd(&cpu, "cpu.cfs_period_us"), "100000");
        assert_eq!(rd(&cpu, "cpu.shares"), "512");
    }
    if host.v1("cpuset").is_some() {
        let cs = dir_of(&m, "cpuset");
        assert_eq!(rd(&cs, "cpuset.cpus"), "0");
        assert_eq!(rd(&cs, "cpuset.mems"), "0");
        // the intermediate dir we created got the root's values
        let root = host.v1("cpuset").unwrap().mount_point.clone();
        assert_eq!(rd(cs.parent().unwrap(), "cpuset.cpus"), rd(&root, "cpuset.cpus"));
    }
    if host.v1("devices").is_some() {
        let list = rd(&dir_of(&m, "devices"), "devices.list");
        assert!(list.contains("c 1:3 rwm"), "{list}");
        assert!(list.contains("c 136:* rwm"), "{list}");
        assert!(!list.contains("a *:* rwm"), "{list}");
    }

    // memory+swap ordering: raise both (memsw must go first), then lower both.
    let mem_dir = dir_of(&m, "memory");
    if mem_dir.join("memory.memsw.limit_in_bytes").exists() {
        for (limit, swap) in [(128 * MIB, 192 * MIB), (256 * MIB, 512 * MIB), (32 * MIB, 48 * MIB)] {
            let r = LinuxResources {
                memory: Some(LinuxMemory { limit: Some(limit), swap: Some(swap), ..Default::default() }),
                ..Default::default()
            };
            m.apply(&r).unwrap_or_else(|e| panic!("limit {limit} swap {swap}: {e}"));
            assert_eq!(rd(&mem_dir, "memory.limit_in_bytes"), limit.to_string());
            assert_eq!(rd(&mem_dir, "memory.memsw.limit_in_bytes"), swap.to_string());
        }
    }

    // A bad value: the error names file, value and errno.
    let bad =
        LinuxResources { cpu: Some(LinuxCpu { cpus: Some("999".into()), ..Default::default() }), ..Default::default() };
    let e = m.apply(&bad).unwrap_err().to_string();
    eprintln!("expected error: {e}");
    assert!(e.starts_with("write \"999\" to /sys/fs/cgroup/"), "{e}");
    assert!(e.contains("cpuset.cpus: "), "{e}");
    assert!(e.contains("(os error "), "{e}");

    // Join: time the burst (first write after idle waits for RCU on v1).
    let pid = g.spawn_sleep();
    let t = Instant::now();
    m.add_pid(pid).unwrap();
    let first = t.elapsed();
    let pid2 = g.spawn_sleep();
    let t = Instant::now();
    m.add_pid(pid2).unwrap();
    eprintln!("add_pid over {n_hier} hierarchies: first {first:?}, second {:?}", t.elapsed());
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cg.lines() {
        assert!(line.ends_with(&format!("/{name}/a")), "{line}");
    }
    assert_eq!(m.pids().unwrap(), {
        let mut v = vec![pid, pid2];
        v.sort();
        v
    });

    // Freeze / thaw.
    m.freeze().unwrap();
    assert!(m.is_frozen().unwrap());
    if host.v1("freezer").is_some() {
        assert_eq!(rd(&dir_of(&m, "freezer"), "freezer.state"), "FROZEN");
    }
    m.thaw().unwrap();
    assert!(!m.is_frozen().unwrap());
    if host.v1("freezer").is_some() {
        assert_eq!(rd(&dir_of(&m, "freezer"), "freezer.state"), "THAWED");
    }

    // Kill everything.
    m.kill_all(libc::SIGKILL).unwrap();
    for p in [pid, pid2] {
        let st = g.child(p).wait().unwrap();
        assert_eq!(st.signal(), Some(libc::SIGKILL));
    }
    assert!(m.pids().unwrap().is_empty());

    m.destroy().unwrap();
    for (_, d) in m.paths() {
        assert!(!d.exists(), "{} still exists", d.display());
    }
    for p in &g.prefixes {
        assert!(!p.exists(), "{} still exists", p.display());
    }
    m.destroy().unwrap(); // idempotent
    assert!(!m.is_frozen().unwrap());
}

#[test]
fn real_kill_all_sigterm_freezes_and_thaws() {
    let Some(host) = real_host() else { return };
    let name = format!("capsa-cgtest-{}-t", std::process::id());
    let mut g = Guard::new(&host, &name);
    let mut m = Manager::new(&host, &resolve_path(&format!("/{name}"), "x").unwrap());
    m.create().unwrap();
    let pid = g.spawn_sleep();
    m.add_pid(pid).unwrap();
    m.kill_all(libc::SIGTERM).unwrap();
    let st = g.child(pid).wait().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGTERM));
    assert!(!m.is_frozen().unwrap(), "left frozen");
    m.destroy().unwrap();
    for p in &g.prefixes {
        assert!(!p.exists(), "{} still exists", p.display());
    }
}

#[test]
fn real_preexisting_parent_is_kept() {
    let Some(host) = real_host() else { return };
    let name = format!("capsa-cgtest-{}-pre", std::process::id());
    let g = Guard::new(&host, &name);
    g.precreate();
    let mut m = Manager::new(&host, &resolve_path(&format!("/{name}/x/y"), "c").unwrap());
    m.create().unwrap();
    assert_eq!(m.created().len(), 2 * g.prefixes.len());
    assert!(m.created().iter().all(|p| !g.prefixes.contains(p)));
    // a sub-cgroup made inside the container's cgroup goes away with it
    let inner = dir_of(&m, "pids").join("inner");
    if host.v1("pids").is_some() {
        std::fs::create_dir(&inner).unwrap();
    }
    m.destroy().unwrap();
    for p in &g.prefixes {
        assert!(p.is_dir(), "pre-existing {} was removed", p.display());
        assert!(!p.join("x").exists(), "{}/x still exists", p.display());
    }
}

/// Two creates racing on a shared parent: the other one made `/<name>` and has
/// not filled its cpuset yet. Ours must fill it (an empty v1 cpuset parent
/// makes the kernel refuse the child's cpus with EACCES, as seen in CI).
#[test]
fn real_unfilled_cpuset_parent_from_a_concurrent_create() {
    let Some(host) = real_host() else { return };
    if host.v1("cpuset").is_none() {
        return;
    }
    let name = format!("capsa-cgtest-{}-race", std::process::id());
    let g = Guard::new(&host, &name);
    for p in &g.prefixes {
        std::fs::create_dir(p).unwrap(); // created, like the racing peer, but left empty
    }
    let mut m = Manager::new(&host, &resolve_path(&format!("/{name}/c"), "c").unwrap());
    m.create().unwrap();
    let cs = dir_of(&m, "cpuset");
    let root = host.v1("cpuset").unwrap().mount_point.clone();
    assert_eq!(rd(cs.parent().unwrap(), "cpuset.cpus"), rd(&root, "cpuset.cpus"));
    assert_eq!(rd(&cs, "cpuset.mems"), rd(&root, "cpuset.mems"));
    m.destroy().unwrap();
}

#[test]
fn real_relative_path_resolves_under_own_cgroup() {
    // Resolution only: creating under the caller's cgroup would touch
    // cgroups this test does not own.
    let Some(host) = real_host() else { return };
    let p = resolve_path("capsa-cgtest-rel", "x").unwrap();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let m = Manager::new(&host, &p);
    for (c, d) in m.paths() {
        let line = own
            .lines()
            .find(|l| {
                let f: Vec<&str> = l.splitn(3, ':').collect();
                if c == "unified" {
                    f[1].is_empty()
                } else {
                    f[1].split(',').any(|x| x == c)
                }
            })
            .unwrap();
        let cg = line.splitn(3, ':').nth(2).unwrap();
        assert!(
            d.to_string_lossy().ends_with(&format!("{}/capsa-cgtest-rel", cg.trim_end_matches('/'))),
            "{c}: {} vs {cg}",
            d.display()
        );
    }
}
