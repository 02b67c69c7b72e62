//! Pulling from a real registry (root): Debian's docker-registry on
//! 127.0.0.1, started by the shared harness (`../shared/harness/registry/
//! start.sh`), with skopeo pushes of an OCI and a Docker schema 2 busybox and
//! a three-layer image with whiteouts. capsa pulls each (plain http: loopback)
//! and runs it; a missing repository or tag and an unreachable registry give
//! clear errors and leave the store empty. The registry is stopped and every
//! directory removed even when a test fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Out {
    let o = cmd.stdin(Stdio::null()).output().expect("spawn");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/harness/registry")
}

/// The registry and a store; stops and cleans up on drop.
struct Registry {
    dir: tempfile::TempDir,
    addr: String,
}

impl Registry {
    fn start() -> Option<Registry> {
        let ci = std::env::var("CI").as_deref() == Ok("true");
        // SAFETY: geteuid cannot fail.
        let missing = if unsafe { libc::geteuid() } != 0 {
            Some("root")
        } else if !harness().join("start.sh").exists() {
            Some("the shared registry harness")
        } else if run(
            Command::new("sh").args(["-c", "command -v docker-registry && command -v skopeo && command -v umoci"])
        )
        .code
            != 0
        {
            Some("docker-registry, skopeo and umoci (apt-get install docker-registry skopeo umoci)")
        } else {
            None
        };
        if let Some(m) = missing {
            assert!(!ci, "needs {m} (CI=true)");
            eprintln!("skipping: needs {m}");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("capsa-registry-test").tempdir().unwrap();
        let mut reg = Registry { dir, addr: String::new() };
        let o = run(Command::new(harness().join("start.sh"))
            .arg(reg.dir.path().join("reg"))
            .env("HARNESS_IMG_DIR", reg.dir.path().join("img")));
        assert_eq!(o.code, 0, "start.sh: {}{}", o.stdout, o.stderr);
        reg.addr = o.stdout.lines().last().unwrap().trim().to_owned();
        Some(reg)
    }

    fn capsa(&self, verb: &[&str], args: &[&str]) -> Out {
        let mut c = Command::new(env!("CARGO_BIN_EXE_capsa"));
        c.arg("--root").arg(self.dir.path().join("state")).args(verb);
        c.arg("--store").arg(self.dir.path().join("store")).args(args);
        run(&mut c)
    }

    fn count(&self, sub: &str) -> usize {
        fs::read_dir(self.dir.path().join("store").join(sub)).map(|r| r.count()).unwrap_or(0)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = run(Command::new(harness().join("stop.sh")).arg(self.dir.path().join("reg")));
        if let Ok(rd) = fs::read_dir(self.dir.path().join("store/containers")) {
            for e in rd.flatten() {
                let p = std::ffi::CString::new(e.path().join("rootfs").as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a valid path; failure (not mounted) is fine.
                unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

#[test]
fn pull_oci_schema2_multilayer_and_run() {
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    for tag in ["busybox:latest", "busybox:v2s2", "multilayer:latest"] {
        let o = reg.capsa(&["image", "pull"], &[&format!("docker://{a}/{tag}")]);
        assert_eq!(o.code, 0, "pull {tag}: {}", o.stderr);
        assert_eq!(o.stdout.trim(), format!("{a}/{tag}"));
        let o = reg.capsa(&["run"], &["--rm", "-q", &format!("{a}/{tag}"), "echo", "hi"]);
        assert_eq!((o.code, o.stdout.as_str()), (0, "hi\n"), "run {tag}: {}", o.stderr);
    }
    // Both busybox manifests share the layer; multilayer adds two.
    assert_eq!(reg.count("snapshots"), 3);
    // The image's own Cmd and its whiteouts.
    let o = reg.capsa(&["run"], &["--rm", "-q", &format!("{a}/multilayer")]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "layer2\n"), "{}", o.stderr);
    let o = reg.capsa(
        &["run"],
        &["--rm", "-q", &format!("docker://{a}/multilayer"), "sh", "-c", "ls /var/lib/opaque; ls /etc/deleted-me 2>&1"],
    );
    assert!(o.stdout.starts_with("new.txt\n") && o.stdout.contains("No such file"), "{}{}", o.stdout, o.stderr);
    // By digest.
    let ls = reg.capsa(&["image", "ls"], &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
    let d = v[0]["digest"].as_str().unwrap().to_owned();
    let o = reg.capsa(&["image", "pull"], &[&format!("docker://{a}/busybox@{d}")]);
    assert_eq!(o.code, 0, "pull by digest: {}", o.stderr);
}

#[test]
fn registry_errors_leave_the_store_empty() {
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    for (r, want) in [
        (format!("docker://{a}/nope:latest"), "404"),
        (format!("docker://{a}/busybox:nope"), "manifest unknown"),
        (format!("docker://{a}/busybox@sha256:{}", "0".repeat(64)), "404"),
        ("docker://127.0.0.1:1/busybox".to_owned(), "Connection refused"),
    ] {
        let o = reg.capsa(&["image", "pull"], &[&r]);
        assert!(o.code != 0 && o.stderr.contains(want), "{r}: {}", o.stderr);
    }
    assert_eq!(reg.count("blobs/sha256"), 0);
    assert_eq!(reg.capsa(&["image", "ls"], &["-q"]).stdout, "");
}
