//! The init's exit: signals, reaping, draining its stdio, the exit record (with OOM
//! detection), and the restart policy with backoff.

use super::attach::broadcast;
use super::{Phase, Shim};
use crate::config::{backoff_ms, Restart};
use crate::log::now_string;
use crate::proto;
use crate::sys;
use capsa_fsutil::{write_atomic, Durability};
use std::path::Path;

/// After the init exits, wait at most this long for its stdio to reach EOF (a process
/// outside the container's pid namespace may hold the pipes).
const DRAIN_MS: u64 = 500;
/// A run this long resets the backoff.
const STABLE_MS: u64 = 10_000;

pub(super) fn oom_source(pid: i32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut v2 = None;
    for line in s.lines() {
        let mut f = line.splitn(3, ':');
        let (id, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        if ctrls.split(',').any(|c| c == "memory") {
            return Some(format!("/sys/fs/cgroup/memory{path}/memory.oom_control"));
        }
        if id == "0" && ctrls.is_empty() {
            for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let p = format!("{base}{path}/memory.events");
                if std::path::Path::new(&p).exists() {
                    v2 = Some(p);
                    break;
                }
            }
        }
    }
    v2
}

pub(super) fn oom_kills(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

impl Shim {
    pub(super) fn signals(&mut self) {
        // SAFETY: signalfd_siginfo is plain integers: all-zero is a valid value.
        let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let sz = std::mem::size_of_val(&si);
        // SAFETY: `si` is a live local of exactly `sz` bytes for read to fill.
        while unsafe { libc::read(self.sigfd, (&mut si as *mut libc::signalfd_siginfo).cast(), sz) } == sz as isize {
            match si.ssi_signo as i32 {
                libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => {
                    // Stop: forward to the container, and never restart it.
                    self.stop_requested = true;
                    match self.phase {
                        // SAFETY: kill takes integer arguments only; while Running the init has not been reaped, so
                        // `init_pid` still names it.
                        Phase::Running => unsafe {
                            libc::kill(self.init_pid, si.ssi_signo as i32);
                        },
                        Phase::Backoff { .. } => {
                            self.phase = Phase::Done;
                            self.write_shim_json("exited", None);
                        }
                        _ => {}
                    }
                }
                _ => {} // SIGCHLD: reaped below; SIGHUP: ignored
            }
        }
        self.reap();
    }

    /// Reap every exited child (we are a subreaper); note the init's status.
    pub(super) fn reap(&mut self) {
        loop {
            let mut st = 0;
            // SAFETY: `st` is a live local int for waitpid to write.
            let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if pid == self.init_pid && matches!(self.phase, Phase::Running) {
                let (code, signal) = if libc::WIFSIGNALED(st) {
                    (128 + libc::WTERMSIG(st), Some(libc::WTERMSIG(st)))
                } else {
                    (libc::WEXITSTATUS(st), None)
                };
                self.phase = Phase::Draining { code, signal, deadline: sys::monotonic_ms() + DRAIN_MS };
            }
        }
    }

    /// Time- and EOF-driven transitions: drain done → record the exit; backoff over → restart.
    pub(super) fn advance(&mut self) {
        let now = sys::monotonic_ms();
        match self.phase {
            Phase::Draining { code, signal, deadline } if (self.out.fd < 0 && self.err.fd < 0) || now >= deadline => {
                self.finish_run(code, signal)
            }
            Phase::Backoff { until } if now >= until => match self.start_container() {
                Ok(_) => {}
                Err(e) => {
                    eprintln!("capsa-shim: restart {}: {e}", self.cfg.id);
                    // A failed start counts as a failed run (127, as a shell's "not found").
                    self.init_pid = 0;
                    self.started_at = now_string();
                    self.started_ms = sys::monotonic_ms();
                    self.finish_run(127, None);
                }
            },
            _ => {}
        }
    }

    fn finish_run(&mut self, code: i32, signal: Option<i32>) {
        for s in [&mut self.out, &mut self.err] {
            if s.fd >= 0 {
                let _ = s.lb.finish(s.name, &mut self.log);
                sys::close(&mut s.fd);
            }
        }
        if self.pty >= 0 {
            sys::close(&mut self.pty);
            self.stdin_fd = -1;
        } else {
            sys::close(&mut self.stdin_fd);
        }
        self.pend_len = 0;
        let oom = self.oom.as_ref().is_some_and(|(p, base)| oom_kills(p) > *base);
        let exit = format!(
            "{{\"exit_code\":{code},\"signal\":{},\"oom\":{oom},\"started_at\":\"{}\",\"finished_at\":\"{}\",\"restart_count\":{}}}\n",
            signal.map_or("null".to_string(), |s| s.to_string()),
            self.started_at,
            now_string(),
            self.restarts
        );
        // Durable, as every record of a kept container: whole after a power loss.
        if let Err(e) = write_atomic(Path::new("exit"), exit.as_bytes(), sys::STATE_MODE, Durability::Durable) {
            eprintln!("capsa-shim: write exit file: {e}");
        }
        broadcast(&mut self.clients, proto::T_EXIT, exit.trim_end().as_bytes());
        if self.init_pid > 0 {
            self.delete_container();
        }
        let ran = sys::monotonic_ms().saturating_sub(self.started_ms);
        if ran >= STABLE_MS {
            self.consecutive = 0;
        }
        let stop = self.stop_requested || std::path::Path::new("stop").exists();
        if !stop && self.cfg.restart != Restart::No && self.cfg.restart.wants(code, self.restarts) {
            let delay = backoff_ms(self.consecutive);
            self.consecutive += 1;
            self.restarts += 1;
            self.phase = Phase::Backoff { until: sys::monotonic_ms() + delay };
            self.write_shim_json("backoff", None);
        } else {
            self.phase = Phase::Done;
            self.write_shim_json("exited", None);
        }
    }
}
