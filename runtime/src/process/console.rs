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

/// Room for one SCM_RIGHTS control message carrying one fd (CMSG_SPACE(4) = 24 on
/// 64-bit Linux), aligned for `struct cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 32]);

/// A msghdr over one iovec and a control buffer.
fn msghdr(iov: &mut libc::iovec, cbuf: &mut CmsgBuf) -> libc::msghdr {
    // SAFETY: msghdr is plain data; zeroed is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    msg
}

/// Send `fd` over a unix socket with `name` as the payload.
pub fn send_fd(sock: RawFd, fd: RawFd, name: &str) -> SysResult<()> {
    send_fd_with(sock, fd, name, "send the pty master over the console socket (SCM_RIGHTS)")
}

/// Send `fd` (SCM_RIGHTS) with `payload` in one message; `what` names the step in errors.
pub fn send_fd_with(sock: RawFd, fd: RawFd, payload: &str, what: &str) -> SysResult<()> {
    let mut data = payload.as_bytes().to_vec();
    if data.is_empty() {
        data.push(0);
    }
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    let mut cbuf = CmsgBuf([0; 32]);
    let msg = msghdr(&mut iov, &mut cbuf);
    // SAFETY: every pointer in msg outlives the sendmsg call, and the cmsg header is
    // written inside cbuf, which has room for one fd.
    unsafe {
        let cm = libc::CMSG_FIRSTHDR(&msg);
        (*cm).cmsg_level = libc::SOL_SOCKET;
        (*cm).cmsg_type = libc::SCM_RIGHTS;
        (*cm).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<RawFd>(), fd);
        check(libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) as i32, || what.into())?;
    }
    Ok(())
}

/// Receive an fd sent with [`send_fd`].
pub fn recv_fd(sock: RawFd) -> SysResult<OwnedFd> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    let mut cbuf = CmsgBuf([0; 32]);
    let mut msg = msghdr(&mut iov, &mut cbuf);
    // SAFETY: as in send_fd: buffers outlive the call; we only read a cmsg the kernel wrote.
    unsafe {
        check(libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) as i32, || {
            "receive the pty master (recvmsg)".into()
        })?;
        let cm = libc::CMSG_FIRSTHDR(&msg);
        if cm.is_null() || (*cm).cmsg_type != libc::SCM_RIGHTS {
            return Err(SysError::msg("receive the pty master", "no file descriptor in the message"));
        }
        Ok(OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(cm).cast::<RawFd>())))
    }
}

/// Connect to a unix socket path (the `--console-socket`).
pub fn connect(path: &std::path::Path) -> SysResult<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| SysError::io(format!("connect to the console socket {}", path.display()), &e))?;
    Ok(OwnedFd::from(s))
}
