//! Protection of the runtime binary from the container (CVE-2019-5736).
//!
//! capsa clones the container's init (and each `exec`'d process) from its own
//! process, so until they exec, `/proc/<pid>/exe` is the binary capsa runs from.
//! A container that reaches it (a `#!/proc/self/exe` entry point, an exec of
//! `/proc/self/exe`, an fd kept from `/proc/<pid>/exe` and reopened for writing
//! after the process is gone) must find something it can never write. So before
//! the verbs that fork container processes (`create`, `run`, `exec`), capsa
//! re-executes itself from a protected copy of its binary, once:
//!
//! 1. a read-only overlayfs made with `fsopen`/`fsmount` (binary's directory as
//!    the upper lower layer), never attached to any mount namespace: no copy, and
//!    nobody can remount it read-write, since no path reaches it (runc 1.2's
//!    method; needs CAP_SYS_ADMIN in the host's mount namespace);
//! 2. otherwise a memfd copy sealed with `F_SEAL_SEAL|SHRINK|GROW|WRITE` (runc 1.1,
//!    crun, youki): no write can ever reach it, whoever holds it.
//!
//! "Already protected" is read from the kernel, not trusted from the caller: the
//! running binary is a memfd carrying every base seal, or (with the marker this
//! module sets before re-executing) a read-only overlayfs. A read-only mount of
//! the host's own is not enough: the host may remount it read-write later while
//! a container still holds an fd to the binary.
//!
//! Dumpability (the init and `exec` are non-dumpable until they exec) stays as a
//! second line of defence.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::sys::{check, cstr, SysError, SysResult};

/// Set to the installed binary's path across the re-exec; removed on arrival.
pub const ENV_INSTALLED: &str = "_CAPSA_EXE";

const BASE_SEALS: libc::c_int = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 2;
const MOUNT_ATTR_NODEV: libc::c_uint = 4;
/// Overlayfs needs two lower layers to mount without an upper one. The second is
/// never consulted for the binary's name (the binary's directory is on top): any
/// directory that is not an ancestor or descendant of it will do, and /dev is on
/// every Linux host.
const SECOND_LOWER: &str = "/dev";

/// What the running binary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// A memfd with every base seal: no write can reach it.
    SealedMemfd,
    /// A file on capsa's detached read-only overlayfs.
    ReadOnlyOverlay,
}

impl Protection {
    /// Human-readable name, for logs.
    pub fn describe(self) -> &'static str {
        match self {
            Protection::SealedMemfd => "a sealed memfd copy",
            Protection::ReadOnlyOverlay => "a detached read-only overlayfs",
        }
    }
}

static INSTALLED: OnceLock<PathBuf> = OnceLock::new();

/// The binary as installed (its path before any re-exec), for finding the
/// binaries installed beside it (`capsa-image`, `capsa-shim`).
pub fn installed_path() -> SysResult<PathBuf> {
    if let Some(p) = INSTALLED.get() {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os(ENV_INSTALLED) {
        return Ok(PathBuf::from(p));
    }
    std::fs::read_link("/proc/self/exe").map_err(|e| SysError::io("readlink /proc/self/exe", &e))
}

/// Run from a protected copy of the binary: returns how the running binary is
/// protected, or re-executes this process (same argv and environment) from a
/// protected copy and does not return. Call it early, single-threaded, before
/// anything is forked, only for the verbs that fork container processes.
pub fn ensure_protected() -> SysResult<Protection> {
    let marker = std::env::var_os(ENV_INSTALLED);
    let exe = crate::sys::open(Path::new("/proc/self/exe"), libc::O_RDONLY, 0)?;
    if let Some(p) = protection(exe.as_raw_fd(), marker.is_some()) {
        if let Some(m) = marker {
            // Children (hooks, `ps`) must not inherit it.
            std::env::remove_var(ENV_INSTALLED);
            let _ = INSTALLED.set(PathBuf::from(m));
        }
        return Ok(p);
    }
    if marker.is_some() {
        // We were re-executed from a copy, and it is not protected: never loop.
        return Err(SysError::msg(
            "protect the runtime binary",
            "the re-executed binary is neither a sealed memfd nor a read-only overlayfs",
        ));
    }
    let installed = std::fs::read_link("/proc/self/exe").map_err(|e| SysError::io("readlink /proc/self/exe", &e))?;
    let (copy, how) = match overlay_clone(&installed, exe.as_raw_fd()) {
        Ok(fd) => (fd, Protection::ReadOnlyOverlay),
        Err(e) => {
            tracing::debug!("{e}; falling back to a sealed memfd copy");
            (memfd_clone(exe.as_raw_fd())?, Protection::SealedMemfd)
        }
    };
    drop(exe);
    tracing::debug!("re-exec {} from {}", installed.display(), how.describe());
    Err(reexec(copy.as_raw_fd(), &installed))
}

/// How the binary behind `fd` is protected, if it is. `ours`: this process was
/// re-executed by [`ensure_protected`], so a read-only overlayfs is capsa's own.
pub fn protection(fd: RawFd, ours: bool) -> Option<Protection> {
    // SAFETY: fcntl with an integer argument on an fd we own.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    if seals >= 0 && seals & BASE_SEALS == BASE_SEALS {
        return Some(Protection::SealedMemfd);
    }
    if !ours {
        return None;
    }
    // SAFETY: fstatfs/fstatvfs fill zeroed, properly sized structs; fd is open.
    let (mut fs, mut vfs): (libc::statfs, libc::statvfs) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    // SAFETY: as above.
    if unsafe { libc::fstatfs(fd, &mut fs) } < 0 || unsafe { libc::fstatvfs(fd, &mut vfs) } < 0 {
        return None;
    }
    let ro = vfs.f_flag & libc::ST_RDONLY != 0;
    (ro && fs.f_type == libc::OVERLAYFS_SUPER_MAGIC).then_some(Protection::ReadOnlyOverlay)
}

/// Overlayfs lowerdir escaping: `\` and `:` are special.
fn escape_lower(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in p.as_os_str().as_bytes() {
        if b == b'\\' || b == b':' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

fn own(fd: i64, step: impl FnOnce() -> String) -> SysResult<OwnedFd> {
    let fd = check(fd as libc::c_int, step)?;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An O_PATH fd of the binary on a new read-only overlayfs that is never attached
/// anywhere. `exe` is the running binary, to check we opened the same file.
fn overlay_clone(installed: &Path, exe: RawFd) -> SysResult<OwnedFd> {
    let (dir, name) = match (installed.parent(), installed.file_name()) {
        (Some(d), Some(n)) if installed.is_absolute() => (d, n),
        _ => return Err(SysError::msg("overlayfs clone", format!("odd binary path {}", installed.display()))),
    };
    let mut lower = escape_lower(dir);
    lower.push(b':');
    lower.extend_from_slice(SECOND_LOWER.as_bytes());
    let lower = CString::new(lower).map_err(|_| SysError::from_errno("overlayfs lowerdir", libc::EINVAL))?;
    // SAFETY: fsopen with a static NUL-terminated name.
    let ctx = own(unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) }, || {
        "fsopen(overlay)".into()
    })?;
    let set = |key: &std::ffi::CStr, val: &std::ffi::CStr| {
        // SAFETY: fsconfig with NUL-terminated key/value valid for the call.
        let r = unsafe {
            libc::syscall(libc::SYS_fsconfig, ctx.as_raw_fd(), FSCONFIG_SET_STRING, key.as_ptr(), val.as_ptr(), 0)
        };
        check(r as libc::c_int, || format!("fsconfig overlay {}={}", key.to_string_lossy(), val.to_string_lossy()))
    };
    set(c"lowerdir", &lower)?;
    // xino is irrelevant here; switching it off avoids kernel log noise when the
    // layers are on different filesystems.
    let _ = set(c"xino", c"off");
    // SAFETY: fsconfig CMD_CREATE takes no key or value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    check(r as libc::c_int, || format!("create an overlayfs with lowerdir={}", lower.to_string_lossy()))?;
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    // SAFETY: fsmount on our fs context fd with flag words.
    let mnt = own(unsafe { libc::syscall(libc::SYS_fsmount, ctx.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) }, || {
        "fsmount the overlayfs read-only".into()
    })?;
    let cname = cstr(name)?;
    // SAFETY: openat relative to the detached mount's root with a valid C string.
    let fd = own(
        unsafe { libc::openat(mnt.as_raw_fd(), cname.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) }
            as i64,
        || format!("open {} on the overlayfs", name.to_string_lossy()),
    )?;
    // The directory may have changed since readlink (an upgrade): same size and
    // mtime as the running binary, or we copy instead.
    let (a, b) = (fstat(fd.as_raw_fd())?, fstat(exe)?);
    let regular = a.st_mode & libc::S_IFMT == libc::S_IFREG;
    if !regular || (a.st_size, a.st_mtime, a.st_mtime_nsec) != (b.st_size, b.st_mtime, b.st_mtime_nsec) {
        return Err(SysError::msg("overlayfs clone", format!("{} is not the running binary", installed.display())));
    }
    Ok(fd)
}

fn fstat(fd: RawFd) -> SysResult<libc::stat> {
    // SAFETY: fstat fills a zeroed, properly sized struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    check(unsafe { libc::fstat(fd, &mut st) }, || format!("fstat fd {fd}"))?;
    Ok(st)
}

/// A sealed memfd holding a copy of the running binary.
fn memfd_clone(exe: RawFd) -> SysResult<OwnedFd> {
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) keeps the copy executable where vm.memfd_noexec asks
    // for an explicit choice; older kernels reject the unknown flag.
    // SAFETY: memfd_create with a static name and flag words.
    let mut fd = unsafe { libc::memfd_create(c"capsa".as_ptr(), base | libc::MFD_EXEC) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(c"capsa".as_ptr(), base) };
    }
    let memfd = own(fd as i64, || "memfd_create(capsa, MFD_ALLOW_SEALING)".into())?;
    let size = fstat(exe)?.st_size;
    let mut off: libc::off_t = 0;
    while off < size {
        // SAFETY: sendfile between two fds we own; off is a valid in/out pointer.
        let n = unsafe { libc::sendfile(memfd.as_raw_fd(), exe, &mut off, (size - off) as usize) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        let n = check(n as libc::c_int, || "copy the runtime binary into the memfd (sendfile)".into())?;
        if n == 0 {
            return Err(SysError::msg(
                "copy the runtime binary into the memfd",
                format!("short copy: {off} of {size} bytes"),
            ));
        }
    }
    // SAFETY: fcntl with integer arguments on our memfd. F_SEAL_EXEC (Linux 6.3)
    // also freezes the mode bits; older kernels refuse it, which is harmless.
    unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_EXEC) };
    // SAFETY: as above.
    check(unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, BASE_SEALS) }, || {
        "seal the memfd copy (F_SEAL_SEAL|SHRINK|GROW|WRITE)".into()
    })?;
    Ok(memfd)
}

/// Execute `installed`, a capsa binary beside this one (`capsa` hands image verbs
/// to `capsa-image`), from a read-only overlayfs clone, with `args` after its
/// name: the program then finds itself protected and need not re-execute itself,
/// one exec of a large binary instead of two. Only returns on failure (the caller
/// then execs it plainly, and the program protects itself).
pub fn exec_beside(installed: &Path, args: impl Iterator<Item = OsString>) -> SysError {
    let file = match crate::sys::open(installed, libc::O_RDONLY | libc::O_CLOEXEC, 0) {
        Ok(f) => f,
        Err(e) => return e,
    };
    match overlay_clone(installed, file.as_raw_fd()) {
        Ok(fd) => {
            let argv = std::iter::once(installed.as_os_str().to_owned()).chain(args).collect();
            execveat_marked(fd.as_raw_fd(), installed, argv)
        }
        Err(e) => e,
    }
}

/// execveat(fd, "", AT_EMPTY_PATH) with our own argv and environment plus the
/// marker. Only returns on failure.
fn reexec(fd: RawFd, installed: &Path) -> SysError {
    execveat_marked(fd, installed, std::env::args_os().collect())
}

/// execveat(fd, "", AT_EMPTY_PATH) with `argv`, our environment and the marker.
fn execveat_marked(fd: RawFd, installed: &Path, argv: Vec<OsString>) -> SysError {
    let to_c = |s: OsString| CString::new(s.into_vec()).ok();
    let argv: Vec<CString> = argv.into_iter().filter_map(to_c).collect();
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != ENV_INSTALLED)
        .filter_map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            to_c(kv)
        })
        .collect();
    let mut marker = OsString::from(format!("{ENV_INSTALLED}="));
    marker.push(installed.as_os_str());
    envp.extend(to_c(marker));
    let mut pargv: Vec<*mut libc::c_char> = argv.iter().map(|a| a.as_ptr().cast_mut()).collect();
    pargv.push(std::ptr::null_mut());
    let mut penvp: Vec<*mut libc::c_char> = envp.iter().map(|a| a.as_ptr().cast_mut()).collect();
    penvp.push(std::ptr::null_mut());
    // SAFETY: argv/envp are NULL-terminated arrays of C strings that outlive the
    // call; execveat only returns on error.
    unsafe { libc::execveat(fd, c"".as_ptr(), pargv.as_ptr(), penvp.as_ptr(), libc::AT_EMPTY_PATH) };
    SysError::last(format!("re-exec {} from its protected copy (execveat)", installed.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_escaping() {
        assert_eq!(escape_lower(Path::new("/a:b\\c")), b"/a\\:b\\\\c".to_vec());
        assert_eq!(escape_lower(Path::new("/usr/bin")), b"/usr/bin".to_vec());
    }

    #[test]
    fn memfd_copy_is_sealed_and_identical() {
        let exe = crate::sys::open(Path::new("/proc/self/exe"), libc::O_RDONLY, 0).unwrap();
        assert_eq!(protection(exe.as_raw_fd(), false), None, "the test binary itself is not protected");
        let m = memfd_clone(exe.as_raw_fd()).unwrap();
        assert_eq!(protection(m.as_raw_fd(), false), Some(Protection::SealedMemfd));
        // Reopened for writing (as a container would through /proc/<pid>/exe),
        // every write is refused, and so is a truncation.
        let path = format!("/proc/self/fd/{}", m.as_raw_fd());
        let mut w = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        use std::io::Write;
        assert_eq!(w.write(b"x").err().and_then(|e| e.raw_os_error()), Some(libc::EPERM));
        // SAFETY: ftruncate on our memfd.
        assert!(unsafe { libc::ftruncate(m.as_raw_fd(), 0) } < 0);
        let a = std::fs::read("/proc/self/exe").unwrap();
        let b = std::fs::read(&path).unwrap();
        assert!(a == b, "copy differs from the binary");
    }

    #[test]
    fn overlay_clone_is_read_only() {
        // SAFETY: geteuid has no arguments.
        if unsafe { libc::geteuid() } != 0 {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "needs root (CI=true)");
            return;
        }
        let exe = crate::sys::open(Path::new("/proc/self/exe"), libc::O_RDONLY, 0).unwrap();
        let installed = std::fs::read_link("/proc/self/exe").unwrap();
        let c = overlay_clone(&installed, exe.as_raw_fd()).unwrap();
        let path = format!("/proc/self/fd/{}", c.as_raw_fd());
        let w = std::fs::OpenOptions::new().append(true).open(&path);
        assert_eq!(w.err().and_then(|e| e.raw_os_error()), Some(libc::EROFS));
        let r = crate::sys::open(Path::new(&path), libc::O_RDONLY, 0).unwrap();
        assert_eq!(protection(r.as_raw_fd(), true), Some(Protection::ReadOnlyOverlay));
        assert_eq!(protection(r.as_raw_fd(), false), None, "only capsa's own overlay counts");
        let (a, b) = (fstat(r.as_raw_fd()).unwrap(), fstat(exe.as_raw_fd()).unwrap());
        assert_ne!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino), "a different inode from the installed binary");
    }
}
