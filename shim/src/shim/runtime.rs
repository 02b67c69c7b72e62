//! The container through the runtime CLI: `create` (receiving the pty master on the
//! console socket), `start` and `delete`.

use super::error::StartError;
use super::exit::{oom_kills, oom_source};
use super::{Phase, Shim};
use crate::config::Config;
use crate::log::now_string;
use crate::sys;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::{Command, Stdio};

fn runtime_cmd(cfg: &Config) -> Command {
    let mut c = Command::new(&cfg.runtime);
    if let Some(r) = &cfg.root {
        c.arg("--root").arg(r);
    }
    c.arg("--log").arg("runtime.log");
    c
}

/// Last non-empty line of runtime.log (the runtime's error), for messages.
fn runtime_error() -> String {
    let s = std::fs::read("runtime.log").unwrap_or_default();
    let tail = &s[s.len().saturating_sub(1024)..];
    let t = String::from_utf8_lossy(tail);
    // capsa writes records without a trailing newline; take the last record.
    let last = t.rsplit(['\n']).find(|l| !l.trim().is_empty()).unwrap_or("");
    let last = last.rsplit("capsa[error]: ").next().unwrap_or(last);
    last.trim().to_string()
}

impl Shim {
    /// `runtime create` with our stdio, then `runtime start`. Returns the init's pid.
    pub(super) fn start_container(&mut self) -> Result<i32, StartError> {
        let _ = std::fs::remove_file("init.pid");
        let null = || Stdio::null();
        let mut cmd = runtime_cmd(&self.cfg);
        cmd.arg("create").arg("--bundle").arg(&self.cfg.bundle).arg("--pid-file").arg("init.pid");
        let (mut out_r, mut err_r, mut in_w) = (-1, -1, -1);
        if self.cfg.terminal {
            cmd.arg("--console-socket").arg("console.sock");
            cmd.stdin(null()).stdout(null()).stderr(null());
        } else {
            let (or, ow) = sys::pipe().map_err(StartError::os("pipe"))?;
            let (er, ew) = sys::pipe().map_err(StartError::os("pipe"))?;
            out_r = or;
            err_r = er;
            // Stdio::from takes ownership: the write ends close when `cmd` is dropped.
            // SAFETY: `ow` and `ew` are fresh pipe ends from sys::pipe, owned by nothing else and never
            // closed elsewhere: the OwnedFds take sole ownership.
            cmd.stdout(unsafe { OwnedFd::from_raw_fd(ow) }).stderr(unsafe { OwnedFd::from_raw_fd(ew) });
            if self.cfg.stdin {
                let (ir, iw) = sys::pipe().map_err(StartError::os("pipe"))?;
                in_w = iw;
                // SAFETY: `ir` is a fresh pipe end from sys::pipe, owned by nothing else and never closed
                // elsewhere: the OwnedFd takes sole ownership.
                cmd.stdin(unsafe { OwnedFd::from_raw_fd(ir) });
            } else {
                cmd.stdin(null());
            }
        }
        cmd.arg(&self.cfg.id);
        let res = self.run_create(cmd);
        let fail = |mut fds: [RawFd; 3], e: StartError| {
            for fd in fds.iter_mut() {
                sys::close(fd);
            }
            Err(e)
        };
        let master = match res {
            Ok(m) => m,
            Err(e) => return fail([out_r, err_r, in_w], e),
        };
        let pid: i32 = match std::fs::read_to_string("init.pid").ok().and_then(|s| s.trim().parse().ok()) {
            Some(p) => p,
            None => {
                self.delete_container();
                return fail([out_r, err_r, in_w], StartError::NoPidFile);
            }
        };
        let oom = oom_source(pid).map(|p| {
            let n = oom_kills(&p);
            (p, n)
        });
        // --no-start: the first run stays created; the caller starts it (restarts always start).
        let st = if std::mem::take(&mut self.cfg.no_start) {
            Ok(std::process::ExitStatus::default())
        } else {
            runtime_cmd(&self.cfg).arg("start").arg(&self.cfg.id).stdin(null()).stdout(null()).stderr(null()).status()
        };
        match st {
            Ok(s) if s.success() => {}
            other => {
                let e = match other {
                    Ok(status) => {
                        StartError::Runtime { step: "start", id: self.cfg.id.clone(), status, log: runtime_error() }
                    }
                    Err(e) => StartError::at("run", &self.cfg.runtime)(e),
                };
                self.delete_container();
                return fail([out_r, err_r, in_w], e);
            }
        }
        if let Some(m) = master {
            out_r = m;
            // SAFETY: dup takes no pointers; `m` is the pty master received from the runtime, owned here.
            in_w = unsafe { libc::dup(m) };
            let _ = sys::set_nonblock(in_w);
            self.pty = in_w;
        }
        for fd in [out_r, err_r, in_w] {
            if fd >= 0 {
                let _ = sys::set_nonblock(fd);
            }
        }
        self.out.fd = out_r;
        self.err.fd = err_r;
        self.stdin_fd = in_w;
        self.pend_len = 0;
        self.close_stdin_after = false;
        self.init_pid = pid;
        self.oom = oom;
        self.started_at = now_string();
        self.started_ms = sys::monotonic_ms();
        self.phase = Phase::Running;
        self.write_shim_json("running", None);
        Ok(pid)
    }

    /// Spawn `runtime create`; with a terminal, accept the pty master on the console
    /// socket while it runs. Returns the master fd if one was received.
    fn run_create(&mut self, mut cmd: Command) -> Result<Option<RawFd>, StartError> {
        let mut child = cmd.spawn().map_err(StartError::at("run", &self.cfg.runtime))?;
        // `--explain` of the `run -d` that started us narrates the first create only:
        // its path names the caller's stderr, gone (or another process's) by a restart.
        std::env::remove_var("CAPSA_EXPLAIN");
        drop(cmd); // close our copies of the container's pipe ends
        let mut master = None;
        let status = if self.console_l >= 0 {
            loop {
                let mut pfd = [
                    libc::pollfd { fd: self.console_l, events: libc::POLLIN, revents: 0 },
                    libc::pollfd { fd: self.sigfd, events: libc::POLLIN, revents: 0 },
                ];
                // SAFETY: `pfd` is a live local array of 2 pollfds, the count passed.
                unsafe { libc::poll(pfd.as_mut_ptr(), 2, 1000) };
                if pfd[0].revents & libc::POLLIN != 0 {
                    // SAFETY: accept4 allows null address and length pointers (the peer address is not wanted).
                    let c = unsafe {
                        libc::accept4(self.console_l, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
                    };
                    if c >= 0 {
                        match sys::recv_fd(c) {
                            Ok(fd) => {
                                if let Some(mut old) = master.replace(fd) {
                                    sys::close(&mut old);
                                }
                            }
                            Err(e) => eprintln!("capsa-shim: console socket: {e}"),
                        }
                        // SAFETY: `c` is the connection accepted above, owned here and not used after this close.
                        unsafe { libc::close(c) };
                    }
                }
                if pfd[1].revents & libc::POLLIN != 0 {
                    self.drain_sigfd_quiet();
                }
                match child.try_wait() {
                    Ok(Some(s)) => break s,
                    Ok(None) => {}
                    Err(e) => return Err(StartError::os("wait for runtime create")(e)),
                }
            }
        } else {
            child.wait().map_err(StartError::os("wait for runtime create"))?
        };
        if !status.success() {
            if let Some(mut m) = master {
                sys::close(&mut m);
            }
            return Err(StartError::Runtime { step: "create", id: self.cfg.id.clone(), status, log: runtime_error() });
        }
        if self.cfg.terminal && master.is_none() {
            self.delete_container();
            return Err(StartError::NoPtyMaster);
        }
        Ok(master)
    }

    /// Read pending signals while `runtime create` runs: remember stop requests; SIGCHLD is
    /// handled by try_wait (and the main loop reaps everything else later).
    fn drain_sigfd_quiet(&mut self) {
        // SAFETY: signalfd_siginfo is plain integers: all-zero is a valid value.
        let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let sz = std::mem::size_of_val(&si);
        // SAFETY: `si` is a live local of exactly `sz` bytes for read to fill.
        while unsafe { libc::read(self.sigfd, (&mut si as *mut libc::signalfd_siginfo).cast(), sz) } == sz as isize {
            if matches!(si.ssi_signo as i32, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT) {
                self.stop_requested = true;
            }
        }
    }

    pub(super) fn delete_container(&self) {
        let _ = runtime_cmd(&self.cfg)
            .arg("delete")
            .arg("--force")
            .arg(&self.cfg.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
