//! Rootless: the runtime run by an unprivileged user (made by the test with useradd,
//! removed after). Its state goes to `$XDG_RUNTIME_DIR/capsa`, else /tmp/capsa-UID;
//! `spec --rootless` gives a config it can run (a user namespace mapping root to the
//! caller); without a delegated cgroup2 subtree (v1, hybrid, or no delegation)
//! resource limits are skipped with one warning; mapping more than one's own id
//! needs newuidmap (the uidmap package); another user's state root is refused.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

mod common;

/// A user made for the test; `userdel -r` on drop, with its state root.
struct User {
    name: String,
    uid: u32,
    gid: u32,
}

impl User {
    fn new() -> User {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("capsarl{}x{n}", std::process::id() % 100000);
        let ok = Command::new("useradd").args(["-M", "-s", "/bin/sh", &name]).status().expect("useradd");
        assert!(ok.success(), "useradd {name}");
        let id = |flag: &str| {
            let o = Command::new("id").args([flag, &name]).output().expect("id");
            String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().expect("an id")
        };
        let (uid, gid) = (id("-u"), id("-g"));
        User { name, uid, gid }
    }

    fn state_root(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/capsa-{}", self.uid))
    }

    /// `capsa ARGS` as this user (setpriv: its uid and gid, no groups), in `dir`.
    fn capsa(&self, dir: &Path, args: &[&str]) -> common::Output {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", &self.uid.to_string(), "--regid", &self.gid.to_string(), "--clear-groups", "--"]);
        c.arg(common::runtime()).args(args).current_dir(dir);
        c.env_remove("XDG_RUNTIME_DIR").env("HOME", dir).stdin(std::process::Stdio::null());
        common::run_cmd(c, std::time::Duration::from_secs(30))
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.state_root());
        let _ = Command::new("userdel").arg(&self.name).status();
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
