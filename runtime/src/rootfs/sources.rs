//! Bind-mount sources opened with the runtime's own credentials, for containers with a
//! user namespace (runc's "mount fds").
//!
//! Inside its user namespace the init is an unprivileged host uid: a source below a
//! 0700 root-owned directory gives EACCES. So before the init enters the user
//! namespace it forks a helper that keeps the host credentials. Once the init has its
//! mount namespace, it sends the helper that namespace; the helper joins it, opens every
//! bind source `O_PATH` there and sends the fds back. The init then binds from
//! `/proc/self/fd/N`. Opening inside the container's mount namespace (not the host's)
//! matters: the kernel only binds from mounts of the caller's namespace, and mounts
//! copied into a user namespace keep their locked flags (a bind of a `nosuid` or
//! read-only host mount stays that way), which a detached `open_tree` copy would not.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::spec::Spec;
use crate::sys::{check, SysError, SysResult};

/// The helper, forked and waiting for the init's mount namespace.
pub struct Opener {
    sock: OwnedFd,
    pid: libc::pid_t,
    /// (index in `mounts`, source path) of every bind mount.
    list: Vec<(usize, PathBuf)>,
}

/// The opened sources, by index in `mounts`: an fd, or the errno of the open.
pub struct Sources(HashMap<usize, Result<OwnedFd, i32>>);

impl Sources {
    /// The pre-opened source of mount `index`, if it was opened by the helper.
    pub fn get(&self, index: usize) -> Option<Result<&OwnedFd, i32>> {
        self.0.get(&index).map(|r| r.as_ref().map_err(|e| *e))
    }
}

/// Fork the helper if this container needs one: a user namespace and bind mounts.
/// Call before entering any user namespace.
pub fn spawn(spec: &Spec, bundle: &Path) -> SysResult<Option<Opener>> {
    // Rootless, "the host's credentials" are the caller's own, which the init keeps
    // in its user namespace (its root is our uid): it opens the sources itself, and a
    // helper could not join a namespace owned by it anyway.
    if spec.namespace("user").is_none() || crate::rootless::enabled() {
        return Ok(None);
    }
    let list: Vec<(usize, PathBuf)> = spec
        .mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| super::mounts::is_bind(m))
        .map(|(i, m)| (i, super::mounts::bind_source(m, bundle)))
        .collect();
    if list.is_empty() {
        return Ok(None);
    }
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-element out array.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    check(r, || "socketpair for the bind-source helper".into())?;
    // SAFETY: fresh fds from the kernel, owned only here.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fork-like clone (no CLONE_VM) of a single-threaded process: the child
    // runs on a copy of our memory and only makes syscalls before _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) } as libc::pid_t;
    let pid = check(pid, || "fork the bind-source helper".into())?;
    if pid == 0 {
        drop(ours);
        serve(theirs.as_raw_fd(), &list);
    }
    drop(theirs);
    tracing::debug!("bind-source helper pid {pid} forked with the host's credentials");
    Ok(Some(Opener { sock: ours, pid, list }))
}

/// Hand our (new) mount namespace to the helper and collect the opened sources.
/// Call once the init has its mount namespace; `None` passes through.
pub fn open(opener: &mut Option<Opener>) -> SysResult<Option<Sources>> {
    let Some(o) = opener.take() else {
        return Ok(None);
    };
    let ns = crate::sys::open(Path::new("/proc/self/ns/mnt"), libc::O_RDONLY, 0)?;
    send(o.sock.as_raw_fd(), 0, 0, Some(ns.as_raw_fd()))
        .map_err(|e| SysError { step: format!("bind-source helper: {}", e.step), ..e })?;
    let mut got = HashMap::new();
    while got.len() < o.list.len() {
        let (index, errno, fd) = recv(o.sock.as_raw_fd())?;
        if index == u32::MAX {
            return Err(SysError::from_errno("bind-source helper: join the container's mount namespace", errno));
        }
        got.insert(index as usize, fd.ok_or(errno));
    }
    Ok(Some(Sources(got)))
}

impl Drop for Opener {
    fn drop(&mut self) {
        // SAFETY: signalling and reaping our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// The helper: wait for the mount namespace, join it, open every source, exit.
fn serve(sock: RawFd, list: &[(usize, PathBuf)]) -> ! {
    // SAFETY: closing every fd but our socket (the init's others are not ours to hold:
    // the sync channel must see EOF when the init dies).
    unsafe {
        if sock > 0 {
            libc::close_range(0, sock as libc::c_uint - 1, 0);
        }
        libc::close_range(sock as libc::c_uint + 1, libc::c_uint::MAX, 0);
    }
    let code = match recv(sock) {
        Ok((_, _, Some(ns))) => {
            // SAFETY: setns on an fd we received.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) } < 0 {
                let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
                let _ = send(sock, u32::MAX, e, None);
                1
            } else {
                for (i, p) in list {
                    let r = crate::sys::open(p, libc::O_PATH, 0);
                    let _ = match &r {
                        Ok(fd) => send(sock, *i as u32, 0, Some(fd.as_raw_fd())),
                        Err(e) => send(sock, *i as u32, e.errno.max(1), None),
                    };
                }
                0
            }
        }
        _ => 1,
    };
    // SAFETY: _exit ends the helper without running the init's destructors.
    unsafe { libc::_exit(code) }
}

/// One packet: (index, errno) and maybe an fd.
fn send(sock: RawFd, index: u32, errno: i32, fd: Option<RawFd>) -> SysResult<()> {
    let mut data = [0u8; 8];
    data[..4].copy_from_slice(&index.to_le_bytes());
    data[4..].copy_from_slice(&errno.to_le_bytes());
    capsa_fsutil::sys::send_with_fd(sock, &data, fd).map_err(|e| SysError::io("sendmsg to the bind-source helper", &e))
}

/// Receive one packet of [`send`].
fn recv(sock: RawFd) -> SysResult<(u32, i32, Option<OwnedFd>)> {
    let mut data = [0u8; 8];
    let (n, fd) = capsa_fsutil::sys::recv_with_fd(sock, &mut data)
        .map_err(|e| SysError::io("recvmsg from the bind-source helper", &e))?;
    if n != data.len() {
        return Err(SysError::msg("bind-source helper", "it exited before answering"));
    }
    let index = u32::from_le_bytes(data[..4].try_into().expect("4 bytes"));
    let errno = i32::from_le_bytes(data[4..].try_into().expect("4 bytes"));
    Ok((index, errno, fd))
}
