//! The attach socket: accepting clients, broadcasting output packets to them, and
//! handling their packets (stdin, close stdin, resize, reopen log).

use super::Shim;
use crate::proto::{self, MAX_CLIENTS, MAX_PACKET};
use crate::sys;
use std::io;
use std::os::fd::RawFd;

/// Send one attach packet to every client; drop clients that cannot keep up.
pub(super) fn broadcast(clients: &mut [RawFd; MAX_CLIENTS], ty: u8, data: &[u8]) {
    for c in clients.iter_mut().filter(|c| **c >= 0) {
        let iov = [
            libc::iovec { iov_base: &ty as *const u8 as *mut _, iov_len: 1 },
            libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() },
        ];
        // SAFETY: msghdr is plain C data: all-zero (null pointers, zero lengths) is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut _;
        msg.msg_iovlen = 2;
        // SAFETY: `msg` points to `iov`, whose two entries point to `ty` and `data` with their lengths;
        // all are live for the call and the kernel only reads them.
        if unsafe { libc::sendmsg(*c, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) } < 0 {
            sys::close(c);
        }
    }
}

impl Shim {
    pub(super) fn accept_client(&mut self) {
        loop {
            // SAFETY: accept4 allows null address and length pointers (the peer address is not wanted).
            let fd = unsafe {
                libc::accept4(
                    self.attach_l,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                )
            };
            if fd < 0 {
                return;
            }
            match self.clients.iter_mut().find(|c| **c < 0) {
                Some(slot) => *slot = fd,
                // SAFETY: `fd` was just accepted, is owned here and stored nowhere (no free slot).
                None => unsafe {
                    libc::close(fd);
                },
            }
        }
    }

    pub(super) fn client_input(&mut self, i: usize) {
        let fd = self.clients[i];
        // SAFETY: `self.pkt` is a live boxed buffer of MAX_PACKET writable bytes.
        let n = unsafe { libc::recv(fd, self.pkt.as_mut_ptr().cast(), MAX_PACKET, libc::MSG_DONTWAIT) };
        if n == 0 || (n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock) {
            sys::close(&mut self.clients[i]);
            return;
        }
        if n <= 0 {
            return;
        }
        let n = n as usize;
        match self.pkt[0] {
            proto::T_STDIN if self.stdin_fd >= 0 && n > 1 => {
                let data = &self.pkt[1..n];
                // SAFETY: `data` is a live slice of `data.len()` bytes of `self.pkt`.
                let w = unsafe { libc::write(self.stdin_fd, data.as_ptr().cast(), data.len()) };
                let done = if w < 0 {
                    if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
                        0
                    } else {
                        // The container closed its stdin.
                        sys::close(&mut self.stdin_fd);
                        return;
                    }
                } else {
                    w as usize
                };
                if done < data.len() {
                    let rest = data.len() - done;
                    self.pend[..rest].copy_from_slice(&self.pkt[1 + done..n]);
                    self.pend_off = 0;
                    self.pend_len = rest;
                }
            }
            proto::T_CLOSE_STDIN => {
                if self.pend_len > 0 {
                    self.close_stdin_after = true;
                } else {
                    self.close_stdin();
                }
            }
            proto::T_RESIZE if n >= 5 && self.pty >= 0 => {
                let ws = libc::winsize {
                    ws_row: u16::from_be_bytes([self.pkt[1], self.pkt[2]]),
                    ws_col: u16::from_be_bytes([self.pkt[3], self.pkt[4]]),
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                // SAFETY: TIOCSWINSZ reads one winsize from `&ws`, a live local.
                unsafe { libc::ioctl(self.pty, libc::TIOCSWINSZ, &ws) };
            }
            proto::T_REOPEN_LOG => {
                let answer = match self.log.reopen() {
                    Ok(()) => Vec::new(),
                    Err(e) => format!("reopen {}: {e}", self.cfg.log_path.display()).into_bytes(),
                };
                let mut one = [-1; MAX_CLIENTS];
                one[0] = fd;
                broadcast(&mut one, proto::T_LOG_REOPENED, &answer);
                if one[0] < 0 {
                    self.clients[i] = -1;
                }
            }
            _ => {} // unknown or not applicable: ignored
        }
    }
}
