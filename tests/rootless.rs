//! Rootless: the runtime run by an unprivileged uid (the test drops to it: no passwd
//! entry needed). Its state goes to `$XDG_RUNTIME_DIR/capsa`, else /tmp/capsa-UID;
//! `spec --rootless` gives a config it can run (a user namespace mapping root to the
//! caller); without a delegated cgroup2 subtree (v1, hybrid, or no delegation)
//! resource limits are skipped with one warning; mapping more than one's own id
//! needs newuidmap (the uidmap package); another user's state root is refused. On a
//! cgroup2 host (the VM lane) a subtree delegated to the user (chowned, as systemd
//! delegates) gets the container's cgroup, and its memory limit is enforced.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

mod common;

/// An unprivileged uid for the test (no passwd entry needed: the kernel knows only
/// numbers); its state root is removed on drop.
struct User {
    uid: u32,
    gid: u32,
    /// A cgroup2 `cgroup.procs` the runtime is started in (a delegated subtree), if any.
    start_in: Option<PathBuf>,
}

impl User {
    fn new() -> User {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let uid = 61000 + (std::process::id() % 1000) * 4 + n;
        User { uid, gid: uid, start_in: None }
    }

    fn state_root(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/capsa-{}", self.uid))
    }

    /// `capsa ARGS` as this user (its uid and gid, no groups), in `dir`; first moved
    /// into `start_in` (by root, before dropping privileges) when set.
    fn capsa(&self, dir: &Path, args: &[&str]) -> common::Output {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(common::runtime());
        c.args(args).current_dir(dir);
        c.env_remove("XDG_RUNTIME_DIR").env("HOME", dir).stdin(std::process::Stdio::null());
        let procs = self.start_in.as_ref().map(|p| fs::OpenOptions::new().write(true).open(p).expect("cgroup.procs"));
        let procs_fd = procs.as_ref().map(|f| f.as_raw_fd());
        let (uid, gid) = (self.uid, self.gid);
        // SAFETY: only async-signal-safe syscalls between fork and exec, no allocation.
        unsafe {
            c.pre_exec(move || {
                if let Some(fd) = procs_fd {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = common::run_cmd(c, std::time::Duration::from_secs(60));
        drop(procs);
        out
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.state_root());
    }
}

/// A busybox bundle owned by `u`, its config from `capsa spec --rootless` run as `u`.
fn bundle(u: &User, dir: &Path, args: &[&str], edit: impl FnOnce(&mut Value)) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    common::make_rootfs(&dir.join("rootfs"));
    let o = Command::new("chown").args(["-R", &format!("{}:{}", u.uid, u.gid)]).arg(dir).status().unwrap();
    assert!(o.success());
    u.capsa(dir, &["spec", "--rootless"]).ok();
    let path = dir.join("config.json");
    let mut c: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(args);
    edit(&mut c);
    fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
}

fn setup() -> Option<(User, tempfile::TempDir)> {
    if !common::require_root() || !common::is_capsa() {
        return None;
    }
    let dir = tempfile::Builder::new().prefix("capsa-rootless-").tempdir().unwrap();
    Some((User::new(), dir))
}

#[test]
fn lifecycle_as_an_unprivileged_user() {
    let Some((u, dir)) = setup() else { return };
    let b = dir.path();
    bundle(&u, b, &["sh", "-c", "id -u; cat /proc/self/uid_map"], |_| {});
    // Foreground: root inside, the user's uid outside.
    let o = u.capsa(b, &["run", "rl-fg"]);
    assert!(o.success(), "{o:?}");
    let mut lines = o.stdout.lines();
    assert_eq!(lines.next(), Some("0"), "{o:?}");
    let map: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(map, ["0", &u.uid.to_string(), "1"], "uid_map: {o:?}");
    // The state root: the user's own, private.
    let md = fs::metadata(u.state_root()).expect("the default rootless state root");
    assert_eq!((md.uid(), md.mode() & 0o777), (u.uid, 0o700));

    // Detached, then exec, state, kill, delete.
    let mut c: Value = serde_json::from_str(&fs::read_to_string(b.join("config.json")).unwrap()).unwrap();
    c["process"]["args"] = json!(["sleep", "100"]);
    fs::write(b.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
    let o = u.capsa(b, &["run", "-d", "rl-bg"]);
    assert!(o.success(), "{o:?}");
    let st: Value = serde_json::from_str(&u.capsa(b, &["state", "rl-bg"]).ok().stdout).unwrap();
    assert_eq!(st["status"], "running");
    let pid = st["pid"].as_i64().unwrap();
    let owner = fs::metadata(format!("/proc/{pid}")).unwrap().uid();
    assert_eq!(owner, u.uid, "the container's init is the user's process on the host");
    let o = u.capsa(b, &["exec", "rl-bg", "id", "-u"]);
    assert_eq!(o.stdout.trim(), "0", "{o:?}");
    u.capsa(b, &["kill", "rl-bg", "KILL"]).ok();
    assert!(common::wait_until(std::time::Duration::from_secs(5), || !Path::new(&format!("/proc/{pid}")).exists()));
    u.capsa(b, &["delete", "rl-bg"]).ok();
    assert_eq!(u.capsa(b, &["list", "-q"]).ok().stdout.trim(), "");
}

#[test]
fn limits_without_a_delegated_cgroup_are_skipped_with_a_warning() {
    let Some((u, dir)) = setup() else { return };
    let b = dir.path();
    bundle(&u, b, &["true"], |c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 32}});
        c["linux"]["cgroupsPath"] = json!("/capsa-test/rootless-not-delegated");
    });
    let o = u.capsa(b, &["run", "rl-limits"]);
    assert!(o.success(), "a limit that cannot apply is a warning, not a failure: {o:?}");
    assert_eq!(o.stderr.matches("resource limits are skipped").count(), 1, "one clear warning: {o:?}");
    for h in common::cgroup_hierarchies() {
        assert!(!h.join("capsa-test/rootless-not-delegated").exists(), "no cgroup was made in {}", h.display());
    }
}

#[test]
fn another_users_state_root_is_refused() {
    let Some((u, dir)) = setup() else { return };
    let b = dir.path();
    bundle(&u, b, &["true"], |_| {});
    // Planted by someone else (here root) before the user's first run.
    fs::create_dir(u.state_root()).unwrap();
    fs::set_permissions(u.state_root(), fs::Permissions::from_mode(0o777)).unwrap();
    let o = u.capsa(b, &["run", "rl-planted"]);
    assert!(!o.success(), "{o:?}");
    assert!(o.stderr.contains(&u.state_root().display().to_string()) && o.stderr.contains("our own"), "{o:?}");
    assert_eq!(fs::read_dir(u.state_root()).unwrap().count(), 0, "nothing was written there");
}

#[test]
fn more_than_ones_own_id_needs_newuidmap() {
    let Some((u, dir)) = setup() else { return };
    let b = dir.path();
    bundle(&u, b, &["true"], |c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": u.uid, "size": 1},
                                            {"containerID": 1, "hostID": 200000, "size": 1000}]);
    });
    let o = u.capsa(b, &["run", "rl-subuid"]);
    assert!(!o.success(), "{o:?}");
    let have_helper = Command::new("sh").args(["-c", "command -v newuidmap"]).status().is_ok_and(|s| s.success());
    if have_helper {
        // No /etc/subuid range of the user's: newuidmap refuses, and the error says where to look.
        assert!(o.stderr.contains("newuidmap") && o.stderr.contains("/etc/subuid"), "{o:?}");
    } else {
        assert!(o.stderr.contains("newuidmap") && o.stderr.contains("uidmap"), "names the package: {o:?}");
    }
    assert_eq!(u.capsa(b, &["list", "-q"]).ok().stdout.trim(), "", "nothing left");
}

/// A delegated cgroup2 subtree (as systemd's Delegate=yes makes one: the directory
/// and its cgroup.procs, cgroup.subtree_control, cgroup.threads chowned to the user,
/// controllers enabled above it by root, the user's own processes in a leaf of it):
/// the rootless container gets its cgroup there, and its memory limit is enforced
/// (OOM kill, exit 137). Needs a cgroup2 host: the v2 VM lane runs it.
#[test]
fn a_delegated_cgroup2_subtree_enforces_a_memory_limit() {
    let Some((mut u, dir)) = setup() else { return };
    let root = Path::new("/sys/fs/cgroup");
    if !root.join("cgroup.controllers").exists() {
        eprintln!("skipping: needs a pure cgroup2 host (the cgroup v2 VM lane runs this)");
        return;
    }
    let parent = root.join("capsa-test");
    let _ = fs::create_dir(&parent);
    let deleg = parent.join(format!("rootless-{}", u.uid));
    fs::create_dir(&deleg).unwrap();
    let cleanup = Cgroups(vec![deleg.join("ctr"), deleg.join("runtime"), deleg.clone()]);
    for d in [root, parent.as_path(), deleg.as_path()] {
        fs::write(d.join("cgroup.subtree_control"), "+memory +pids").unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    }
    fs::create_dir(deleg.join("runtime")).unwrap();
    for f in ["", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads", "runtime", "runtime/cgroup.procs"] {
        let p = deleg.join(f);
        std::os::unix::fs::chown(&p, Some(u.uid), Some(u.gid)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    u.start_in = Some(deleg.join("runtime/cgroup.procs"));
    let b = dir.path();
    let cg = format!("/capsa-test/rootless-{}/ctr", u.uid);
    bundle(&u, b, &["sh", "-c", "head -c 64m /dev/zero | tail >/dev/null"], |c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 16777216, "swap": 16777216}, "pids": {"limit": 32}});
        c["linux"]["cgroupsPath"] = json!(cg);
    });
    let o = u.capsa(b, &["run", "--keep", "rl-oom"]);
    assert_eq!(o.code, 137, "the OOM killer ends the container (128+SIGKILL): {o:?}");
    assert!(!o.stderr.contains("resource limits are skipped"), "{o:?}");
    let ctr = deleg.join("ctr");
    assert_eq!(fs::read_to_string(ctr.join("memory.max")).unwrap().trim(), "16777216");
    assert_eq!(fs::read_to_string(ctr.join("pids.max")).unwrap().trim(), "32");
    let events = fs::read_to_string(ctr.join("memory.events")).unwrap();
    let kills = events.lines().find_map(|l| l.strip_prefix("oom_kill ")).unwrap_or("0");
    assert!(kills.parse::<u64>().unwrap() >= 1, "memory.events: {events}");
    assert_eq!(fs::metadata(&ctr).unwrap().uid(), u.uid, "the container's cgroup is the user's");
    u.capsa(b, &["delete", "rl-oom"]).ok();
    assert!(!ctr.exists(), "delete removes the container's cgroup");
    drop(cleanup);
}

/// rmdir (never rm -rf) each cgroup, in order, on drop.
struct Cgroups(Vec<PathBuf>);

impl Drop for Cgroups {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = fs::remove_dir(d);
        }
    }
}
