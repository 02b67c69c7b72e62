//! `create`: the parent side. Validates the bundle, makes the state dir and cgroups,
//! clones the init directly (no re-exec of the runtime), drives the sync protocol,
//! and leaves the init waiting on exec.fifo.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::init::{self, InitArgs};
use super::spawn::{self, Born, Forked, SpawnPlan, Terminal};
use super::sync::{Channel, Msg};
use crate::cgroups::{self, Manager};
use crate::container::{proc_start_time, Phase, State, Store};
use crate::error::{Error, Result};
use crate::namespaces::{self, NsPlan};
use crate::spec::{self, LinuxDeviceCgroup, LinuxResources, Process, Spec};
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
            spawn::kill_reap(p);
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
        let msg = "missing (nothing to run)".into();
        return Err(spec::SpecError::Invalid { path: cfg, field: "process".into(), msg }.into());
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

/// The validated bundle and the plans made from it.
struct Loaded {
    spec: Spec,
    bundle: PathBuf,
    rootfs: PathBuf,
    process: Process,
    ns: NsPlan,
}

/// Create the container. `foreground_tty`: a `run` in the foreground with a terminal
/// and no console socket (the caller proxies the pty).
pub fn create(store: &Store, opts: &CreateOpts, foreground_tty: bool) -> Result<Created> {
    let b = check_bundle(opts, foreground_tty)?;
    store.create_dir(&opts.id)?;
    let mut guard = Cleanup { store, id: &opts.id, cgroup: None, pids: Vec::new(), armed: true, host_mounts: None };
    // Cgroups first (cheap mkdirs and writes), so a bad limit fails before any process exists.
    let (mgr, res) = make_cgroup(&b.spec, &opts.id, &mut guard)?;
    let mut state = initial_state(&b, &opts.id, mgr.clone());
    store.save(&state)?;
    let fifo = make_fifo(store, &opts.id)?;
    let mut term = Terminal::open(opts.console_socket.as_deref(), b.process.terminal)?;
    // The seccomp program, compiled once per profile and boot: the init finds it in memory.
    crate::security::seccomp_cache::warm_in(store.root(), b.spec.linux().seccomp.as_ref());
    let (pid, chan) = spawn_init(&b, opts, mgr.as_ref(), fifo.as_raw_fd(), &mut term)?;
    guard.pids.push(pid);

    let died = Died { cgroup: mgr.as_ref(), memory_limit: res.memory.as_ref().and_then(|m| m.limit) };
    let init_pid = await_init(&b, pid, &chan, &died, &mut guard)?;
    state.pid = init_pid;
    state.pid_start = proc_start_time(init_pid).map(|s| s.0).unwrap_or(0);
    store.save(&state)?;
    sync_until_ready(store, &b, &mut state, &chan, &died, &mut guard)?;

    state.phase = Phase::Created;
    store.save(&state)?;
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, init_pid)?;
    }
    let console_master = term.master()?;
    guard.armed = false;
    Ok(Created { pid: init_pid, state, console_master })
}

/// Everything that can be refused before anything is made: the options, the bundle,
/// the process's terminal and rlimits, the namespaces, the resources, the kernel.
fn check_bundle(opts: &CreateOpts, foreground_tty: bool) -> Result<Loaded> {
    super::finalize::check_preserved(opts.preserve_fds)?;
    crate::explain::set_container(&opts.id);
    let (spec, bundle, rootfs) = load_bundle(&opts.bundle)?;
    let process = spec.process.clone().expect("checked");
    if process.terminal && opts.console_socket.is_none() && !foreground_tty {
        return Err(Error::msg(
            "process.terminal is true: --console-socket is required (the pty master is sent there)",
        ));
    }
    crate::security::rlimits::validate(&process.rlimits)?;
    let ns = NsPlan::from_spec(&spec)?;
    if let Some(r) = &spec.linux().resources {
        crate::lifecycle::check_resources(r)?;
    }
    crate::rootfs::check_kernel()?;
    Ok(Loaded { spec, bundle, rootfs, process, ns })
}

/// Make the container's cgroup and apply its limits; returns it (none: rootless
/// without a delegated cgroup, or no cgroup filesystem in sight) and the resources.
fn make_cgroup(spec: &Spec, id: &str, guard: &mut Cleanup) -> Result<(Option<Manager>, LinuxResources)> {
    let linux = spec.linux();
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
    let cg_path = cgroups::resolve_path(linux.cgroups_path.as_deref().unwrap_or(""), id)?;
    let mut res = linux.resources.clone().unwrap_or_default();
    // Rootless, no device filter: loading one needs CAP_SYS_ADMIN on the host, and a
    // user namespace cannot create device nodes anyway (they are bound from the host).
    res.devices = if crate::rootless::enabled() { Vec::new() } else { device_rules(spec) };
    let Some(host) = &host else { return Ok((None, res)) };
    let mut mgr = Manager::new(host, &cg_path);
    // Rootless, a cgroup only where one is delegated to us; else none (runc's way).
    if crate::rootless::enabled() && !crate::rootless::cgroup_delegated(&mgr) {
        tracing::warn!("{}", crate::rootless::why_no_cgroup(&mgr));
        return Ok((None, res));
    }
    guard.cgroup = Some(mgr.clone());
    mgr.create()?;
    guard.cgroup = Some(mgr.clone());
    mgr.check_joinable()?;
    mgr.apply(&res)?;
    Ok((Some(mgr), res))
}

/// The state saved before the init exists ("creating", no pid yet).
fn initial_state(b: &Loaded, id: &str, cgroup: Option<Manager>) -> State {
    let linux = b.spec.linux();
    State {
        oci_version: b.spec.oci_version.clone(),
        id: id.to_string(),
        phase: Phase::Creating,
        pid: 0,
        pid_start: 0,
        bundle: b.bundle.clone(),
        rootfs: b.rootfs.clone(),
        created: crate::time::now_rfc3339(),
        annotations: b.spec.annotations.clone(),
        cgroup,
        process: Some(b.process.clone()),
        seccomp: linux.seccomp.clone(),
        hooks: b.spec.hooks.clone(),
        user_ns: b.spec.namespace("user").is_some(),
        host_mounts: None,
    }
}

/// Make exec.fifo and open it O_RDWR (the init blocks reading it until `start`).
fn make_fifo(store: &Store, id: &str) -> Result<OwnedFd> {
    let fifo_path = store.fifo(id);
    let cfifo = crate::sys::cstr(&fifo_path)?;
    // SAFETY: mkfifo on a valid C string.
    check(unsafe { libc::mkfifo(cfifo.as_ptr(), 0o600) }, || format!("mkfifo {}", fifo_path.display()))?;
    Ok(crate::sys::open(&fifo_path, libc::O_RDWR, 0)?)
}

/// Clone the init (see [`spawn::spawn`]); returns its pid and our end of the sync
/// channel. The child runs [`run_init`] and never returns here.
fn spawn_init(
    b: &Loaded,
    opts: &CreateOpts,
    mgr: Option<&Manager>,
    fifo: RawFd,
    term: &mut Terminal,
) -> Result<(i32, Channel)> {
    let (parent_chan, child_chan) = Channel::pair()?;
    spawn::set_non_dumpable()?;
    let ns = &b.ns;
    if let Some(j) = &ns.join_pid {
        namespaces::setns(j)?;
    }
    // Fast path (no new user namespace): the init places itself in its cgroups, by
    // writing "0" to each v1 `tasks` file (no global lock, no RCU wait) and by being
    // cloned straight into the cgroup2 directory (clone3 CLONE_INTO_CGROUP). A user
    // namespace's init has no rights on the host's cgroup files: the runtime moves it.
    let flags = if ns.new_pid && !ns.forks_init() { libc::CLONE_NEWPID } else { 0 };
    let plan = SpawnPlan::new("clone the container init", flags, mgr, !ns.new_user)?;
    if crate::explain::on() {
        crate::explain::set_rootfs(&b.rootfs);
    }
    tracing::debug!(
        "clone the container init (flags: {}{}), then unshare {}",
        if flags != 0 { "CLONE_NEWPID" } else { "none" },
        if plan.clones_into_cgroup() { "|CLONE_INTO_CGROUP" } else { "" },
        namespaces::describe(ns.unshare | if ns.new_user { libc::CLONE_NEWUSER } else { 0 })
    );
    match spawn::spawn(&plan, &parent_chan)? {
        Forked::Child(born) => {
            drop(parent_chan);
            run_init(b, opts, &child_chan, fifo, term.child_fd(), born)
        }
        Forked::Parent(pid) => {
            drop(child_chan);
            term.close_child();
            Ok((pid, parent_chan))
        }
    }
}

/// In the cloned child: become the container's init (never returns).
fn run_init(b: &Loaded, opts: &CreateOpts, chan: &Channel, fifo: RawFd, console: Option<RawFd>, born: Born) -> ! {
    if !opts.no_new_keyring {
        // SAFETY: keyctl(JOIN_SESSION_KEYRING, NULL) with integer/NULL arguments.
        unsafe { libc::syscall(libc::SYS_keyctl, 1, std::ptr::null::<libc::c_char>()) };
    }
    let hooks = b.spec.hooks.clone().unwrap_or_default();
    let want_hooks = !(hooks.prestart.is_empty()
        && hooks.create_runtime.is_empty()
        && hooks.create_container.is_empty()
        && hooks.start_container.is_empty());
    let args = InitArgs {
        spec: &b.spec,
        process: &b.process,
        rootfs: &b.rootfs,
        bundle: &b.bundle,
        ns: &b.ns,
        chan,
        fifo,
        console,
        preserve_fds: opts.preserve_fds,
        no_pivot: opts.no_pivot,
        want_hooks,
        self_join: born.self_join.as_deref(),
        clone_call: born.clone_call,
    };
    init::child_main(&args)
}

/// The init's first messages: with a new user namespace, write its id maps; when it
/// forks the real init (in its new pid namespace), that one's pid. Returns the init's pid.
fn await_init(b: &Loaded, pid: i32, chan: &Channel, died: &Died, guard: &mut Cleanup) -> Result<i32> {
    if b.ns.new_user {
        expect(chan.recv(), pid, "UserNsReady", |m| matches!(m, Msg::UserNsReady), died)?;
        let linux = b.spec.linux();
        super::idmap::write(pid, &linux.uid_mappings, &linux.gid_mappings)?;
        chan.send(&Msg::MapsWritten)?;
    }
    if !b.ns.forks_init() {
        return Ok(pid);
    }
    let init_pid = match expect(chan.recv(), pid, "InitPid", |m| matches!(m, Msg::InitPid(_)), died)? {
        Msg::InitPid(p) => p,
        _ => unreachable!(),
    };
    guard.pids.insert(0, init_pid);
    // SAFETY: reaping the intermediate child, which exits right after sending InitPid.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    guard.pids.retain(|&p| p != pid);
    Ok(init_pid)
}

/// The init asks for the runtime-namespace hooks (if any), hands over its seccomp
/// notification fd (if any), then reports Ready once nothing is left that can fail.
fn sync_until_ready(
    store: &Store,
    b: &Loaded,
    state: &mut State,
    chan: &Channel,
    died: &Died,
    guard: &mut Cleanup,
) -> Result<()> {
    let linux = b.spec.linux();
    let seccomp = linux.seccomp.as_ref();
    let hooks = b.spec.hooks.clone().unwrap_or_default();
    loop {
        let agent_state = || state.oci("creating");
        let got = super::seccomp_agent::recv(chan, state.pid, seccomp, &b.bundle, agent_state);
        let want = |m: &Msg| matches!(m, Msg::Ready | Msg::RunHooks | Msg::HostMount(_));
        match expect(got, state.pid, "Ready", want, died)? {
            Msg::Ready => return Ok(()),
            Msg::HostMount(id) => {
                // No mount namespace: the init mounted in ours. Saved at once, so a
                // `create` killed from here on leaves a state `delete` cleans up with.
                let m = state.host_mounts.get_or_insert_with(crate::rootfs::HostMounts::new);
                m.ids.push(id);
                guard.host_mounts = Some((b.rootfs.clone(), m.clone()));
                store.save(state)?;
                continue;
            }
            _ => {}
        }
        // Prestart hooks see "created" (runtime-spec, and what hooks such as NVIDIA's
        // check); createRuntime and createContainer see "creating", like runc's.
        let st = state.oci("creating");
        crate::hooks::run("prestart", &hooks.prestart, &state.oci("created"), Some(&b.bundle))?;
        crate::hooks::run("createRuntime", &hooks.create_runtime, &st, Some(&b.bundle))?;
        chan.send(&Msg::HooksDone(st.to_string()))?;
    }
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
            Err(Error::Init(SysError { hint, ..e }))
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
            Err(Error::InitDied { pid, how, oom: died.oom_note() })
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
