//! Container events (GetContainerEvents, for kubelet's evented PLEG): CREATED,
//! STARTED and DELETED come from the calls that do them; STOPPED from watching the
//! shims' `exit` files (inotify on each container's shim directory: the shim renames
//! the file into place when the container exits) and, for a shim that died without
//! writing one, a slow periodic check.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::daemon::Cri;
use crate::proto::{ContainerEventResponse, ContainerEventType, ContainerState};
use crate::state::ContainerRecord;

/// How often containers believed running are checked for a dead shim.
const CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Events a slow subscriber may fall behind by before it misses some.
const BACKLOG: usize = 1024;

#[derive(Default)]
struct Watches {
    by_wd: HashMap<i32, String>,
    by_id: HashMap<String, i32>,
}

/// The event stream and the exit watcher.
pub struct Events {
    tx: broadcast::Sender<ContainerEventResponse>,
    inotify: Option<OwnedFd>,
    watches: Mutex<Watches>,
    /// The last state an event reported per container (no duplicate STOPPED).
    reported: Mutex<HashMap<String, i32>>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Events {
        let (tx, _) = broadcast::channel(BACKLOG);
        // SAFETY: inotify_init1 takes flags only; the fd is owned below.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        let inotify = if fd >= 0 {
            // SAFETY: a fresh fd that nothing else owns.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        } else {
            tracing::warn!(
                "inotify_init1: {}: container exits are noticed by the periodic check only",
                std::io::Error::last_os_error()
            );
            None
        };
        Events { tx, inotify, watches: Mutex::default(), reported: Mutex::default() }
    }

    /// A new subscriber (GetContainerEvents).
    pub fn subscribe(&self) -> broadcast::Receiver<ContainerEventResponse> {
        self.tx.subscribe()
    }

    /// Watches a container's shim directory for its exit.
    pub fn watch(&self, shim_dir: &Path, id: &str) {
        let Some(fd) = &self.inotify else { return };
        let Ok(c) = std::ffi::CString::new(shim_dir.as_os_str().as_encoded_bytes()) else { return };
        // SAFETY: a valid inotify fd and NUL-terminated path.
        let wd =
            unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE) };
        if wd < 0 {
            tracing::warn!("watch {}: {}", shim_dir.display(), std::io::Error::last_os_error());
            return;
        }
        let mut w = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        w.by_wd.insert(wd, id.to_owned());
        w.by_id.insert(id.to_owned(), wd);
    }

    /// Stops watching a removed container.
    pub fn unwatch(&self, id: &str) {
        let mut w = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(wd) = w.by_id.remove(id) {
            w.by_wd.remove(&wd);
            if let Some(fd) = &self.inotify {
                // SAFETY: removing our own watch; an already-gone watch is EINVAL, ignored.
                unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) };
            }
        }
        self.reported.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    fn send(&self, cri: &Cri, rec: &ContainerRecord, ty: ContainerEventType, state: i32) {
        if ty != ContainerEventType::ContainerDeletedEvent {
            self.reported.lock().unwrap_or_else(|p| p.into_inner()).insert(rec.id.clone(), state);
        }
        if self.tx.receiver_count() == 0 {
            return;
        }
        let status = crate::container::to_status(cri, rec);
        let ev = ContainerEventResponse {
            container_id: rec.id.clone(),
            container_event_type: ty as i32,
            created_at: crate::util::now_ns(),
            pod_sandbox_status: cri.state.sandbox(&rec.sandbox_id).ok().map(|s| crate::sandbox::to_status(cri, &s)),
            containers_statuses: vec![status],
        };
        tracing::debug!("event {} {}", ty.as_str_name(), rec.id);
        let _ = self.tx.send(ev);
    }

    /// Emits `ty` for a container (create, start, delete).
    pub fn emit_for(&self, cri: &Cri, rec: &ContainerRecord, ty: ContainerEventType) {
        let state = match ty {
            ContainerEventType::ContainerCreatedEvent => ContainerState::ContainerCreated,
            ContainerEventType::ContainerStartedEvent => ContainerState::ContainerRunning,
            _ => ContainerState::ContainerExited,
        } as i32;
        self.send(cri, rec, ty, state);
    }

    /// Emits STOPPED if the container has exited since the last event about it.
    pub fn reconcile_one(&self, cri: &Cri, rec: &ContainerRecord) {
        let now = crate::container::live(cri, rec).state;
        let last = self.reported.lock().unwrap_or_else(|p| p.into_inner()).get(&rec.id).copied();
        if now == ContainerState::ContainerExited as i32 && last != Some(now) {
            self.send(cri, rec, ContainerEventType::ContainerStoppedEvent, now);
        }
    }

    /// At start-up: what is already known needs no event; exited containers need no watch.
    pub fn load(&self, cri: &Cri) {
        for rec in cri.state.containers() {
            let s = crate::container::live(cri, &rec).state;
            self.reported.lock().unwrap_or_else(|p| p.into_inner()).insert(rec.id.clone(), s);
            if s != ContainerState::ContainerExited as i32 {
                self.watch(&capsa_pod::containers::shim_dir(&cri.store, &rec.id), &rec.id);
            }
        }
    }

    /// The ids whose shim directory changed, from the pending inotify events.
    fn drain(&self, fd: i32) -> Vec<String> {
        let mut buf = [0u8; 4096];
        let mut ids = Vec::new();
        loop {
            // SAFETY: reading into a buffer we own; the fd is nonblocking.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            let n = n as usize;
            let w = self.watches.lock().unwrap_or_else(|p| p.into_inner());
            let head = std::mem::size_of::<libc::inotify_event>();
            let mut off = 0;
            while off + head <= n {
                // SAFETY: the kernel wrote whole events; read_unaligned copes with the byte buffer.
                let ev: libc::inotify_event = unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
                let name = &buf[off + head..(off + head + ev.len as usize).min(n)];
                let name = name.split(|b| *b == 0).next().unwrap_or(b"");
                if name == b"exit" || name == b"shim.json" {
                    if let Some(id) = w.by_wd.get(&ev.wd) {
                        if !ids.contains(id) {
                            ids.push(id.clone());
                        }
                    }
                }
                off += head + ev.len as usize;
            }
        }
        ids
    }
}

/// The watcher task: exits seen through inotify, dead shims through a periodic check.
pub async fn monitor(cri: Arc<Cri>) {
    let afd = match cri.events.inotify.as_ref().map(OwnedFd::try_clone) {
        Some(Ok(fd)) => {
            // SAFETY: an OwnedFd stays open and the same file for as long as the AsyncFd owns it.
            match unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) } {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!("watch inotify: {e}");
                    None
                }
            }
        }
        Some(Err(e)) => {
            tracing::warn!("watch inotify: {e}");
            None
        }
        None => None,
    };
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ids: Vec<String> = tokio::select! {
            r = async {
                match &afd {
                    Some(a) => a.readable().await.map(Some),
                    None => std::future::pending().await,
                }
            } => {
                match r {
                    Ok(Some(mut guard)) => {
                        let ids = cri.events.drain(guard.get_inner().as_raw_fd());
                        guard.clear_ready();
                        ids
                    }
                    _ => Vec::new(),
                }
            }
            _ = tick.tick() => {
                let reported = cri.events.reported.lock().unwrap_or_else(|p| p.into_inner()).clone();
                reported.into_iter().filter(|(_, s)| *s != ContainerState::ContainerExited as i32).map(|(id, _)| id).collect()
            }
        };
        if ids.is_empty() {
            continue;
        }
        let c = cri.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for id in ids {
                if let Ok(rec) = c.state.container(&id) {
                    c.events.reconcile_one(&c, &rec);
                }
            }
        })
        .await;
    }
}
