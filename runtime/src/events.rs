//! `events`: a container's resource usage (`--stats`) and a stream of usage and OOM
//! events, in runc's JSON shapes (`{"type":"stats"|"oom","id":...,"data":...}`).
//!
//! OOM notifications come from the kernel, not from polling: on cgroup v1 an eventfd
//! registered through `cgroup.event_control` for `memory.oom_control`; on cgroup v2
//! an inotify watch on `memory.events` (the kernel signals a modification when its
//! `oom_kill` counter moves).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cgroups::Manager;
use crate::container::{Status, Store};
use crate::error::{Error, Result};
use crate::sys::{check, SysError, SysResult};

/// One event, as runc's `types.Event` serialises it: type, id, then data (left out
/// when there is none, as for "oom").
#[derive(Serialize)]
pub struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

impl<T: Serialize> Event<'_, T> {
    /// The JSON line (without the newline).
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("plain structs serialize")
    }
}

/// One `{"type":"stats","id":...,"data":{...}}` line.
pub fn stats_event(id: &str, cg: &Manager) -> String {
    Event { kind: "stats", id, data: Some(cg.stats()) }.line()
}

/// One `{"type":"oom","id":...}` line.
pub fn oom_event(id: &str) -> String {
    Event::<()> { kind: "oom", id, data: None }.line()
}

/// The kernel's OOM signal for `cg`.
enum Notifier {
    /// v1: an eventfd that fires on every OOM.
    V1(OwnedFd),
    /// v2: inotify on memory.events, which changes for several events: the
    /// `oom_kill` counter tells whether one was an OOM kill.
    V2(OwnedFd),
    None,
}

fn oom_notifier(cg: &Manager) -> SysResult<Notifier> {
    let paths = cg.paths();
    if let Some((_, dir)) = paths.iter().find(|(c, _)| c == "memory") {
        if dir.join("memory.oom_control").exists() {
            return v1_eventfd(dir).map(Notifier::V1);
        }
        if dir.join("memory.events").exists() {
            return inotify_modify(&dir.join("memory.events")).map(Notifier::V2);
        }
    }
    Ok(Notifier::None)
}

fn v1_eventfd(dir: &Path) -> SysResult<OwnedFd> {
    let ctl = crate::sys::open(&dir.join("memory.oom_control"), libc::O_RDONLY, 0)?;
    // SAFETY: eventfd takes integer arguments; the fd is owned below.
    let efd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) }, || "eventfd for OOM notifications".into())?;
    // SAFETY: fresh fd from the kernel.
    let efd = unsafe { OwnedFd::from_raw_fd(efd) };
    let line = format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd());
    crate::sys::write_file(&dir.join("cgroup.event_control"), &line)?;
    Ok(efd)
}

fn inotify_modify(file: &Path) -> SysResult<OwnedFd> {
    // SAFETY: inotify_init1 takes flags only.
    let fd = check(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) }, || "inotify_init1".into())?;
    // SAFETY: fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let c = crate::sys::cstr(file)?;
    // SAFETY: valid fd and C string.
    check(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) }, || {
        format!("inotify_add_watch {}", file.display())
    })?;
    Ok(fd)
}

/// Stream events for `id` to `out` (one JSON line each) until the container stops: a stats event every
/// `interval`, an OOM event whenever the kernel reports one (also the OOM that ends
/// the container).
pub fn stream(store: &Store, id: &str, interval: Duration, out: &mut dyn FnMut(String)) -> Result<()> {
    let st = store.load(id)?;
    let cg = st.cgroup.clone().ok_or_else(|| Error::msg(format!("container {id} has no cgroup: no events")))?;
    let notifier = oom_notifier(&cg)?;
    let mut kills = cg.oom_kills();
    let mut next_stats = Instant::now();
    loop {
        let stopped = !matches!(crate::lifecycle::load(store, id), Ok(c) if c.status != Status::Stopped);
        let now = cg.oom_kills();
        if now > kills {
            out(oom_event(id));
        }
        kills = now;
        if stopped {
            return Ok(());
        }
        if Instant::now() >= next_stats {
            out(stats_event(id, &cg));
            next_stats = Instant::now() + interval;
        }
        let step = next_stats.saturating_duration_since(Instant::now()).min(Duration::from_millis(200));
        match &notifier {
            // v1: the eventfd fires on an OOM even when no process was killed.
            Notifier::V1(fd) => {
                if wait_readable(fd, step)? && cg.oom_kills() == kills {
                    out(oom_event(id));
                }
            }
            Notifier::V2(fd) => {
                wait_readable(fd, step)?;
            }
            Notifier::None => std::thread::sleep(step),
        }
    }
}

fn wait_readable(fd: &OwnedFd, timeout: Duration) -> SysResult<bool> {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    if n < 0 {
        let e = SysError::last("poll the OOM notifier");
        return if e.errno == libc::EINTR { Ok(false) } else { Err(e) };
    }
    if n > 0 {
        let mut buf = [0u8; 4096];
        // SAFETY: draining the eventfd/inotify fd into a local buffer.
        unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn runc_key_order() {
        assert_eq!(super::oom_event("c1"), r#"{"type":"oom","id":"c1"}"#);
        let e = super::Event { kind: "stats", id: "c1", data: Some([1]) };
        assert_eq!(e.line(), r#"{"type":"stats","id":"c1","data":[1]}"#);
    }
}
