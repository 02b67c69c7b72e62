//! Shared by the managed-container and pod tests (tests/managed.rs, tests/pods.rs).
//!
//! [`Env`]: a store and runtime root in a temp dir, managed containers placed
//! under the test's own cgroup parent (`CAPSA_CGROUP_PARENT=/capsa-test/<env>`),
//! optionally every command run inside a network namespace the test made
//! ([`Netns`]), so bridges, veths, iptables rules and published ports never
//! touch the machine's own network. Drop removes every pod and container
//! through capsa itself, then whatever a failing test left: mounts, cgroups.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "../image_common/mod.rs"]
mod image_common;
pub use image_common::{run, sh, Out};

pub fn capsa_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_capsa"))
}

/// Root is needed (fails in CI when missing, skips elsewhere).
pub fn root_or_skip() -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "needs root (CI=true)");
    eprintln!("skipping: needs root");
    false
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}-{}", std::process::id() % 100000, N.fetch_add(1, Ordering::SeqCst))
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A network namespace made by the test (`ip netns add`), loopback up; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = unique("capsa-t");
        let o = run(Command::new("ip").args(["netns", "add", &name]));
        assert_eq!(o.code, 0, "ip netns add {name}: {}", o.stderr);
        let n = Netns { name };
        n.ok("ip", &["link", "set", "lo", "up"]);
        n
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `prog args...` inside this namespace (nsenter: the network namespace only).
    pub fn command(&self, prog: &str, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display())).arg(prog).args(args);
        c
    }

    pub fn run(&self, prog: &str, args: &[&str]) -> Out {
        run(&mut self.command(prog, args))
    }

    pub fn ok(&self, prog: &str, args: &[&str]) -> Out {
        let o = self.run(prog, args);
        assert_eq!(o.code, 0, "{prog} {args:?} in {}: {}{}", self.name, o.stdout, o.stderr);
        o
    }

    /// Interface names (`ip -o link`).
    pub fn links(&self) -> Vec<String> {
        let o = self.ok("ip", &["-o", "link", "show"]);
        let mut v: Vec<String> = o
            .stdout
            .lines()
            .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_owned()))
            .collect();
        v.sort();
        v
    }

    /// The `-A` rule lines of every iptables table.
    pub fn rules(&self) -> Vec<String> {
        let o = self.ok("iptables-save", &[]);
        let mut v: Vec<String> = o.stdout.lines().filter(|l| l.starts_with("-A")).map(str::to_owned).collect();
        v.sort();
        v
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// A store + runtime root; commands go through `capsa` (inside `net` when set).
pub struct Env {
    pub dir: tempfile::TempDir,
    pub net: Option<Netns>,
    /// The cgroup parent of this env's containers (absolute, test-owned).
    pub cgroup_parent: String,
    /// Extra environment for capsa (e.g. CAPSA_CNI_CONF_DIR).
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new(with_netns: bool) -> Env {
        let dir = tempfile::Builder::new().prefix("capsa-pod-test").tempdir().unwrap();
        Env {
            dir,
            net: with_netns.then(Netns::new),
            cgroup_parent: format!("/capsa-test/{}", unique("env")),
            vars: Vec::new(),
        }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `capsa --root R VERB [SUBVERB] --store S ARGS...` (subverb for `image` and `pod`).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut full: Vec<String> = vec!["--root".into(), self.root().display().to_string()];
        // `--store` goes after the verb (and after `pod`'s subverb); runtime verbs have none.
        let n = if args.first() == Some(&"pod") { args.len().min(2) } else { args.len().min(1) };
        full.extend(args[..n].iter().map(|s| s.to_string()));
        let with_store = ["image", "pod", "run", "ps", "logs", "attach", "stop", "rm", "inspect", "stats"];
        if args.first().is_some_and(|v| with_store.contains(v)) {
            full.extend(["--store".to_string(), self.store().display().to_string()]);
        }
        full.extend(args[n..].iter().map(|s| s.to_string()));
        let bin = capsa_bin();
        let mut c = match &self.net {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.path().display())).arg(&bin).args(&full);
                c
            }
            None => {
                let mut c = Command::new(&bin);
                c.args(&full);
                c
            }
        };
        c.env("CAPSA_CGROUP_PARENT", &self.cgroup_parent);
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    pub fn capsa(&self, args: &[&str]) -> Out {
        run(&mut self.command(args))
    }

    pub fn ok(&self, args: &[&str]) -> Out {
        let o = self.capsa(args);
        assert_eq!(o.code, 0, "capsa {args:?} failed: {}{}", o.stdout, o.stderr);
        o
    }

    pub fn fails(&self, args: &[&str]) -> Out {
        let o = self.capsa(args);
        assert_ne!(o.code, 0, "capsa {args:?} should have failed: {}{}", o.stdout, o.stderr);
        assert!(o.stderr.contains("capsa: "), "no error line: {}", o.stderr);
        o
    }

    /// Builds the busybox OCI image and imports it as `busybox`.
    pub fn with_busybox(&self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-examples/make-busybox-image.sh");
        let img = self.path("img");
        let o = run(Command::new(script).arg(&img).arg("latest"));
        assert_eq!(o.code, 0, "make-busybox-image.sh: {}{}", o.stdout, o.stderr);
        self.ok(&["image", "import", "-q", &format!("oci:{}", img.display()), "busybox"]);
    }

    /// `capsa inspect NAME` as JSON.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let o = self.ok(&["inspect", name]);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        v[0].clone()
    }

    /// Waits until `inspect NAME` shows `state`.
    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let ok = wait_until(timeout, || {
            last = self.inspect(name);
            last["state"] == state
        });
        assert!(ok, "{name} did not become {state}: {last:#}");
        last
    }

    /// Cgroup directories left under this env's parent, in any hierarchy.
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in cgroup_hierarchies() {
            let p = h.join(self.cgroup_parent.trim_start_matches('/'));
            if let Ok(rd) = fs::read_dir(&p) {
                out.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
            }
        }
        out
    }

    /// Mounts below this env's directory.
    pub fn mounts(&self) -> Vec<String> {
        let me = self.dir.path().display().to_string();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&me))
            .map(str::to_owned)
            .collect()
    }
}

pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    fs::read_dir(base)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_dir() && !p.is_symlink()).collect())
        .unwrap_or_default()
}

impl Drop for Env {
    fn drop(&mut self) {
        // Through capsa first: pods (network, pins), then containers (shims, runtime state).
        if let Ok(rd) = fs::read_dir(self.store().join("pods")) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !n.starts_with('.') {
                    let _ = self.capsa(&["pod", "rm", "-f", &n]);
                }
            }
        }
        if let Ok(rd) = fs::read_dir(self.store().join("containers")) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let _ = self.capsa(&["rm", "-f", &n]);
            }
        }
        // Then whatever is still mounted below the temp dir, deepest first.
        let mut ms = self.mounts();
        ms.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ms {
            let c = std::ffi::CString::new(m).unwrap();
            // SAFETY: a valid path string; failure is fine.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        for h in cgroup_hierarchies() {
            let p = h.join(self.cgroup_parent.trim_start_matches('/'));
            if let Ok(rd) = fs::read_dir(&p) {
                for e in rd.flatten() {
                    let _ = fs::remove_dir(e.path());
                }
            }
            let _ = fs::remove_dir(&p);
            let _ = fs::remove_dir(h.join("capsa-test"));
        }
        let _ = sh(&format!("chmod -R u+rwX {} 2>/dev/null", self.dir.path().display()));
    }
}
