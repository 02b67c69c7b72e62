//! Terminals: the pty for `process.terminal`, and passing its master over the
//! `--console-socket` with SCM_RIGHTS (as runc does, so containerd/conmon work).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::spec::ConsoleSize;
use crate::sys::{check, SysError, SysResult};

/// Open a new pty pair in the current mount namespace's devpts: (master, slave, slave path).
pub fn open_pty() -> SysResult<(OwnedFd, OwnedFd, String)> {
    let master = crate::sys::open(std::path::Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY, 0)
        .map_err(|e| e.hint("the container needs a devpts mount at /dev/pts for a terminal"))?;
    let m = master.as_raw_fd();
    let mut unlock: libc::c_int = 0;
    let mut n: libc::c_uint = 0;
    // SAFETY: ioctls on our master fd with valid out/in pointers.
    unsafe {
        check(libc::ioctl(m, libc::TIOCSPTLCK, &mut unlock), || "unlock the pty (TIOCSPTLCK)".into())?;
        check(libc::ioctl(m, libc::TIOCGPTN, &mut n), || "get the pty number (TIOCGPTN)".into())?;
    }
    // SAFETY: TIOCGPTPEER returns a new fd for the slave, opened relative to the master's devpts.
    let s = unsafe { libc::ioctl(m, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    let s = check(s, || "open the pty slave (TIOCGPTPEER)".into())?;
    // SAFETY: fresh fd from the kernel.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    Ok((master, slave, format!("/dev/pts/{n}")))
}

/// Set a terminal's window size.
pub fn set_size(fd: RawFd, size: ConsoleSize) -> SysResult<()> {
    let ws = libc::winsize { ws_row: size.height, ws_col: size.width, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: valid winsize pointer for the duration of the call.
    check(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }, || "set the terminal size (TIOCSWINSZ)".into())?;
    Ok(())
}

/// Send the pty master `fd` over a unix socket with its name as the payload.
pub fn send_fd(sock: RawFd, fd: RawFd, name: &str) -> SysResult<()> {
    capsa_fsutil::sys::send_with_fd(sock, name.as_bytes(), Some(fd))
        .map_err(|e| SysError::io("send the pty master over the console socket (SCM_RIGHTS)", &e))
}

/// Receive a pty master sent with [`send_fd`].
pub fn recv_fd(sock: RawFd) -> SysResult<OwnedFd> {
    let mut name = [0u8; 4096];
    let (_, fd) = capsa_fsutil::sys::recv_with_fd(sock, &mut name)
        .map_err(|e| SysError::io("receive the pty master (recvmsg)", &e))?;
    fd.ok_or_else(|| SysError::msg("receive the pty master", "no file descriptor in the message"))
}

/// Connect to a unix socket path (the `--console-socket`).
pub fn connect(path: &std::path::Path) -> SysResult<OwnedFd> {
    let s = capsa_fsutil::sock::connect(path)
        .map_err(|e| SysError::io(format!("connect to the console socket {}", path.display()), &e))?;
    Ok(OwnedFd::from(s))
}
