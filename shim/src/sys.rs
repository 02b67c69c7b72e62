//! Thin libc wrappers: no allocation on the hot path, errors as `io::Error` (errno).

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn cvt_s(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `pipe2(O_CLOEXEC)`: (read, write).
pub fn pipe() -> io::Result<(RawFd, RawFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is a live, writable array of two c_ints, as pipe2 requires.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((fds[0], fds[1]))
}

pub fn set_nonblock(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL takes no pointer argument; a bad fd only yields EBADF.
    let fl = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: F_SETFL takes an integer argument; no memory is passed.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) })?;
    Ok(())
}

pub fn close(fd: &mut RawFd) {
    if *fd >= 0 {
        // SAFETY: `*fd` is open and owned by the caller, who gives it up here; it is set to -1
        // right after, so it is never closed twice.
        unsafe { libc::close(*fd) };
        *fd = -1;
    }
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, writable slice of `buf.len()` bytes.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match cvt_s(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            x => return x,
        }
    }
}

pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a live slice of `buf.len()` readable bytes.
        let r = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        match cvt_s(r) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn open(path: &CStr, flags: libc::c_int) -> io::Result<RawFd> {
    // SAFETY: `path` is a NUL-terminated CStr borrowed for the whole call.
    cvt(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o640 as libc::c_uint) })
}

/// Wall clock (seconds, nanoseconds) since the epoch.
pub fn realtime() -> (i64, u32) {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live local timespec for clock_gettime to write.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec, ts.tv_nsec as u32)
}

/// Monotonic milliseconds.
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live local timespec for clock_gettime to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or None if the
/// process does not exist or has exited (a zombie not yet reaped by its parent).
pub fn proc_start_time(pid: i32) -> Option<u64> {
    capsa_fsutil::sys::ProcStat::read(pid).filter(|s| !s.exited()).map(|s| s.start_time)
}

/// Bind a listening unix socket of `ty` (SOCK_STREAM / SOCK_SEQPACKET) at `path`
/// (relative paths are fine: the shim runs in its state directory).
pub fn unix_listen(path: &[u8], ty: libc::c_int) -> io::Result<RawFd> {
    // SAFETY: socket takes no pointer arguments.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) })?;
    let (addr, len) = sockaddr_un(path)?;
    // SAFETY: `addr` was zeroed and `sockaddr_un` refuses a path that fills `sun_path`, so `sun_path` is
    // NUL-terminated; `addr` is a live sockaddr_un and `len` does not exceed its size.
    let r = unsafe {
        libc::unlink(addr.sun_path.as_ptr());
        libc::bind(fd, (&addr as *const libc::sockaddr_un).cast(), len)
    };
    // SAFETY: listen takes no pointers; `fd` is the socket created above.
    if let Err(e) = cvt(r).and_then(|_| cvt(unsafe { libc::listen(fd, 8) })) {
        // SAFETY: `fd` is the socket created above, owned here and not used after this close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

/// Connect a unix socket of type `ty` to `path`.
pub fn unix_connect(path: &[u8], ty: libc::c_int) -> io::Result<RawFd> {
    // SAFETY: socket takes no pointer arguments.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) })?;
    let (addr, len) = sockaddr_un(path)?;
    // SAFETY: `addr` is a live sockaddr_un and `len` does not exceed its size.
    if let Err(e) = cvt(unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) }) {
        // SAFETY: `fd` is the socket created above, owned here and not used after this close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

fn sockaddr_un(path: &[u8]) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain C data (integers and a char array): all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.is_empty() || path.len() >= addr.sun_path.len() || path.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + path.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// Receive one fd sent with SCM_RIGHTS (the pty master from `runtime create --console-socket`).
pub fn recv_fd(sock: RawFd) -> io::Result<RawFd> {
    use std::os::fd::IntoRawFd;
    // The payload (the pty's name) is not used.
    let (_, fd) = capsa_fsutil::sys::recv_with_fd(sock, &mut [0u8; 256])?;
    let fd = fd.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no SCM_RIGHTS fd on the console socket"))?;
    Ok(fd.into_raw_fd())
}

/// Mode of the shim's state files (`shim.pid`, `shim.json`, `exit`): root's alone.
pub const STATE_MODE: u32 = 0o600;
