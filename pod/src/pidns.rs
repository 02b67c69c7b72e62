//! A pod's shared pid namespace (Kubernetes' `shareProcessNamespace`, CRI pid mode
//! POD): unlike net/ipc/uts it cannot just be pinned, since a pid namespace whose
//! init has exited accepts no new process. So a tiny holder, `capsa-shim --pause`,
//! is its pid 1 (it reaps orphans), and the namespace is also pinned at `ns/pid` for
//! the containers to join by path. Killing the holder kills every process of the
//! namespace, which is what stopping the pod must do.
//!
//! The holder is started from a short-lived thread that `unshare`s CLONE_NEWPID (a
//! thread's pid_for_children, not the process's pid), so its first child is pid 1 of
//! the new namespace; the same thread then waits for the holder (reaps it) for as long
//! as it lives.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::error::{PodError, Result};

/// The holder of a pod's pid namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: i32,
    /// Field 22 of /proc/PID/stat when it started (a reused pid differs).
    pub start_time: u64,
}

/// The start time of `pid`, `None` once it has exited (a zombie counts as exited).
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    capsa_fsutil::sys::ProcStat::read(pid).filter(|s| !s.exited()).map(|s| s.start_time)
}

impl Holder {
    /// Whether the holder is still running (same pid, same start time, not a zombie).
    pub fn alive(&self) -> bool {
        self.pid > 0 && start_time(self.pid) == Some(self.start_time)
    }

    /// Kills the holder (and with it every process of its pid namespace).
    pub fn kill(&self) {
        if self.alive() {
            // SAFETY: kill(2) of the pid just found alive with our recorded start time.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// Starts `holder_bin --pause` as pid 1 of a new pid namespace and pins that namespace
/// at `dir/pid`. On error nothing is left running or pinned.
pub fn start(dir: &Path, holder_bin: &Path) -> Result<Holder> {
    let (tx, rx) = std::sync::mpsc::channel::<Result<i32>>();
    let bin = holder_bin.to_path_buf();
    let pin = dir.join("pid");
    std::thread::Builder::new()
        .name("pid-holder".into())
        .spawn(move || {
            // SAFETY: unshare(CLONE_NEWPID) changes only this thread's pid_for_children.
            if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
                let _ = tx.send(Err(PodError::last_os_error("unshare a pid namespace for the pod")));
                return;
            }
            let spawned = Command::new(&bin)
                .arg("--pause")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn();
            match spawned {
                Ok(mut child) => {
                    let _ = tx.send(Ok(child.id() as i32));
                    drop(tx);
                    // Reap the holder when it exits.
                    let _ = child.wait();
                }
                Err(e) => {
                    let _ = tx.send(Err(PodError::Command {
                        cmd: format!("{} --pause (the pod's pid namespace holder)", bin.display()),
                        msg: e.to_string(),
                    }));
                }
            }
        })
        .map_err(|source| PodError::Sys { op: "start a thread for the pid namespace holder".into(), source })?;
    let pid = rx.recv().map_err(|_| PodError::msg("pid namespace holder: the starting thread failed"))??;
    let holder = Holder { pid, start_time: start_time(pid).unwrap_or(0) };
    let pinned = (|| {
        std::fs::write(&pin, b"").map_err(crate::error::io("create", &pin))?;
        crate::netns::bind(&PathBuf::from(format!("/proc/{pid}/ns/pid")), &pin)
    })();
    if let Err(e) = pinned {
        holder.kill();
        let _ = std::fs::remove_file(&pin);
        return Err(e);
    }
    Ok(holder)
}
