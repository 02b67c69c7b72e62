//! The shim's contract with a CLI: files in the state directory and the attach protocol.
//!
//! # State directory (`--state-dir DIR`, one per container, made by the caller)
//!
//! | file            | written                | content |
//! |-----------------|------------------------|---------|
//! | `shim.pid`      | at start               | the shim's pid, decimal, newline |
//! | `shim.json`     | at start, each (re)start | `{"pid":S,"start_time":T,"id":"ID","container_pid":N|null,"restart_count":K,"status":"running"|"backoff"|"exited"}` |
//! | `exit`          | each time the init exits | `{"exit_code":N,"signal":S|null,"oom":B,"started_at":TS,"finished_at":TS,"restart_count":K}` |
//! | `attach`        | while the shim runs     | SOCK_SEQPACKET unix socket, see below |
//! | `console.sock`  | with `--terminal`, while running | where the runtime sends the pty master |
//! | `runtime.log`   | by the runtime (`--log`) | the runtime's own error records |
//! | `shim.log`      | the shim's stderr after it daemonized | its own warnings |
//! | `stop`          | by the CLI              | if present when the init exits: do not restart |
//!
//! `start_time` is field 22 of `/proc/<pid>/stat` (clock ticks since boot). A shim is
//! alive iff `/proc/<pid>/stat` exists, is not a zombie, *and* shows the same start time
//! (pid reuse).
//! All JSON files are replaced atomically (temp file + rename). Timestamps (TS) are
//! RFC3339Nano in UTC. `exit_code` is the exit status, or 128+signal when the init was
//! killed by a signal (then `signal` is the signal number).
//!
//! A CLI reads the state as: shim alive → the container is running (or in restart
//! backoff); shim dead and `exit` present with `shim.json` status `exited` → stopped with
//! that exit; shim dead otherwise → the shim was killed: report the container stopped
//! (exit unknown), and `runtime kill ID KILL` + `runtime delete -f ID` it so that nothing
//! stays untracked (see [`shim_status`]).
//!
//! # Attach protocol (`<state-dir>/attach`, SOCK_SEQPACKET)
//!
//! Every packet is one message: a type byte, then the payload.
//!
//! | dir          | type | payload |
//! |--------------|------|---------|
//! | shim→client  | 0x01 | container stdout bytes (the pty output with `--terminal`) |
//! | shim→client  | 0x02 | container stderr bytes |
//! | shim→client  | 0x03 | the exit JSON (same as the `exit` file); with a restart policy more output may follow |
//! | shim→client  | 0x04 | answer to 0x13: empty when the log was reopened, else the error text |
//! | client→shim  | 0x10 | bytes for the container's stdin (needs `--stdin` or `--terminal`; dropped otherwise) |
//! | client→shim  | 0x11 | close the container's stdin (EOF) |
//! | client→shim  | 0x12 | resize the pty: rows u16 big-endian, cols u16 big-endian |
//! | client→shim  | 0x13 | reopen the log file at its path (after the caller renamed it: CRI ReopenContainerLog) |
//!
//! Output is streamed live from the moment the client connects (no replay: read the log
//! for history). Up to [`MAX_CLIENTS`] clients; a client that cannot keep up (its socket
//! buffer full) is disconnected rather than slowing the container. Packets are at most
//! [`MAX_PACKET`] bytes.

use crate::sys;
use std::io;
use std::os::fd::RawFd;
use std::path::Path;

pub const T_STDOUT: u8 = 0x01;
pub const T_STDERR: u8 = 0x02;
pub const T_EXIT: u8 = 0x03;
pub const T_LOG_REOPENED: u8 = 0x04;
pub const T_STDIN: u8 = 0x10;
pub const T_CLOSE_STDIN: u8 = 0x11;
pub const T_RESIZE: u8 = 0x12;
pub const T_REOPEN_LOG: u8 = 0x13;

pub const MAX_CLIENTS: usize = 8;
pub const MAX_PACKET: usize = 1 + crate::log::LINE_BUF;

/// What `<state-dir>/shim.json` and `/proc` say about a shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShimStatus {
    /// No shim.json: never started (or not a shim state dir).
    Missing,
    /// The shim process is running.
    Alive { pid: i32 },
    /// The shim exited normally after recording the container's exit.
    Exited { pid: i32 },
    /// The shim died without recording a final exit (killed): the container must be
    /// reported stopped and cleaned up by the caller.
    Dead { pid: i32 },
}

/// Find `"key":` in a flat JSON object written by the shim and return the raw value text.
pub fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let i = json.find(&pat)? + pat.len();
    let rest = json[i..].trim_start();
    let end = if let Some(q) = rest.strip_prefix('"') {
        1 + q.find('"')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Liveness of the shim that owns `state_dir` (see the module docs).
pub fn shim_status(state_dir: &Path) -> ShimStatus {
    let Ok(j) = std::fs::read_to_string(state_dir.join("shim.json")) else {
        return ShimStatus::Missing;
    };
    let pid: i32 = json_field(&j, "pid").and_then(|v| v.parse().ok()).unwrap_or(0);
    let st: u64 = json_field(&j, "start_time").and_then(|v| v.parse().ok()).unwrap_or(0);
    if pid > 0 && sys::proc_start_time(pid) == Some(st) {
        return ShimStatus::Alive { pid };
    }
    if json_field(&j, "status") == Some("\"exited\"") && state_dir.join("exit").exists() {
        ShimStatus::Exited { pid }
    } else {
        ShimStatus::Dead { pid }
    }
}

/// A connected attach client (for a CLI's `attach`, and the tests).
pub struct AttachClient {
    pub fd: RawFd,
}

impl AttachClient {
    pub fn connect(state_dir: &Path) -> io::Result<AttachClient> {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        let p = state_dir.join("attach");
        if p.as_os_str().len() < 100 {
            return Ok(AttachClient { fd: sys::unix_connect(p.as_os_str().as_bytes(), libc::SOCK_SEQPACKET)? });
        }
        // Longer than a sockaddr_un holds (108 bytes): the same socket through the
        // directory's fd, `/proc/self/fd/N/attach`.
        let dir = std::fs::File::open(state_dir)?;
        let short = format!("/proc/self/fd/{}/attach", dir.as_raw_fd());
        Ok(AttachClient { fd: sys::unix_connect(short.as_bytes(), libc::SOCK_SEQPACKET)? })
    }

    fn send(&self, ty: u8, payload: &[u8]) -> io::Result<()> {
        let iov = [
            libc::iovec { iov_base: &ty as *const u8 as *mut _, iov_len: 1 },
            libc::iovec { iov_base: payload.as_ptr() as *mut _, iov_len: payload.len() },
        ];
        // SAFETY: msghdr is plain C data: all-zero (null pointers, zero lengths) is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut _;
        msg.msg_iovlen = 2;
        // SAFETY: `msg` points to `iov`, whose two entries point to `ty` and `payload` with their
        // lengths; all are live for the call and the kernel only reads them.
        sys::cvt_s(unsafe { libc::sendmsg(self.fd, &msg, libc::MSG_NOSIGNAL) }).map(|_| ())
    }

    pub fn stdin(&self, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(MAX_PACKET - 1) {
            self.send(T_STDIN, chunk)?;
        }
        Ok(())
    }

    pub fn close_stdin(&self) -> io::Result<()> {
        self.send(T_CLOSE_STDIN, &[])
    }

    pub fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        let r = rows.to_be_bytes();
        let c = cols.to_be_bytes();
        self.send(T_RESIZE, &[r[0], r[1], c[0], c[1]])
    }

    /// Asks the shim to reopen its log file; waits (at most `timeout_ms`) for its answer,
    /// skipping the output packets that arrive meanwhile.
    pub fn reopen_log(&self, timeout_ms: i32) -> io::Result<()> {
        self.send(T_REOPEN_LOG, &[])?;
        let mut buf = [0u8; MAX_PACKET];
        loop {
            match self.recv(&mut buf, timeout_ms)? {
                None => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the shim closed the connection")),
                Some((T_LOG_REOPENED, 0)) => return Ok(()),
                Some((T_LOG_REOPENED, n)) => {
                    return Err(io::Error::other(String::from_utf8_lossy(&buf[..n]).into_owned()))
                }
                Some(_) => {}
            }
        }
    }

    /// Receive one packet into `buf`: (type, payload length). Ok(None) at end of stream.
    /// `timeout_ms` < 0 blocks.
    pub fn recv(&self, buf: &mut [u8; MAX_PACKET], timeout_ms: i32) -> io::Result<Option<(u8, usize)>> {
        let mut p = libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: `p` is one live local pollfd, the count passed.
        if sys::cvt(unsafe { libc::poll(&mut p, 1, timeout_ms) })? == 0 {
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
        let n = sys::cvt_s(unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) })?;
        if n == 0 {
            return Ok(None);
        }
        let ty = buf[0];
        buf.copy_within(1..n, 0);
        Ok(Some((ty, n - 1)))
    }
}

impl Drop for AttachClient {
    fn drop(&mut self) {
        sys::close(&mut self.fd);
    }
}

/// Escape a string for a JSON string literal (the id is the only free-form field).
pub fn json_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let j = r#"{"pid":12,"start_time":345,"id":"a,b","container_pid":null,"status":"exited"}"#;
        assert_eq!(json_field(j, "pid"), Some("12"));
        assert_eq!(json_field(j, "start_time"), Some("345"));
        assert_eq!(json_field(j, "id"), Some("\"a,b\""));
        assert_eq!(json_field(j, "container_pid"), Some("null"));
        assert_eq!(json_field(j, "status"), Some("\"exited\""));
        assert_eq!(json_field(j, "nope"), None);
        let mut s = String::new();
        json_escape("a\"b\\c\n", &mut s);
        assert_eq!(s, "a\\\"b\\\\c\\u000a");
    }
}
