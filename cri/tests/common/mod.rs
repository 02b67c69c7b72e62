//! Shared by the CRI tests: a `capsa-cri` daemon on a private socket, state, store
//! and runtime root, inside a network namespace the test made (its CNI bridge, veths,
//! iptables rules and published ports never touch the machine's network), with a local
//! registry started in that namespace, driven by crictl v1.26.1
//! (`../shared/tools/crictl`). Drop removes every sandbox through capsa-cri, stops the
//! daemon and the registry, and cleans whatever a failing test left (mounts, cgroups).
#![allow(dead_code)]

#[path = "../base/mod.rs"]
mod base;
pub use base::*;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// capsa-cri with everything private: socket, records, store, runtime root, CNI
/// config/cache/leases, cgroup parent.
pub struct Cri {
    // Dropped in this order: the registry (its pid file is in `dir`), the namespace, the dir.
    pub registry: Option<Registry>,
    pub daemon: Option<Child>,
    /// Absolute, the test's own: sandboxes put their containers under it.
    pub cgroup_parent: String,
    /// Extra lines for the config file.
    pub extra_config: String,
    pub ns: Netns,
    pub dir: tempfile::TempDir,
}

impl Cri {
    /// The environment, without the daemon (see [`Cri::start`]); `network`: write the
    /// CNI config now.
    pub fn new(network: bool, registry: bool) -> Cri {
        let dir = tempfile::Builder::new().prefix("capsa-cri-test").tempdir().unwrap();
        for d in ["net.d", "cni", "logs"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let ns = Netns::new("capsa-cri");
        let registry = registry.then(|| Registry::start(&ns, &dir.path().join("registry")));
        let c = Cri {
            cgroup_parent: format!("/capsa-cri-test/{}", unique("t")),
            dir,
            ns,
            registry,
            daemon: None,
            extra_config: String::new(),
        };
        if network {
            c.write_network();
        }
        c
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn socket(&self) -> PathBuf {
        self.path("cri.sock")
    }

    pub fn write_network(&self) {
        let leases = self.path("cni/leases");
        fs::write(self.path("net.d/10-crinet.conflist"), conflist("crinet", "crit0", "10.66.0.0/16", &leases)).unwrap();
    }

    pub fn config(&self) -> String {
        let p = |r: &str| self.path(r).display().to_string();
        format!(
            "listen = \"{}\"\nstate_dir = \"{}\"\nstore_dir = \"{}\"\nruntime_root = \"{}\"\n{}\n\
             [cni]\nconf_dir = \"{}\"\nbin_dirs = [\"/usr/lib/cni\", \"/opt/cni/bin\", \"{}\"]\ncache_dir = \"{}\"\n\
             [log]\nlevel = \"debug\"\n",
            p("cri.sock"),
            p("state"),
            p("store"),
            p("root"),
            self.extra_config,
            p("net.d"),
            p("cni-bin"),
            p("cni"),
        )
    }

    /// Starts capsa-cri in the namespace; waits for its socket.
    pub fn start(&mut self) {
        fs::write(self.path("cri.toml"), self.config()).unwrap();
        let log = fs::OpenOptions::new().create(true).append(true).open(self.path("daemon.log")).unwrap();
        let cfg = self.path("cri.toml");
        let child = self
            .ns
            .command(capsa_cri_bin(), &["--config", cfg.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start capsa-cri");
        self.daemon = Some(child);
        let sock = self.socket();
        let up = wait_until(Duration::from_secs(30), || std::os::unix::net::UnixStream::connect(&sock).is_ok());
        assert!(up, "capsa-cri did not come up: {}", self.daemon_log());
    }

    /// SIGTERM to the daemon; waits for it to exit.
    pub fn stop(&mut self) -> i32 {
        let Some(mut c) = self.daemon.take() else { return 0 };
        // SAFETY: kill(2) of our own child (nsenter execs capsa-cri: same pid).
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let st = c.wait().expect("wait for capsa-cri");
        st.code().unwrap_or(-1)
    }

    pub fn daemon_log(&self) -> String {
        fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// `crictl ARGS` against this daemon.
    pub fn crictl(&self, args: &[&str]) -> Out {
        run(&mut self.crictl_cmd(args))
    }

    /// The crictl command, run in the test's network namespace (where the streaming
    /// server's URLs point).
    pub fn crictl_cmd(&self, args: &[&str]) -> Command {
        let ep = format!("unix://{}", self.socket().display());
        let mut full = vec!["--timeout", "120s", "--runtime-endpoint", &ep, "--image-endpoint", &ep];
        full.extend_from_slice(args);
        self.ns.command(crictl_bin(), &full)
    }

    /// `crictl ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.crictl(args);
        assert_eq!(
            o.code,
            0,
            "crictl {args:?}: {}{}\n--- daemon log tail:\n{}",
            o.stdout,
            o.stderr,
            tail(&self.daemon_log())
        );
        o.stdout
    }

    /// `crictl ARGS`, which must fail; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.crictl(args);
        assert_ne!(o.code, 0, "crictl {args:?} should have failed: {}{}", o.stdout, o.stderr);
        o.stderr
    }

    /// `crictl -o json ARGS` parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let s = self.ok(args);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("crictl {args:?}: not JSON ({e}): {s}"))
    }

    /// Writes a JSON config file in the temp dir; returns its path.
    pub fn file(&self, name: &str, v: &serde_json::Value) -> String {
        let p = self.path(name);
        fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        p.display().to_string()
    }

    /// A sandbox config: name, the test's cgroup parent and log directory.
    pub fn pod_config(&self, name: &str) -> serde_json::Value {
        serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"), "attempt": 0},
            "hostname": name,
            "log_directory": self.path(&format!("logs/{name}")),
            "linux": {"cgroup_parent": format!("{}/{name}", self.cgroup_parent),
                      "security_context": {"namespace_options": {"pid": 1}}}
        })
    }

    /// A container config running `sh -c script` from the registry's busybox.
    pub fn container_config(&self, name: &str, script: &str) -> serde_json::Value {
        let image = format!("{}/busybox:latest", self.registry.as_ref().map_or("", |r| r.addr.as_str()));
        serde_json::json!({
            "metadata": {"name": name},
            "image": {"image": image},
            "command": ["sh", "-c", script],
            "log_path": format!("{name}.log"),
        })
    }

    /// Mounts under the temp dir.
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

    /// Cgroup directories left under the test's parent, in any hierarchy (recursively).
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in cgroup_hierarchies() {
            let mut stack = vec![h.join(self.cgroup_parent.trim_start_matches('/'))];
            while let Some(d) = stack.pop() {
                if let Ok(rd) = fs::read_dir(&d) {
                    for e in rd.flatten().filter(|e| e.path().is_dir()) {
                        out.push(e.path());
                        stack.push(e.path());
                    }
                }
            }
        }
        out
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        // Through capsa-cri first: every sandbox (containers, network, pins).
        if self.daemon.is_some() {
            let ids = self.crictl(&["pods", "-q"]).stdout;
            for id in ids.lines().filter(|l| !l.is_empty()) {
                let _ = self.crictl(&["rmp", "-f", id]);
            }
            self.stop();
        }
        // Whatever a failing test left: shims, mounts (deepest first), cgroups.
        if let Ok(rd) = fs::read_dir(self.path("store/containers")) {
            for e in rd.flatten() {
                if let Ok(j) = fs::read_to_string(e.path().join("shim/shim.json")) {
                    let v: serde_json::Value = serde_json::from_str(&j).unwrap_or_default();
                    if let Some(pid) = v["pid"].as_i64() {
                        // SAFETY: a shim this test's daemon started (its own state dir).
                        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    }
                }
            }
        }
        let mut ms = self.mounts();
        ms.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ms {
            let c = std::ffi::CString::new(m).unwrap();
            // SAFETY: a valid path string; failure is fine.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        let mut left = self.leftover_cgroups();
        left.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for p in left {
            let _ = fs::remove_dir(p);
        }
        for h in cgroup_hierarchies() {
            let _ = fs::remove_dir(h.join(self.cgroup_parent.trim_start_matches('/')));
            let _ = fs::remove_dir(h.join("capsa-cri-test"));
        }
    }
}
