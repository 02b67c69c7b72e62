//! The last steps before `execve`, shared by the container's init and `exec`'d
//! processes. [`finalize`] does everything that can fail, in runc's order, while the
//! runtime still waits for the process's verdict (so a failure fails `create` or
//! `exec`): no_new_privs, seccomp, fd hygiene, cwd, bounding set, stdio owner, user,
//! capabilities, the executable lookup. [`exec`] is the point of no return.

use std::ffi::{CStr, CString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::sync::{Channel, ChildError, Msg};
use crate::security::caps::{self, mask_names, CapSets};
use crate::security::seccomp;
use crate::spec::{LinuxSeccomp, Process};
use crate::sys::{check, SysError, SysResult};

/// Everything computed before the process changes its credentials.
pub struct Prepared {
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub caps: Option<CapSets>,
    pub filter: Option<seccomp::Program>,
    /// The filter notifies an agent: its fd goes to the runtime once loaded.
    pub notify: bool,
    /// The container's PATH, to find args[0] once we are the process's user.
    path_var: String,
    /// `--explain`: the profile's default action and rule count (empty when off).
    seccomp_summary: String,
}

/// Build argv/envp (with HOME from the container's /etc/passwd), compute the
/// capability sets and compile the seccomp filter.
pub fn prepare(p: &Process, seccomp: Option<&LinuxSeccomp>) -> Result<Prepared, ChildError> {
    let mut env: Vec<String> = p.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(p.user.uid).unwrap_or_else(|| "/".into())));
    }
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    if p.args.is_empty() {
        return Err(SysError::msg("exec", "process.args is empty").into());
    }
    let cs = |s: &str| {
        CString::new(s).map_err(|_| SysError::from_errno(format!("argument {s:?} contains a NUL byte"), libc::EINVAL))
    };
    let argv = p.args.iter().map(|a| cs(a)).collect::<SysResult<Vec<_>>>()?;
    let envp = env.iter().map(|a| cs(a)).collect::<SysResult<Vec<_>>>()?;
    let caps = match &p.capabilities {
        Some(c) => Some(CapSets::from_spec(c).map_err(ChildError::security("capabilities"))?),
        None => None,
    };
    let filter = match seccomp {
        Some(s) => Some(seccomp::compile(s).map_err(ChildError::security("build the seccomp filter"))?),
        None => None,
    };
    let notify = seccomp.is_some_and(seccomp::uses_notify);
    let seccomp_summary = match seccomp.filter(|_| crate::explain::on()) {
        Some(s) => {
            let rules = s.syscalls.as_deref().unwrap_or_default();
            let names: usize = rules.iter().map(|r| r.names.len()).sum();
            format!(
                "default action {} for any syscall no rule names; {} rules naming {names} syscalls{}",
                s.default_action,
                rules.len(),
                s.architectures.as_ref().map(|a| format!(", architectures {}", a.join(" "))).unwrap_or_default()
            )
        }
        None => String::new(),
    };
    Ok(Prepared { argv, envp, caps, filter, notify, path_var, seccomp_summary })
}

/// Find the program like runc (Go's exec.LookPath): a name with a slash must be a
/// non-directory with an execute bit, anything else is searched in the container's
/// PATH; then the process's user must be allowed to execute it (faccessat AT_EACCESS).
fn lookup(arg0: &str, path_var: &str) -> SysResult<CString> {
    let executable = |p: &Path| -> std::io::Result<bool> {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(p)?;
        Ok(!m.is_dir() && m.permissions().mode() & 0o111 != 0)
    };
    let err = |errno| SysError::from_errno(format!("exec {arg0:?} in the container"), errno);
    let found = if arg0.contains('/') {
        match executable(Path::new(arg0)) {
            Ok(true) => PathBuf::from(arg0),
            Ok(false) => return Err(err(libc::EACCES)),
            Err(e) => return Err(err(e.raw_os_error().unwrap_or(libc::ENOENT))),
        }
    } else {
        let dirs = path_var.split(':').map(|d| if d.is_empty() { "." } else { d });
        match dirs.map(|d| Path::new(d).join(arg0)).find(|p| executable(p).unwrap_or(false)) {
            Some(p) => p,
            None => {
                return Err(SysError::msg(
                    format!("exec {arg0:?}"),
                    format!("executable file not found in $PATH ({path_var})"),
                ))
            }
        }
    };
    let c = CString::new(found.as_os_str().as_bytes()).map_err(|_| err(libc::EINVAL))?;
    // SAFETY: faccessat on a valid C string; AT_EACCESS checks the effective ids.
    if unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, libc::AT_EACCESS) } < 0 {
        return Err(SysError::last(format!("exec {:?} in the container (as uid {})", found.display(), unsafe {
            // SAFETY: geteuid has no preconditions.
            libc::geteuid()
        })));
    }
    Ok(c)
}

/// The home directory of `uid` from the container's /etc/passwd.
fn home_of(uid: u32) -> Option<String> {
    let data = std::fs::read_to_string("/etc/passwd").ok()?;
    data.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
    })
}

/// Mark every fd from `3 + preserve` up close-on-exec and clear it on the preserved
/// ones: nothing of the runtime's leaks into the container (CVE-2024-21626).
pub fn fd_hygiene(preserve: i32) -> SysResult<()> {
    let first = 3 + preserve.max(0) as libc::c_uint;
    crate::sys::cloexec_from(first)?;
    for fd in 3..first as i32 {
        crate::sys::set_cloexec(fd, false).map_err(|e| e.hint("--preserve-fds names an fd that is not open"))?;
    }
    Ok(())
}

/// `--preserve-fds N`: fds 3 .. 3+N-1 must be open when the runtime starts, or the
/// runtime's own fds would take their numbers and be passed to the container
/// (runc: "unable to stat preserved-fd").
pub fn check_preserved(n: i32) -> SysResult<()> {
    for fd in 3..3 + n.max(0) {
        let last = 3 + n - 1;
        if fd == crate::explain::fd() {
            // The `--explain` narration's fd took a number the caller left closed.
            return Err(SysError::from_errno(
                format!("--preserve-fds {n}: fd {fd} (of 3..{last}) is not open"),
                libc::EBADF,
            ));
        }
        // SAFETY: fcntl F_GETFD on an fd number only reads its flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(SysError::last(format!("--preserve-fds {n}: fd {fd} (of 3..{last}) is not open")));
        }
    }
    Ok(())
}

/// Finalize, then exec: for `exec`'d processes, which have nothing to wait for in between.
pub fn finalize_and_exec(p: &Process, prep: &Prepared, preserve_fds: i32, chan: &Channel) -> ChildError {
    match finalize(p, prep, preserve_fds, chan) {
        Err(e) => e,
        Ok(exe) => exec(p, prep, &exe, preserve_fds).into(),
    }
}

/// The point of no return: fd hygiene and the cwd check right before execve (the
/// steps in between, hooks included, must not leak an fd or a cwd outside the root).
/// Only returns on failure.
pub fn exec(p: &Process, prep: &Prepared, exe: &CStr, preserve_fds: i32) -> SysError {
    // The first pass ran before the seccomp filter (see `finalize`) and every fd
    // opened since is close-on-exec; this one only catches what might not be, so a
    // profile that denies close_range (with no /proc to walk) does not stop the
    // process here.
    let _ = fd_hygiene(preserve_fds);
    if let Err(e) = check_cwd(p) {
        return e;
    }
    let mut argv: Vec<*const libc::c_char> = prep.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = prep.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv/envp are NULL-terminated arrays of valid C strings that outlive the
    // call; execve only returns on error.
    unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    SysError::last(format!("execve {}", exe.to_string_lossy()))
}

/// The exit status of a process whose execve failed: 126 when the program cannot be
/// executed, 127 when it is missing (the shell's convention, which docker follows).
pub fn exec_failure_status(e: &SysError) -> i32 {
    match e.errno {
        libc::ENOENT | libc::ENOTDIR => 127,
        libc::EACCES | libc::ENOEXEC | libc::EPERM | libc::EISDIR | libc::ETXTBSY => 126,
        _ => 127,
    }
}

/// Load the filter; with user notification, hand its fd to the runtime (which gives
/// it to the agent) and close ours once the runtime says the agent has it.
fn load_seccomp(prep: &Prepared, chan: &Channel) -> Result<(), ChildError> {
    let Some(f) = &prep.filter else { return Ok(()) };
    let listener = f.load().map_err(ChildError::security("load the seccomp filter"))?;
    if !prep.notify {
        return Ok(());
    }
    let fd = listener.ok_or_else(|| {
        SysError::msg("get the seccomp notification fd", "the kernel returned no listener for SCMP_ACT_NOTIFY")
    })?;
    chan.write(&Msg::SeccompFd(fd.as_raw_fd()))?;
    match chan.read()? {
        Some(Msg::SeccompDone) => {}
        Some(Msg::Error(e)) => return Err(e.into()),
        other => {
            return Err(
                SysError::msg("hand the seccomp notification fd to the runtime", format!("got {other:?}")).into()
            )
        }
    }
    // Ours is closed here; the agent holds its own copy.
    drop(fd);
    Ok(())
}

/// Every step that can fail before the process may be released, in runc's order
/// (but fd hygiene first, so no profile can stand in its way): no_new_privs;
/// seccomp while still privileged (loading a filter without no_new_privs needs
/// CAP_SYS_ADMIN); chdir while still privileged (a
/// 0700 cwd of another uid); bounding set; stdio owner; groups, gid, uid; chdir again
/// as the user if the first one was refused; capabilities; the executable, as the
/// user; with no_new_privs, seccomp last. Returns the program to exec.
pub fn finalize(p: &Process, prep: &Prepared, preserve_fds: i32, chan: &Channel) -> Result<CString, ChildError> {
    // Before any filter: a profile may deny close_range or the /proc walk.
    fd_hygiene(preserve_fds)?;
    if !p.no_new_privileges {
        // The filter comes first here: narrate what follows it now, then stop.
        narrate_seccomp(prep);
        narrate_bounding(prep);
        narrate_credentials(p);
        narrate_capset(prep);
        narrate_execve(p, prep, &p.args[0], preserve_fds);
        crate::explain::seal();
    }
    if p.no_new_privileges {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }, || "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
        crate::explain::step(crate::explain::Kind::Credentials, || {
            crate::explain::Step::new(
                "no_new_privs: execve can never grant more privileges (setuid bits and file capabilities are ignored)",
                "prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)",
            )
        });
    } else {
        load_seccomp(prep, chan)?;
    }
    crate::security::lsm::apply_exec_labels(p).map_err(ChildError::security("apply the LSM labels"))?;
    let cwd = crate::sys::cstr(&p.cwd)?;
    let chdir = || {
        // SAFETY: chdir on a valid C string.
        check(unsafe { libc::chdir(cwd.as_ptr()) }, || format!("chdir to the process cwd {}", p.cwd))
    };
    let chdir_as_user = match chdir() {
        Ok(_) => false,
        Err(e) if e.errno == libc::EACCES || e.errno == libc::EPERM => true,
        Err(e) => return Err(e.into()),
    };
    let u = &p.user;
    if let Some(c) = &prep.caps {
        caps::drop_bounding(c).map_err(ChildError::security("drop the capability bounding set"))?;
        narrate_bounding(prep);
        caps::keep_caps_for_setuid().map_err(ChildError::security("keep capabilities across setuid"))?;
    }
    fix_stdio_owner(u.uid, p.terminal)?;
    // SAFETY: plain credential syscalls with integer/array arguments valid for the call.
    unsafe {
        let groups: Vec<libc::gid_t> = u.additional_gids.clone();
        if libc::setgroups(groups.len(), groups.as_ptr()) < 0 {
            let e = SysError::last(format!("setgroups({:?})", u.additional_gids));
            if e.errno != libc::EPERM || !groups.is_empty() {
                return Err(e.into());
            }
        }
        check(libc::setresgid(u.gid, u.gid, u.gid), || format!("setresgid({})", u.gid))?;
        check(libc::setresuid(u.uid, u.uid, u.uid), || format!("setresuid({})", u.uid))?;
    }
    narrate_credentials(p);
    if chdir_as_user {
        chdir()?;
    }
    check_cwd(p)?;
    if let Some(c) = &prep.caps {
        caps::apply_sets(c).map_err(ChildError::security("set capabilities"))?;
        narrate_capset(prep);
    }
    let exe = lookup(&p.args[0], &prep.path_var)?;
    if p.no_new_privileges {
        narrate_seccomp(prep);
        narrate_execve(p, prep, &exe.to_string_lossy(), preserve_fds);
        crate::explain::seal();
        load_seccomp(prep, chan)?;
    }
    // SAFETY: umask only sets the process mask.
    unsafe { libc::umask(u.umask.unwrap_or(0o022) as libc::mode_t) };
    Ok(exe)
}

/// The cwd must be inside the container's root: getcwd fails (or gives a path not
/// starting with '/') for a directory outside it (CVE-2024-21626).
fn check_cwd(p: &Process) -> SysResult<()> {
    match std::env::current_dir() {
        Ok(d) if d.is_absolute() => Ok(()),
        _ => Err(SysError::from_errno(format!("cwd {} is outside the container root", p.cwd), libc::ENOENT)),
    }
}

/// Give the process's user its stdio, as runc does (so it can reopen
/// /dev/stdout): pipes, sockets and the container's own terminal change owner (uid
/// only, like runc: a pty keeps its tty group). /dev/null, host terminals and regular
/// files passed by the caller are left alone. Failures the kernel gives for an
/// unmapped owner or a read-only /dev are ignored (runc's list).
fn fix_stdio_owner(uid: u32, terminal: bool) -> SysResult<()> {
    for fd in 0..3 {
        // SAFETY: stat is plain data; fstat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat on an fd number with a valid out-pointer.
        if unsafe { libc::fstat(fd, &mut st) } < 0 {
            continue; // a closed stdio fd stays closed
        }
        let kind = st.st_mode & libc::S_IFMT;
        let ours = matches!(kind, libc::S_IFIFO | libc::S_IFSOCK) || (terminal && kind == libc::S_IFCHR);
        if st.st_uid == uid || st.st_rdev == libc::makedev(1, 3) || !ours {
            continue;
        }
        // SAFETY: fchown on an fd number; -1 leaves the group unchanged.
        if unsafe { libc::fchown(fd, uid, u32::MAX) } < 0 {
            let e = SysError::last(format!("fchown stdio fd {fd} to uid {uid}"));
            if ![libc::EINVAL, libc::EPERM, libc::EROFS].contains(&e.errno) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `--explain` of the seccomp filter (before it is loaded: see [`finalize`]).
fn narrate_seccomp(prep: &Prepared) {
    let Some(f) = &prep.filter else { return };
    crate::explain::step(crate::explain::Kind::Seccomp, || {
        crate::explain::Step::new(
            format!(
                "seccomp filter: {}; the kernel runs it on every syscall of this process and its children",
                prep.seccomp_summary
            ),
            format!("seccomp(SECCOMP_SET_MODE_FILTER, {:#x}, {{len: {} BPF instructions}})", f.flags(), f.len()),
        )
        .field("instructions", f.len())
    });
}

/// `--explain` of the bounding set: what is kept and dropped, by name.
fn narrate_bounding(prep: &Prepared) {
    let Some(sets) = &prep.caps else { return };
    crate::explain::step(crate::explain::Kind::Capabilities, || {
        let all = if sets.last_cap >= 63 { u64::MAX } else { (1u64 << (sets.last_cap + 1)) - 1 };
        let dropped = all & !sets.bounding;
        crate::explain::Step::new(
            format!(
                "capability bounding set: keep {} ({}); drop {} ({}): no process of the container can ever regain them",
                sets.bounding.count_ones(),
                mask_names(sets.bounding),
                dropped.count_ones(),
                mask_names(dropped)
            ),
            format!("prctl(PR_CAPBSET_DROP, cap) for each of the {} dropped", dropped.count_ones()),
        )
        .field("kept", mask_names(sets.bounding))
        .field("dropped", mask_names(dropped))
    });
}

/// `--explain` of the process's user and groups.
fn narrate_credentials(p: &Process) {
    let u = &p.user;
    crate::explain::step(crate::explain::Kind::Credentials, || {
        crate::explain::Step::new(
            format!("become uid {} gid {} (extra groups {:?}) inside the container", u.uid, u.gid, u.additional_gids),
            format!(
                "setgroups({}, {:?}); setresgid({g}, {g}, {g}); setresuid({u}, {u}, {u})",
                u.additional_gids.len(),
                u.additional_gids,
                g = u.gid,
                u = u.uid
            ),
        )
        .field("uid", u.uid)
        .field("gid", u.gid)
    });
}

/// `--explain` of the capability sets the process keeps.
fn narrate_capset(prep: &Prepared) {
    let Some(sets) = &prep.caps else { return };
    crate::explain::step(crate::explain::Kind::Capabilities, || {
        crate::explain::Step::new(
            format!(
                "the process's capabilities: effective {}; permitted {}; inheritable {}; ambient {}",
                mask_names(sets.effective),
                mask_names(sets.permitted),
                mask_names(sets.inheritable),
                mask_names(sets.ambient)
            ),
            format!(
                "capset({{v3, pid 0}}, {{effective: {:#x}, permitted: {:#x}, inheritable: {:#x}}}); prctl(PR_CAP_AMBIENT, ...)",
                sets.effective, sets.permitted, sets.inheritable
            ),
        )
        .field("effective", mask_names(sets.effective))
    });
}

/// `--explain` of the final execve (narrated before it: from the seccomp filter on,
/// the process no longer narrates).
fn narrate_execve(p: &Process, prep: &Prepared, exe: &str, preserve_fds: i32) {
    crate::explain::step(crate::explain::Kind::Process, || {
        crate::explain::Step::new(
            format!(
                "execve, last: the container's program replaces the runtime's code in this process (cwd {}); \
                 every fd above {} is closed by it (close-on-exec)",
                p.cwd,
                2 + preserve_fds.max(0)
            ),
            format!("execve({exe:?}, {:?}, [{} variables])", p.args, prep.envp.len()),
        )
        .field("path", exe)
        .field("args", p.args.clone())
    });
}

/// Reset the signal mask and every handler to default (the runtime blocked some).
pub fn reset_signals() {
    // SAFETY: sigset operations on a local set; signal() with SIG_DFL is always valid.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for s in 1..32 {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                libc::signal(s, libc::SIG_DFL);
            }
        }
    }
}
