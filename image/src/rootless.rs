//! The image store for a user without root.
//!
//! An unprivileged user's store lives under `$XDG_DATA_HOME/capsa`
//! (`~/.local/share/capsa`). Image layers hold files of many owners; the user
//! can only own files as themself, so, as podman does, the store's files are
//! owned by the user's subordinate ids (`/etc/subuid`, `/etc/subgid`): the
//! layers are unpacked, and removed, by a short-lived child in a user namespace
//! that maps container root to the user and container ids 1..N to the range
//! (written by `newuidmap`/`newgidmap`, Debian's `uidmap` package). Containers
//! get the same mapping, so a file owned by uid 33 in the image is uid 33 in the
//! container. Without a range there is one id: every file is the user's (root in
//! the container), said once as a note.
//!
//! Nothing is mounted in the host's mount namespace (an unprivileged user may
//! not): the container's overlay is mounted by the runtime inside the
//! container's own user and mount namespaces (overlayfs allows that from Linux
//! 5.11), with `userxattr`, which is why rootless snapshots mark opaque
//! directories with `user.overlay.opaque`.

use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::images::error::{io_error, ImageError};

/// A subordinate id range: `count` ids from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First host id.
    pub start: u32,
    /// How many.
    pub count: u32,
}

/// Who the unprivileged user is and which ids they may map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootless {
    /// The caller's uid and gid (container root).
    pub uid: u32,
    /// The caller's gid.
    pub gid: u32,
    /// The caller's first `/etc/subuid` range (container uids 1..=count).
    pub subuid: Option<Range>,
    /// The caller's first `/etc/subgid` range.
    pub subgid: Option<Range>,
}

/// Parses `/etc/subuid`-format text: the first range of `name` or `id`.
pub fn parse_subid(text: &str, name: Option<&str>, id: u32) -> Option<Range> {
    text.lines().filter(|l| !l.trim_start().starts_with('#')).find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?);
        let matches = Some(who) == name || who.parse::<u32>().ok() == Some(id);
        (matches && count > 0).then_some(Range { start, count })
    })
}

/// The name of uid `uid` from /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_owned())
    })
}

impl Rootless {
    /// The caller, when not root (`None` for root: the system store).
    ///
    /// The id files are read once per process and effective ids (a command opens
    /// the store, picks its root and maps ids: one read serves them all).
    pub fn detect() -> Option<Rootless> {
        static SEEN: std::sync::Mutex<Option<Rootless>> = std::sync::Mutex::new(None);
        // SAFETY: geteuid/getegid cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if uid == 0 {
            return None;
        }
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = seen.as_ref().filter(|r| r.uid == uid && r.gid == gid) {
            return Some(r.clone());
        }
        let name = user_name(uid);
        let read = |p: &str, id| std::fs::read_to_string(p).ok().and_then(|t| parse_subid(&t, name.as_deref(), id));
        let r = Rootless { uid, gid, subuid: read("/etc/subuid", uid), subgid: read("/etc/subgid", gid) };
        *seen = Some(r.clone());
        Some(r)
    }

    /// Whether the user has subordinate ranges for both uids and gids.
    pub fn has_ranges(&self) -> bool {
        self.subuid.is_some() && self.subgid.is_some()
    }

    /// The note when there is no range: the image's owners collapse to the user.
    pub fn note(&self) -> Option<String> {
        (!self.has_ranges()).then(|| {
            format!(
                "no subordinate id range for uid {} in /etc/subuid and /etc/subgid: every file of the image \
                 is owned by you (root in the container) and the container has one uid and gid; \
                 `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER` (as root) gives a range",
                self.uid
            )
        })
    }

    /// The uid mappings (container id, host id, size): container root is the user,
    /// 1.. the subordinate range.
    pub fn uid_mappings(&self) -> Vec<(u32, u32, u32)> {
        mappings(self.uid, self.subuid.filter(|_| self.has_ranges()))
    }

    /// The gid mappings, as [`Rootless::uid_mappings`].
    pub fn gid_mappings(&self) -> Vec<(u32, u32, u32)> {
        mappings(self.gid, self.subgid.filter(|_| self.has_ranges()))
    }

    /// Writes the id maps of `pid`, a process that has just made its user namespace:
    /// through newuidmap/newgidmap with a subordinate range, else the user's one id
    /// directly (setgroups denied first, as the kernel requires of an unprivileged writer).
    pub fn write_maps(&self, pid: i32) -> Result<(), String> {
        if self.has_ranges() {
            return map_cmd("newuidmap", pid, &self.uid_mappings())
                .and_then(|()| map_cmd("newgidmap", pid, &self.gid_mappings()));
        }
        let w =
            |f: &str, s: String| std::fs::write(format!("/proc/{pid}/{f}"), s).map_err(|e| format!("write {f}: {e}"));
        w("uid_map", format!("0 {} 1\n", self.uid))?;
        w("setgroups", "deny".into())?;
        w("gid_map", format!("0 {} 1\n", self.gid))
    }

    /// Runs `f` as root of a new user namespace with this user's mappings, in a
    /// forked child (its files are then owned by the mapped host ids); without a
    /// subordinate range, in this process as the user. `what` names the work in
    /// errors. The child's error comes back as text. Call it from a process with
    /// one thread: a lock another thread held at the fork stays held in the child.
    pub fn run_mapped(&self, what: &str, f: impl FnOnce() -> Result<(), String>) -> Result<(), ImageError> {
        if !self.has_ranges() {
            return f().map_err(ImageError::Other);
        }
        mapped_child(self, what, f)
    }
}

fn mappings(id: u32, range: Option<Range>) -> Vec<(u32, u32, u32)> {
    let mut v = vec![(0, id, 1)];
    if let Some(r) = range {
        v.push((1, r.start, r.count));
    }
    v
}

/// The store of an unprivileged user: `$XDG_DATA_HOME/capsa`, else
/// `$HOME/.local/share/capsa` (relative values are ignored, as the XDG spec says).
pub fn default_store_root() -> PathBuf {
    let abs = |v: &str| std::env::var_os(v).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(d) = abs("XDG_DATA_HOME") {
        return d.join("capsa");
    }
    let home = abs("HOME").unwrap_or_else(|| PathBuf::from(format!("/tmp/capsa-{}", euid())));
    home.join(".local/share/capsa")
}

fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Refuses a store root that is not the caller's own, or that others may write:
/// an unprivileged caller must never work in root's or another user's store.
pub fn check_owner(root: &Path) -> Result<(), ImageError> {
    use std::os::unix::fs::MetadataExt;
    let md = match std::fs::metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("inspect the store", root, e)),
    };
    let me = euid();
    if md.uid() != me {
        return Err(ImageError::Other(format!(
            "store {}: owned by uid {}, not by you (uid {me}): a rootless capsa works only in its own store \
             (default {}; --store DIR)",
            root.display(),
            md.uid(),
            default_store_root().display()
        )));
    }
    if md.mode() & 0o022 != 0 {
        return Err(ImageError::Other(format!(
            "store {}: writable by others (mode {:04o}): refused (chmod go-w it)",
            root.display(),
            md.mode() & 0o7777
        )));
    }
    Ok(())
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-int array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh fds we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn map_cmd(tool: &str, pid: i32, maps: &[(u32, u32, u32)]) -> Result<(), String> {
    let mut c = Command::new(tool);
    c.arg(pid.to_string());
    for (inside, outside, n) in maps {
        c.arg(inside.to_string()).arg(outside.to_string()).arg(n.to_string());
    }
    match c.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("{tool} {}: {}", pid, String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!(
            "{tool} not found: mapping a subordinate id range needs it (Debian/Ubuntu: apt-get install uidmap)"
        )),
        Err(e) => Err(format!("run {tool}: {e}")),
    }
}

/// The forked child of [`Rootless::run_mapped`]: unshare a user namespace, wait
/// for the parent to write the maps, become root there, run `f`, report.
fn mapped_child(r: &Rootless, what: &str, f: impl FnOnce() -> Result<(), String>) -> Result<(), ImageError> {
    let fail = |m: String| ImageError::Other(format!("{what} (in a user namespace of your subordinate ids): {m}"));
    let (ready_r, ready_w) = pipe().map_err(|e| fail(format!("pipe: {e}")))?;
    let (go_r, go_w) = pipe().map_err(|e| fail(format!("pipe: {e}")))?;
    let (err_r, err_w) = pipe().map_err(|e| fail(format!("pipe: {e}")))?;
    // SAFETY: the child only runs the work and _exits, never returning into the
    // caller's frames; callers fork before starting worker threads (the child may
    // start its own), and glibc's fork keeps malloc usable in the child.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(fail(format!("fork: {}", io::Error::last_os_error())));
    }
    if pid == 0 {
        drop((ready_r, go_w, err_r));
        let report = |m: String| {
            let mut w = std::fs::File::from(err_w.try_clone().expect("dup"));
            let _ = w.write_all(m.as_bytes());
            // SAFETY: _exit ends the child without running the parent's destructors.
            unsafe { libc::_exit(1) }
        };
        // SAFETY: plain syscalls on this (single-threaded) child.
        unsafe {
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                report(format!("unshare(CLONE_NEWUSER): {}", io::Error::last_os_error()));
            }
        }
        let mut w = std::fs::File::from(ready_w);
        let _ = w.write_all(b"1");
        drop(w);
        let mut b = [0u8; 1];
        let mut g = std::fs::File::from(go_r);
        if !matches!(g.read(&mut b), Ok(1)) {
            // SAFETY: as above.
            unsafe { libc::_exit(1) };
        }
        // SAFETY: plain syscalls; root of the namespace now that the maps are written.
        unsafe {
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                report(format!("become root of the namespace: {}", io::Error::last_os_error()));
            }
            let _ = libc::setgroups(0, std::ptr::null());
        }
        if let Err(m) = f() {
            report(m);
        }
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    drop((ready_w, go_r, err_w));
    let reap = |pid: i32| {
        let mut st = 0;
        // SAFETY: our own child; st is a valid out-pointer.
        while unsafe { libc::waitpid(pid, &mut st, 0) } < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
        st
    };
    let mut b = [0u8; 1];
    let ready = std::fs::File::from(ready_r).read(&mut b).is_ok_and(|n| n == 1);
    let mapped = if ready { r.write_maps(pid) } else { Err(String::new()) };
    if mapped.is_ok() {
        let _ = std::fs::File::from(go_w).write_all(b"1");
    } else {
        drop(go_w);
    }
    let st = reap(pid);
    let mut msg = String::new();
    let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
    match mapped {
        Err(m) if !m.is_empty() => Err(fail(m)),
        _ if !msg.is_empty() => Err(fail(msg)),
        _ if !libc::WIFEXITED(st) || libc::WEXITSTATUS(st) != 0 => {
            Err(fail(format!("child ended with status {st:#x}")))
        }
        _ => Ok(()),
    }
}

/// Whether the kernel mounts overlayfs inside a user namespace (Linux 5.11).
pub fn userns_overlay_supported() -> bool {
    let Ok(rel) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else { return false };
    let mut it = rel.trim().split(['.', '-']).map(|s| s.parse::<u32>().unwrap_or(0));
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (major, minor) >= (5, 11)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_lines() {
        let t = "# comment\nalice:100000:65536\n1001:200000:1000\nbob:300000:0\n";
        assert_eq!(parse_subid(t, Some("alice"), 5), Some(Range { start: 100000, count: 65536 }));
        assert_eq!(parse_subid(t, Some("carol"), 1001), Some(Range { start: 200000, count: 1000 }));
        assert_eq!(parse_subid(t, Some("bob"), 7), None, "an empty range is no range");
        assert_eq!(parse_subid("garbage\n:::\n", Some("x"), 1), None);
    }

    #[test]
    fn mappings_put_the_user_at_root() {
        let r = Rootless {
            uid: 1001,
            gid: 1002,
            subuid: Some(Range { start: 100000, count: 65536 }),
            subgid: Some(Range { start: 200000, count: 10 }),
        };
        assert_eq!(r.uid_mappings(), vec![(0, 1001, 1), (1, 100000, 65536)]);
        assert_eq!(r.gid_mappings(), vec![(0, 1002, 1), (1, 200000, 10)]);
        let single = Rootless { subgid: None, ..r };
        assert_eq!(single.uid_mappings(), vec![(0, 1001, 1)], "both ranges or neither");
        assert!(single.note().is_some());
    }
}
