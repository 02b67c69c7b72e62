//! Shared by the CRI tests: a `capsa-cri` daemon on a private socket, state, store
//! and runtime root, inside a network namespace the test made (its CNI bridge, veths,
//! iptables rules and published ports never touch the machine's network), with a local
//! registry started in that namespace, driven by crictl v1.26.1
//! (`../shared/tools/crictl`). Drop removes every sandbox through capsa-cri, stops the
//! daemon and the registry, and cleans whatever a failing test left (mounts, cgroups).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Exit code and output of a command.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Out {
    let o = cmd.stdin(Stdio::null()).output().expect("spawn");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
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

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}x{}", std::process::id() % 100000, N.fetch_add(1, Ordering::SeqCst))
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared tools and harnesses: `$CAPSA_SHARED`, else `../shared` beside the
/// checkout (or beside the worktrees' parent).
pub fn shared() -> PathBuf {
    if let Some(p) = std::env::var_os("CAPSA_SHARED") {
        return p.into();
    }
    let r = repo();
    [r.join("../shared"), r.join("../../shared")]
        .into_iter()
        .find(|p| p.join("tools/crictl").exists())
        .unwrap_or_else(|| r.join("../shared"))
}

pub fn crictl_bin() -> PathBuf {
    shared().join("tools/crictl")
}

/// The daemon binary; `capsa` and `capsa-shim` must be built next to it.
pub fn daemon_bin() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_capsa-cri"));
    for b in ["capsa", "capsa-shim"] {
        assert!(p.with_file_name(b).exists(), "{b} is not built next to capsa-cri: cargo build --workspace --bins");
    }
    p
}

/// A network namespace made by the test, loopback up; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = unique("capsa-cri");
        let o = run(Command::new("ip").args(["netns", "add", &name]));
        assert_eq!(o.code, 0, "ip netns add {name}: {}", o.stderr);
        let n = Netns { name };
        let o = n.run("ip", &["link", "set", "lo", "up"]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        n
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `prog args...` in this network namespace only (nsenter: the mount namespace,
    /// and so /sys/fs/cgroup, stays the host's).
    pub fn command(&self, prog: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display())).arg(prog).args(args);
        c
    }

    pub fn run(&self, prog: &str, args: &[&str]) -> Out {
        run(&mut self.command(Path::new(prog), args))
    }

    /// Interface names.
    pub fn links(&self) -> Vec<String> {
        let o = self.run("ip", &["-o", "link", "show"]);
        let mut v: Vec<String> = o
            .stdout
            .lines()
            .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_owned()))
            .collect();
        v.sort();
        v
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// Debian's docker-registry started in the test's network namespace by the shared
/// harness, with busybox:latest pushed; stopped on drop.
pub struct Registry {
    dir: PathBuf,
    pub addr: String,
}

impl Registry {
    pub fn start(ns: &Netns, dir: &Path) -> Registry {
        let script = shared().join("harness/registry/start.sh");
        let o = run(Command::new("ip").args(["netns", "exec", &ns.name]).arg(&script).arg(dir));
        assert_eq!(o.code, 0, "registry start.sh: {}{}", o.stdout, o.stderr);
        let addr = o.stdout.lines().last().unwrap_or("").trim().to_owned();
        assert!(addr.starts_with("127.0.0.1:"), "registry address: {}", o.stdout);
        Registry { dir: dir.to_path_buf(), addr }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = run(Command::new(shared().join("harness/registry/stop.sh")).arg(&self.dir));
    }
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

/// A CNI network for the test: a bridge of its own name, host-local leases in the temp dir.
pub fn conflist(bridge: &str, subnet: &str, leases: &Path) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"crinet","plugins":[
  {{"type":"bridge","bridge":"{bridge}","isGateway":true,"ipMasq":false,"hairpinMode":true,
    "ipam":{{"type":"host-local","dataDir":"{}","ranges":[[{{"subnet":"{subnet}"}}]],"routes":[{{"dst":"0.0.0.0/0"}}]}}}},
  {{"type":"portmap","capabilities":{{"portMappings":true}},"snat":true}}]}}"#,
        leases.display()
    )
}

impl Cri {
    /// The environment, without the daemon (see [`Cri::start`]); `network`: write the
    /// CNI config now.
    pub fn new(network: bool, registry: bool) -> Cri {
        let dir = tempfile::Builder::new().prefix("capsa-cri-test").tempdir().unwrap();
        for d in ["net.d", "cni", "logs"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let ns = Netns::new();
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
        fs::write(self.path("net.d/10-crinet.conflist"), conflist("crit0", "10.66.0.0/16", &leases)).unwrap();
    }

    pub fn config(&self) -> String {
        let p = |r: &str| self.path(r).display().to_string();
        format!(
            "listen = \"{}\"\nstate_dir = \"{}\"\nstore_dir = \"{}\"\nruntime_root = \"{}\"\n{}\n\
             [cni]\nconf_dir = \"{}\"\nbin_dirs = [\"/usr/lib/cni\", \"/opt/cni/bin\"]\ncache_dir = \"{}\"\n\
             [log]\nlevel = \"debug\"\n",
            p("cri.sock"),
            p("state"),
            p("store"),
            p("root"),
            self.extra_config,
            p("net.d"),
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
            .command(&daemon_bin(), &["--config", cfg.to_str().unwrap()])
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
        let ep = format!("unix://{}", self.socket().display());
        run(Command::new(crictl_bin())
            .args(["--timeout", "120s", "--runtime-endpoint", &ep, "--image-endpoint", &ep])
            .args(args))
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

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
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
