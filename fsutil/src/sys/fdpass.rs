//! One message with an fd attached (SCM_RIGHTS) on a unix socket: how the pty master
//! reaches `--console-socket` (runc's protocol, which containerd and conmon speak),
//! how the seccomp notify fd reaches its agent, and how the runtime's bind-source
//! helper hands back what it opened.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Room for the control messages of one message: one SCM_RIGHTS with up to 12 fds
/// (16-byte header + 4 each), aligned for `struct cmsghdr`. capsa sends one fd; a
/// peer that sends more has the extra ones closed, not leaked.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// A msghdr over one iovec and a control buffer of `controllen` bytes in `cbuf`.
fn msghdr(iov: &mut libc::iovec, cbuf: &mut CmsgBuf, controllen: usize) -> libc::msghdr {
    // SAFETY: msghdr is plain C data (pointers and lengths): all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    if controllen > 0 {
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = controllen as _;
    }
    msg
}

/// Sends `payload` as one message on the unix socket `sock`, with `fd` attached
/// (SCM_RIGHTS) when given. An empty payload is sent as one NUL byte: a stream
/// socket carries no fd without data. `MSG_NOSIGNAL`: a peer gone is EPIPE, not a
/// SIGPIPE. Allocates nothing (the bind-source helper calls it after a fork).
pub fn send_with_fd(sock: RawFd, payload: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    let payload = if payload.is_empty() { &[0u8][..] } else { payload };
    let mut iov = libc::iovec { iov_base: payload.as_ptr().cast_mut().cast(), iov_len: payload.len() };
    let mut cbuf = CmsgBuf([0; 64]);
    let space = match fd {
        // SAFETY: CMSG_SPACE is a pure size computation.
        Some(_) => (unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) }) as usize,
        None => 0,
    };
    let msg = msghdr(&mut iov, &mut cbuf, space);
    if let Some(fd) = fd {
        // SAFETY: msg's control buffer is cbuf, CMSG_SPACE(4) = 24 of its 64 bytes:
        // CMSG_FIRSTHDR points at its start (8-aligned), the header and the one fd
        // written after it stay inside it.
        unsafe {
            let cm = libc::CMSG_FIRSTHDR(&msg);
            (*cm).cmsg_level = libc::SOL_SOCKET;
            (*cm).cmsg_type = libc::SCM_RIGHTS;
            (*cm).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<RawFd>(), fd);
        }
    }
    loop {
        // SAFETY: every pointer in msg (payload, iov, cbuf) outlives the call; sendmsg
        // only reads them.
        if unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one message sent with [`send_with_fd`] into `buf`: its length (0 when
/// the peer is gone) and the fd it carried, if any (close-on-exec). Data beyond
/// `buf` is cut off (a stream socket keeps it for the next read).
pub fn recv_with_fd(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut cbuf = CmsgBuf([0; 64]);
    let len = cbuf.0.len();
    let mut msg = msghdr(&mut iov, &mut cbuf, len);
    let n = loop {
        // SAFETY: buf and cbuf outlive the call and msg gives their true sizes.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut first = None;
    // SAFETY: CMSG_FIRSTHDR reads msg's control fields, which describe cbuf.
    let mut cm = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cm.is_null() {
        // SAFETY: `cm` is a header the kernel wrote inside cbuf (CMSG_FIRSTHDR and
        // CMSG_NXTHDR return only those, or null); its cmsg_len (at least
        // CMSG_LEN(0), checked by the kernel) covers the data read after it, which
        // for SCM_RIGHTS are fds just installed in this process, owned by nobody else.
        unsafe {
            if (*cm).cmsg_level == libc::SOL_SOCKET && (*cm).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cm).cast::<RawFd>();
                let count = ((*cm).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let fd = OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i)));
                    // The first is the one sent; any other is dropped (closed).
                    first.get_or_insert(fd);
                }
            }
            cm = libc::CMSG_NXTHDR(&msg, cm);
        }
    }
    Ok((n, first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn ino(fd: RawFd) -> (u64, u64) {
        // SAFETY: an all-zero stat is a valid out-buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes into the live `st`.
        assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
        (st.st_dev, st.st_ino)
    }

    fn cloexec(fd: RawFd) -> bool {
        // SAFETY: F_GETFD only reads the flags.
        unsafe { libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
    }

    #[test]
    fn round_trip_with_and_without_an_fd() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        send_with_fd(a.as_raw_fd(), b"hello", Some(f.as_raw_fd())).unwrap();
        send_with_fd(a.as_raw_fd(), b"", None).unwrap();
        let mut buf = [0u8; 16];
        let (n, fd) = recv_with_fd(b.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let fd = fd.unwrap();
        assert_eq!(ino(fd.as_raw_fd()), ino(f.as_raw_fd()));
        assert!(cloexec(fd.as_raw_fd()));
        let (n, fd) = recv_with_fd(b.as_raw_fd(), &mut buf).unwrap();
        assert_eq!((n, fd.is_none()), (1, true), "an empty payload is one byte");
        drop(a);
        let (n, fd) = recv_with_fd(b.as_raw_fd(), &mut buf).unwrap();
        assert_eq!((n, fd.is_none()), (0, true), "peer gone");
    }

    #[test]
    fn extra_fds_are_closed_not_leaked() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        let t = tempfile::tempdir().unwrap();
        let extra = t.path().join("extra");
        let g = std::fs::File::create(&extra).unwrap();
        // Three fds in one SCM_RIGHTS, as a foreign peer could send.
        let fds = [f.as_raw_fd(), g.as_raw_fd(), g.as_raw_fd()];
        let mut iov = libc::iovec { iov_base: b"x".as_ptr().cast_mut().cast(), iov_len: 1 };
        let mut cbuf = CmsgBuf([0; 64]);
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = (unsafe { libc::CMSG_SPACE(12) }) as usize;
        let msg = msghdr(&mut iov, &mut cbuf, space);
        // SAFETY: as in send_with_fd, for three fds (CMSG_SPACE(12) = 32 of 64 bytes).
        unsafe {
            let cm = libc::CMSG_FIRSTHDR(&msg);
            (*cm).cmsg_level = libc::SOL_SOCKET;
            (*cm).cmsg_type = libc::SCM_RIGHTS;
            (*cm).cmsg_len = libc::CMSG_LEN(12) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cm).cast::<RawFd>(), 3);
        }
        // SAFETY: msg points to live iov and cbuf.
        assert_eq!(unsafe { libc::sendmsg(a.as_raw_fd(), &msg, 0) }, 1);
        let (n, fd) = recv_with_fd(b.as_raw_fd(), &mut [0u8; 4]).unwrap();
        assert_eq!(n, 1);
        let fd = fd.unwrap();
        assert_eq!(ino(fd.as_raw_fd()), ino(f.as_raw_fd()), "the first fd is the one kept");
        // The two others were closed: only `g` itself still opens the file.
        let open = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter(|e| std::fs::read_link(e.as_ref().unwrap().path()).is_ok_and(|l| l == extra))
            .count();
        assert_eq!(open, 1, "an extra fd stayed open");
    }
}
