//! Seccomp user notification (`linux.seccomp.listenerPath`), the runtime's side.
//!
//! The process that loaded a filter with SCMP_ACT_NOTIFY rules (the init, or an
//! `exec`'d process) reports the number of its notification fd over the sync channel
//! (`SeccompFd`, sent with write(2)). The runtime copies the fd out of that process
//! with pidfd_getfd(2), connects to the agent's unix socket and sends it the container
//! process state (runc's `ContainerProcessState`: ociVersion, fds, pid, metadata,
//! state) with the fd in SCM_RIGHTS, then answers `SeccompDone`. The agent then owns
//! the notifications: syscalls the filter notifies block until it answers.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use serde::Serialize;

use super::sync::{Channel, Msg};
use crate::spec::LinuxSeccomp;
use crate::sys::{check, SysError, SysResult};

/// What the agent receives (field order as runc sends it).
#[derive(Serialize)]
struct ProcessState<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a str,
    fds: [&'a str; 1],
    pid: i32,
    metadata: &'a str,
    state: &'a serde_json::Value,
}

/// Receive the next message from a child on `chan`, serving its seccomp handoff on
/// the way. `state` gives the OCI state document sent to the agent.
pub fn recv(
    chan: &Channel,
    pid: i32,
    seccomp: Option<&LinuxSeccomp>,
    bundle: &Path,
    state: impl Fn() -> serde_json::Value,
) -> SysResult<Option<Msg>> {
    loop {
        match chan.recv()? {
            Some(Msg::SeccompFd(n)) => {
                let s = seccomp.ok_or_else(|| {
                    SysError::msg("seccomp notification fd", "the process sent one but the container has no profile")
                })?;
                deliver(pid, n, s, bundle, &state())?;
                chan.send(&Msg::SeccompDone)?;
            }
            other => return Ok(other),
        }
    }
}

/// Copy fd `n` out of process `pid` and send it to the agent at `listenerPath`
/// (relative paths are taken from the bundle, where runc runs).
pub fn deliver(pid: i32, n: i32, s: &LinuxSeccomp, bundle: &Path, state: &serde_json::Value) -> SysResult<()> {
    let listener = s.listener_path.as_deref().unwrap_or("");
    let path = bundle.join(listener);
    let fd = take_fd(pid, n)?;
    let sock = capsa_fsutil::sock::connect(&path).map_err(|e| {
        SysError::io(format!("connect to the seccomp agent at {} (linux.seccomp.listenerPath)", path.display()), &e)
    })?;
    let msg = ProcessState {
        oci_version: state["ociVersion"].as_str().unwrap_or(crate::spec::OCI_VERSION_MAX),
        fds: ["seccompFd"],
        pid,
        metadata: s.listener_metadata.as_deref().unwrap_or(""),
        state,
    };
    let json = serde_json::to_string(&msg).expect("state serializes");
    tracing::debug!("send the seccomp notification fd of pid {pid} to the agent at {}: {json}", path.display());
    capsa_fsutil::sys::send_with_fd(sock.as_raw_fd(), json.as_bytes(), Some(fd.as_raw_fd())).map_err(|e| {
        SysError::io(format!("send the seccomp notification fd to the agent at {} (SCM_RIGHTS)", path.display()), &e)
    })
}

/// pidfd_getfd(2): a copy of fd `n` of process `pid` (close-on-exec).
fn take_fd(pid: i32, n: i32) -> SysResult<OwnedFd> {
    // SAFETY: pidfd_open with integer arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    let pidfd = check(pidfd, || format!("pidfd_open({pid}) to take its seccomp notification fd"))?;
    // SAFETY: a fresh fd from the kernel, owned only here.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // SAFETY: pidfd_getfd with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), n, 0) } as i32;
    let fd = check(fd, || format!("pidfd_getfd(pid {pid}, fd {n}): take the seccomp notification fd"))?;
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
