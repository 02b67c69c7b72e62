//! A container's uid/gid maps, written by the runtime into its init's new user
//! namespace. As root: /proc/PID/uid_map and gid_map directly. Rootless, the kernel
//! lets an unprivileged user map one id, its own, and only after `setgroups` is
//! denied; anything more (the user's `/etc/subuid` and `/etc/subgid` ranges) goes
//! through the setuid helpers `newuidmap`/`newgidmap` of the uidmap package, which
//! check those files.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};
use crate::spec::IdMapping;

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
        let out = cmd.output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::msg(format!(
                    "rootless: {helper} is needed to map more than your own id ({}): install the uidmap package \
                     (apt-get install uidmap), or map only id {own} with size 1",
                    text.trim().replace('\n', ", ")
                ))
            } else {
                Error::msg(format!("rootless: run {helper}: {e}"))
            }
        })?;
        if !out.status.success() {
            return Err(Error::msg(format!(
                "rootless: {helper} {pid} {}: {}: {} (the ranges must be yours in /etc/sub{}id)",
                text.trim().replace('\n', " "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                if file == "uid_map" { "u" } else { "g" }
            )));
        }
        explain(pid, file, &text, format!("{helper} {pid} {}", text.trim().replace('\n', " ")));
    }
    Ok(())
}
