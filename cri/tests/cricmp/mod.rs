//! Shared by the comparison tests (`compare.rs`, `critest.rs`): one CRI runtime —
//! capsa-cri, or Debian's containerd 1.6 with its CRI plugin and runc — on a private
//! socket, state and cgroup parent, inside a network (and IPC) namespace the test made,
//! with a local registry in that namespace holding the images the tests use (busybox,
//! a pause image built from a static C program, and small test images), all driven by
//! crictl v1.26.1 (`../shared/tools/crictl`), which runs in the same namespace (the
//! streaming URLs are on its loopback). Drop removes every pod through the runtime,
//! stops the daemon and the registry, and cleans what a failure left: shims, mounts,
//! cgroups, the namespace.
#![allow(dead_code)]

pub mod grpc;
pub mod images;

#[path = "../base/mod.rs"]
mod base;
pub use base::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Root and the other prerequisites (fails in CI when one is missing, skips elsewhere).
pub fn prerequisites_or_skip(kind: Kind) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root".to_owned());
    }
    let mut tools = vec!["ip", "nsenter", "unshare", "skopeo", "umoci", "gcc", "docker-registry", "curl", "script"];
    if kind == Kind::Containerd {
        tools.extend(["containerd", "containerd-shim-runc-v2", "runc"]);
    }
    for t in tools {
        if !on_path(t) {
            missing.push(t.to_owned());
        }
    }
    if !crictl_wrapper().exists() {
        missing.push(crictl_wrapper().display().to_string());
    }
    if !Path::new("/usr/lib/cni/bridge").exists() && !Path::new("/opt/cni/bin/bridge").exists() {
        missing.push("CNI plugins (containernetworking-plugins)".into());
    }
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "missing (CI=true): {missing:?}");
    eprintln!("skipping: missing {missing:?}");
    false
}

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file())).unwrap_or(false)
}

/// The runtime under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Debian's containerd 1.6, CRI plugin, io.containerd.runc.v2 + runc.
    Containerd,
    /// This repository's capsa-cri (with capsa and capsa-shim next to it).
    Capsa,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Containerd => "containerd",
            Kind::Capsa => "capsa-cri",
        }
    }
}

/// The shared harness's registry in the test's namespace, plus the images of
/// [`images`] pushed to it.
pub fn start_registry(ns: &Netns, dir: &Path) -> Registry {
    let r = Registry::start(ns, dir);
    let layouts = images::layouts();
    for (name, layout_ref) in images::PUSHED {
        let src = format!("oci:{}", layouts.join(layout_ref).display());
        let dst = format!("docker://{}/{name}", r.addr);
        let o =
            run(&mut ns
                .command("skopeo", &["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", &src, &dst]));
        assert_eq!(o.code, 0, "skopeo copy {src} {dst}: {}", o.stderr);
    }
    r
}

/// One CRI runtime with everything private. See the module documentation.
pub struct Env {
    pub kind: Kind,
    pub daemon: Option<Child>,
    pub registry: Option<Registry>,
    pub ns: Netns,
    /// Absolute, the test's own (`/capsa-cricmp-...`): pods put their cgroups under it.
    pub cgroup_parent: String,
    pub dir: tempfile::TempDir,
    /// Extra lines for capsa-cri's config file.
    pub extra_config: String,
    run_containerd_existed: bool,
}

impl Env {
    /// Namespace, registry (images pushed), CNI config, and the daemon started.
    pub fn start(kind: Kind) -> Env {
        let dir = tempfile::Builder::new().prefix(&format!("cricmp-{}-", kind.name())).tempdir().unwrap();
        for d in ["net.d", "cni", "logs", "opt", "runc"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let ns = Netns::new("cricmp");
        let mut e = Env {
            kind,
            daemon: None,
            registry: None,
            cgroup_parent: format!("/{}", unique("capsa-cricmp-")),
            dir,
            ns,
            extra_config: String::new(),
            run_containerd_existed: Path::new("/run/containerd").exists(),
        };
        e.registry = Some(start_registry(&e.ns, &e.path("registry")));
        let leases = e.path("cni/leases");
        fs::write(e.path("net.d/10-cricmp.conflist"), conflist("cricmp", "cmp0", "10.88.0.0/16", &leases)).unwrap();
        e.start_daemon();
        e
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn socket(&self) -> PathBuf {
        self.path(match self.kind {
            Kind::Containerd => "containerd.sock",
            Kind::Capsa => "cri.sock",
        })
    }

    pub fn registry(&self) -> &Registry {
        self.registry.as_ref().unwrap()
    }

    /// `ADDR/name` of the local registry.
    pub fn image(&self, name: &str) -> String {
        self.registry().image(name)
    }

    fn config(&self) -> String {
        let p = |r: &str| self.path(r).display().to_string();
        let addr = &self.registry().addr;
        match self.kind {
            Kind::Containerd => format!(
                r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{addr}/pause:3.9"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{runc}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{netd}"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{addr}"]
    endpoint = ["http://{addr}"]
"#,
                root = p("root"),
                state = p("state"),
                sock = p("containerd.sock"),
                opt = p("opt"),
                runc = p("runc"),
                netd = p("net.d"),
            ),
            Kind::Capsa => format!(
                "listen = \"{}\"\nstate_dir = \"{}\"\nstore_dir = \"{}\"\nruntime_root = \"{}\"\n\
                 restrict_oom_score_adj = true\n{}\n\
                 [cni]\nconf_dir = \"{}\"\nbin_dirs = [\"/usr/lib/cni\", \"/opt/cni/bin\"]\ncache_dir = \"{}\"\n\
                 [log]\nlevel = \"debug\"\n",
                p("cri.sock"),
                p("state"),
                p("store"),
                p("root"),
                self.extra_config,
                p("net.d"),
                p("cni"),
            ),
        }
    }

    /// Starts the daemon in the namespace (and in an IPC namespace of its own: the
    /// "host" IPC of host-IPC pods); waits until it answers.
    pub fn start_daemon(&mut self) {
        let cfg = self.path("daemon.toml");
        fs::write(&cfg, self.config()).unwrap();
        let log = fs::OpenOptions::new().create(true).append(true).open(self.path("daemon.log")).unwrap();
        let bin = match self.kind {
            Kind::Containerd => PathBuf::from("containerd"),
            Kind::Capsa => capsa_cri_bin(),
        };
        let mut c = self.ns.command("unshare", &["--ipc", "--"]);
        c.arg(&bin).arg("--config").arg(&cfg);
        let child = c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().expect("start the CRI daemon");
        self.daemon = Some(child);
        let up = wait_until(Duration::from_secs(60), || self.socket().exists() && self.crictl(&["version"]).code == 0);
        assert!(up, "{} did not come up:\n{}", self.kind.name(), tail(&self.daemon_log()));
    }

    /// The daemon's pid (nsenter and unshare exec: the child's pid).
    pub fn daemon_pid(&self) -> Option<i32> {
        self.daemon.as_ref().map(|c| c.id() as i32)
    }

    /// SIGTERM to the daemon; waits for it to exit; its exit code.
    pub fn stop_daemon(&mut self) -> i32 {
        let Some(mut c) = self.daemon.take() else { return 0 };
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > end {
                let _ = c.kill();
                return c.wait().map(|s| s.code().unwrap_or(-1)).unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn daemon_log(&self) -> String {
        fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// A crictl command line against this runtime, in the namespace.
    pub fn crictl_command(&self, args: &[&str]) -> Command {
        let ep = format!("unix://{}", self.socket().display());
        let mut c = self.ns.command(crictl_bin(), &[]);
        c.args(["--timeout", "60s", "--runtime-endpoint", &ep, "--image-endpoint", &ep]).args(args);
        c
    }

    /// `crictl ARGS`.
    pub fn crictl(&self, args: &[&str]) -> Out {
        run(&mut self.crictl_command(args))
    }

    /// `crictl ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.crictl(args);
        assert_eq!(
            o.code,
            0,
            "{}: crictl {args:?}: {}{}\n--- daemon log tail:\n{}",
            self.kind.name(),
            o.stdout,
            o.stderr,
            tail(&self.daemon_log())
        );
        o.stdout
    }

    /// `crictl ARGS` parsed as JSON (`-o json` is the caller's).
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let s = self.ok(args);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("crictl {args:?}: not JSON ({e}): {s}"))
    }

    /// Writes a JSON file in the temp dir; returns its path.
    pub fn file(&self, name: &str, v: &serde_json::Value) -> String {
        let p = self.path(name);
        fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        p.display().to_string()
    }

    /// The log directory of pod `name` (made, as kubelet does).
    pub fn log_dir(&self, name: &str) -> PathBuf {
        let d = self.path(&format!("logs/{name}"));
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// A sandbox config as kubelet sends it: metadata, hostname, log directory, the
    /// test's cgroup parent.
    pub fn pod_config(&self, name: &str) -> serde_json::Value {
        serde_json::json!({
            "metadata": {"name": name, "namespace": "cricmp", "uid": format!("{name}-uid"), "attempt": 0},
            "hostname": name,
            "log_directory": self.log_dir(name),
            "linux": {"cgroup_parent": format!("{}/{name}", self.cgroup_parent)},
        })
    }

    /// Mounts under the temp dir (deepest first).
    pub fn mounts(&self) -> Vec<String> {
        let me = format!("{}/", self.dir.path().display());
        let mut v: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&me))
            .map(str::to_owned)
            .collect();
        v.sort_by_key(|m| std::cmp::Reverse(m.len()));
        v
    }

    /// Cgroup directories under the test's parent, in any hierarchy (deepest first).
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in cgroup_hierarchies() {
            let mut stack = vec![h.join(self.cgroup_parent.trim_start_matches('/'))];
            while let Some(d) = stack.pop() {
                if let Ok(rd) = fs::read_dir(&d) {
                    for e in rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
                        out.push(e.path());
                        stack.push(e.path());
                    }
                }
            }
        }
        out.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        out
    }

    /// Processes this runtime started that outlive it: shims (and what runs under them).
    pub fn shim_pids(&self) -> Vec<i32> {
        let me = self.dir.path().display().to_string();
        let mut v = Vec::new();
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            let shim = cmd.starts_with("/usr/bin/containerd-shim") || cmd.contains("capsa-shim");
            if shim && cmd.contains(&me) {
                v.push(pid);
            }
        }
        v
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Through the runtime first: every pod (containers, network, pause).
        if self.daemon.is_some() {
            let ids = self.crictl(&["pods", "-q"]).stdout;
            for id in ids.lines().filter(|l| !l.is_empty()) {
                let _ = self.crictl(&["stopp", id]);
                let _ = self.crictl(&["rmp", "-f", id]);
            }
            if self.kind == Kind::Containerd {
                let ids = self.crictl(&["images", "-q"]).stdout;
                for id in ids.lines().filter(|l| !l.is_empty()) {
                    let _ = self.crictl(&["rmi", id]);
                }
            }
            self.stop_daemon();
        }
        // Whatever a failure left: shims (and their containers), mounts, cgroups.
        for pid in self.shim_pids() {
            // SAFETY: a shim this test's daemon started (its command line names our dir).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for h in cgroup_hierarchies() {
            for p in self.leftover_cgroups().into_iter().filter(|p| p.starts_with(&h)) {
                if let Ok(procs) = fs::read_to_string(p.join("cgroup.procs")) {
                    for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                        // SAFETY: a process in a cgroup under the test's own parent.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        for m in self.mounts() {
            let c = std::ffi::CString::new(m).unwrap();
            // SAFETY: a valid path string; failure is fine.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        for p in self.leftover_cgroups() {
            let _ = fs::remove_dir(p);
        }
        for h in cgroup_hierarchies() {
            let _ = fs::remove_dir(h.join(self.cgroup_parent.trim_start_matches('/')));
        }
        // containerd 1.6's shims keep their sockets under /run/containerd/s whatever
        // the config says: drop the directories if this test made them and they are empty.
        if self.kind == Kind::Containerd && !self.run_containerd_existed {
            for d in ["/run/containerd/s", "/run/containerd"] {
                let _ = fs::remove_dir(d);
            }
        }
        self.registry.take();
    }
}
