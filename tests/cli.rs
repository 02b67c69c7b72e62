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

/// The keys of the first JSON object in `text`, in the order they appear (nested
/// objects' keys left out; a key is a string followed by `:`).
fn keys_in_order(text: &str) -> Vec<String> {
    let (mut depth, mut keys, mut in_str, mut esc, mut cur) = (0i32, Vec::new(), false, false, String::new());
    let mut target = None;
    let b = text.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
                let next = b[i + 1..].iter().find(|c| !c.is_ascii_whitespace());
                if next == Some(&b':') && Some(depth) == target {
                    keys.push(cur.clone());
                }
            } else {
                cur.push(c as char);
            }
            continue;
        }
        match c {
            b'"' => {
                in_str = true;
                cur.clear();
            }
            b'{' => {
                depth += 1;
                target.get_or_insert(depth);
            }
            b'}' => {
                depth -= 1;
                if target.is_some_and(|t| depth < t) {
                    break;
                }
            }
            _ => {}
        }
    }
    keys
}

/// `list --format json` prints runc's fields in runc's order (callers compare the
/// text): ociVersion, id, pid, status, bundle, rootfs, created, annotations (when
/// there are some), owner.
#[test]
fn list_json_field_order() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("list-order", &["sleep", "30"])
        .edit(|c| c["annotations"] = serde_json::json!({"b.x": "1", "a.y": "2"}));
    let _c = rt.create(&b);
    let out = rt.cmd(&["list", "--format", "json"]).ok().stdout;
    assert_eq!(
        keys_in_order(out.trim().trim_start_matches('[')),
        ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "annotations", "owner"],
        "{out}"
    );
    assert!(out.contains(r#""annotations":{"a.y":"2","b.x":"1"},"owner":"root""#), "{out}");
    let plain = Bundle::new("list-plain", &["sleep", "30"]);
    let rt2 = Rt::new();
    let _p = rt2.create(&plain);
    let out = rt2.cmd(&["list", "--format", "json"]).ok().stdout;
    assert_eq!(
        keys_in_order(out.trim().trim_start_matches('[')),
        ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"],
        "{out}"
    );
    // `state` prints the same document, indented, with runc's empty owner.
    let out = rt.cmd(&["state", &b.id]).ok().stdout;
    let flat: String = out.split_whitespace().collect::<Vec<_>>().join("");
    assert_eq!(
        keys_in_order(&flat),
        ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "annotations", "owner"],
        "{out}"
    );
    assert!(flat.contains(r#""owner":"""#), "{out}");
}

/// `events --stats` prints `{"type":...,"id":...,"data":...}` and the data in the
/// order of runc's types.Stats.
#[test]
fn events_json_field_order() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("events-order", &["sleep", "30"])
        .edit(|c| c["linux"]["resources"] = serde_json::json!({"pids": {"limit": 20}}));
    let _c = rt.start_new(&b);
    let out = rt.cmd(&["events", "--stats", &b.id]).ok().stdout;
    assert!(out.starts_with(&format!(r#"{{"type":"stats","id":"{}","data":{{"cpu":{{"usage":"#, b.id)), "{out}");
    let data = &out[out.find(r#""data":"#).unwrap() + 7..];
    assert_eq!(
        keys_in_order(data),
        ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"],
        "{out}"
    );
    let mem = &data[data.find(r#""memory":"#).unwrap() + 9..];
    let mem_keys = keys_in_order(mem);
    let want: Vec<&str> = ["cache", "usage", "swap", "kernel", "kernelTCP", "raw"]
        .into_iter()
        .filter(|k| mem_keys.iter().any(|m| m == k))
        .collect();
    assert_eq!(mem_keys, want, "{out}");
    assert!(data.contains(r#""pids":{"current":1,"limit":20}"#), "{out}");
}

/// `events ID | head -1`: when the reader goes away, the runtime ends quietly, killed
/// by SIGPIPE as runc (a Go program) is, not with a panic or an error line.
#[test]
fn events_into_a_closed_pipe_is_quiet() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("events-pipe", &["sleep", "30"]);
    let _c = rt.start_new(&b);
    let err = tempfile::tempfile().unwrap();
    let mut cmd = rt.command(&["events", "--interval", "100ms", &b.id]);
    cmd.stdout(std::process::Stdio::piped()).stderr(err.try_clone().unwrap());
    let mut child = cmd.spawn().unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with(r#"{"type":"stats""#), "{first}");
    drop(child.stdout.take());
    let st = common::wait_timeout(&mut child, common::TIMEOUT).expect("events kept running after its reader left");
    assert_eq!(st.signal(), Some(libc::SIGPIPE), "{st:?}");
    let (mut e, mut text) = (err, String::new());
    std::io::Seek::seek(&mut e, std::io::SeekFrom::Start(0)).unwrap();
    std::io::Read::read_to_string(&mut e, &mut text).unwrap();
    assert!(text.is_empty(), "stderr: {text}");
}

/// `--log FILE` in text format holds logrus lines, as runc writes them
/// (`time="..." level=error msg="..."`); stderr gets the plain error line.
#[test]
fn log_file_text_format_is_logrus() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let dir = tempfile::tempdir().unwrap();
    for (i, extra) in [&[][..], &["--log-format", "text"][..]].into_iter().enumerate() {
        let log = dir.path().join(format!("runtime-{i}.log"));
        let mut cmd = Command::new(common::runtime());
        cmd.arg("--log").arg(&log).args(extra).arg("--root").arg(rt.root()).args(["state", "capsa-no-such-container"]);
        let out = common::run_cmd(cmd, common::TIMEOUT).failed();
        let text = fs::read_to_string(&log).expect("log file written");
        let line =
            text.lines().find(|l| l.contains("level=error")).unwrap_or_else(|| panic!("no error record: {text}"));
        let (time, rest) = line.strip_prefix("time=\"").and_then(|l| l.split_once('"')).expect(line);
        assert!(time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
        assert!(rest.starts_with(" level=error msg=\"") && rest.ends_with('"'), "{line}");
        assert!(!out.stderr.is_empty() && !out.stderr.contains("level=error"), "{}", out.stderr);
    }
    // --debug adds debug records.
    let log = dir.path().join("debug.log");
    let b = Bundle::new("log-debug", &["true"]);
    let mut cmd = Command::new(common::runtime());
    cmd.arg("--debug").arg("--log").arg(&log).arg("--root").arg(rt.root());
    cmd.args(["run", "--bundle", b.path_str(), &b.id]);
    let _g = rt.guard(&b);
    common::run_cmd(cmd, common::TIMEOUT).ok();
    let text = fs::read_to_string(&log).unwrap();
    let debug: Vec<&str> = text.lines().filter(|l| l.contains(" level=debug msg=")).collect();
    assert!(!debug.is_empty(), "{text}");
    assert!(debug.iter().all(|l| l.starts_with("time=\"")), "{text}");
}
