//! One spawn path for the container's init (`create`) and for `exec`'d processes.
//!
//! The parent's side: the terminal ([`Terminal`]), the cgroup-join plan and the clone
//! itself ([`SpawnPlan`], [`spawn`]): clone3 straight into the cgroup2 directory, the
//! child writing "0" to each v1 `tasks` file, or, when it cannot place itself (a new
//! user namespace has no rights on the host's cgroup files, or the kernel refuses
//! clone3), a plain clone and a move by pid. The child's first steps:
//! [`join_cgroup`], [`set_oom_score_adj`], [`attach_terminal`], [`set_rlimits`].
//!
//! One error policy, runc's: each of these steps fails the spawn (`create` or `exec`)
//! when it fails. runc writes oom_score_adj in its nsexec bootstrap for the init and
//! for `exec`'s setns process alike, and bails ("failed to update
//! /proc/self/oom_score_adj") when the write fails; it does so before joining any
//! namespace, where a lowering still has the runtime's CAP_SYS_RESOURCE.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::sync::{Channel, Msg};
use crate::cgroups::Manager;
use crate::error::Result;
use crate::spec::Process;
use crate::sys::{check, SysError, SysResult};

/// The parent's side of the process's terminal.
pub(crate) struct Terminal {
    /// What the child sends the pty master over: the `--console-socket`, or one end
    /// of our socketpair. `None`: no terminal.
    child: Option<OwnedFd>,
    /// The other end of our socketpair, when we receive the master ourselves (a
    /// terminal in the foreground, without a console socket).
    ours: Option<OwnedFd>,
}

impl Terminal {
    /// Connect to `console_socket` when given, else make a socketpair when the
    /// process wants a terminal, else nothing.
    pub(crate) fn open(console_socket: Option<&Path>, terminal: bool) -> Result<Terminal> {
        Ok(match console_socket {
            Some(p) => Terminal { child: Some(super::console::connect(p)?), ours: None },
            None if terminal => {
                let (a, b) = std::os::unix::net::UnixStream::pair()
                    .map_err(|e| SysError::io("socketpair for the terminal", &e))?;
                Terminal { child: Some(OwnedFd::from(a)), ours: Some(OwnedFd::from(b)) }
            }
            None => Terminal { child: None, ours: None },
        })
    }

    /// The fd the child sends the pty master over.
    pub(crate) fn child_fd(&self) -> Option<RawFd> {
        self.child.as_ref().map(|c| c.as_raw_fd())
    }

    /// After the clone: the child has its own copy of its end; close ours.
    pub(crate) fn close_child(&mut self) {
        self.child = None;
    }

    /// The pty master the child sent, when we are the ones receiving it.
    pub(crate) fn master(self) -> Result<Option<OwnedFd>> {
        match self.ours {
            Some(ours) => Ok(Some(super::console::recv_fd(ours.as_raw_fd())?)),
            None => Ok(None),
        }
    }
}

/// How a child is cloned and placed in its cgroups.
pub(crate) struct SpawnPlan<'a> {
    /// What the clone is, for its error ("clone the container init").
    what: &'static str,
    /// Namespace flags of the clone itself (CLONE_NEWPID for an init born into its
    /// new pid namespace).
    flags: libc::c_int,
    /// The cgroup the child joins, if any.
    cgroup: Option<&'a Manager>,
    /// The child places itself; else the parent moves it by pid and says so.
    self_join: bool,
    /// v1 `tasks` files, opened here, that the child writes "0" to.
    tasks: Vec<(OwnedFd, PathBuf)>,
    /// The cgroup2 directory the child is cloned into (CLONE_INTO_CGROUP).
    v2_dir: Option<(OwnedFd, PathBuf)>,
}

impl<'a> SpawnPlan<'a> {
    /// The plan for a child joining `cgroup`. `self_join`: the child may place itself
    /// (v1 `tasks` "0", clone3 into the cgroup2 dir: no migration by pid, no RCU
    /// wait); false for an init in a new user namespace, which has no rights on the
    /// host's cgroup files.
    pub(crate) fn new(
        what: &'static str,
        flags: libc::c_int,
        cgroup: Option<&'a Manager>,
        self_join: bool,
    ) -> SysResult<Self> {
        let mut plan = SpawnPlan { what, flags, cgroup, self_join, tasks: Vec::new(), v2_dir: None };
        if let (true, Some(cg)) = (self_join, cgroup) {
            let (tasks, v2) = cg.self_join_targets();
            for t in tasks {
                plan.tasks.push((crate::sys::open(&t, libc::O_WRONLY, 0)?, t));
            }
            if let Some(d) = v2 {
                plan.v2_dir = Some((crate::sys::open(&d, libc::O_RDONLY | libc::O_DIRECTORY, 0)?, d));
            }
        }
        Ok(plan)
    }

    /// Whether the child is cloned straight into its cgroup2 directory.
    pub(crate) fn clones_into_cgroup(&self) -> bool {
        self.v2_dir.is_some()
    }

    /// The clone call, as `--explain` shows it (empty when it is off).
    fn clone_call(&self, refused: bool) -> String {
        if !crate::explain::on() {
            return String::new();
        }
        let f = crate::explain::clone_flags(self.flags).0;
        let f = if f.is_empty() { String::new() } else { format!("{f}|") };
        match &self.v2_dir {
            Some((_, dir)) if !refused => format!(
                "clone3({{flags: {f}CLONE_INTO_CGROUP, exit_signal: SIGCHLD, cgroup: fd of {}}})",
                dir.display()
            ),
            Some(_) => format!("clone({f}SIGCHLD) (clone3 with CLONE_INTO_CGROUP: refused here)"),
            None => format!("clone({f}SIGCHLD)"),
        }
    }

    /// The parent moves the child: into its cgroups by pid, then tells it.
    fn move_child(&self, pid: i32, chan: &Channel) -> Result<()> {
        if let Some(cg) = self.cgroup {
            tracing::debug!(
                "move pid {pid} into its cgroups ({})",
                cg.paths().iter().map(|(c, p)| format!("{c}:{}", p.display())).collect::<Vec<_>>().join(" ")
            );
            if let Err(e) = cg.add_pid(pid) {
                kill_reap(pid);
                return Err(e.into());
            }
        }
        if let Err(e) = chan.send(&Msg::CgroupJoined) {
            // The child already died: its own error (or its exit status) is what the
            // caller's next receive reports.
            tracing::debug!("{e}");
        }
        Ok(())
    }
}

/// Which side of [`spawn`] we are on.
pub(crate) enum Forked<'p> {
    /// The new process.
    Child(Born<'p>),
    /// The runtime, with the child's pid; the child is in its cgroups (or places
    /// itself there before anything else).
    Parent(i32),
}

/// What the new process needs to know about its birth.
pub(crate) struct Born<'p> {
    /// The v1 `tasks` files to write "0" to ([`join_cgroup`]); `None`: the parent
    /// moves us and sends `CgroupJoined`.
    pub(crate) self_join: Option<Vec<(RawFd, &'p Path)>>,
    /// The clone call that made this process, for `--explain` (empty when off).
    pub(crate) clone_call: String,
}

/// Clone the child as `plan` says: clone3 into the cgroup2 directory, falling back to
/// clone and a move by pid where the kernel lacks clone3 or CLONE_INTO_CGROUP.
/// Returns in both processes, like fork. `chan` is the parent's end of the sync
/// channel (for `CgroupJoined`); the caller closes it in the child.
pub(crate) fn spawn<'p>(plan: &'p SpawnPlan, chan: &Channel) -> Result<Forked<'p>> {
    let v2 = plan.v2_dir.as_ref().map(|(fd, _)| fd.as_raw_fd());
    let mut pid = match v2 {
        Some(d) => clone3_into(plan.flags, d),
        None => clone_raw(plan.flags),
    };
    let mut refused = false;
    if pid < 0 && v2.is_some() && clone3_unsupported() {
        // clone3 or CLONE_INTO_CGROUP unsupported here: the runtime moves the child.
        tracing::debug!("{}; falling back to clone + cgroup.procs", SysError::last("clone3(CLONE_INTO_CGROUP)"));
        refused = true;
        pid = clone_raw(plan.flags);
    }
    let parent_moves = !plan.self_join || refused;
    if pid == 0 {
        let files = plan.tasks.iter().map(|(f, p)| (f.as_raw_fd(), p.as_path())).collect();
        let self_join = if parent_moves { None } else { Some(files) };
        return Ok(Forked::Child(Born { self_join, clone_call: plan.clone_call(refused) }));
    }
    let pid = check(pid, || plan.what.into()).map_err(|e| {
        // Cloned into the container's cgroup2 dir, EAGAIN is its pids.max; else the
        // clone was charged to our own cgroup (or RLIMIT_NPROC).
        if e.errno == libc::EAGAIN && v2.is_some() && !refused {
            e.hint("the container's cgroup refused a new process: its pids.max is reached")
        } else {
            e
        }
    })?;
    if parent_moves {
        plan.move_child(pid, chan)?;
    }
    Ok(Forked::Parent(pid))
}

/// In the child: write "0" to each v1 `tasks` file the parent opened, placing this
/// process in its cgroups.
pub(crate) fn join_cgroup(files: &[(RawFd, &Path)]) -> SysResult<()> {
    for (fd, path) in files {
        // SAFETY: a one-byte write from a static buffer to an fd we inherited.
        if unsafe { libc::write(*fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(SysError::last(format!("join the container's cgroup: write \"0\" to {}", path.display())));
        }
        crate::explain::step(crate::explain::Kind::Cgroup, || {
            crate::explain::Step::new(
                format!("tasks = 0: move this process into the cgroup {}", path.parent().unwrap_or(path).display()),
                format!("write({}, \"0\")", path.display()),
            )
            .field("file", path.display().to_string())
            .field("value", "0")
        });
    }
    Ok(())
}

/// In the child, before it joins any namespace (runc's place: a lowering needs
/// CAP_SYS_RESOURCE in the host's user namespace): `process.oomScoreAdj`. A failure
/// fails the spawn, for the init and for `exec` alike (runc's policy).
pub(crate) fn set_oom_score_adj(adj: Option<i32>) -> SysResult<()> {
    let Some(adj) = adj else { return Ok(()) };
    crate::sys::write_file(Path::new("/proc/self/oom_score_adj"), &adj.to_string()).map_err(|e| {
        if e.errno == libc::EACCES {
            e.hint("lowering oom_score_adj needs CAP_SYS_RESOURCE")
        } else {
            e
        }
    })?;
    crate::explain::step(crate::explain::Kind::Process, || {
        crate::explain::Step::new(
            format!("oom_score_adj {adj}: how readily the OOM killer picks this process (-1000..1000)"),
            format!("write(/proc/self/oom_score_adj, \"{adj}\")"),
        )
    });
    Ok(())
}

/// In the child: a pty in the current devpts. The master goes over `sock` (see
/// [`Terminal`]); the slave becomes stdio, the controlling terminal and, with
/// `console`, /dev/console (the init's). The caller has called setsid.
pub(crate) fn attach_terminal(sock: Option<RawFd>, p: &Process, console: bool) -> SysResult<()> {
    let sock = sock.ok_or_else(|| {
        SysError::msg("set up the terminal", "process.terminal is true but no --console-socket was given")
    })?;
    let (master, slave, name) = super::console::open_pty()?;
    if let Some(size) = p.console_size {
        super::console::set_size(master.as_raw_fd(), size)?;
    }
    super::console::send_fd(sock, master.as_raw_fd(), &name)?;
    drop(master);
    if console {
        crate::rootfs::mount_console(slave.as_fd())?;
    }
    for fd in 0..3 {
        crate::sys::dup2(slave.as_raw_fd(), fd)?;
    }
    // SAFETY: ioctl with an integer argument on our stdin.
    check(unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) }, || {
        "make the pty the controlling terminal (TIOCSCTTY)".into()
    })?;
    Ok(())
}

/// In the child: `process.rlimits`.
pub(crate) fn set_rlimits(p: &Process) -> Result<(), super::sync::ChildError> {
    crate::security::rlimits::apply(&p.rlimits).map_err(super::sync::ChildError::security("set rlimits"))
}

/// Non-dumpable before the child is born, possibly into a joined pid namespace where
/// the container's processes see it (CVE-2019-5736; the child inherits this).
pub(crate) fn set_non_dumpable() -> SysResult<()> {
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }, || "prctl(PR_SET_DUMPABLE, 0)".into())?;
    Ok(())
}

/// Kill and reap a child of ours.
pub(crate) fn kill_reap(pid: i32) {
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// fork-like clone with namespace flags (no CLONE_VM: the child gets a copy of our
/// memory and may run Rust code; the runtime is single-threaded).
fn clone_raw(flags: libc::c_int) -> i32 {
    // SAFETY: see above; returns 0 in the child, the pid or -1 in the parent.
    unsafe { libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0, 0, 0, 0) as i32 }
}

/// After a failed clone3(CLONE_INTO_CGROUP): whether the kernel lacks the call or the
/// flag (then a plain clone and a move by pid do the same job). Any other error is the
/// cgroup's verdict and stands: EAGAIN from `pids.max` must not turn into a move,
/// which the pids controller does not limit.
fn clone3_unsupported() -> bool {
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
fn clone3_into(flags: libc::c_int, cg: RawFd) -> i32 {
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
