//! The last steps before `execve`, shared by the container's init and `exec`'d
//! processes: fd hygiene, capabilities, user, cwd, no_new_privs, seccomp.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::security::caps::{self, CapSets};
use crate::security::seccomp;
use crate::spec::{LinuxSeccomp, Process};
use crate::sys::{check, SysError, SysResult};

/// Everything resolved before the point of no return (so that errors are reported
/// to the parent, not to a container that already started).
pub struct Prepared {
    pub exe: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub caps: Option<CapSets>,
    pub filter: Option<seccomp::Program>,
}

/// Resolve the executable (PATH lookup in the container's env), build argv/envp,
/// compute capability sets and compile the seccomp filter.
pub fn prepare(p: &Process, seccomp: Option<&LinuxSeccomp>) -> SysResult<Prepared> {
    let mut env: Vec<String> = p.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(p.user.uid).unwrap_or_else(|| "/".into())));
    }
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let arg0 = p.args.first().ok_or_else(|| SysError::msg("exec", "process.args is empty"))?;
    let exe = lookup(arg0, path_var, &p.cwd)?;
    let cs = |s: &str| {
        CString::new(s).map_err(|_| SysError::from_errno(format!("argument {s:?} contains a NUL byte"), libc::EINVAL))
    };
    let argv = p.args.iter().map(|a| cs(a)).collect::<SysResult<Vec<_>>>()?;
    let envp = env.iter().map(|a| cs(a)).collect::<SysResult<Vec<_>>>()?;
    let caps = match &p.capabilities {
        Some(c) => Some(CapSets::from_spec(c).map_err(|e| SysError::msg("capabilities", e.to_string()))?),
        None => None,
    };
    let filter = match seccomp {
        Some(s) => Some(seccomp::compile(s).map_err(|e| SysError::msg("build the seccomp filter", e.to_string()))?),
        None => None,
    };
    Ok(Prepared { exe: CString::new(exe.as_os_str().as_bytes()).unwrap_or_default(), argv, envp, caps, filter })
}

/// Find the program like execvp would, but with the container's PATH.
fn lookup(arg0: &str, path_var: &str, cwd: &str) -> SysResult<PathBuf> {
    let runnable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    };
    if arg0.contains('/') {
        let p = if arg0.starts_with('/') { PathBuf::from(arg0) } else { Path::new(cwd).join(arg0) };
        if std::fs::metadata(&p).is_err() {
            return Err(SysError::from_errno(format!("exec {arg0:?} in the container"), libc::ENOENT));
        }
        return Ok(p);
    }
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(arg0);
        if runnable(&p) {
            return Ok(p);
        }
    }
    Err(SysError::msg(format!("exec {arg0:?}"), format!("executable file not found in $PATH ({path_var})")))
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
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    let first = 3 + preserve.max(0) as libc::c_uint;
    // SAFETY: close_range only changes fd flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
    check(r as i32, || format!("close_range({first}.., CLOEXEC)"))?;
    for fd in 3..first as i32 {
        crate::sys::set_cloexec(fd, false).map_err(|e| e.hint("--preserve-fds names an fd that is not open"))?;
    }
    Ok(())
}

/// Drop privileges, enter the cwd, and exec. Only returns on failure.
pub fn finalize_and_exec(p: &Process, prep: &Prepared, preserve_fds: i32) -> SysError {
    match finalize(p, prep, preserve_fds) {
        Err(e) => e,
        Ok(()) => {
            let mut argv: Vec<*const libc::c_char> = prep.argv.iter().map(|a| a.as_ptr()).collect();
            argv.push(std::ptr::null());
            let mut envp: Vec<*const libc::c_char> = prep.envp.iter().map(|a| a.as_ptr()).collect();
            envp.push(std::ptr::null());
            // SAFETY: argv/envp are NULL-terminated arrays of valid C strings that
            // outlive the call; execve only returns on error.
            unsafe { libc::execve(prep.exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            SysError::last(format!("execve {}", prep.exe.to_string_lossy()))
        }
    }
}

fn sec(step: &str) -> impl Fn(crate::security::SecurityError) -> SysError + '_ {
    move |e| SysError { step: format!("{step}: {e}"), errno: 0, hint: None }
}

fn finalize(p: &Process, prep: &Prepared, preserve_fds: i32) -> SysResult<()> {
    fd_hygiene(preserve_fds)?;
    crate::security::lsm::apply_exec_labels(p).map_err(sec("apply the LSM labels"))?;
    let u = &p.user;
    if let Some(c) = &prep.caps {
        caps::drop_bounding(c).map_err(sec("drop the capability bounding set"))?;
        caps::keep_caps_for_setuid().map_err(sec("keep capabilities across setuid"))?;
    }
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it before the
    // capabilities are dropped (runc's order). With it, load at the very end.
    if !p.no_new_privileges {
        if let Some(f) = &prep.filter {
            seccomp::load(f).map_err(sec("load the seccomp filter"))?;
        }
    }
    // SAFETY: plain credential syscalls with integer/array arguments valid for the call.
    unsafe {
        let groups: Vec<libc::gid_t> = u.additional_gids.clone();
        if libc::setgroups(groups.len(), groups.as_ptr()) < 0 {
            let e = SysError::last(format!("setgroups({:?})", u.additional_gids));
            if e.errno != libc::EPERM || !groups.is_empty() {
                return Err(e);
            }
        }
        check(libc::setresgid(u.gid, u.gid, u.gid), || format!("setresgid({})", u.gid))?;
        check(libc::setresuid(u.uid, u.uid, u.uid), || format!("setresuid({})", u.uid))?;
    }
    if let Some(c) = &prep.caps {
        caps::apply_sets(c).map_err(sec("set capabilities"))?;
    }
    let cwd = crate::sys::cstr(&p.cwd)?;
    // SAFETY: chdir on a valid C string.
    check(unsafe { libc::chdir(cwd.as_ptr()) }, || format!("chdir to the process cwd {}", p.cwd))?;
    // The cwd must be inside the container's root: getcwd fails (or gives a path not
    // starting with '/') for a directory outside it (CVE-2024-21626).
    match std::env::current_dir() {
        Ok(d) if d.is_absolute() => {}
        _ => return Err(SysError::from_errno(format!("cwd {} is outside the container root", p.cwd), libc::ENOENT)),
    }
    // SAFETY: umask only sets the process mask.
    unsafe { libc::umask(u.umask.unwrap_or(0o022) as libc::mode_t) };
    if p.no_new_privileges {
        // SAFETY: prctl with integer arguments.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }, || "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
        if let Some(f) = &prep.filter {
            seccomp::load(f).map_err(sec("load the seccomp filter"))?;
        }
    }
    Ok(())
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
