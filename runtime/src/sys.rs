//! Thin wrappers over the system calls capsa makes, each returning a [`SysError`]
//! that names the step, the path and the errno: what the kernel was asked to do.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// A failed system call, with enough context for a student to see what was asked.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SysError {
    /// What capsa was doing, e.g. `mount proc on /proc`.
    pub step: String,
    /// The errno the kernel returned (0 when not from a syscall).
    pub errno: i32,
    /// Extra explanation (a hint for the usual cause), if any.
    pub hint: Option<String>,
}

impl SysError {
    /// Error from the current `errno`.
    pub fn last(step: impl Into<String>) -> Self {
        Self::from_errno(step, std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// Error from an explicit errno.
    pub fn from_errno(step: impl Into<String>, errno: i32) -> Self {
        SysError { step: step.into(), errno, hint: None }
    }

    /// Error from an `io::Error`.
    pub fn io(step: impl Into<String>, e: &std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(n) => Self::from_errno(step, n),
            None => SysError { step: step.into(), errno: 0, hint: Some(e.to_string()) },
        }
    }

    /// A logical error that is not an errno.
    pub fn msg(step: impl Into<String>, hint: impl Into<String>) -> Self {
        SysError { step: step.into(), errno: 0, hint: Some(hint.into()) }
    }

    /// Attach a hint explaining the usual cause.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The errno name, e.g. `EPERM`.
    pub fn errno_name(&self) -> &'static str {
        errno_name(self.errno)
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.step)?;
        if self.errno != 0 {
            write!(f, ": {} ({})", self.errno_name(), capsa_fsutil::Errno(self.errno).text())?;
        }
        if let Some(h) = &self.hint {
            if self.errno != 0 {
                write!(f, " [{h}]")?;
            } else {
                write!(f, ": {h}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for SysError {}

/// Result of a syscall wrapper.
pub type SysResult<T> = Result<T, SysError>;

/// Symbolic name of an errno value (`errno` for the uncommon ones).
pub fn errno_name(e: i32) -> &'static str {
    capsa_fsutil::errno_name(e).unwrap_or("errno")
}

/// Turn a `-1` return into a [`SysError`] built lazily from `step`.
pub fn check<F: FnOnce() -> String>(ret: libc::c_int, step: F) -> SysResult<libc::c_int> {
    if ret < 0 {
        Err(SysError::last(step()))
    } else {
        Ok(ret)
    }
}

/// A path as a C string (paths with NUL bytes are rejected).
pub fn cstr(p: impl AsRef<Path>) -> SysResult<CString> {
    use std::os::unix::ffi::OsStrExt;
    let p = p.as_ref();
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| SysError::from_errno(format!("path {} contains a NUL byte", p.display()), libc::EINVAL))
}

/// `open(2)` returning an owned fd; `O_CLOEXEC` is always added.
pub fn open(path: &Path, flags: libc::c_int, mode: libc::mode_t) -> SysResult<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    let fd = check(fd, || format!("open {}", path.display()))?;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mount(2)` with optional source, fstype and data.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
    step: impl FnOnce() -> String,
) -> SysResult<()> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    let mut step = Some(step);
    let shown = if tracing::enabled!(tracing::Level::DEBUG) { step.take().map(|f| f()) } else { None };
    if let Some(s) = &shown {
        let l = |c: Option<&CStr>| c.map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
        tracing::debug!(
            "{s}: mount({:?}, {:?}, {:?}, {flags:#x}, {:?})",
            l(source),
            target.to_string_lossy(),
            l(fstype),
            l(data)
        );
    }
    // SAFETY: all pointers are NUL-terminated strings or NULL, valid for the call.
    let r = unsafe { libc::mount(p(source), target.as_ptr(), p(fstype), flags, p(data).cast::<libc::c_void>()) };
    if r < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let s = shown.unwrap_or_else(|| step.take().map(|f| f()).unwrap_or_default());
        return Err(SysError::from_errno(s, e));
    }
    crate::explain::step(crate::explain::Kind::Mount, || {
        let text = |c: Option<&CStr>| c.map(|c| c.to_string_lossy().into_owned());
        let what = shown.unwrap_or_else(|| step.take().map(|f| f()).unwrap_or_default());
        let (host, inside) = crate::explain::target_paths(&target.to_string_lossy());
        let q = |c: Option<&CStr>| c.map_or("NULL".to_string(), |c| format!("{:?}", c.to_string_lossy()));
        let fl = crate::explain::mount_flags(flags);
        let shown_target = if host == target.to_string_lossy() {
            host.clone()
        } else {
            format!("{} = {host}", target.to_string_lossy())
        };
        crate::explain::Step::new(
            what,
            format!("mount({}, {shown_target:?}, {}, {fl}, {})", q(source), q(fstype), q(data)),
        )
        .field("source", text(source))
        .field("target", inside.unwrap_or(host))
        .field("fstype", text(fstype))
        .field("flags", fl)
        .field("data", text(data))
    });
    Ok(())
}

/// The `/proc/self/fd/N` magic link for an fd (mount targets are given this way so that
/// a path swapped after resolution cannot redirect the mount: runc CVE-2021-30465).
pub fn fd_path(fd: RawFd) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL")
}

/// Write a whole string to a file (for /proc and /sys knobs), with context.
pub fn write_file(path: &Path, data: &str) -> SysResult<()> {
    std::fs::write(path, data).map_err(|e| SysError::io(format!("write {data:?} to {}", path.display()), &e))
}

/// Set the close-on-exec flag on an fd.
pub fn set_cloexec(fd: RawFd, on: bool) -> SysResult<()> {
    // SAFETY: fcntl on an fd number has no memory-safety requirements.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) }, || format!("fcntl F_GETFD fd {fd}"))?;
    let nf = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, nf) }, || format!("fcntl F_SETFD fd {fd}"))?;
    Ok(())
}

/// `dup2`-style move of an fd onto a target number.
pub fn dup2(old: RawFd, new: RawFd) -> SysResult<()> {
    // SAFETY: dup2 on fd numbers has no memory-safety requirements.
    check(unsafe { libc::dup2(old, new) }, || format!("dup2 fd {old} -> {new}"))?;
    Ok(())
}

/// Mark every fd from `first` up close-on-exec: `close_range(CLOSE_RANGE_CLOEXEC)`,
/// else (kernels before 5.11, or a seccomp profile that denies it) a walk of
/// `/proc/self/fd` with fcntl. Allocates nothing unless it fails, so it may run
/// between fork and exec (hooks' `pre_exec`).
pub fn cloexec_from(first: libc::c_uint) -> SysResult<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // ENOSYS before 5.9; 5.9 and 5.10 answer EINVAL to the CLOEXEC flag.
    if ![libc::ENOSYS, libc::EINVAL, libc::EPERM].contains(&e) {
        return Err(SysError::from_errno("close_range(CLOSE_RANGE_CLOEXEC)", e));
    }
    cloexec_by_proc(first)
        .map_err(|p| SysError { step: format!("close_range(CLOSE_RANGE_CLOEXEC): {}; {}", errno_name(e), p.step), ..p })
}

/// [`cloexec_from`] fd by fd, from the listing of `/proc/self/fd`.
fn cloexec_by_proc(first: libc::c_uint) -> SysResult<()> {
    // SAFETY: open of a static C string.
    let dir = unsafe { libc::open(c"/proc/self/fd".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if dir < 0 {
        return Err(SysError::last("open /proc/self/fd"));
    }
    #[repr(C, align(8))]
    struct Buf([u8; 1024]);
    let mut buf = Buf([0; 1024]);
    let result = loop {
        // SAFETY: getdents64 writes at most buf.len() bytes into buf.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.0.as_mut_ptr(), buf.0.len()) };
        if n <= 0 {
            break if n == 0 { Ok(()) } else { Err(SysError::last("list /proc/self/fd (getdents64)")) };
        }
        let mut off = 0usize;
        while off < n as usize {
            // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[].
            let reclen = u16::from_ne_bytes([buf.0[off + 16], buf.0[off + 17]]) as usize;
            let name = buf.0[off + 19..off + reclen].split(|&b| b == 0).next().unwrap_or_default();
            // "." and ".." are skipped: only names made of digits are fds.
            let fd = (!name.is_empty() && name.len() < 10 && name.iter().all(u8::is_ascii_digit))
                .then(|| name.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0')));
            if let Some(fd) = fd.filter(|&fd| fd >= first && fd as RawFd != dir) {
                // SAFETY: fcntl on an fd number only changes its flags.
                unsafe { libc::fcntl(fd as RawFd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
            off += reclen;
        }
    };
    // SAFETY: closing the directory fd opened above.
    unsafe { libc::close(dir) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// The /proc/self/fd walk (the fallback of `cloexec_from`) marks fds from `first`
    /// up and leaves the ones below alone.
    #[test]
    fn cloexec_by_proc_marks_from_first() {
        let f = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: dup2 of our own fd onto numbers the test harness does not use.
        let (low, high) = unsafe { (libc::dup2(f.as_raw_fd(), 700), libc::dup2(f.as_raw_fd(), 701)) };
        assert_eq!((low, high), (700, 701));
        let flags = |fd| {
            // SAFETY: F_GETFD only reads the flags.
            unsafe { libc::fcntl(fd, libc::F_GETFD) }
        };
        assert_eq!(flags(701) & libc::FD_CLOEXEC, 0);
        cloexec_by_proc(701).unwrap();
        assert_eq!(flags(700) & libc::FD_CLOEXEC, 0);
        assert_ne!(flags(701) & libc::FD_CLOEXEC, 0);
        // SAFETY: closing the duplicates made above.
        unsafe {
            libc::close(700);
            libc::close(701);
        }
    }
}
