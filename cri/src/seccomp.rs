//! Seccomp for CRI containers: `RuntimeDefault`, `Localhost` (a JSON profile on the
//! node) and `Unconfined`, and the configured default for containers that name none.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::proto::security_profile::ProfileType;
use crate::proto::SecurityProfile;

/// What a container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Unconfined,
    RuntimeDefault,
    /// An absolute path to an OCI seccomp JSON profile.
    Localhost(String),
}

/// Checks the config's `default_seccomp_profile`.
pub fn check_default(s: &str) -> std::result::Result<(), String> {
    parse_name(s, true).map(|_| ()).map_err(|e| format!("default_seccomp_profile: {}", e.msg))
}

/// `unconfined`, `runtime/default` (or `docker/default`) or `localhost/PATH`; a
/// bare absolute path too where `bare_path` (the daemon's own config). A pod's
/// deprecated `seccomp_profile_path` must say `localhost/`, as containerd insists.
fn parse_name(s: &str, bare_path: bool) -> Result<Choice> {
    match s {
        "" | "unconfined" => Ok(Choice::Unconfined),
        "runtime/default" | "docker/default" => Ok(Choice::RuntimeDefault),
        _ => {
            let p = match s.strip_prefix("localhost/") {
                Some(p) => p,
                None if bare_path => s,
                None => {
                    return Err(Error::invalid(format!(
                        "seccomp profile {s:?}: a custom profile must be given as localhost/PATH"
                    )))
                }
            };
            if p.starts_with('/') {
                Ok(Choice::Localhost(p.to_owned()))
            } else {
                Err(Error::invalid(format!(
                    "seccomp profile {s:?}: expected unconfined, runtime/default or an absolute path (localhost/PATH)"
                )))
            }
        }
    }
}

/// The seccomp choice for a container: its `seccomp` field, else the deprecated
/// `seccomp_profile_path`, else the daemon's default.
pub fn choose(profile: Option<&SecurityProfile>, deprecated_path: &str, default: &str) -> Result<Choice> {
    if let Some(p) = profile {
        return match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => Ok(Choice::RuntimeDefault),
            Ok(ProfileType::Unconfined) => Ok(Choice::Unconfined),
            Ok(ProfileType::Localhost) => {
                let r = &p.localhost_ref;
                if !r.starts_with('/') {
                    return Err(Error::invalid(format!("seccomp localhost profile {r:?}: not an absolute path")));
                }
                Ok(Choice::Localhost(r.clone()))
            }
            Err(_) => Err(Error::invalid(format!("seccomp profile type {} is unknown", p.profile_type))),
        };
    }
    if !deprecated_path.is_empty() {
        return parse_name(deprecated_path, false);
    }
    parse_name(default, true)
}

/// Sets (or removes) `linux.seccomp` in `spec` for `choice`; `caps` are the process's
/// capabilities (the default profile allows the syscalls they grant).
pub fn apply(spec: &mut Value, choice: &Choice, caps: &[String]) -> Result<()> {
    let profile = match choice {
        Choice::Unconfined => None,
        Choice::Localhost(p) => Some(read_profile(Path::new(p))?),
        Choice::RuntimeDefault => Some(runtime_default(caps)?),
    };
    match profile {
        Some(p) => spec["linux"]["seccomp"] = p,
        None => {
            if let Some(l) = spec["linux"].as_object_mut() {
                l.remove("seccomp");
            }
        }
    }
    Ok(())
}

fn read_profile(p: &Path) -> Result<Value> {
    let data = std::fs::read(p).map_err(|e| Error::unknown(format!("read seccomp profile {}: {e}", p.display())))?;
    let v: Value = serde_json::from_slice(&data)
        .map_err(|e| Error::invalid(format!("seccomp profile {}: not valid JSON: {e}", p.display())))?;
    if !v.is_object() || v.get("defaultAction").and_then(Value::as_str).is_none() {
        return Err(Error::invalid(format!("seccomp profile {}: no defaultAction", p.display())));
    }
    Ok(v)
}

/// capsa's default seccomp profile for `caps` (containerd's and docker's default).
fn runtime_default(caps: &[String]) -> Result<Value> {
    Ok(capsa_image::seccomp::default_profile(caps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prof(t: ProfileType, r: &str) -> SecurityProfile {
        SecurityProfile { profile_type: t as i32, localhost_ref: r.into() }
    }

    #[test]
    fn choices() {
        assert_eq!(choose(None, "", "unconfined").unwrap(), Choice::Unconfined);
        assert_eq!(choose(None, "", "runtime/default").unwrap(), Choice::RuntimeDefault);
        assert_eq!(choose(None, "localhost/p.json", "unconfined").unwrap_err().code, tonic::Code::InvalidArgument);
        assert_eq!(choose(None, "localhost//p.json", "x").unwrap(), Choice::Localhost("/p.json".into()));
        assert_eq!(
            choose(None, "/p.json", "x").unwrap_err().code,
            tonic::Code::InvalidArgument,
            "no localhost/ prefix"
        );
        assert_eq!(
            choose(None, "", "/p.json").unwrap(),
            Choice::Localhost("/p.json".into()),
            "the daemon default may be bare"
        );
        assert_eq!(
            choose(Some(&prof(ProfileType::Unconfined, "")), "", "runtime/default").unwrap(),
            Choice::Unconfined
        );
        assert_eq!(
            choose(Some(&prof(ProfileType::Localhost, "/x.json")), "", "").unwrap(),
            Choice::Localhost("/x.json".into())
        );
        assert!(choose(Some(&prof(ProfileType::Localhost, "x.json")), "", "").is_err());
        assert!(check_default("weird").is_err());
    }

    #[test]
    fn localhost_profile_is_read_and_unconfined_removes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p.json");
        std::fs::write(&p, r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}"#).unwrap();
        let mut spec = serde_json::json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}}});
        apply(&mut spec, &Choice::Localhost(p.display().to_string()), &[]).unwrap();
        assert_eq!(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
        apply(&mut spec, &Choice::Unconfined, &[]).unwrap();
        assert!(spec["linux"].get("seccomp").is_none());
        apply(&mut spec, &Choice::RuntimeDefault, &["CAP_CHOWN".into()]).unwrap();
        assert_eq!(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        std::fs::write(&p, "{}").unwrap();
        assert!(apply(&mut spec, &Choice::Localhost(p.display().to_string()), &[]).is_err());
    }
}
