//! Command-line surface: spec, features, --version, --log/--log-format, --root.

mod common;

use common::{Bundle, Rt};
use serde_json::Value;
use std::fs;
use std::process::Command;

fn spec_in(dir: &std::path::Path, extra: &[&str]) -> common::Output {
    let mut c = Command::new(common::runtime());
    c.arg("spec").args(extra).current_dir(dir);
    common::run_cmd(c, common::TIMEOUT)
}

/// `spec` writes a valid default config.json into the current directory.
#[test]
fn spec_writes_default_config() {
    if !common::require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    spec_in(dir.path(), &[]).ok();
    let c: Value = serde_json::from_str(&fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    assert!(c["ociVersion"].as_str().unwrap().starts_with("1."), "{c}");
    assert_eq!(c["root"]["path"], "rootfs");
    assert_eq!(c["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(c["process"]["terminal"], true);
    let ns: Vec<&str> =
        c["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    for want in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&want), "{want} missing: {ns:?}");
    }
    assert!(!c["linux"]["maskedPaths"].as_array().unwrap().is_empty());
    assert!(!c["linux"]["readonlyPaths"].as_array().unwrap().is_empty());
}

/// `spec` refuses to overwrite an existing config.json
/// (runc: "File config.json exists. Remove it first").
#[test]
fn spec_refuses_to_overwrite() {
    if !common::require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("config.json"), "keep me").unwrap();
    let out = spec_in(dir.path(), &[]).failed();
    assert!(out.stderr.contains("config.json"), "{out:?}");
    assert_eq!(fs::read_to_string(dir.path().join("config.json")).unwrap(), "keep me");
}

#[test]
fn spec_bundle_flag() {
    if !common::require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    spec_in(elsewhere.path(), &["--bundle", dir.path().to_str().unwrap()]).ok();
    assert!(dir.path().join("config.json").exists());
    assert!(!elsewhere.path().join("config.json").exists());
}

/// `spec --rootless` adds a user namespace with id mappings.
#[test]
fn spec_rootless() {
    if !common::require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    spec_in(dir.path(), &["--rootless"]).ok();
    let c: Value = serde_json::from_str(&fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    assert!(c["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "user"));
    assert_eq!(c["linux"]["uidMappings"].as_array().unwrap().len(), 1);
    assert_eq!(c["linux"]["gidMappings"].as_array().unwrap().len(), 1);
}

/// `features` prints JSON describing what the runtime supports.
#[test]
fn features_json() {
    if !common::require_root() {
        return;
    }
    let out = common::run_cmd(
        {
            let mut c = Command::new(common::runtime());
            c.arg("features");
            c
        },
        common::TIMEOUT,
    )
    .ok();
    let f: Value = serde_json::from_str(&out.stdout).expect("features JSON");
    for key in ["ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux"] {
        assert!(f.get(key).is_some(), "{key} missing: {f}");
    }
    let hooks: Vec<&str> = f["hooks"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    for h in ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] {
        assert!(hooks.contains(&h), "{h} missing: {hooks:?}");
    }
    let mount_opts = f["mountOptions"].as_array().unwrap();
    for o in ["bind", "rbind", "ro", "nosuid", "nodev", "noexec"] {
        assert!(mount_opts.iter().any(|m| m == o), "{o} missing");
    }
    let ns = f["linux"]["namespaces"].as_array().unwrap();
    for n in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"] {
        assert!(ns.iter().any(|x| x == n), "{n} missing: {ns:?}");
    }
}

/// `--version` prints the runtime version and the OCI spec version.
#[test]
fn version_flag() {
    if !common::require_root() {
        return;
    }
    let out = common::run_cmd(
        {
            let mut c = Command::new(common::runtime());
            c.arg("--version");
            c
        },
        common::TIMEOUT,
    )
    .ok();
    let first = out.stdout.lines().next().unwrap_or("");
    assert!(first.contains("version"), "{out:?}");
    assert!(out.stdout.lines().any(|l| l.starts_with("spec: 1.")), "{out:?}");
    if common::is_capsa() {
        assert!(first.starts_with("capsa version"), "{out:?}");
    }
}

/// `--log FILE --log-format json` writes one JSON object per line with
/// level, msg and time when a command fails.
#[test]
fn log_file_json_format() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runtime.log");
    let mut cmd = Command::new(common::runtime());
    cmd.arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "--root"])
        .arg(rt.root())
        .args(["state", "capsa-no-such-container"]);
    common::run_cmd(cmd, common::TIMEOUT).failed();
    let text = fs::read_to_string(&log).expect("log file written");
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let err = lines.iter().find(|l| l["level"] == "error").unwrap_or_else(|| panic!("no error entry: {text}"));
    assert!(err["msg"].as_str().is_some_and(|m| !m.is_empty()), "{err}");
    assert!(err["time"].is_string(), "{err}");
}

/// `--root` decides where state lives: `<root>/<id>/state.json`, and a
/// different root does not see the container.
#[test]
fn root_flag_is_honoured() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let other = Rt::new();
    let b = Bundle::new("root-flag", &["sleep", "30"]);
    let _c = rt.create(&b);
    let state = rt.root().join(&b.id).join("state.json");
    assert!(state.exists(), "{} missing", state.display());
    assert!(other.list_ids().is_empty());
    other.cmd(&["state", &b.id]).failed();
    assert_eq!(rt.list_ids(), vec![b.id.clone()]);
}
