//! The monitor: daemonize, start the container through the runtime CLI, then one
//! poll loop over a signalfd, the container's stdio, and the attach socket.

use crate::config::{backoff_ms, Config, Restart};
use crate::log::{now_string, LineBuf, LogFile};
use crate::proto::{self, MAX_CLIENTS, MAX_PACKET};
use crate::sys;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::{Command, Stdio};

/// After the init exits, wait at most this long for its stdio to reach EOF (a process
/// outside the container's pid namespace may hold the pipes).
const DRAIN_MS: u64 = 500;
/// A run this long resets the backoff.
const STABLE_MS: u64 = 10_000;

/// Entry point of the binary: parse, daemonize, report to the launcher.
pub fn main() -> i32 {
    let cfg = match Config::parse(std::env::args().skip(1)) {
        Ok(Some(c)) => c,
        Ok(None) => {
            print!("{}", crate::config::USAGE);
            return 0;
        }
        Err(e) => {
            eprintln!("capsa-shim: {e}\n{}", crate::config::USAGE);
            return 2;
        }
    };
    if let Err(e) = capsa_fsutil::ensure_dir(&cfg.state_dir, 0o700) {
        eprintln!("capsa-shim: state dir: {e}");
        return 1;
    }
    let (sync_r, sync_w) = match sys::pipe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("capsa-shim: pipe: {e}");
            return 1;
        }
    };
    // SAFETY: fork takes no arguments; the process is single-threaded here (no thread has been
    // started), so the child may run ordinary code after it.
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("capsa-shim: fork: {}", io::Error::last_os_error());
            1
        }
        0 => {
            // First child: new session, then fork the shim and exit so that the shim is
            // not a session leader (never reacquires a controlling terminal).
            // SAFETY: setsid takes no arguments and touches no memory.
            unsafe { libc::setsid() };
            // SAFETY: fork in the first child, which is still single-threaded.
            match unsafe { libc::fork() } {
                0 => {
                    // SAFETY: closes this process's own copy of the pipe's read end, never used here.
                    unsafe { libc::close(sync_r) };
                    let code = run_daemon(cfg, sync_w);
                    // SAFETY: _exit takes an integer and never returns.
                    unsafe { libc::_exit(code) }
                }
                // SAFETY: _exit takes an integer and never returns; the first child must not run the parent's code.
                _ => unsafe { libc::_exit(0) },
            }
        }
        child => {
            // SAFETY: closes the parent's own copy of the pipe's write end, not used after this.
            unsafe { libc::close(sync_w) };
            let mut st = 0;
            // SAFETY: `child` is our own child and `st` a live local int for waitpid to write.
            unsafe { libc::waitpid(child, &mut st, 0) };
            let mut msg = Vec::new();
            let mut buf = [0u8; 512];
            while let Ok(n) = sys::read(sync_r, &mut buf) {
                if n == 0 {
                    break;
                }
                msg.extend_from_slice(&buf[..n]);
            }
            let msg = String::from_utf8_lossy(&msg);
            match msg.strip_prefix("ok ") {
                Some(pid) => {
                    println!("{}", pid.trim());
                    0
                }
                None => {
                    let m = msg.strip_prefix("error ").unwrap_or("the shim exited before starting the container");
                    eprintln!("capsa-shim: {}", m.trim());
                    1
                }
            }
        }
    }
}

fn run_daemon(cfg: Config, sync_w: RawFd) -> i32 {
    // stdio: stdin/stdout /dev/null, stderr the shim's own log in the state dir.
    // SAFETY: the path is a NUL-terminated literal; dup2 and close only act on fds: the one just
    // opened (-1 makes dup2 fail with EBADF) and this daemon's own stdin/stdout.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        libc::dup2(null, 0);
        libc::dup2(null, 1);
        if null > 2 {
            libc::close(null);
        }
    }
    let fail = |sync_w: RawFd, msg: String| -> i32 {
        let _ = sys::write_all(sync_w, format!("error {msg}\n").as_bytes());
        1
    };
    if let Err(e) = std::env::set_current_dir(&cfg.state_dir) {
        return fail(sync_w, format!("chdir {}: {e}", cfg.state_dir.display()));
    }
    // SAFETY: the path is a NUL-terminated literal; `fd` is the log just opened, owned here and
    // closed once it has been duplicated onto this daemon's own stderr.
    unsafe {
        let fd = libc::open(
            c"shim.log".as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
            0o640 as libc::c_uint,
        );
        if fd >= 0 {
            libc::dup2(fd, 2);
            libc::close(fd);
        }
    }
    let mut shim = match Shim::new(cfg) {
        Ok(s) => s,
        Err(e) => return fail(sync_w, e),
    };
    match shim.start_container() {
        Ok(pid) => {
            let _ = sys::write_all(sync_w, format!("ok {pid}\n").as_bytes());
            // SAFETY: `sync_w` is our end of the sync pipe, owned here and not used after this close.
            unsafe { libc::close(sync_w) };
        }
        Err(e) => {
            shim.write_shim_json("failed", Some(&e));
            shim.cleanup_sockets();
            return fail(sync_w, e);
        }
    }
    shim.run();
    0
}

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

fn oom_source(pid: i32) -> Option<String> {
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

fn oom_kills(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

/// Send one attach packet to every client; drop clients that cannot keep up.
fn broadcast(clients: &mut [RawFd; MAX_CLIENTS], ty: u8, data: &[u8]) {
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
    fn new(cfg: Config) -> Result<Shim, String> {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        // SAFETY: getpid has no preconditions and cannot fail.
        let me = unsafe { libc::getpid() };
        sys::write_atomic("shim.pid", format!("{me}\n").as_bytes()).map_err(|e| format!("write shim.pid: {e}"))?;
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
            return Err(format!("signalfd: {}", io::Error::last_os_error()));
        }
        let attach_l = sys::unix_listen(b"attach", libc::SOCK_SEQPACKET)
            .map_err(|e| format!("attach socket {}/attach: {e}", cfg.state_dir.display()))?;
        sys::set_nonblock(attach_l).ok();
        let console_l = if cfg.terminal {
            sys::unix_listen(b"console.sock", libc::SOCK_STREAM)
                .map_err(|e| format!("console socket {}/console.sock: {e}", cfg.state_dir.display()))?
        } else {
            -1
        };
        let log = LogFile::open(&cfg.log_path.to_string_lossy(), cfg.log_max_size)
            .map_err(|e| format!("log file {}: {e}", cfg.log_path.display()))?;
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
        if let Err(e) = sys::write_atomic("shim.json", s.as_bytes()) {
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

    /// `runtime create` with our stdio, then `runtime start`. Returns the init's pid.
    fn start_container(&mut self) -> Result<i32, String> {
        let _ = std::fs::remove_file("init.pid");
        let null = || Stdio::null();
        let mut cmd = runtime_cmd(&self.cfg);
        cmd.arg("create").arg("--bundle").arg(&self.cfg.bundle).arg("--pid-file").arg("init.pid");
        let (mut out_r, mut err_r, mut in_w) = (-1, -1, -1);
        if self.cfg.terminal {
            cmd.arg("--console-socket").arg("console.sock");
            cmd.stdin(null()).stdout(null()).stderr(null());
        } else {
            let (or, ow) = sys::pipe().map_err(|e| format!("pipe: {e}"))?;
            let (er, ew) = sys::pipe().map_err(|e| format!("pipe: {e}"))?;
            out_r = or;
            err_r = er;
            // Stdio::from takes ownership: the write ends close when `cmd` is dropped.
            // SAFETY: `ow` and `ew` are fresh pipe ends from sys::pipe, owned by nothing else and never
            // closed elsewhere: the OwnedFds take sole ownership.
            cmd.stdout(unsafe { OwnedFd::from_raw_fd(ow) }).stderr(unsafe { OwnedFd::from_raw_fd(ew) });
            if self.cfg.stdin {
                let (ir, iw) = sys::pipe().map_err(|e| format!("pipe: {e}"))?;
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
        let fail = |mut fds: [RawFd; 3], e: String| {
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
                return fail([out_r, err_r, in_w], "runtime create wrote no pid file".into());
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
                    Ok(s) => format!("runtime start {}: {s}: {}", self.cfg.id, runtime_error()),
                    Err(e) => format!("run {}: {e}", self.cfg.runtime.display()),
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
    fn run_create(&mut self, mut cmd: Command) -> Result<Option<RawFd>, String> {
        let mut child = cmd.spawn().map_err(|e| format!("run {}: {e}", self.cfg.runtime.display()))?;
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
                    Err(e) => return Err(format!("wait for runtime create: {e}")),
                }
            }
        } else {
            child.wait().map_err(|e| format!("wait for runtime create: {e}"))?
        };
        if !status.success() {
            if let Some(mut m) = master {
                sys::close(&mut m);
            }
            return Err(format!("runtime create {}: {status}: {}", self.cfg.id, runtime_error()));
        }
        if self.cfg.terminal && master.is_none() {
            self.delete_container();
            return Err(
                "runtime create sent no pty master on the console socket (is process.terminal true in config.json?)"
                    .into(),
            );
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

    fn delete_container(&self) {
        let _ = runtime_cmd(&self.cfg)
            .arg("delete")
            .arg("--force")
            .arg(&self.cfg.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
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

    fn read_stream(&mut self, stdout: bool) {
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

    fn accept_client(&mut self) {
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

    fn client_input(&mut self, i: usize) {
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

    fn close_stdin(&mut self) {
        if self.pty >= 0 {
            // A pty has no half-close: send the EOF character (VEOF, ^D) instead.
            // SAFETY: writes 1 byte from a static literal of 1 byte.
            unsafe { libc::write(self.pty, b"\x04".as_ptr().cast(), 1) };
        } else {
            sys::close(&mut self.stdin_fd);
        }
    }

    fn flush_stdin(&mut self) {
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

    fn signals(&mut self) {
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
    fn reap(&mut self) {
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
    fn advance(&mut self) {
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
        if let Err(e) = sys::write_atomic("exit", exit.as_bytes()) {
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
