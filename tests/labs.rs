//! Every lab in labs/, through the `capsa lab` driver: `start` then `check` must FAIL
//! (nothing done yet), `solve` then `check` must PASS, the lab's `wrong.sh` (a
//! plausible mistake) then `check` must FAIL with an explanation, and `reset` must
//! leave no container, pod, mount or scratch file behind.
//!
//! The labs use capsa's default store and state root, as a student would, with names
//! of their own (labNN...). Everything runs inside a network namespace this test
//! makes (nsenter --net), so the pod labs' bridges, veths and rules never touch the
//! machine's network. One lab at a time: the cpu and io labs measure rates.
//!
//! In the cgroup v2 VM lane (tests/vm/run.sh labs) only the runtime is there (no
//! capsa-image): the cgroup labs (7-10) run there, on a pure v2 kernel; all of them run
//! on the host lane.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

mod common;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The cgroup labs: runtime bundles, bash, jq and busybox only, so they also run in the
/// cgroup v2 VM, whose userland is just that.
const CGROUP_LABS: [u32; 4] = [7, 8, 9, 10];

fn labs_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CAPSA_LABS") {
        return PathBuf::from(d);
    }
    let src = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/labs"));
    if src.join("lib.sh").is_file() {
        return src;
    }
    PathBuf::from("/usr/local/share/capsa/labs")
}

fn folder(n: u32) -> String {
    let prefix = format!("{n:02}-");
    std::fs::read_dir(labs_dir())
        .expect("labs dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|f| f.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no lab {prefix}* in {}", labs_dir().display()))
}

struct Out {
    code: i32,
    text: String,
}

/// A test network namespace (loopback up), deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("capsa-lab-{tag}-{}", std::process::id());
        let ok = |args: &[&str]| {
            let s = Command::new("ip").args(args).status().expect("ip");
            assert!(s.success(), "ip {args:?}");
        };
        ok(&["netns", "add", &name]);
        ok(&["-n", &name, "link", "set", "lo", "up"]);
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Lab {
    n: u32,
    dir: PathBuf,
    capsa: PathBuf,
    work: PathBuf,
    /// None in the VM (no `ip netns` there, and the cgroup labs need no network).
    net: Option<Netns>,
}

impl Lab {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = match &self.net {
            Some(n) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{}", n.0)).args(args);
                c
            }
            None => {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]);
                c
            }
        };
        c.env("CAPSA", &self.capsa).env("CAPSA_LABS", labs_dir()).env("CAPSA_LAB_WORK", &self.work);
        c.env("CAPSA_LAB_CACHE", self.work.join("cache"));
        c.current_dir("/");
        c
    }

    /// Runs with its output in a file, not a pipe: a container a lab starts in the
    /// background must not be able to hold the test back.
    fn run(&self, args: &[&str]) -> Out {
        let log = tempfile::NamedTempFile::new().expect("temp file");
        let mut c = self.cmd(args);
        c.stdin(std::process::Stdio::null());
        c.stdout(log.reopen().expect("reopen")).stderr(log.reopen().expect("reopen"));
        let mut child = c.spawn().expect("nsenter");
        let status = common::wait_timeout(&mut child, std::time::Duration::from_secs(300)).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("lab {}: {args:?} still running after 300 s", self.n)
        });
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        Out { code: status.code().unwrap_or(-1), text }
    }

    /// `capsa lab VERB N`, through the driver (capsa-image) when it is there.
    fn lab(&self, verb: &str) -> Out {
        let n = self.n.to_string();
        if self.capsa.with_file_name("capsa-image").is_file() {
            let capsa = self.capsa.display().to_string();
            self.run(&[&capsa, "lab", verb, &n])
        } else {
            let script = match verb {
                "start" => "setup.sh",
                "check" => "check.sh",
                "solve" => "solution.sh",
                _ => "reset.sh",
            };
            self.run(&["bash", &self.dir.join(script).display().to_string()])
        }
    }

    fn ok(&self, verb: &str) {
        let o = self.lab(verb);
        assert_eq!(o.code, 0, "lab {} {verb}: exit {}:\n{}", self.n, o.code, o.text);
    }

    fn check(&self, pass: bool, after: &str) {
        let o = self.lab("check");
        let verdict = o.text.lines().rfind(|l| l.starts_with("PASS") || l.starts_with("FAIL"));
        if pass {
            assert_eq!(o.code, 0, "lab {} check after {after}: expected PASS, exit {}:\n{}", self.n, o.code, o.text);
            assert!(verdict.is_some_and(|v| v.starts_with("PASS: ")), "lab {}: no PASS line:\n{}", self.n, o.text);
        } else {
            assert_eq!(
                o.code, 1,
                "lab {} check after {after}: expected FAIL (exit 1), exit {}:\n{}",
                self.n, o.code, o.text
            );
            let v = verdict.unwrap_or_else(|| panic!("lab {}: no FAIL line:\n{}", self.n, o.text));
            assert!(v.starts_with("FAIL: ") && v.len() > 12, "lab {}: a FAIL without its reason: {v}", self.n);
        }
        eprintln!("lab {} after {after}: {}", self.n, verdict.unwrap_or_default());
    }

    /// Nothing of the lab is left: containers, pods, mounts, its scratch dir.
    fn assert_clean(&self) {
        let tag = format!("lab{:02}", self.n);
        let capsa = self.capsa.display().to_string();
        let mut listings = vec![self.run(&[&capsa, "list", "-q"]).text];
        if self.capsa.with_file_name("capsa-image").is_file() {
            listings.push(self.run(&[&capsa, "ps", "-a", "-q"]).text);
            listings.push(self.run(&[&capsa, "pod", "ls", "-q"]).text);
        }
        for l in &listings {
            assert!(!l.lines().any(|n| n.starts_with(&tag)), "lab {}: left behind after reset:\n{l}", self.n);
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let work = self.work.display().to_string();
        assert!(!mounts.contains(&work), "lab {}: a mount under {work} is left:\n{mounts}", self.n);
        let lab_work = self.work.join(folder(self.n));
        assert!(!lab_work.exists(), "lab {}: {} is left after reset", self.n, lab_work.display());
    }
}

fn run_lab(n: u32) {
    if !common::require_root() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let capsa = common::runtime();
    let full = capsa.with_file_name("capsa-image").is_file();
    if !full && !CGROUP_LABS.contains(&n) {
        eprintln!("lab {n}: skipped here (only the cgroup labs run without capsa-image); the host lane runs it");
        return;
    }
    let work = std::env::temp_dir().join(format!("capsa-lab-test-{}", std::process::id()));
    let dir = labs_dir().join(folder(n));
    let lab = Lab { n, dir, capsa, work, net: full.then(|| Netns::new(&n.to_string())) };
    let _ = lab.lab("reset");
    let capsa_s = lab.capsa.display().to_string();
    let had_busybox = full && lab.run(&[&capsa_s, "image", "inspect", "busybox"]).code == 0;
    // Nothing done yet: the check must fail, and say why.
    lab.ok("start");
    lab.check(false, "start only");
    lab.ok("solve");
    lab.check(true, "the solution");
    // A plausible mistake: wrong.sh starts over from setup where it needs to.
    let w = lab.run(&["bash", &lab.dir.join("wrong.sh").display().to_string()]);
    assert_eq!(w.code, 0, "lab {n} wrong.sh: exit {}:\n{}", w.code, w.text);
    lab.check(false, "a wrong answer");
    lab.ok("reset");
    lab.assert_clean();
    // The labs import busybox into the default store when it is missing: its name goes
    // again; its blobs too in CI (prune also drops stopped containers: not on a
    // developer's machine, whose store is not the test's).
    if full && !had_busybox {
        let _ = lab.run(&[&capsa_s, "image", "rm", "busybox"]);
        if std::env::var("CI").as_deref() == Ok("true") {
            let _ = lab.run(&[&capsa_s, "image", "prune"]);
        }
    }
    let _ = std::fs::remove_dir_all(&lab.work);
}

#[test]
fn every_lab_has_its_files() {
    let dir = labs_dir();
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("labs dir") {
        let name = e.expect("entry").file_name().into_string().expect("utf-8");
        if !name.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            continue;
        }
        n += 1;
        for f in ["README.md", "README.ko.md", "setup.sh", "solution.sh", "wrong.sh", "check.sh", "reset.sh"] {
            let p = dir.join(&name).join(f);
            assert!(p.is_file(), "{} is missing", p.display());
        }
        let ko = std::fs::read_to_string(dir.join(&name).join("README.ko.md")).expect("read");
        assert!(ko.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c)), "{name}/README.ko.md has no Korean");
    }
    assert!(n >= 14, "{n} labs in {}: at least 14 expected", dir.display());
}

macro_rules! labs {
    ($($name:ident = $n:expr;)*) => { $( #[test] fn $name() { run_lab($n) } )* };
}

labs! {
    lab_01_pid_namespace = 1;
    lab_02_mount_namespace = 2;
    lab_03_uts_namespace = 3;
    lab_04_ipc_namespace = 4;
    lab_05_pod_localhost = 5;
    lab_06_user_namespace = 6;
    lab_07_cgroup_memory = 7;
    lab_08_cgroup_pids = 8;
    lab_09_cgroup_cpu = 9;
    lab_10_cgroup_blkio = 10;
    lab_11_overlay_layers = 11;
    lab_12_self_healing = 12;
    lab_13_pod_network_cni = 13;
    lab_14_labels = 14;
}
