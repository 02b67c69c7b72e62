//! kubelet's devices (`ContainerConfig.devices`) into the spec: the nodes and their
//! device-cgroup rules, or every host device for a privileged container.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::proto::ContainerConfig;

fn device_entry(host: &Path, dest: &str, perms: &str) -> Result<Option<(Value, Value)>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::metadata(host).map_err(|e| Error::unknown(format!("device {}: {e}", host.display())))?;
    let ft = md.file_type();
    let ty = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return Ok(None);
    };
    let rdev = md.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let dev = json!({"path": dest, "type": ty, "major": major, "minor": minor,
                     "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid()});
    let rule = json!({"allow": true, "type": ty, "major": major, "minor": minor, "access": perms});
    Ok(Some((dev, rule)))
}

/// kubelet's devices (a host directory: every device under it), or all the host's
/// when privileged.
pub(super) fn devices(spec: &mut Value, c: &ContainerConfig, privileged: bool) -> Result<()> {
    let mut devs = Vec::new();
    let mut rules = Vec::new();
    let mut add = |host: &Path, dest: &str, perms: &str| -> Result<()> {
        if let Some((d, r)) = device_entry(host, dest, perms)? {
            devs.push(d);
            rules.push(r);
        }
        Ok(())
    };
    for d in &c.devices {
        let perms = if d.permissions.is_empty() { "rwm" } else { d.permissions.as_str() };
        if !perms.chars().all(|ch| "rwm".contains(ch)) {
            return Err(Error::invalid(format!("device {}: permissions {perms:?} (r, w, m)", d.host_path)));
        }
        let host = Path::new(&d.host_path);
        if host.is_dir() {
            for (p, rel) in walk_devices(host) {
                add(&p, &format!("{}/{rel}", d.container_path.trim_end_matches('/')), perms)?;
            }
        } else {
            add(host, &d.container_path, perms)?;
        }
    }
    if privileged {
        for (p, rel) in walk_devices(Path::new("/dev")) {
            if rel.starts_with("pts/") || rel == "console" || rel == "ptmx" {
                continue;
            }
            // A device that vanished meanwhile is skipped.
            if let Ok(Some((d, _))) = device_entry(&p, &format!("/dev/{rel}"), "rwm") {
                devs.push(d);
            }
        }
        rules = vec![json!({"allow": true, "access": "rwm"})];
    }
    if !devs.is_empty() {
        let existing = spec["linux"]["devices"].as_array().cloned().unwrap_or_default();
        spec["linux"]["devices"] = json!(existing.into_iter().chain(devs).collect::<Vec<_>>());
    }
    if !rules.is_empty() {
        let existing = spec["linux"]["resources"]["devices"].as_array().cloned().unwrap_or_default();
        let all = if privileged { rules } else { existing.into_iter().chain(rules).collect() };
        spec["linux"]["resources"]["devices"] = json!(all);
    }
    Ok(())
}

/// Device nodes under `dir` (not following symlinks): (path, path relative to `dir`).
fn walk_devices(dir: &Path) -> Vec<(PathBuf, String)> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, rel)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            if ft.is_dir() {
                stack.push((e.path(), r));
            } else if ft.is_char_device() || ft.is_block_device() {
                out.push((e.path(), r));
            }
        }
    }
    out.sort();
    out
}
