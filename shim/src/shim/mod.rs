//! The monitor: daemonize, start the container through the runtime CLI, then one
//! poll loop over a signalfd, the container's stdio, and the attach socket.
//!
//! - `daemon`: the binary's entry point, daemonizing and reporting to the launcher;
//! - `runtime`: starting and deleting the container through the runtime CLI;
//! - `stdio`: the container's stdio (output to the log, stdin from attach clients);
//! - `attach`: the attach socket and its clients;
//! - `exit`: signals, reaping, the exit record and the restart policy.

mod attach;
mod daemon;
mod error;
mod exit;
mod runtime;
mod stdio;

pub use daemon::main;

use crate::config::Config;
use crate::log::{LineBuf, LogFile};
use crate::proto::{self, MAX_CLIENTS, MAX_PACKET};
use crate::sys;
use capsa_fsutil::{write_atomic, Durability};
use error::StartError;
use std::io;
use std::os::fd::RawFd;
use std::path::Path;

/// One container output stream.
struct Stream {
    fd: RawFd,
    lb: LineBuf,
    name: &'static [u8],
    ty: u8,
}

enum Phase {
    Running,
    /// The init exited with this (exit_code, signal); draining its stdio until the deadline.
    Draining {
        code: i32,
        signal: Option<i32>,
        deadline: u64,
    },
    Backoff {
        until: u64,
    },
    Done,
}

pub struct Shim {
    cfg: Config,
    sigfd: RawFd,
    attach_l: RawFd,
    console_l: RawFd,
    log: LogFile,
    out: Stream,
    err: Stream,
    /// Write side of the container's stdin: a pipe, or a dup of the pty master.
    stdin_fd: RawFd,
    /// The pty master (for resize), -1 without a terminal.
    pty: RawFd,
    clients: [RawFd; MAX_CLIENTS],
    pend: Box<[u8; MAX_PACKET]>,
    pend_off: usize,
    pend_len: usize,
    close_stdin_after: bool,
    pkt: Box<[u8; MAX_PACKET]>,
    phase: Phase,
    init_pid: i32,
    started_at: String,
    started_ms: u64,
    /// (memory.events or memory.oom_control path, oom_kill count at start)
    oom: Option<(String, u64)>,
    restarts: u32,
    consecutive: u32,
    stop_requested: bool,
    my_start_time: u64,
}

impl Shim {
    fn new(cfg: Config) -> Result<Shim, StartError> {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        // SAFETY: getpid has no preconditions and cannot fail.
        let me = unsafe { libc::getpid() };
        // Durable, as every record of a kept container: whole after a power loss.
        write_atomic(Path::new("shim.pid"), format!("{me}\n").as_bytes(), sys::STATE_MODE, Durability::Durable)
            .map_err(StartError::PidFile)?;
        let _ = std::fs::remove_file("exit");
        let _ = std::fs::remove_file("stop");
        // Signals arrive on a signalfd, read in the loop.
        // SAFETY: sigset_t is plain C data (all-zero is valid, then sigemptyset initializes it); the
        // sig* calls and signalfd only read or write that local set, and a null old set is allowed.
        let sigfd = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
                libc::sigaddset(&mut set, s);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
        };
        if sigfd < 0 {
            return Err(StartError::os("signalfd")(io::Error::last_os_error()));
        }
        let attach_l = sys::unix_listen(b"attach", libc::SOCK_SEQPACKET)
            .map_err(StartError::at("attach socket", cfg.state_dir.join("attach")))?;
        sys::set_nonblock(attach_l).ok();
        let console_l = if cfg.terminal {
            sys::unix_listen(b"console.sock", libc::SOCK_STREAM)
                .map_err(StartError::at("console socket", cfg.state_dir.join("console.sock")))?
        } else {
            -1
        };
        let log = LogFile::open(&cfg.log_path.to_string_lossy(), cfg.log_max_size)
            .map_err(StartError::at("log file", &cfg.log_path))?;
        let my_start_time = sys::proc_start_time(me).unwrap_or(0);
        Ok(Shim {
            cfg,
            sigfd,
            attach_l,
            console_l,
            log,
            out: Stream { fd: -1, lb: LineBuf::default(), name: b"stdout", ty: proto::T_STDOUT },
            err: Stream { fd: -1, lb: LineBuf::default(), name: b"stderr", ty: proto::T_STDERR },
            stdin_fd: -1,
            pty: -1,
            clients: [-1; MAX_CLIENTS],
            pend: Box::new([0; MAX_PACKET]),
            pend_off: 0,
            pend_len: 0,
            close_stdin_after: false,
            pkt: Box::new([0; MAX_PACKET]),
            phase: Phase::Running,
            init_pid: 0,
            started_at: String::new(),
            started_ms: 0,
            oom: None,
            restarts: 0,
            consecutive: 0,
            stop_requested: false,
            my_start_time,
        })
    }

    pub fn write_shim_json(&self, status: &str, error: Option<&str>) {
        // SAFETY: getpid has no preconditions and cannot fail.
        let mut s = format!("{{\"pid\":{},\"start_time\":{},\"id\":\"", unsafe { libc::getpid() }, self.my_start_time);
        proto::json_escape(&self.cfg.id, &mut s);
        s.push_str("\",\"container_pid\":");
        if self.init_pid > 0 && matches!(self.phase, Phase::Running) {
            s.push_str(&self.init_pid.to_string());
        } else {
            s.push_str("null");
        }
        s.push_str(&format!(",\"restart_count\":{},\"status\":\"{status}\"", self.restarts));
        if let Some(e) = error {
            s.push_str(",\"error\":\"");
            proto::json_escape(e, &mut s);
            s.push('"');
        }
        s.push_str("}\n");
        if let Err(e) = write_atomic(Path::new("shim.json"), s.as_bytes(), sys::STATE_MODE, Durability::Durable) {
            eprintln!("capsa-shim: write shim.json: {e}");
        }
    }

    fn cleanup_sockets(&mut self) {
        let _ = std::fs::remove_file("attach");
        let _ = std::fs::remove_file("console.sock");
        sys::close(&mut self.attach_l);
        sys::close(&mut self.console_l);
        for c in self.clients.iter_mut() {
            sys::close(c);
        }
    }

    fn run(&mut self) {
        // The init may already have exited (before we blocked on poll).
        self.reap();
        let mut pfds = [libc::pollfd { fd: -1, events: 0, revents: 0 }; 5 + MAX_CLIENTS];
        while !matches!(self.phase, Phase::Done) {
            let now = sys::monotonic_ms();
            let timeout: i32 = match self.phase {
                Phase::Draining { deadline, .. } => deadline.saturating_sub(now) as i32,
                Phase::Backoff { until } => until.saturating_sub(now) as i32,
                _ => -1,
            };
            let input_ok = self.pend_len == 0;
            pfds[0] = libc::pollfd { fd: self.sigfd, events: libc::POLLIN, revents: 0 };
            pfds[1] = libc::pollfd { fd: self.attach_l, events: libc::POLLIN, revents: 0 };
            pfds[2] = libc::pollfd { fd: self.out.fd, events: libc::POLLIN, revents: 0 };
            pfds[3] = libc::pollfd { fd: self.err.fd, events: libc::POLLIN, revents: 0 };
            let out_ev = if self.pend_len > 0 { libc::POLLOUT } else { 0 };
            // A pty master is also the output fd: only poll the stdin side for POLLOUT.
            pfds[4] = libc::pollfd { fd: if out_ev != 0 { self.stdin_fd } else { -1 }, events: out_ev, revents: 0 };
            for (i, c) in self.clients.iter().enumerate() {
                pfds[5 + i] = libc::pollfd { fd: *c, events: if input_ok { libc::POLLIN } else { 0 }, revents: 0 };
            }
            // SAFETY: `pfds` is a live local array of `pfds.len()` pollfds.
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("capsa-shim: poll: {}", io::Error::last_os_error());
                break;
            }
            if pfds[2].revents != 0 {
                self.read_stream(true);
            }
            if pfds[3].revents != 0 {
                self.read_stream(false);
            }
            if pfds[4].revents != 0 {
                self.flush_stdin();
            }
            for i in 0..MAX_CLIENTS {
                if pfds[5 + i].revents != 0 && self.clients[i] == pfds[5 + i].fd {
                    self.client_input(i);
                }
            }
            if pfds[1].revents & libc::POLLIN != 0 {
                self.accept_client();
            }
            if pfds[0].revents != 0 {
                self.signals();
            }
            self.advance();
        }
        self.cleanup_sockets();
    }
}
