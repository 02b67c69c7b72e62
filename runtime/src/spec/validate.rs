//! Loading `config.json` and checking it before anything is created.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::types::Spec;

/// A config.json that cannot be used, with the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("read {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("parse {path}: {err}")]
    Parse { path: PathBuf, err: serde_json::Error },
    #[error("{path}: {field}: {msg}")]
    Invalid { path: PathBuf, field: String, msg: String },
}

/// Read and parse `config.json` (no validation).
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let data = std::fs::read(path).map_err(|err| SpecError::Read { path: path.into(), err })?;
    serde_json::from_slice(&data).map_err(|err| SpecError::Parse { path: path.into(), err })
}

const NS_TYPES: [&str; 8] = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"];

/// Check what the kernel cannot check for us: versions, required fields, namespace
/// kinds, absolute paths. `path` is only used in messages.
pub fn validate(spec: &Spec, path: &Path) -> Result<(), SpecError> {
    let bad = |field: &str, msg: String| SpecError::Invalid { path: path.into(), field: field.into(), msg };
    check_version(&spec.oci_version).map_err(|m| bad("ociVersion", m))?;
    let root = spec.root.as_ref().ok_or_else(|| bad("root", "missing (the rootfs path is required)".into()))?;
    if root.path.is_empty() {
        return Err(bad("root.path", "empty".into()));
    }
    if let Some(p) = &spec.process {
        if p.args.is_empty() && p.command_line.is_none() {
            return Err(bad("process.args", "empty: nothing to run".into()));
        }
        if !p.cwd.starts_with('/') {
            return Err(bad("process.cwd", format!("{:?} is not absolute", p.cwd)));
        }
        for e in &p.env {
            if !e.contains('=') {
                return Err(bad("process.env", format!("{e:?} is not KEY=VALUE")));
            }
        }
    }
    for (i, m) in spec.mounts.iter().enumerate() {
        if m.destination.is_empty() {
            return Err(bad(&format!("mounts[{i}].destination"), "empty".into()));
        }
    }
    if let Some(linux) = &spec.linux {
        let mut seen = HashSet::new();
        for (i, ns) in linux.namespaces.iter().enumerate() {
            if !NS_TYPES.contains(&ns.typ.as_str()) {
                return Err(bad(
                    &format!("linux.namespaces[{i}].type"),
                    format!("unknown namespace type {:?}", ns.typ),
                ));
            }
            if !seen.insert(ns.typ.as_str()) {
                return Err(bad(&format!("linux.namespaces[{i}]"), format!("namespace {:?} listed twice", ns.typ)));
            }
            if let Some(p) = &ns.path {
                if !p.starts_with('/') {
                    return Err(bad(&format!("linux.namespaces[{i}].path"), format!("{p:?} is not absolute")));
                }
            }
        }
        let userns = seen.contains("user");
        if !userns && (!linux.uid_mappings.is_empty() || !linux.gid_mappings.is_empty()) {
            return Err(bad("linux.uidMappings", "id mappings need a user namespace in linux.namespaces".into()));
        }
        if userns && spec.namespace("user").and_then(|n| n.path.as_ref()).is_none() && linux.uid_mappings.is_empty() {
            return Err(bad("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings".into()));
        }
        // Without a mount namespace the container shares the runtime's mounts: masking
        // or remounting there would change the host (runc refuses the same way).
        let restricted = !linux.masked_paths.is_empty() || !linux.readonly_paths.is_empty();
        if restricted && !seen.contains("mount") {
            let field = if linux.masked_paths.is_empty() { "linux.readonlyPaths" } else { "linux.maskedPaths" };
            return Err(bad(field, "unable to restrict sys entries without a private MNT namespace".into()));
        }
        if spec.hostname.as_deref().is_some_and(|h| !h.is_empty()) && !seen.contains("uts") {
            return Err(bad("hostname", "setting a hostname needs a new uts namespace".into()));
        }
        for d in &linux.devices {
            if !d.path.starts_with("/dev/") {
                return Err(bad("linux.devices", format!("{:?} is not under /dev", d.path)));
            }
            if !["c", "b", "u", "p"].contains(&d.typ.as_str()) {
                return Err(bad("linux.devices", format!("{}: unknown device type {:?}", d.path, d.typ)));
            }
        }
        if let Some(p) = &linux.rootfs_propagation {
            if crate::rootfs::propagation_flag(p).is_none() {
                return Err(bad("linux.rootfsPropagation", format!("unknown propagation {p:?}")));
            }
        }
        for k in linux.sysctl.keys() {
            crate::rootfs::check_sysctl(k, &seen).map_err(|m| bad("linux.sysctl", m))?;
        }
        if let Some(s) = &linux.seccomp {
            crate::security::seccomp::validate(s).map_err(|e| bad("linux.seccomp", e.to_string()))?;
        }
    }
    let mount_label = spec.linux.as_ref().and_then(|l| l.mount_label.as_ref());
    crate::security::lsm::check(spec.process.as_ref(), mount_label).map_err(|(field, msg)| bad(field, msg))?;
    if let Some(hooks) = &spec.hooks {
        let all = [
            ("prestart", &hooks.prestart),
            ("createRuntime", &hooks.create_runtime),
            ("createContainer", &hooks.create_container),
            ("startContainer", &hooks.start_container),
            ("poststart", &hooks.poststart),
            ("poststop", &hooks.poststop),
        ];
        for (name, list) in all {
            for h in list.iter() {
                if !h.path.starts_with('/') {
                    return Err(bad(&format!("hooks.{name}"), format!("path {:?} is not absolute", h.path)));
                }
                if h.timeout.is_some_and(|t| t <= 0) {
                    return Err(bad(&format!("hooks.{name}"), "timeout must be positive".into()));
                }
            }
        }
    }
    Ok(())
}

/// Accept runtime-spec 1.x (`1.0.0` .. `1.3.x`, with pre-release suffixes such as `-dev`).
pub fn check_version(v: &str) -> Result<(), String> {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.parse::<u32>().is_err()) {
        return Err(format!("{v:?} is not a semantic version"));
    }
    if parts[0] != "1" {
        return Err(format!(
            "unsupported version {v:?} (this runtime implements runtime-spec 1.x, up to {})",
            super::OCI_VERSION_MAX
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(check_version("1.0.2-dev").is_ok());
        assert!(check_version("1.3.0").is_ok());
        assert!(check_version("2.0.0").is_err());
        assert!(check_version("1.0").is_err());
        assert!(check_version("").is_err());
    }

    #[test]
    fn runc_spec_parses() {
        let j = r#"{"ociVersion":"1.0.2-dev","process":{"terminal":true,"user":{"uid":0,"gid":0},
        "args":["sh"],"env":["PATH=/bin"],"cwd":"/","capabilities":{"bounding":["CAP_KILL"]},
        "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true},
        "root":{"path":"rootfs","readonly":true},"hostname":"runc",
        "mounts":[{"destination":"/proc","type":"proc","source":"proc"}],
        "linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]},
        "namespaces":[{"type":"pid"},{"type":"uts"},{"type":"mount"}],"maskedPaths":["/proc/kcore"]}}"#;
        let s: Spec = serde_json::from_str(j).unwrap();
        validate(&s, Path::new("config.json")).unwrap();
        assert_eq!(s.process.as_ref().unwrap().rlimits[0].hard, 1024);
        assert!(s.namespace("pid").is_some());
    }

    #[test]
    fn masked_paths_need_a_mount_namespace() {
        let j = r#"{"ociVersion":"1.0.0","root":{"path":"r"},"linux":{"namespaces":[{"type":"pid"}],
        "readonlyPaths":["/proc/sys"]}}"#;
        let s: Spec = serde_json::from_str(j).unwrap();
        let e = validate(&s, Path::new("c.json")).unwrap_err().to_string();
        assert!(
            e.contains("linux.readonlyPaths: unable to restrict sys entries without a private MNT namespace"),
            "{e}"
        );
        let j = r#"{"ociVersion":"1.0.0","root":{"path":"r"},"linux":{"namespaces":[{"type":"pid"}]}}"#;
        validate(&serde_json::from_str(j).unwrap(), Path::new("c.json")).unwrap();
    }

    #[test]
    fn duplicate_namespace_rejected() {
        let j = r#"{"ociVersion":"1.0.0","root":{"path":"r"},"linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}"#;
        let s: Spec = serde_json::from_str(j).unwrap();
        let e = validate(&s, Path::new("c.json")).unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
    }
}
