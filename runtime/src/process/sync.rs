//! The parent ↔ init protocol, over one `SOCK_SEQPACKET` socketpair (one message per
//! packet, JSON-encoded: small, debuggable with strace).
//!
//! ```text
//! init → parent   UserNsReady        init unshared its user namespace: write its id maps
//! parent → init   MapsWritten        uid_map/gid_map are written
//! parent → init   CgroupJoined       the init is in its cgroups (sent right after clone)
//! init → parent   HostMount(id)      no mount namespace: the init put mount `id` at the
//!                                    rootfs path in the runtime's namespace (delete
//!                                    detaches it)
//! init → parent   InitPid(pid)       user-ns path only: the real init (forked after
//!                                    unsharing the pid namespace); the first child exits
//! init → parent   RunHooks           mounts done, pivot_root next: run prestart and
//!                                    createRuntime hooks now
//! parent → init   HooksDone(state)   hooks succeeded; the OCI state for the init's own hooks
//! init → parent   SeccompFd(n)       the seccomp filter is loaded and has a user-notification
//!                                    fd, number n in the init: the parent takes it
//!                                    (pidfd_getfd) and hands it to the seccomp agent
//! parent → init   SeccompDone        the agent has the fd (the init closes its copy)
//! init → parent   Ready              setup complete (user, capabilities, cwd, seccomp,
//!                                    executable found); init now waits on exec.fifo
//! init → parent   Error(e)           setup failed: the step, path and errno
//! ```
//! EOF from the init before `Ready` means it died; the parent reports its exit status.
//! `exec`'d processes use the same channel: `SeccompFd`/`SeccompDone`, then `Error` or
//! EOF (the channel is close-on-exec, so EOF means the process exec'd).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

use crate::security::SecurityError;
use crate::sys::{SysError, SysResult};

/// One message of the protocol.
#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    UserNsReady,
    MapsWritten,
    CgroupJoined,
    InitPid(i32),
    HostMount(u64),
    RunHooks,
    HooksDone(String),
    SeccompFd(i32),
    SeccompDone,
    Ready,
    Error(SysError),
}

/// A failed step of the container's init or of an `exec`'d process, before its execve:
/// typed on the child's side of the channel. What crosses the channel is its wire form,
/// a [`SysError`] (`Msg::Error`: the step, errno and hint as text, JSON-encoded), made
/// by `From<ChildError> for SysError` at the one place each child sends it.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// A system call (or a logical step) that failed, already in the wire form.
    #[error(transparent)]
    Sys(#[from] SysError),
    /// Capabilities, rlimits, seccomp or LSM labels: `step` is what the child was doing.
    #[error("{step}: {source}")]
    Security {
        /// What the child was doing, e.g. `set capabilities`.
        step: &'static str,
        #[source]
        source: SecurityError,
    },
}

impl ChildError {
    /// `map_err` helper: `.map_err(ChildError::security("set rlimits"))`.
    pub fn security(step: &'static str) -> impl FnOnce(SecurityError) -> ChildError {
        move |source| ChildError::Security { step, source }
    }
}

impl From<ChildError> for SysError {
    /// The wire form: a security error becomes its text in the step (no errno: the
    /// message already names the errno the kernel returned), so the runtime prints
    /// the same line the child would.
    fn from(e: ChildError) -> SysError {
        match e {
            ChildError::Sys(e) => e,
            e @ ChildError::Security { .. } => SysError { step: e.to_string(), errno: 0, hint: None },
        }
    }
}

/// One end of the socketpair.
pub struct Channel(pub OwnedFd);

impl Channel {
    /// A connected pair (both ends close-on-exec).
    pub fn pair() -> SysResult<(Channel, Channel)> {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid 2-element out array.
        let r =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
        crate::sys::check(r, || "socketpair for the parent/init sync channel".into())?;
        // SAFETY: fresh fds from the kernel, owned only here.
        Ok(unsafe { (Channel(OwnedFd::from_raw_fd(fds[0])), Channel(OwnedFd::from_raw_fd(fds[1]))) })
    }

    /// Send one message.
    pub fn send(&self, m: &Msg) -> SysResult<()> {
        let data = serde_json::to_vec(m).expect("message serializes");
        // SAFETY: data is a valid buffer of the given length.
        let r = unsafe { libc::send(self.0.as_raw_fd(), data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if r < 0 {
            return Err(SysError::last(format!("send {m:?} on the sync channel")));
        }
        Ok(())
    }

    /// Send one message with write(2) rather than send(2): the child's side, whose
    /// seccomp filter may be loaded by then (profiles deny or notify `sendto`, and a
    /// notifying filter has no agent before the fd is handed over; runc refuses
    /// SCMP_ACT_NOTIFY for `write` for that reason). Only the child uses it: a closed
    /// peer raises SIGPIPE, which ends a child whose runtime is gone anyway.
    pub fn write(&self, m: &Msg) -> SysResult<()> {
        let data = serde_json::to_vec(m).expect("message serializes");
        // SAFETY: data is a valid buffer of the given length.
        let r = unsafe { libc::write(self.0.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if r < 0 {
            return Err(SysError::last(format!("write {m:?} on the sync channel")));
        }
        Ok(())
    }

    /// Receive one message with read(2): the child's side once its seccomp filter is
    /// loaded (recv(2) is recvfrom, which profiles may deny or notify). The messages
    /// left at that point are short; a longer one would be cut and fail to decode.
    pub fn read(&self) -> SysResult<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buf is valid for writes of its length.
            let r = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(SysError::last("read the sync channel"));
            }
            if r == 0 {
                return Ok(None);
            }
            return decode(&buf[..r as usize]).map(Some);
        }
    }

    /// Receive one message; `None` when the other side is gone.
    pub fn recv(&self) -> SysResult<Option<Msg>> {
        // Messages are small; size the buffer from the pending packet (MSG_PEEK|MSG_TRUNC
        // returns its real length) instead of keeping a large buffer resident.
        loop {
            // SAFETY: a zero-length peek with MSG_TRUNC only reports the packet size.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), std::ptr::null_mut(), 0, libc::MSG_PEEK | libc::MSG_TRUNC) };
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            let mut buf = vec![0u8; n.max(1) as usize];
            // SAFETY: buf is valid for writes of its length.
            let r = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(SysError::last("recv on the sync channel"));
            }
            if r == 0 {
                return Ok(None);
            }
            return decode(&buf[..r as usize]).map(Some);
        }
    }
}

/// Decode one packet. The channel is shared by both sides, and the child's errors are
/// the wire form: a message that does not decode is reported as text, with no errno.
fn decode(packet: &[u8]) -> SysResult<Msg> {
    serde_json::from_slice(packet).map_err(|e| SysError::msg("decode a sync message", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A security error keeps its type (and errno) up to the channel, and crosses it
    /// as the same text the child printed before.
    #[test]
    fn child_error_wire_form() {
        let err = std::io::Error::from_raw_os_error(libc::EPERM);
        let e = ChildError::security("set capabilities")(SecurityError::Syscall { op: "capset(...)".into(), err });
        let ChildError::Security { source, .. } = &e else { panic!("{e:?}") };
        assert_eq!(source.errno(), Some(libc::EPERM));
        let text = e.to_string();
        assert_eq!(text, "set capabilities: capset(...): Operation not permitted (os error 1)");
        let wire: SysError = e.into();
        assert_eq!(wire.to_string(), text);
        let back: Msg = decode(&serde_json::to_vec(&Msg::Error(wire)).unwrap()).unwrap();
        let Msg::Error(got) = back else { panic!("{back:?}") };
        assert_eq!(got.to_string(), text);
        let unknown = ChildError::security("capabilities")(SecurityError::UnknownCapability("CAP_X".into()));
        assert_eq!(
            SysError::from(unknown).to_string(),
            SysError::msg("capabilities", "unknown capability \"CAP_X\"").to_string()
        );
        let sys = SysError::from_errno("mount proc", libc::EBUSY);
        assert_eq!(SysError::from(ChildError::from(sys.clone())).errno, libc::EBUSY);
    }
}
