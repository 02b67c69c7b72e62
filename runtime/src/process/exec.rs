//! `exec`: run a new process inside a running container (join its namespaces and
//! cgroups, apply the process's user, capabilities and seccomp, exec).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use super::finalize;
use super::sync::{Channel, Msg};
use crate::cgroups::sub::SubCgroups;
use crate::container::{Status, Store};
use crate::error::{Error, Result};
use crate::namespaces::{self, Join};
use crate::spec::Process;
use crate::sys::{check, SysError, SysResult};

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
        (Some(cg), false) => Some(cg.sub_cgroup(&opts.sub_cgroups).map_err(|e| Error::msg(e.to_string()))?),
        (None, false) => return Err(Error::msg("--cgroup: the container has no cgroup")),
        (cg, true) => cg.clone(),
    };
    let p = &opts.process;
    crate::explain::set_container(id);
    crate::security::lsm::check(Some(p), None).map_err(|(field, msg)| Error::msg(format!("{field}: {msg}")))?;
    if p.terminal && opts.console_socket.is_none() && opts.detach {
        return Err(Error::msg("exec -t -d needs --console-socket (the pty master is sent there)"));
    }
    let pid = st.pid.to_string();
    let mut joins = Vec::new();
    let mut join_pid = None;
    for typ in ORDER {
        let name = namespaces::proc_name(typ);
        if namespaces::ns_id(&pid, name).is_none() || namespaces::ns_id(&pid, name) == namespaces::ns_id("self", name) {
            continue;
        }
        let path = format!("/proc/{pid}/ns/{name}");
        let fd = crate::sys::open(std::path::Path::new(&path), libc::O_RDONLY, 0)?;
        let j = Join { typ: typ.into(), fd, path };
        if typ == "pid" {
            join_pid = Some(j);
        } else {
            joins.push(j);
        }
    }
    let root =
        crate::sys::open(std::path::Path::new(&format!("/proc/{pid}/root")), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut tty_pair = None;
    let console: Option<OwnedFd> = match &opts.console_socket {
        Some(path) => Some(super::console::connect(path)?),
        None if p.terminal => {
            let (a, b) =
                std::os::unix::net::UnixStream::pair().map_err(|e| SysError::io("socketpair for the terminal", &e))?;
            tty_pair = Some(OwnedFd::from(b));
            Some(OwnedFd::from(a))
        }
        None => None,
    };
    crate::security::seccomp_cache::warm_in(store.root(), st.seccomp.as_ref());
    let (parent_chan, child_chan) = Channel::pair()?;
    // Non-dumpable before joining the pid namespace: the child is born into it,
    // visible to the container, and inherits this (CVE-2019-5736).
    set_non_dumpable()?;
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
    let mut self_join: Vec<(OwnedFd, PathBuf)> = Vec::new();
    let mut v2_dir: Option<OwnedFd> = None;
    if let Some(cg) = &cgroup {
        let (tasks, v2) = cg.self_join_targets();
        for t in tasks {
            self_join.push((crate::sys::open(&t, libc::O_WRONLY, 0)?, t));
        }
        if let Some(d) = v2 {
            v2_dir = Some(crate::sys::open(&d, libc::O_RDONLY | libc::O_DIRECTORY, 0)?);
        }
    }
    let join_fds: Vec<(RawFd, &std::path::Path)> =
        self_join.iter().map(|(f, p)| (f.as_raw_fd(), p.as_path())).collect();
    let mut parent_moves = cgroup.is_some() && v2_dir.is_none() && join_fds.is_empty();
    let mut child = match &v2_dir {
        Some(d) => super::create::clone3_into(0, d.as_raw_fd()),
        None => super::create::clone_raw(0),
    };
    if child < 0 && v2_dir.is_some() && super::create::clone3_unsupported() {
        parent_moves = true;
        child = super::create::clone_raw(0);
    }
    if child == 0 {
        drop(parent_chan);
        let joined = if parent_moves { None } else { Some(join_fds.as_slice()) };
        let e = match child_setup(
            &joins,
            root.as_raw_fd(),
            console.as_ref().map(|c| c.as_raw_fd()),
            &child_chan,
            joined,
            st.seccomp.as_ref(),
            p,
        ) {
            Ok(prep) => finalize::finalize_and_exec(p, &prep, opts.preserve_fds, &child_chan),
            Err(e) => e,
        };
        // write(2): the seccomp filter may already be loaded (see Channel::write).
        let _ = child_chan.write(&Msg::Error(e));
        // SAFETY: _exit ends the child without running the parent's destructors.
        unsafe { libc::_exit(127) };
    }
    let cloned_into_cgroup = v2_dir.is_some() && !parent_moves;
    let child = check(child, || "fork the exec process".into()).map_err(|e| {
        // Cloned into the container's cgroup2 dir, EAGAIN is its pids.max; else the
        // fork was charged to our own cgroup (or RLIMIT_NPROC).
        if e.errno == libc::EAGAIN && cloned_into_cgroup {
            e.hint("the container's cgroup refused a new process: its pids.max is reached")
        } else {
            e
        }
    })?;
    drop(child_chan);
    drop(console);
    drop(self_join);
    if parent_moves {
        if let Some(cg) = &cgroup {
            if let Err(e) = cg.add_pid(child) {
                kill_reap(child);
                return Err(e.into());
            }
        }
        parent_chan.send(&Msg::CgroupJoined)?;
    }
    // EOF means the child exec'd (the channel is close-on-exec); a message is an error.
    // A seccomp notification fd on the way goes to the agent (listenerPath).
    let state = || st.oci(c.status.as_str());
    let msg = super::seccomp_agent::recv(&parent_chan, child, st.seccomp.as_ref(), &st.bundle, state);
    match msg.inspect_err(|_| kill_reap(child))? {
        None => {}
        Some(Msg::Error(e)) => {
            kill_reap(child);
            return Err(Error::Sys(SysError { step: format!("exec in container {id}: {}", e.step), ..e }));
        }
        Some(m) => {
            kill_reap(child);
            return Err(Error::msg(format!("exec: unexpected message {m:?}")));
        }
    }
    if let Some(pf) = &opts.pid_file {
        // runc kills the process when its pid cannot be recorded.
        if let Err(e) = super::create::write_pid_file(pf, child) {
            kill_reap(child);
            return Err(e);
        }
    }
    let console_master = match tty_pair {
        Some(ours) => Some(super::console::recv_fd(ours.as_raw_fd())?),
        None => None,
    };
    Ok(Execed { pid: child, console_master })
}

/// runc's refusals: stopped (or still creating) and, without `--ignore-paused`,
/// paused containers.
fn check_status(id: &str, status: Status, ignore_paused: bool) -> Result<()> {
    match status {
        Status::Running | Status::Created => Ok(()),
        Status::Paused if ignore_paused => Ok(()),
        Status::Paused => Err(Error::msg(format!(
            "container {id:?}: cannot exec in a paused container (use --ignore-paused to override)"
        ))),
        Status::Stopped => Err(Error::msg(format!("container {id:?}: cannot exec in a stopped container"))),
        s => Err(Error::BadState { id: id.into(), status: s.as_str(), op: "exec (the container must be running)" }),
    }
}

fn set_non_dumpable() -> SysResult<()> {
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }, || "prctl(PR_SET_DUMPABLE, 0)".into())?;
    Ok(())
}

fn kill_reap(pid: i32) {
    // SAFETY: our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

fn child_setup(
    joins: &[Join],
    root: RawFd,
    console: Option<RawFd>,
    chan: &Channel,
    self_join: Option<&[(RawFd, &std::path::Path)]>,
    seccomp: Option<&crate::spec::LinuxSeccomp>,
    p: &Process,
) -> SysResult<finalize::Prepared> {
    finalize::reset_signals();
    crate::explain::step(crate::explain::Kind::Namespace, || {
        let host = std::fs::read_link("/proc/self").map(|p| p.display().to_string()).unwrap_or_default();
        // SAFETY: getpid has no arguments and cannot fail.
        let inside = unsafe { libc::getpid() };
        crate::explain::Step::new(
            format!("The new process: host pid {host}, pid {inside} in the container's pid namespace (joined by the runtime before the fork)"),
            format!("clone(SIGCHLD) = {host}"),
        )
        .field("host_pid", host.parse::<i64>().unwrap_or(0))
        .field("pid", inside)
    });
    match self_join {
        Some(files) => {
            for (fd, path) in files {
                // SAFETY: a one-byte write from a static buffer to an fd we inherited.
                if unsafe { libc::write(*fd, b"0".as_ptr().cast(), 1) } != 1 {
                    return Err(SysError::last(format!(
                        "join the container's cgroup: write \"0\" to {}",
                        path.display()
                    )));
                }
                super::init::explain_self_join(path);
            }
        }
        None => match chan.recv()? {
            Some(Msg::CgroupJoined) => {}
            other => return Err(SysError::msg("wait for the cgroup join", format!("got {other:?}"))),
        },
    }
    for j in joins {
        namespaces::setns(j)?;
    }
    // SAFETY: fchdir/chroot on an fd/static string: enter the container's root (also
    // right for --no-pivot containers, whose root is a chroot).
    unsafe {
        check(libc::fchdir(root), || "chdir to the container's root".into())?;
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
        let sock = console.ok_or_else(|| SysError::msg("exec with a terminal", "no console socket"))?;
        let (master, slave, name) = super::console::open_pty()?;
        if let Some(size) = p.console_size {
            super::console::set_size(master.as_raw_fd(), size)?;
        }
        super::console::send_fd(sock, master.as_raw_fd(), &name)?;
        drop(master);
        for fd in 0..3 {
            crate::sys::dup2(slave.as_raw_fd(), fd)?;
        }
        // SAFETY: ioctl with an integer argument on our stdin.
        check(unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) }, || "TIOCSCTTY".into())?;
    }
    crate::security::rlimits::apply(&p.rlimits).map_err(|e| SysError::msg("set rlimits", e.to_string()))?;
    if let Some(adj) = p.oom_score_adj {
        let _ = crate::sys::write_file(std::path::Path::new("/proc/self/oom_score_adj"), &adj.to_string());
    }
    finalize::prepare(p, seccomp)
}
