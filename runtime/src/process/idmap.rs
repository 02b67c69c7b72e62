//! A container's uid/gid maps, written by the runtime into its init's new user
//! namespace. As root: /proc/PID/uid_map and gid_map directly. Rootless, the kernel
//! lets an unprivileged user map one id, its own, and only after `setgroups` is
//! denied; anything more (the user's `/etc/subuid` and `/etc/subgid` ranges) goes
//! through the setuid helpers `newuidmap`/`newgidmap` of the uidmap package, which
//! check those files.

use std::path::Path;
use std::process::Command;

use crate::error::Result;
use crate::spec::IdMapping;

/// A rootless map that needed `newuidmap`/`newgidmap` and could not be written.
#[derive(Debug, thiserror::Error)]
pub enum IdMapError {
    /// The helper is not installed (the uidmap package).
    #[error(
        "rootless: {helper} is needed to map more than your own id ({ranges}): install the uidmap package \
         (apt-get install uidmap), or map only id {own} with size 1"
    )]
    HelperMissing {
        /// `newuidmap` or `newgidmap`.
        helper: &'static str,
        /// The ranges asked for, `container host size` separated by ", ".
        ranges: String,
        /// The caller's own id, which it may map without a helper.
        own: u32,
    },
    /// The helper could not be started.
    #[error("rootless: run {helper}: {source}")]
    Spawn {
        /// `newuidmap` or `newgidmap`.
        helper: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The helper ran and refused (usually: ranges not in /etc/subuid or /etc/subgid).
    #[error(
        "rootless: {helper} {pid} {ranges}: {status}: {stderr} (the ranges must be yours in /etc/sub{}id)",
        if *.helper == "newuidmap" { "u" } else { "g" }
    )]
    Refused {
        /// `newuidmap` or `newgidmap`.
        helper: &'static str,
        /// The init whose maps were being written.
        pid: i32,
        /// The ranges asked for, `container host size` separated by spaces.
        ranges: String,
        /// How the helper exited.
        status: std::process::ExitStatus,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
}

/// Only the caller's own id, once: what the kernel allows without a helper.
fn own_only(m: &[IdMapping], own: u32) -> bool {
    matches!(m, [one] if one.host_id == own && one.size == 1)
}

/// `--explain` of one map written (`call`: how).
fn explain(pid: i32, file: &str, text: &str, call: String) {
    crate::explain::step(crate::explain::Kind::IdMap, || {
        let what = if file == "uid_map" { "uid" } else { "gid" };
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                match f.as_slice() {
                    [i, o, n] => format!("{file} {l}: {what} {i} inside is {what} {o} outside ({n} ids from there)"),
                    _ => l.to_string(),
                }
            })
            .collect();
        crate::explain::Step::new(lines.join("; "), call)
            .field("file", format!("/proc/{pid}/{file}"))
            .field("value", text)
    });
}

fn text(m: &[IdMapping]) -> String {
    m.iter().map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size)).collect()
}

/// Write `pid`'s maps: directly as root, as [`write_rootless`] says otherwise.
pub fn write(pid: i32, uids: &[IdMapping], gids: &[IdMapping]) -> Result<()> {
    // Root of a user namespace (podman's rootless one) writes directly: the kernel lets
    // it map any id of its own namespace.
    // SAFETY: geteuid cannot fail.
    if crate::rootless::enabled() && unsafe { libc::geteuid() } != 0 {
        return write_rootless(pid, uids, gids);
    }
    for (file, maps) in [("uid_map", uids), ("gid_map", gids)] {
        let t = text(maps);
        let path = format!("/proc/{pid}/{file}");
        crate::sys::write_file(Path::new(&path), &t)?;
        explain(pid, file, &t, format!("write({path}, {t:?})"));
    }
    Ok(())
}

/// Write `pid`'s maps as an unprivileged user.
fn write_rootless(pid: i32, uids: &[IdMapping], gids: &[IdMapping]) -> Result<()> {
    // SAFETY: geteuid/getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    for (file, helper, maps, own) in [("uid_map", "newuidmap", uids, uid), ("gid_map", "newgidmap", gids, gid)] {
        let text = self::text(maps);
        if own_only(maps, own) {
            if file == "gid_map" {
                // Without CAP_SETGID in the parent namespace, gid_map can only be
                // written once setgroups(2) is denied in the new one.
                crate::sys::write_file(Path::new(&format!("/proc/{pid}/setgroups")), "deny")?;
            }
            crate::sys::write_file(Path::new(&format!("/proc/{pid}/{file}")), &text)?;
            explain(pid, file, &text, format!("write(/proc/{pid}/{file}, {text:?})"));
            continue;
        }
        let mut cmd = Command::new(helper);
        cmd.arg(pid.to_string());
        for m in maps {
            cmd.args([m.container_id.to_string(), m.host_id.to_string(), m.size.to_string()]);
        }
        let out = cmd.output().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                IdMapError::HelperMissing { helper, ranges: text.trim().replace('\n', ", "), own }
            } else {
                IdMapError::Spawn { helper, source }
            }
        })?;
        if !out.status.success() {
            return Err(IdMapError::Refused {
                helper,
                pid,
                ranges: text.trim().replace('\n', " "),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }
            .into());
        }
        explain(pid, file, &text, format!("{helper} {pid} {}", text.trim().replace('\n', " ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn helper_errors_read_as_before() {
        let e = IdMapError::Refused {
            helper: "newgidmap",
            pid: 42,
            ranges: "0 1000 1 1 100000 65536".into(),
            status: std::process::ExitStatus::from_raw(1 << 8),
            stderr: "newgidmap: gid range [1-65537) -> [100000-165536) not allowed".into(),
        };
        assert_eq!(
            e.to_string(),
            "rootless: newgidmap 42 0 1000 1 1 100000 65536: exit status: 1: newgidmap: gid range [1-65537) -> \
             [100000-165536) not allowed (the ranges must be yours in /etc/subgid)"
        );
        let e = IdMapError::HelperMissing { helper: "newuidmap", ranges: "0 1000 1, 1 100000 65536".into(), own: 1000 };
        assert_eq!(
            e.to_string(),
            "rootless: newuidmap is needed to map more than your own id (0 1000 1, 1 100000 65536): install the \
             uidmap package (apt-get install uidmap), or map only id 1000 with size 1"
        );
        let e = IdMapError::Spawn { helper: "newuidmap", source: std::io::Error::from_raw_os_error(libc::EACCES) };
        assert_eq!(e.to_string(), "rootless: run newuidmap: Permission denied (os error 13)");
    }
}
