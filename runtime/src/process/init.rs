//! The container's init, from clone to execve. Runs in the child: every error before
//! `Ready` travels to the parent over the sync channel; after it, to stderr. Every
//! step that can fail comes before `Ready` (runc's standard_init order), so it fails
//! `create`; after `start` only the startContainer hooks and execve remain.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::Path;

use super::finalize::{self, Prepared};
use super::spawn;
use super::sync::{Channel, ChildError, Msg};
use crate::namespaces::{self, NsPlan};
use crate::rootfs::{self, RootfsConfig, Stage};
use crate::spec::{Process, Spec};
use crate::sys::{check, SysError, SysResult};

/// What the init needs; built by the parent before clone (the child sees a copy).
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub process: &'a Process,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub ns: &'a NsPlan,
    pub chan: &'a Channel,
    /// exec.fifo opened O_RDWR: the init blocks reading it until `start` writes.
    pub fifo: RawFd,
    /// Connected console socket, when `process.terminal`.
    pub console: Option<RawFd>,
    pub preserve_fds: i32,
    pub no_pivot: bool,
    /// Hooks the init needs the parent for (prestart/createRuntime) or the state for.
    pub want_hooks: bool,
    /// v1 `tasks` files (opened by the parent) the init writes "0" to, placing
    /// itself in its cgroups; `None` when the parent moves it.
    pub self_join: Option<&'a [(RawFd, &'a Path)]>,
    /// The clone call that made this process, for `--explain` (empty when it is off).
    pub clone_call: String,
}

/// `--explain`: this process was just born (cloned, or forked into the new pid
/// namespace): its host pid (the host's /proc is still mounted here) and its own.
fn explain_birth(call: &str, new_pid: bool) {
    crate::explain::step(crate::explain::Kind::Namespace, || {
        let host = std::fs::read_link("/proc/self").map(|p| p.display().to_string()).unwrap_or_default();
        // SAFETY: getpid has no arguments and cannot fail.
        let inside = unsafe { libc::getpid() };
        let s = if new_pid {
            crate::explain::Step::new(
                format!(
                    "New pid namespace ({}): host pid {host} is PID {inside} inside, the container's init",
                    crate::explain::ns_meaning("pid")
                ),
                format!("{call} = {host}"),
            )
            .field("created", vec!["pid"])
        } else {
            crate::explain::Step::new(format!("The container's init is host pid {host}"), format!("{call} = {host}"))
        };
        s.field("host_pid", host.parse::<i64>().unwrap_or(0)).field("pid", inside)
    });
}

struct Sync<'a> {
    chan: &'a Channel,
    cgroup_joined: bool,
    cgroupns_done: bool,
    new_cgroupns: bool,
}

impl Sync<'_> {
    /// Wait for a message accepted by `want`, noting `CgroupJoined` whenever it passes.
    fn wait(&mut self, what: &str, want: impl Fn(&Msg) -> bool) -> SysResult<Msg> {
        loop {
            match self.chan.recv()? {
                None => return Err(SysError::msg(format!("wait for {what}"), "the runtime went away")),
                Some(Msg::CgroupJoined) => {
                    self.cgroup_joined = true;
                    if want(&Msg::CgroupJoined) {
                        return Ok(Msg::CgroupJoined);
                    }
                }
                Some(m) if want(&m) => return Ok(m),
                Some(m) => return Err(SysError::msg(format!("wait for {what}"), format!("unexpected message {m:?}"))),
            }
        }
    }

    /// Be in the container's cgroups, then enter a new cgroup namespace rooted there.
    fn ensure_cgroup(&mut self) -> SysResult<()> {
        if !self.cgroup_joined {
            self.wait("the runtime to place us in our cgroup", |m| matches!(m, Msg::CgroupJoined))?;
        }
        if self.new_cgroupns && !self.cgroupns_done {
            namespaces::unshare(libc::CLONE_NEWCGROUP)?;
            self.cgroupns_done = true;
        }
        Ok(())
    }
}

/// Entry point of the cloned child. Never returns.
pub fn child_main(a: &InitArgs) -> ! {
    let (prep, exe, hook_state) = match setup(a) {
        Ok(v) => v,
        Err(e) => {
            // write(2): the seccomp filter may already be loaded (see Channel::write).
            let _ = a.chan.write(&Msg::Error(e.into()));
            // SAFETY: _exit is async-signal-safe and ends this process without running
            // the parent's atexit handlers or destructors (which belong to the parent).
            unsafe { libc::_exit(1) }
        }
    };
    // SAFETY: prctl with integer arguments: from here the init outlives `create`.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
    if a.chan.write(&Msg::Ready).is_err() {
        // SAFETY: see above; the runtime is gone, nobody will start us.
        unsafe { libc::_exit(1) }
    }
    // From here errors go to the container's stderr: `create` has returned.
    let err = match wait_fifo(a.fifo).and_then(|()| start_container_hooks(a, hook_state.as_deref())) {
        Ok(()) => finalize::exec(a.process, &prep, &exe, a.preserve_fds),
        Err(e) => e,
    };
    eprintln!("capsa: container init: {err}");
    let status = if err.step.starts_with("execve") { finalize::exec_failure_status(&err) } else { 127 };
    // SAFETY: see above.
    unsafe { libc::_exit(status) }
}

/// Everything before `Ready`: namespaces, rootfs (with the runtime's hooks), terminal,
/// rlimits, then [`finalize::finalize`]. Returns what exec needs and the hooks' state.
fn setup(a: &InitArgs) -> Result<(Prepared, CString, Option<String>), ChildError> {
    finalize::reset_signals();
    // SAFETY: prctl with integer arguments. Die if the runtime dies mid-create, and be
    // non-dumpable so the container cannot open /proc/<us>/exe (the runtime binary,
    // CVE-2019-5736) before we exec.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::umask(0);
    }
    if !a.ns.forks_init() {
        explain_birth(&a.clone_call, a.ns.new_pid);
    } else {
        crate::explain::step(crate::explain::Kind::Namespace, || {
            let host = std::fs::read_link("/proc/self").map(|p| p.display().to_string()).unwrap_or_default();
            crate::explain::Step::new(
                format!(
                    "A first child, host pid {host}: it enters its user namespace (a new one: the runtime \
                     writes its id maps), then the other namespaces, then forks the init"
                ),
                format!("{} = {host}", a.clone_call),
            )
        });
    }
    let mut sync = Sync { chan: a.chan, cgroup_joined: false, cgroupns_done: false, new_cgroupns: a.ns.new_cgroup };
    // Before any user namespace: a helper that opens bind sources as the host's root.
    let mut opener = rootfs::sources::spawn(a.spec, a.bundle)?;
    if let Some(files) = a.self_join {
        spawn::join_cgroup(files)?;
        sync.cgroup_joined = true;
    }
    // Before any namespace is joined or made: a lowering needs CAP_SYS_RESOURCE in
    // the host's user namespace (runc writes it at the same point).
    spawn::set_oom_score_adj(a.process.oom_score_adj)?;
    let sources = enter_namespaces(a, &mut sync, &mut opener)?;
    if a.ns.new_net {
        namespaces::loopback_up()?;
        crate::explain::step(crate::explain::Kind::Network, || {
            crate::explain::Step::new(
                "bring up lo in the new network namespace (127.0.0.1 works; nothing else is there)",
                "ioctl(socket(AF_INET), SIOCSIFFLAGS, {ifr_name: \"lo\", IFF_UP})",
            )
        });
    }
    set_names(a.spec)?;
    rootfs::apply_sysctls(a.spec)?;
    let hook_state = setup_rootfs(a, &mut sync, sources)?;

    // SAFETY: setsid takes no arguments; the init leads a new session.
    unsafe { libc::setsid() };
    if a.process.terminal {
        spawn::attach_terminal(a.console, a.process, true)?;
    }
    sync.ensure_cgroup()?;
    spawn::set_rlimits(a.process)?;
    let seccomp = a.spec.linux.as_ref().and_then(|l| l.seccomp.as_ref());
    let prep: Prepared = finalize::prepare(a.process, seccomp)?;
    let exe = finalize::finalize(a.process, &prep, a.preserve_fds, a.chan)?;
    Ok((prep, exe, hook_state))
}

/// Join the namespaces to join, make the new ones (the user namespace first, its id
/// maps written by the runtime), forking the real init when it needs a new pid
/// namespace owned by its user namespace; returns the bind sources opened before.
fn enter_namespaces(
    a: &InitArgs,
    sync: &mut Sync,
    opener: &mut Option<rootfs::sources::Opener>,
) -> SysResult<Option<rootfs::sources::Sources>> {
    let sources;
    for j in &a.ns.joins {
        namespaces::setns(j)?;
        if j.typ == "user" {
            // Our host uid means nothing in the joined namespace: become its root,
            // or files we create would have an unmapped owner (EOVERFLOW).
            become_root("the joined user namespace")?;
        }
    }
    if a.ns.new_user {
        namespaces::unshare(libc::CLONE_NEWUSER)?;
        // Rootless, the runtime writes our maps as an unprivileged user: /proc/<us>
        // must be ours for that, i.e. dumpable, for as long as it takes (no container
        // code runs in between; runc's nsexec does the same).
        let rootless = crate::rootless::enabled();
        if rootless {
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
        }
        a.chan.send(&Msg::UserNsReady)?;
        sync.wait("the runtime to write our uid/gid maps", |m| matches!(m, Msg::MapsWritten))?;
        if rootless {
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        }
        become_root("the new user namespace")?;
    }
    if a.ns.forks_init() {
        // The pid namespace must be owned by the (new or joined) user namespace, else
        // the container cannot mount its /proc: unshare it now and fork the real init.
        sync.ensure_cgroup()?;
        let flags = a.ns.unshare | if a.ns.new_pid { libc::CLONE_NEWPID } else { 0 };
        namespaces::unshare(flags)?;
        sources = rootfs::sources::open(opener)?;
        // SAFETY: raw clone without CLONE_VM behaves like fork; the process is
        // single-threaded, so the child may keep running Rust code.
        let pid = unsafe {
            libc::syscall(libc::SYS_clone, (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong, 0, 0, 0, 0)
        };
        let pid = check(pid as i32, || "fork the container init in its new pid namespace".into())?;
        if pid > 0 {
            a.chan.send(&Msg::InitPid(pid))?;
            // SAFETY: see child_main.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: prctl with integer arguments (the death signal is not inherited).
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
        explain_birth("clone(CLONE_PARENT|SIGCHLD) after unshare(CLONE_NEWPID)", a.ns.new_pid);
    } else {
        namespaces::unshare(a.ns.unshare)?;
        sources = rootfs::sources::open(opener)?;
    }
    Ok(sources)
}

/// The rootfs, with the runtime's hooks (prestart, createRuntime) and the
/// createContainer hooks before pivot_root; returns the state for the init's own hooks.
fn setup_rootfs(a: &InitArgs, sync: &mut Sync, sources: Option<rootfs::sources::Sources>) -> SysResult<Option<String>> {
    let mut hook_state = None;
    let cfg = RootfsConfig {
        spec: a.spec,
        rootfs: a.rootfs,
        bundle: a.bundle,
        // Device nodes are bound from the host, not made, in any user namespace: the
        // container's own, a joined one, or the one capsa runs in (podman rootless).
        userns: a.ns.new_user || a.ns.joins_user() || crate::rootless::in_user_namespace(),
        cgroupns: a.ns.new_cgroup,
        no_pivot: a.no_pivot,
        cwd: &a.process.cwd,
        sources,
    };
    rootfs::setup(cfg, &mut |stage| match stage {
        Stage::BeforeCgroupMount => sync.ensure_cgroup(),
        Stage::HostMount(id) => a.chan.send(&Msg::HostMount(id)),
        Stage::BeforePivot => {
            if a.want_hooks {
                a.chan.send(&Msg::RunHooks)?;
                let Msg::HooksDone(state) =
                    sync.wait("prestart/createRuntime hooks", |m| matches!(m, Msg::HooksDone(_)))?
                else {
                    unreachable!()
                };
                if let Some(h) = &a.spec.hooks {
                    let v: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
                    // runc: in the container's namespaces, before pivot_root, the
                    // rootfs as cwd.
                    crate::hooks::run("createContainer", &h.create_container, &v, Some(a.rootfs))?;
                }
                hook_state = Some(state);
            }
            Ok(())
        }
    })?;

    Ok(hook_state)
}

/// startContainer hooks: after `start`, in the container, as the process's user,
/// with its cwd (runc), state "created".
fn start_container_hooks(a: &InitArgs, state: Option<&str>) -> SysResult<()> {
    if let (Some(h), Some(state)) = (&a.spec.hooks, state) {
        let mut v: serde_json::Value = serde_json::from_str(state).unwrap_or_default();
        v["status"] = "created".into();
        crate::hooks::run("startContainer", &h.start_container, &v, None)?;
    }
    Ok(())
}

fn become_root(ns: &str) -> SysResult<()> {
    // SAFETY: credential syscalls with integer arguments.
    unsafe {
        check(libc::setresgid(0, 0, 0), || format!("setresgid(0) in {ns}"))?;
        check(libc::setresuid(0, 0, 0), || format!("setresuid(0) in {ns}"))?;
    }
    Ok(())
}

fn set_names(spec: &Spec) -> SysResult<()> {
    if let Some(h) = spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        // SAFETY: pointer and length of a live string.
        check(unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) }, || {
            format!("sethostname({h:?}) in the new uts namespace")
        })?;
        crate::explain::step(crate::explain::Kind::Name, || {
            crate::explain::Step::new(
                format!("hostname {h:?}: `hostname` inside says this; the host's is unchanged (uts namespace)"),
                format!("sethostname({h:?}, {})", h.len()),
            )
            .field("hostname", h)
        });
    }
    if let Some(d) = spec.domainname.as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: as above.
        check(unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) }, || format!("setdomainname({d:?})"))?;
        crate::explain::step(crate::explain::Kind::Name, || {
            crate::explain::Step::new(format!("domain name {d:?}"), format!("setdomainname({d:?}, {})", d.len()))
        });
    }
    Ok(())
}

/// Block until `start` writes to exec.fifo.
fn wait_fifo(fd: RawFd) -> SysResult<()> {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: reading into a 1-byte local buffer.
        let r = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if r == 1 {
            return Ok(());
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return Err(SysError::last("wait on exec.fifo for `start`"));
    }
}
