//! LSM labels: `process.apparmorProfile`, `process.selinuxLabel`, `linux.mountLabel`.
//!
//! runc 1.1.5 on a host without the LSM refuses all three (exit 1): the SELinux
//! label at config validation ("selinux label is specified in config, but selinux
//! is disabled or not supported"), the AppArmor profile when the init writes it
//! (`write /proc/self/attr/exec: invalid argument`), the mount label when the
//! first tmpfs mount gets `context=...` (EINVAL). capsa refuses them up front,
//! naming the field, before anything is created. On a host with the LSM the
//! process labels are applied as runc does (written to `/proc/self/attr/...exec`
//! before exec); a mount label is not applied to mounts (a warning says so).
//! An empty string means "no label", as in runc.

use std::path::Path;

use super::SecurityError;
use crate::spec::Process;

/// Whether AppArmor is enabled (runc's test: securityfs has it and the module
/// parameter says `Y`).
pub fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled").is_ok_and(|b| b.first() == Some(&b'Y'))
}

/// Whether SELinux is enabled (selinuxfs is mounted).
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Refuses labels the host cannot apply: `Err((field, message))` for the first
/// one, with the field as in config.json (`process.apparmorProfile`, ...).
pub fn check(p: Option<&Process>, mount_label: Option<&String>) -> Result<(), (&'static str, String)> {
    check_with(p, mount_label, apparmor_enabled, selinux_enabled)
}

fn check_with(
    p: Option<&Process>,
    mount_label: Option<&String>,
    apparmor: impl Fn() -> bool,
    selinux: impl Fn() -> bool,
) -> Result<(), (&'static str, String)> {
    let no_selinux = |l: &str| format!("{l:?} is set, but SELinux is disabled or not supported on this host");
    if let Some(prof) = p.and_then(|p| set(&p.apparmor_profile)) {
        if !apparmor() {
            let msg = format!("{prof:?} is set, but AppArmor is not enabled on this host");
            return Err(("process.apparmorProfile", msg));
        }
    }
    if let Some(l) = p.and_then(|p| set(&p.selinux_label)) {
        if !selinux() {
            return Err(("process.selinuxLabel", no_selinux(l)));
        }
    }
    if let Some(l) = mount_label.and_then(|l| Some(l.as_str()).filter(|s| !s.is_empty())) {
        if !selinux() {
            return Err(("linux.mountLabel", no_selinux(l)));
        }
        tracing::warn!("linux.mountLabel {l:?}: capsa does not label mounts; they keep their default SELinux context");
    }
    Ok(())
}

/// Sets the AppArmor profile and SELinux label the next `execve` takes on (runc
/// writes the same files). Call in the process that execs, before it drops
/// capabilities.
pub fn apply_exec_labels(p: &Process) -> Result<(), SecurityError> {
    if let Some(prof) = set(&p.apparmor_profile) {
        let newer = Path::new("/proc/self/attr/apparmor/exec");
        let path = if newer.exists() { newer } else { Path::new("/proc/self/attr/exec") };
        write_attr(path, &format!("exec {prof}"), "apply the AppArmor profile")?;
    }
    if let Some(label) = set(&p.selinux_label) {
        write_attr(Path::new("/proc/self/attr/exec"), label, "set the SELinux exec label")?;
    }
    Ok(())
}

fn write_attr(path: &Path, value: &str, what: &str) -> Result<(), SecurityError> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|err| SecurityError::Syscall { op: format!("{what}: write {value:?} to {}", path.display()), err })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(apparmor: Option<&str>, selinux: Option<&str>) -> Process {
        Process {
            apparmor_profile: apparmor.map(Into::into),
            selinux_label: selinux.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn refused_without_the_lsm_accepted_with_it() {
        let (yes, no) = (|| true, || false);
        let p = proc(Some("docker-default"), None);
        assert_eq!(
            check_with(Some(&p), None, no, yes).unwrap_err(),
            (
                "process.apparmorProfile",
                "\"docker-default\" is set, but AppArmor is not enabled on this host".to_string()
            )
        );
        check_with(Some(&p), None, yes, no).unwrap();
        let p = proc(None, Some("system_u:system_r:container_t:s0"));
        assert_eq!(check_with(Some(&p), None, yes, no).unwrap_err().0, "process.selinuxLabel");
        check_with(Some(&p), None, no, yes).unwrap();
        let ml = "system_u:object_r:container_file_t:s0".to_string();
        let e = check_with(None, Some(&ml), yes, no).unwrap_err();
        assert_eq!(e.0, "linux.mountLabel");
        assert!(e.1.contains("SELinux is disabled or not supported"), "{}", e.1);
        check_with(None, Some(&ml), no, yes).unwrap();
        // Empty strings are "no label"; no process at all is fine.
        check_with(Some(&proc(Some(""), Some(""))), Some(&String::new()), no, no).unwrap();
        check_with(None, None, no, no).unwrap();
    }

    #[test]
    fn nothing_written_without_labels() {
        apply_exec_labels(&proc(None, Some(""))).unwrap();
    }
}
