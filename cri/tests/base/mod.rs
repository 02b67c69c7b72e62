//! What both families of CRI tests share (`common` for capsa-cri alone, `cricmp` for
//! the comparisons with containerd): running commands, the checkout's paths, crictl,
//! a network namespace the test made, the local registry, the pods' CNI network.
//! Included by both with `#[path]`, so each test binary builds it once.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Exit code and output of a command.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Out {
    let o = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
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

pub fn unique(prefix: &str) -> String {
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

/// The crictl wrapper of ../shared/tools (it checks the binary's sha256 on every call).
pub fn crictl_wrapper() -> PathBuf {
    shared().join("tools/crictl")
}

/// crictl v1.26.1 itself: the wrapper unpacks (and checks) it once into its cache; the
/// tests then run the cached binary (the wrapper's checksum of 36 MB costs ~0.2 s a call).
pub fn crictl_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let w = crictl_wrapper();
        let o = run(Command::new(&w).arg("--version"));
        let cache =
            std::env::var_os("CRICTL_CACHE").map_or_else(|| PathBuf::from("/var/cache/crictl-v1.26.1"), PathBuf::from);
        let bin = cache.join("crictl");
        if o.code == 0 && bin.is_file() {
            bin
        } else {
            w
        }
    })
    .clone()
}

/// The capsa-cri binary; `capsa` and `capsa-shim` must be built next to it.
pub fn capsa_cri_bin() -> PathBuf {
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
    pub fn new(prefix: &str) -> Netns {
        let name = unique(prefix);
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
    /// and so /sys/fs/cgroup, stays the host's; `ip netns exec` would remount /sys).
    pub fn command(&self, prog: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display())).arg(prog).args(args);
        c
    }

    pub fn run(&self, prog: &str, args: &[&str]) -> Out {
        run(&mut self.command(prog, args))
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
/// harness (busybox:latest and busybox:v2s2 pushed); stopped on drop.
pub struct Registry {
    dir: PathBuf,
    pub addr: String,
}

impl Registry {
    pub fn start(ns: &Netns, dir: &Path) -> Registry {
        let script = shared().join("harness/registry/start.sh");
        let o = run(&mut ns.command(&script, &[dir.to_str().unwrap()]));
        assert_eq!(o.code, 0, "registry start.sh: {}{}", o.stdout, o.stderr);
        let addr = o.stdout.lines().last().unwrap_or("").trim().to_owned();
        assert!(addr.starts_with("127.0.0.1:"), "registry address: {}", o.stdout);
        Registry { dir: dir.to_path_buf(), addr }
    }

    /// `ADDR/name`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    /// The manifest digest of `name:tag` (what a pull by digest names).
    pub fn digest(&self, ns: &Netns, name: &str, tag: &str) -> String {
        let url = format!("http://{}/v2/{name}/manifests/{tag}", self.addr);
        let o = run(&mut ns.command(
            "curl",
            &[
                "-sSfI",
                "-H",
                "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
                &url,
            ],
        ));
        o.stdout
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("docker-content-digest").then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no digest for {url}: {o:?}"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = run(Command::new(shared().join("harness/registry/stop.sh")).arg(&self.dir));
    }
}

/// The pods' CNI network `name`: a bridge of the test's namespace, host-local leases
/// in the test's dir, portmap for host ports.
pub fn conflist(name: &str, bridge: &str, subnet: &str, leases: &Path) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[
  {{"type":"bridge","bridge":"{bridge}","isGateway":true,"ipMasq":false,"hairpinMode":true,
    "ipam":{{"type":"host-local","dataDir":"{}","ranges":[[{{"subnet":"{subnet}"}}]],"routes":[{{"dst":"0.0.0.0/0"}}]}}}},
  {{"type":"portmap","capabilities":{{"portMappings":true}},"snat":true}}]}}"#,
        leases.display()
    )
}

/// The host's cgroup hierarchies: the unified root, or every v1 (and hybrid) one.
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    fs::read_dir(base)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_dir() && !p.is_symlink()).collect())
        .unwrap_or_default()
}

/// The last 30 lines (of a daemon's log, for a failure message).
pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
