//! `exec`: run a new process inside a running container (join its namespaces and
//! cgroups, apply the process's user, capabilities and seccomp, exec).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::finalize;
use super::spawn::{self, kill_reap, Born, Forked, SpawnPlan, Terminal};
use super::sync::{Channel, ChildError, Msg};
use crate::cgroups::sub::SubCgroups;
use crate::container::{Status, Store};
use crate::error::{Error, Result};
use crate::namespaces::{self, Join};
use crate::spec::Process;
use crate::sys::{check, SysError};

/// Options of `exec`.
pub struct ExecOpts {
    pub process: Process,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    /// Exec into a paused container too: the process joins the frozen cgroup
    /// and runs once the container is resumed (runc's `--ignore-paused`).
    pub ignore_paused: bool,
    /// `--cgroup`: sub-cgroups of the container's cgroup to run the process in.
    pub sub_cgroups: SubCgroups,
}

/// A started exec: its host pid, and the pty master for a foreground terminal.
pub struct Execed {
    pub pid: i32,
    pub console_master: Option<OwnedFd>,
}

const ORDER: [&str; 7] = ["user", "ipc", "uts", "network", "cgroup", "pid", "mount"];

/// Start the process. The caller waits for it (foreground) or exits (detach).
pub fn exec(store: &Store, id: &str, opts: &ExecOpts) -> Result<Execed> {
    super::finalize::check_preserved(opts.preserve_fds)?;
    let c = crate::lifecycle::load(store, id)?;
    check_status(id, c.status, opts.ignore_paused)?;
    let st = &c.state;
    let cgroup = match (&st.cgroup, opts.sub_cgroups.is_empty()) {
        (Some(cg), false) => Some(cg.sub_cgroup(&opts.sub_cgroups)?),
        (None, false) => return Err(Error::msg("--cgroup: the container has no cgroup")),
        (cg, true) => cg.clone(),
    };
    let p = &opts.process;
    crate::explain::set_container(id);
    crate::security::lsm::check(Some(p), None).map_err(|(field, msg)| Error::InvalidProcess { field, msg })?;
    if p.terminal && opts.console_socket.is_none() && opts.detach {
        return Err(Error::msg("exec -t -d needs --console-socket (the pty master is sent there)"));
    }
    let (mut joins, join_pid) = namespaces_to_join(st.pid)?;
    let root = crate::sys::open(Path::new(&format!("/proc/{}/root", st.pid)), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut term = Terminal::open(opts.console_socket.as_deref(), p.terminal)?;
    crate::security::seccomp_cache::warm_in(store.root(), st.seccomp.as_ref());
    let (parent_chan, child_chan) = Channel::pair()?;
    // Non-dumpable before joining the pid namespace: the child is born into it,
    // visible to the container, and inherits this (CVE-2019-5736).
    spawn::set_non_dumpable()?;
    // Rootless, the container's pid namespace belongs to its user namespace, where
    // only its owner (us) has the rights setns needs: enter that user namespace
    // first, here, so the child is born into both.
    if crate::rootless::enabled() {
        if let Some(i) = joins.iter().position(|j| j.typ == "user") {
            let u = joins.remove(i);
            namespaces::setns(&u)?;
        }
    }
    if let Some(j) = &join_pid {
        namespaces::setns(j)?;
    }
    // Like the init, the new process places itself in the container's cgroups (v1
    // `tasks` "0", clone3 into the cgroup2 dir): no migration by pid, no RCU wait.
    let plan = SpawnPlan::new("fork the exec process", 0, cgroup.as_ref(), true)?;
    let child = match spawn::spawn(&plan, &parent_chan)? {
        Forked::Child(born) => {
            drop(parent_chan);
            let ctx = ChildCtx { joins: &joins, root: root.as_raw_fd(), console: term.child_fd(), chan: &child_chan };
            let e = match child_setup(&ctx, &born, st.seccomp.as_ref(), p) {
                Ok(prep) => finalize::finalize_and_exec(p, &prep, opts.preserve_fds, &child_chan),
                Err(e) => e,
            };
            // write(2): the seccomp filter may already be loaded (see Channel::write).
            let _ = child_chan.write(&Msg::Error(e.into()));
            // SAFETY: _exit ends the child without running the parent's destructors.
            unsafe { libc::_exit(127) };
        }
        Forked::Parent(pid) => pid,
    };
    drop(child_chan);
    term.close_child();
    drop(plan);
    await_exec(id, &c, child, &parent_chan)?;
    if let Some(pf) = &opts.pid_file {
        // runc kills the process when its pid cannot be recorded.
        if let Err(e) = super::create::write_pid_file(pf, child) {
            kill_reap(child);
            return Err(e);
        }
    }
    Ok(Execed { pid: child, console_master: term.master()? })
}

/// The container's namespaces that are not ours: those to join in the child, and its
/// pid namespace (joined by the runtime before the clone, so the child is born in it).
fn namespaces_to_join(pid: i32) -> Result<(Vec<Join>, Option<Join>)> {
    let pid = pid.to_string();
    let mut joins = Vec::new();
    let mut join_pid = None;
    for typ in ORDER {
        let name = namespaces::proc_name(typ);
        if namespaces::ns_id(&pid, name).is_none() || namespaces::ns_id(&pid, name) == namespaces::ns_id("self", name) {
            continue;
        }
        let path = format!("/proc/{pid}/ns/{name}");
        let fd = crate::sys::open(Path::new(&path), libc::O_RDONLY, 0)?;
        let j = Join { typ: typ.into(), fd, path };
        if typ == "pid" {
            join_pid = Some(j);
        } else {
            joins.push(j);
        }
    }
    Ok((joins, join_pid))
}

/// Wait for the child's verdict: EOF means it exec'd (the channel is close-on-exec);
/// a message is an error. A seccomp notification fd on the way goes to the agent
/// (listenerPath).
fn await_exec(id: &str, c: &crate::lifecycle::Loaded, child: i32, chan: &Channel) -> Result<()> {
    let st = &c.state;
    let state = || st.oci(c.status.as_str());
    let msg = super::seccomp_agent::recv(chan, child, st.seccomp.as_ref(), &st.bundle, state);
    match msg.inspect_err(|_| kill_reap(child))? {
        None => Ok(()),
        Some(Msg::Error(e)) => {
            kill_reap(child);
            Err(Error::Exec { id: id.into(), error: e })
        }
        Some(m) => {
            kill_reap(child);
            Err(Error::msg(format!("exec: unexpected message {m:?}")))
        }
    }
}

/// runc's refusals: stopped (or still creating) and, without `--ignore-paused`,
/// paused containers.
fn check_status(id: &str, status: Status, ignore_paused: bool) -> Result<()> {
    match status {
        Status::Running | Status::Created => Ok(()),
        Status::Paused if ignore_paused => Ok(()),
        Status::Paused | Status::Stopped => Err(Error::CannotExec { id: id.into(), status: status.as_str() }),
        s => Err(Error::BadState { id: id.into(), status: s.as_str(), op: "exec (the container must be running)" }),
    }
}

/// What the child needs from the runtime's side.
struct ChildCtx<'a> {
    /// The namespaces to join (the pid namespace aside).
    joins: &'a [Join],
    /// The container's root, `/proc/PID/root`.
    root: RawFd,
    /// What the pty master goes over, for a terminal.
    console: Option<RawFd>,
    /// The child's end of the sync channel.
    chan: &'a Channel,
}

/// In the child: be in the container's cgroups, set oom_score_adj (before joining
/// any namespace: see [`spawn::set_oom_score_adj`]), join the namespaces and the
/// root, then the terminal and rlimits; returns what finalize needs.
fn child_setup(
    ctx: &ChildCtx,
    born: &Born,
    seccomp: Option<&crate::spec::LinuxSeccomp>,
    p: &Process,
) -> Result<finalize::Prepared, ChildError> {
    finalize::reset_signals();
    crate::explain::step(crate::explain::Kind::Namespace, || {
        let host = std::fs::read_link("/proc/self").map(|p| p.display().to_string()).unwrap_or_default();
        // SAFETY: getpid has no arguments and cannot fail.
        let inside = unsafe { libc::getpid() };
        crate::explain::Step::new(
            format!("The new process: host pid {host}, pid {inside} in the container's pid namespace (joined by the runtime before the fork)"),
            format!("{} = {host}", born.clone_call),
        )
        .field("host_pid", host.parse::<i64>().unwrap_or(0))
        .field("pid", inside)
    });
    match &born.self_join {
        Some(files) => spawn::join_cgroup(files)?,
        None => match ctx.chan.recv()? {
            Some(Msg::CgroupJoined) => {}
            other => return Err(SysError::msg("wait for the cgroup join", format!("got {other:?}")).into()),
        },
    }
    spawn::set_oom_score_adj(p.oom_score_adj)?;
    for j in ctx.joins {
        namespaces::setns(j)?;
    }
    // SAFETY: fchdir/chroot on an fd/static string: enter the container's root (also
    // right for --no-pivot containers, whose root is a chroot).
    unsafe {
        check(libc::fchdir(ctx.root), || "chdir to the container's root".into())?;
        check(libc::chroot(c".".as_ptr()), || "chroot to the container's root".into())?;
    }
    crate::explain::step(crate::explain::Kind::Root, || {
        crate::explain::Step::new(
            "enter the container's root (its / is this process's / from now on)",
            "fchdir(open(/proc/PID/root)); chroot(\".\")",
        )
    });
    if p.terminal {
        // SAFETY: setsid takes no arguments.
        unsafe { libc::setsid() };
        spawn::attach_terminal(ctx.console, p, false)?;
    }
    spawn::set_rlimits(p)?;
    finalize::prepare(p, seccomp)
}
