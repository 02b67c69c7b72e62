//! The container's stdio: its output copied to the log and the attach clients, its
//! stdin written from what the clients send (with a pending buffer when it is full).

use super::attach::broadcast;
use super::Shim;
use crate::sys;
use std::io;

impl Shim {
    pub(super) fn read_stream(&mut self, stdout: bool) {
        let s = if stdout { &mut self.out } else { &mut self.err };
        let sp = s.lb.spare();
        match sys::read(s.fd, sp) {
            Ok(0) | Err(_) => {
                // EOF, or EIO from a pty master whose slave side is gone.
                if let Err(e) = s.lb.finish(s.name, &mut self.log) {
                    eprintln!("capsa-shim: write log: {e}");
                }
                sys::close(&mut s.fd);
            }
            Ok(n) => {
                broadcast(&mut self.clients, s.ty, &sp[..n]);
                if let Err(e) = s.lb.commit(n, s.name, &mut self.log) {
                    eprintln!("capsa-shim: write log: {e}");
                }
            }
        }
    }

    pub(super) fn close_stdin(&mut self) {
        if self.pty >= 0 {
            // A pty has no half-close: send the EOF character (VEOF, ^D) instead.
            // SAFETY: writes 1 byte from a static literal of 1 byte.
            unsafe { libc::write(self.pty, b"\x04".as_ptr().cast(), 1) };
        } else {
            sys::close(&mut self.stdin_fd);
        }
    }

    pub(super) fn flush_stdin(&mut self) {
        let data = &self.pend[self.pend_off..self.pend_off + self.pend_len];
        // SAFETY: `data` is a live slice of `data.len()` bytes of `self.pend`.
        let w = unsafe { libc::write(self.stdin_fd, data.as_ptr().cast(), data.len()) };
        if w < 0 {
            if io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
                self.pend_len = 0;
                if self.pty < 0 {
                    sys::close(&mut self.stdin_fd);
                }
            }
            return;
        }
        self.pend_off += w as usize;
        self.pend_len -= w as usize;
        if self.pend_len == 0 && self.close_stdin_after {
            self.close_stdin_after = false;
            self.close_stdin();
        }
    }
}
