//! `create`: the parent side. Validates the bundle, makes the state dir and cgroups,
//! clones the init directly (no re-exec of the runtime), drives the sync protocol,
//! and leaves the init waiting on exec.fifo.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::init::{self, InitArgs};
use super::sync::{Channel, Msg};
use crate::cgroups::{self, Manager};
use crate::container::{proc_start_time, Phase, State, Store};
use crate::error::{Error, Result};
use crate::namespaces::{self, NsPlan};
use crate::spec::{self, LinuxDeviceCgroup, Spec};
use crate::sys::{check, SysError};

/// Options of `create` (and `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
}

/// A created container, as the caller needs it.
pub struct Created {
    pub pid: i32,
    pub state: State,
    /// For a foreground `run` with a terminal: the pty master.
    pub console_master: Option<OwnedFd>,
}

/// Undo a failed create: kill the init, remove the cgroups and the state dir.
struct Cleanup<'a> {
    store: &'a Store,
    id: &'a str,
    cgroup: Option<Manager>,
    pids: Vec<i32>,
    armed: bool,
    /// The rootfs and the mounts the init left at it, for a container sharing our
    /// mount namespace.
    host_mounts: Option<(PathBuf, crate::rootfs::HostMounts)>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for &p in &self.pids {
            // SAFETY: signalling and reaping our own children.
            unsafe {
                libc::kill(p, libc::SIGKILL);
                libc::waitpid(p, std::ptr::null_mut(), 0);
            }
        }
        if let Some((rootfs, m)) = &self.host_mounts {
            m.release(rootfs);
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                tracing::warn!("cleanup after failed create: {e}");
            }
        }
        let _ = self.store.remove(self.id);
    }
}

/// Load and validate `<bundle>/config.json`; returns (spec, absolute bundle, rootfs).
pub fn load_bundle(bundle: &Path) -> Result<(Spec, PathBuf, PathBuf)> {
    let bundle = std::fs::canonicalize(bundle).map_err(|e| SysError::io(format!("bundle {}", bundle.display()), &e))?;
    let cfg = bundle.join("config.json");
    let spec = spec::load(&cfg)?;
    spec::validate(&spec, &cfg)?;
    if spec.process.is_none() {
        return Err(Error::msg(format!("{}: process: missing (nothing to run)", cfg.display())));
    }
    let root = &spec.root.as_ref().expect("validated").path;
    let rootfs = bundle.join(root);
    let rootfs = std::fs::canonicalize(&rootfs)
        .map_err(|e| SysError::io(format!("rootfs {} (root.path in {})", rootfs.display(), cfg.display()), &e))?;
    if !rootfs.is_dir() {
        return Err(SysError::from_errno(format!("rootfs {}", rootfs.display()), libc::ENOTDIR).into());
    }
    Ok((spec, bundle, rootfs))
}

/// The device rules a container's cgroup gets.
fn device_rules(spec: &Spec) -> Vec<LinuxDeviceCgroup> {
    // runc's order: the config's rules, then the runtime's defaults (minus those whose
    // node `linux.devices` lists itself). `linux.devices` creates nodes only: their
    // access is what `linux.resources.devices` says, so a deny-all still denies them.
    let linux = spec.linux();
    let mut rules = linux.resources.as_ref().map(|r| r.devices.clone()).unwrap_or_default();
    let listed: Vec<&str> = linux.devices.iter().map(|d| d.path.as_str()).collect();
    rules.extend(cgroups::default_device_rules(&listed));
    rules
}

/// Create the container. `foreground_tty`: a `run` in the foreground with a terminal
/// and no console socket (the caller proxies the pty).
pub fn create(store: &Store, opts: &CreateOpts, foreground_tty: bool) -> Result<Created> {
    super::finalize::check_preserved(opts.preserve_fds)?;
    crate::explain::set_container(&opts.id);
    let (spec, bundle, rootfs) = load_bundle(&opts.bundle)?;
    let process = spec.process.clone().expect("checked");
    if process.terminal && opts.console_socket.is_none() && !foreground_tty {
        return Err(Error::msg(
            "process.terminal is true: --console-socket is required (the pty master is sent there)",
        ));
    }
    crate::security::rlimits::validate(&process.rlimits).map_err(|e| Error::msg(e.to_string()))?;
    let ns = NsPlan::from_spec(&spec)?;
    if let Some(r) = &spec.linux().resources {
        crate::lifecycle::check_resources(r)?;
    }

    crate::rootfs::check_kernel()?;

    store.create_dir(&opts.id)?;
    let mut guard = Cleanup { store, id: &opts.id, cgroup: None, pids: Vec::new(), armed: true, host_mounts: None };
    let linux = spec.linux();

    // Cgroups first (cheap mkdirs and writes), so a bad limit fails before any process exists.
    let host = match cgroups::detect() {
        Ok(h) => Some(h),
        // Rootless, no cgroup filesystem in sight (a private mount namespace without
        // one): nothing could be delegated anyway.
        Err(e) if crate::rootless::enabled() => {
            tracing::warn!("rootless: {e}; resource limits are skipped");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let cg_path = cgroups::resolve_path(linux.cgroups_path.as_deref().unwrap_or(""), &opts.id)?;
    let mut res = linux.resources.clone().unwrap_or_default();
    // Rootless, no device filter: loading one needs CAP_SYS_ADMIN on the host, and a
    // user namespace cannot create device nodes anyway (they are bound from the host).
    res.devices = if crate::rootless::enabled() { Vec::new() } else { device_rules(&spec) };
    // Rootless, a cgroup only where one is delegated to us; else none (runc's way).
    let mgr = if let Some(host) = &host {
        let mut mgr = Manager::new(host, &cg_path);
        if crate::rootless::enabled() && !crate::rootless::cgroup_delegated(&mgr) {
            tracing::warn!("{}", crate::rootless::why_no_cgroup(&mgr));
            None
        } else {
            guard.cgroup = Some(mgr.clone());
            mgr.create()?;
            guard.cgroup = Some(mgr.clone());
            mgr.check_joinable()?;
            mgr.apply(&res)?;
            Some(mgr)
        }
    } else {
        None
    };

    let mut state = State {
        oci_version: spec.oci_version.clone(),
        id: opts.id.clone(),
        phase: Phase::Creating,
        pid: 0,
        pid_start: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: crate::time::now_rfc3339(),
        annotations: spec.annotations.clone(),
        cgroup: mgr.clone(),
        process: Some(process.clone()),
        seccomp: linux.seccomp.clone(),
        hooks: spec.hooks.clone(),
        user_ns: spec.namespace("user").is_some(),
        host_mounts: None,
    };
    store.save(&state)?;

    let fifo_path = store.fifo(&opts.id);
    let cfifo = crate::sys::cstr(&fifo_path)?;
    // SAFETY: mkfifo on a valid C string.
    check(unsafe { libc::mkfifo(cfifo.as_ptr(), 0o600) }, || format!("mkfifo {}", fifo_path.display()))?;
    let fifo = crate::sys::open(&fifo_path, libc::O_RDWR, 0)?;

    let mut tty_pair: Option<(OwnedFd, OwnedFd)> = None;
    let console: Option<OwnedFd> = match &opts.console_socket {
        Some(p) => Some(super::console::connect(p)?),
        None if process.terminal => {
            let (a, b) =
                std::os::unix::net::UnixStream::pair().map_err(|e| SysError::io("socketpair for the terminal", &e))?;
            let (a, b) = (OwnedFd::from(a), OwnedFd::from(b));
            let dup = a.try_clone().map_err(|e| SysError::io("dup", &e))?;
            tty_pair = Some((dup, b));
            Some(a)
        }
        None => None,
    };

    // The seccomp program, compiled once per profile and boot: the init finds it in memory.
    crate::security::seccomp_cache::warm_in(store.root(), linux.seccomp.as_ref());
    let (parent_chan, child_chan) = Channel::pair()?;
    // Non-dumpable before the init is born, possibly into a joined pid namespace
    // where the container's processes see it (CVE-2019-5736; it inherits this).
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }, || "prctl(PR_SET_DUMPABLE, 0)".into())?;
    if let Some(j) = &ns.join_pid {
        namespaces::setns(j)?;
    }
    let hooks = spec.hooks.clone().unwrap_or_default();
    let want_hooks = !(hooks.prestart.is_empty()
        && hooks.create_runtime.is_empty()
        && hooks.create_container.is_empty()
        && hooks.start_container.is_empty());
    // Fast path (no new user namespace): the init places itself in its cgroups, by
    // writing "0" to each v1 `tasks` file (no global lock, no RCU wait) and by being
    // cloned straight into the cgroup2 directory (clone3 CLONE_INTO_CGROUP). A user
    // namespace's init has no rights on the host's cgroup files: the runtime moves it.
    let mut self_join: Vec<(OwnedFd, PathBuf)> = Vec::new();
    let mut v2_dir: Option<OwnedFd> = None;
    if let (false, Some(mgr)) = (ns.new_user, &mgr) {
        let (tasks, v2) = mgr.self_join_targets();
        for t in tasks {
            self_join.push((crate::sys::open(&t, libc::O_WRONLY, 0)?, t));
        }
        if let Some(d) = v2 {
            v2_dir = Some(crate::sys::open(&d, libc::O_RDONLY | libc::O_DIRECTORY, 0)?);
        }
    }
    let join_fds: Vec<(RawFd, &Path)> = self_join.iter().map(|(f, p)| (f.as_raw_fd(), p.as_path())).collect();
    let mut args = InitArgs {
        spec: &spec,
        process: &process,
        rootfs: &rootfs,
        bundle: &bundle,
        ns: &ns,
        chan: &child_chan,
        fifo: fifo.as_raw_fd(),
        console: console.as_ref().map(|c| c.as_raw_fd()),
        preserve_fds: opts.preserve_fds,
        no_pivot: opts.no_pivot,
        want_hooks,
        self_join: if ns.new_user { None } else { Some(&join_fds) },
        clone_call: String::new(),
    };
    let ns_flags = if ns.new_pid && !ns.forks_init() { libc::CLONE_NEWPID } else { 0 };
    if crate::explain::on() {
        crate::explain::set_rootfs(&rootfs);
        let f = crate::explain::clone_flags(ns_flags).0;
        let f = if f.is_empty() { String::new() } else { format!("{f}|") };
        args.clone_call = match &v2_dir {
            Some(_) => format!("clone3({{flags: {f}CLONE_INTO_CGROUP, exit_signal: SIGCHLD, cgroup: fd of {}}})", {
                mgr.as_ref().and_then(|m| m.self_join_targets().1).map(|p| p.display().to_string()).unwrap_or_default()
            }),
            None => format!("clone({f}SIGCHLD)"),
        };
    }
    tracing::debug!(
        "clone the container init (flags: {}{}), then unshare {}",
        if ns_flags != 0 { "CLONE_NEWPID" } else { "none" },
        if v2_dir.is_some() { "|CLONE_INTO_CGROUP" } else { "" },
        namespaces::describe(ns.unshare | if ns.new_user { libc::CLONE_NEWUSER } else { 0 })
    );
    let mut pid = match &v2_dir {
        Some(d) => clone3_into(ns_flags, d.as_raw_fd()),
        None => clone_raw(ns_flags),
    };
    if pid < 0 && v2_dir.is_some() && clone3_unsupported() {
        // clone3 or CLONE_INTO_CGROUP unsupported here: the runtime moves the init.
        tracing::debug!("{}; falling back to clone + cgroup.procs", SysError::last("clone3(CLONE_INTO_CGROUP)"));
        args.self_join = None;
        if crate::explain::on() {
            let f = crate::explain::clone_flags(ns_flags).0;
            args.clone_call = format!("clone({}SIGCHLD) (clone3 with CLONE_INTO_CGROUP: refused here)", {
                if f.is_empty() {
                    String::new()
                } else {
                    format!("{f}|")
                }
            });
        }
        pid = clone_raw(ns_flags);
    }
    if pid == 0 {
        drop(parent_chan);
        if !opts.no_new_keyring {
            // SAFETY: keyctl(JOIN_SESSION_KEYRING, NULL) with integer/NULL arguments.
            unsafe { libc::syscall(libc::SYS_keyctl, 1, std::ptr::null::<libc::c_char>()) };
        }
        init::child_main(&args);
    }
    let parent_moves = args.self_join.is_none();
    let pid = check(pid, || "clone the container init".into()).map_err(|e| {
        if e.errno == libc::EAGAIN && v2_dir.is_some() && args.self_join.is_some() {
            e.hint("the container's cgroup refused a new process: its pids.max is reached")
        } else {
            e
        }
    })?;
    drop(child_chan);
    drop(console);
    drop(self_join);
    guard.pids.push(pid);

    if parent_moves {
        if let Some(mgr) = &mgr {
            tracing::debug!(
                "move pid {pid} into its cgroups ({})",
                mgr.paths().iter().map(|(c, p)| format!("{c}:{}", p.display())).collect::<Vec<_>>().join(" ")
            );
            mgr.add_pid(pid)?;
        }
        if let Err(e) = parent_chan.send(&Msg::CgroupJoined) {
            // The init already died: its own error message is waiting in the channel.
            tracing::debug!("{e}");
        }
    }

    let mut init_pid = pid;
    let died = Died { cgroup: mgr.as_ref(), memory_limit: res.memory.as_ref().and_then(|m| m.limit) };
    if ns.new_user {
        expect(parent_chan.recv(), pid, "UserNsReady", |m| matches!(m, Msg::UserNsReady), &died)?;
        super::idmap::write(pid, &linux.uid_mappings, &linux.gid_mappings)?;
        parent_chan.send(&Msg::MapsWritten)?;
    }
    if ns.forks_init() {
        match expect(parent_chan.recv(), pid, "InitPid", |m| matches!(m, Msg::InitPid(_)), &died)? {
            Msg::InitPid(p) => init_pid = p,
            _ => unreachable!(),
        }
        guard.pids.insert(0, init_pid);
        // SAFETY: reaping the intermediate child, which exits right after sending InitPid.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        guard.pids.retain(|&p| p != pid);
    }
    state.pid = init_pid;
    state.pid_start = proc_start_time(init_pid).map(|s| s.0).unwrap_or(0);
    store.save(&state)?;

    // The init asks for the runtime-namespace hooks (if any), hands over its seccomp
    // notification fd (if any), then reports Ready once nothing is left that can fail.
    loop {
        let agent_state = || state.oci("creating");
        let got = super::seccomp_agent::recv(&parent_chan, init_pid, linux.seccomp.as_ref(), &bundle, agent_state);
        let want = |m: &Msg| matches!(m, Msg::Ready | Msg::RunHooks | Msg::HostMount(_));
        match expect(got, init_pid, "Ready", want, &died)? {
            Msg::Ready => break,
            Msg::HostMount(id) => {
                // No mount namespace: the init mounted in ours. Saved at once, so a
                // `create` killed from here on leaves a state `delete` cleans up with.
                let m = state.host_mounts.get_or_insert_with(crate::rootfs::HostMounts::new);
                m.ids.push(id);
                guard.host_mounts = Some((rootfs.clone(), m.clone()));
                store.save(&state)?;
                continue;
            }
            _ => {}
        }
        // Prestart hooks see "created" (runtime-spec, and what hooks such as NVIDIA's
        // check); createRuntime and createContainer see "creating", like runc's.
        let st = state.oci("creating");
        crate::hooks::run("prestart", &hooks.prestart, &state.oci("created"), Some(&bundle))?;
        crate::hooks::run("createRuntime", &hooks.create_runtime, &st, Some(&bundle))?;
        parent_chan.send(&Msg::HooksDone(st.to_string()))?;
    }

    state.phase = Phase::Created;
    store.save(&state)?;
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, init_pid)?;
    }
    let console_master = match tty_pair {
        Some((_, ours)) => Some(super::console::recv_fd(ours.as_raw_fd())?),
        None => None,
    };
    guard.armed = false;
    Ok(Created { pid: init_pid, state, console_master })
}

/// fork-like clone with namespace flags (no CLONE_VM: the child gets a copy of our
/// memory and may run Rust code; the runtime is single-threaded).
pub(crate) fn clone_raw(flags: libc::c_int) -> i32 {
    // SAFETY: see above; returns 0 in the child, the pid or -1 in the parent.
    unsafe { libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0, 0, 0, 0) as i32 }
}

/// After a failed clone3(CLONE_INTO_CGROUP): whether the kernel lacks the call or the
/// flag (then a plain clone and a move by pid do the same job). Any other error is the
/// cgroup's verdict and stands: EAGAIN from `pids.max` must not turn into a move,
/// which the pids controller does not limit.
pub(crate) fn clone3_unsupported() -> bool {
    matches!(
        std::io::Error::last_os_error().raw_os_error(),
        // EPERM: a seccomp profile older than clone3 (it cannot be pids.max's verdict).
        Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EOPNOTSUPP | libc::EPERM)
    )
}

/// `struct clone_args` of clone3(2), up to the `cgroup` field.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork-like clone3 that creates the child directly in the cgroup2 directory `cg`.
pub(crate) fn clone3_into(flags: libc::c_int, cg: RawFd) -> i32 {
    let args = CloneArgs {
        flags: flags as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cg as u64,
        ..Default::default()
    };
    // SAFETY: args is valid for the call and its size is passed; stack 0 means the
    // child continues on a copy of our stack, exactly like fork (no CLONE_VM).
    unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) as i32 }
}

/// What explains an init's death during create.
struct Died<'a> {
    cgroup: Option<&'a Manager>,
    /// `linux.resources.memory.limit`, to name it when the OOM killer struck.
    memory_limit: Option<i64>,
}

impl Died<'_> {
    /// Why the init failed, when its memory cgroup recorded an OOM kill (read only on
    /// this error path): the limit was too small for it.
    fn oom_note(&self) -> Option<String> {
        if self.cgroup.is_none_or(|c| c.oom_kills() == 0) {
            return None;
        }
        let limit = self.memory_limit.map(|l| format!(" ({l} bytes, linux.resources.memory.limit)"));
        Some(format!(
            "the container's memory limit{} was hit (the kernel's OOM killer ran in its cgroup); raise the limit",
            limit.unwrap_or_default()
        ))
    }
}

/// Check the next message, turning `Error` and EOF into errors.
fn expect(got: SysResultMsg, pid: i32, what: &str, want: impl Fn(&Msg) -> bool, died: &Died) -> Result<Msg> {
    match got? {
        Some(Msg::Error(e)) => {
            let hint = died.oom_note().or(e.hint);
            Err(Error::Sys(SysError { step: format!("container init: {}", e.step), hint, ..e }))
        }
        Some(m) if want(&m) => Ok(m),
        Some(m) => Err(Error::msg(format!("sync with the container init: expected {what}, got {m:?}"))),
        None => {
            let mut status = 0;
            // SAFETY: reaping our own child; status is a valid out-pointer. EOF before
            // `Ready` means it closed the channel by exiting (it never execs before), so
            // the blocking wait is short.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            let how = if r == pid { describe_status(status) } else { "closed the sync channel".into() };
            let mut msg = format!("container init (pid {pid}) {how} before it finished setting up");
            if let Some(note) = died.oom_note() {
                msg = format!("{msg}: {note}");
            }
            Err(Error::msg(msg))
        }
    }
}

type SysResultMsg = crate::sys::SysResult<Option<Msg>>;

/// "exited with status 1" / "was killed by signal 9".
pub fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("changed state ({status:#x})")
    }
}

/// Write the pid file atomically (temp file, rename), as runc does, with runc's mode:
/// 0666 minus the umask (0644 usually; a pid is no secret). Not fsync'd: a pid means
/// nothing after a reboot ([`capsa_fsutil::Durability::Volatile`]).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    capsa_fsutil::write_atomic(path, pid.to_string().as_bytes(), 0o666, capsa_fsutil::Durability::Volatile)
        .map_err(|e| SysError::io(format!("write pid file: {} {}", e.step, e.path.display()), &e.source))?;
    Ok(())
}

/// The raw fd of an optional owned fd.
pub fn raw(fd: &Option<OwnedFd>) -> Option<RawFd> {
    fd.as_ref().map(|f| f.as_raw_fd())
}
