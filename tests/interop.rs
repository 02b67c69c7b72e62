//! Interop through real clients: the shared containerd (`ctr`) and podman harnesses
//! drive the capsa binary exactly as a cluster would. They live beside the repo in
//! `../shared/harness`; CI (CI=true) requires them, a local run without them skips.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn harness(name: &str) -> Option<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let p = here.join("..").join("shared").join("harness").join(name).join("run.sh");
    if p.exists() {
        return Some(p);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{} is missing: CI needs ../shared/harness", p.display());
    }
    eprintln!("skipping: {} not found", p.display());
    None
}

fn run_harness(name: &str, tool: &str) {
    if !common::require_root() {
        return;
    }
    let Some(script) = harness(name) else { return };
    if Command::new(tool).arg("--version").output().is_err() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is not installed (.ci/run installs it)");
        }
        eprintln!("skipping: {tool} not installed");
        return;
    }
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(common::runtime());
    let out = common::run_cmd(cmd, Duration::from_secs(600));
    let last = out.stdout.lines().last().unwrap_or("").to_string();
    println!("{}", out.stdout);
    assert!(last.ends_with(" 0 failed") && out.code == 0, "{name} harness: {last}\n{}\n{}", out.stdout, out.stderr);
}

/// containerd 1.6 through `ctr run --runc-binary capsa` (12 checks), then podman 4.3
/// with `--runtime capsa` (18 checks, pods included). One test, so the two never
/// run at the same time (they share the harness's image cache).
#[test]
fn containerd_and_podman_harnesses() {
    run_harness("containerd", "ctr");
    run_harness("podman", "podman");
}
