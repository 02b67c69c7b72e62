//! Foreground `run`/`exec`: forward signals to the container's process, proxy a
//! terminal, and return its exit status (128+signal when killed, like a shell).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys::{check, SysResult};

fn forwardable() -> libc::sigset_t {
    // SAFETY: sigset operations on a local, initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in 1..32 {
            if ![libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGTRAP]
                .contains(&s)
            {
                libc::sigaddset(&mut set, s);
            }
        }
        set
    }
}

/// Block the signals a foreground runtime forwards (call before cloning, so an early
/// SIGCHLD is not lost; the child resets its mask).
pub fn block_signals() {
    let set = forwardable();
    // SAFETY: set is valid; old mask not needed.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Exit code of a wait status, shell style.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: termios is plain data; isatty/tcgetattr/tcsetattr on an fd.
        unsafe {
            if libc::isatty(fd) != 1 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the attributes we saved.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain data; ioctls on fds.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Forward signals to `pid` and wait for it; proxy `master` <-> our stdio if given.
pub fn forward_and_wait(pid: i32, master: Option<OwnedFd>) -> SysResult<i32> {
    let set = forwardable();
    // SAFETY: signalfd on a valid set; the returned fd is owned below.
    let sfd = check(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) }, || "signalfd".into())?;
    // SAFETY: fresh fd.
    let sfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sfd) };
    let _raw = master.as_ref().and_then(|_| RawMode::enter(0));
    if let Some(m) = &master {
        copy_winsize(0, m.as_raw_fd());
    }
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut exit: Option<i32> = None;
    let mut buf = if master.is_some() { vec![0u8; 32 * 1024] } else { Vec::new() };
    loop {
        if exit.is_some() && !master_open {
            break;
        }
        let mut fds = vec![libc::pollfd { fd: sfd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        if let Some(m) = &master {
            if master_open {
                fds.push(libc::pollfd { fd: m.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            }
            if stdin_open {
                fds.push(libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 });
            }
        }
        let timeout = if exit.is_some() { 100 } else { -1 };
        // SAFETY: fds is a valid array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            continue;
        }
        if n == 0 && exit.is_some() {
            break;
        }
        for p in &fds {
            if p.revents == 0 {
                continue;
            }
            if p.fd == sfd.as_raw_fd() {
                // SAFETY: signalfd_siginfo is plain integers: all-zero is a valid value.
                let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
                // SAFETY: reading one signalfd_siginfo into `si`, a live local of exactly that size.
                let r = unsafe {
                    libc::read(
                        p.fd,
                        (&mut si as *mut libc::signalfd_siginfo).cast(),
                        std::mem::size_of::<libc::signalfd_siginfo>(),
                    )
                };
                if r <= 0 {
                    continue;
                }
                let sig = si.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    loop {
                        let mut st = 0;
                        // SAFETY: reaping any of our children without blocking.
                        let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
                        if r <= 0 {
                            break;
                        }
                        if r == pid {
                            exit = Some(exit_code(st));
                        }
                    }
                } else if sig == libc::SIGWINCH && master.is_some() {
                    copy_winsize(0, master.as_ref().unwrap().as_raw_fd());
                } else {
                    // SAFETY: forwarding a signal to the container's process.
                    unsafe { libc::kill(pid, sig) };
                }
            } else if p.fd == 0 {
                // SAFETY: reading into our buffer.
                let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                if r <= 0 {
                    stdin_open = false;
                } else if let Some(m) = &master {
                    write_all(m.as_raw_fd(), &buf[..r as usize]);
                }
            } else {
                // SAFETY: reading into our buffer.
                let r = unsafe { libc::read(p.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if r <= 0 {
                    master_open = false;
                } else {
                    write_all(1, &buf[..r as usize]);
                }
            }
        }
    }
    Ok(exit.unwrap_or(255))
}

fn write_all(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writing from a valid slice.
        let r = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if r <= 0 {
            return;
        }
        data = &data[r as usize..];
    }
}
