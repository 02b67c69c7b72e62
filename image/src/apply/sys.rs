//! Thin wrappers over the `*at()` syscalls the layer applier uses.
//!
//! Every function takes a directory fd and a single-component name (or a
//! path resolved by `openat2(RESOLVE_IN_ROOT)`), never a host path string.
//! Errors come back as [`Errno`], displayed as `ENOENT (No such file or
//! directory)`, so a failure names what the kernel said. `openat2` itself is
//! shared with the runtime ([`capsa_fsutil::sys::openat2`]).

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub use capsa_fsutil::sys::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
pub use capsa_fsutil::Errno;

/// Result of a syscall wrapper.
pub type SysResult<T> = Result<T, Errno>;

fn check(ret: libc::c_int) -> SysResult<()> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn owned(fd: libc::c_long) -> SysResult<OwnedFd> {
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `openat(dirfd, name, flags | O_CLOEXEC, mode)`.
pub fn openat(dirfd: BorrowedFd<'_>, name: &CStr, flags: i32, mode: u32) -> SysResult<OwnedFd> {
    loop {
        // SAFETY: `name` is NUL-terminated and outlives the call.
        let fd =
            unsafe { libc::openat(dirfd.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
        match owned(fd as libc::c_long) {
            Err(Errno(libc::EINTR)) => continue,
            r => return r,
        }
    }
}

/// `mkdirat(dirfd, name, mode)`.
pub fn mkdirat(dirfd: BorrowedFd<'_>, name: &CStr, mode: u32) -> SysResult<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::mkdirat(dirfd.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })
}

/// `fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)`: never follows a final symlink.
pub fn lstatat(dirfd: BorrowedFd<'_>, name: &CStr) -> SysResult<libc::stat> {
    // SAFETY: an all-zero `struct stat` is a valid value for the kernel to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated, `st` is a valid out pointer.
    check(unsafe { libc::fstatat(dirfd.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// `fstat(fd)`.
pub fn fstat(fd: BorrowedFd<'_>) -> SysResult<libc::stat> {
    // SAFETY: an all-zero `struct stat` is a valid value for the kernel to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out pointer; works on O_PATH fds too.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// `unlinkat(dirfd, name, flags)` (`AT_REMOVEDIR` for directories).
pub fn unlinkat(dirfd: BorrowedFd<'_>, name: &CStr, flags: i32) -> SysResult<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::unlinkat(dirfd.as_raw_fd(), name.as_ptr(), flags) })
}

/// `symlinkat(target, dirfd, name)`: the target is stored verbatim.
pub fn symlinkat(target: &CStr, dirfd: BorrowedFd<'_>, name: &CStr) -> SysResult<()> {
    // SAFETY: both strings are NUL-terminated and outlive the call.
    check(unsafe { libc::symlinkat(target.as_ptr(), dirfd.as_raw_fd(), name.as_ptr()) })
}

/// Hardlinks the inode behind `src` (an O_PATH fd) as `dirfd/name`.
///
/// `linkat(src, "", ..., AT_EMPTY_PATH)` needs CAP_DAC_READ_SEARCH; without it
/// (ENOENT) fall back to `linkat(AT_FDCWD, "/proc/self/fd/N", ..., AT_SYMLINK_FOLLOW)`,
/// the documented unprivileged equivalent. Neither walks a path inside the tree.
pub fn link_fd(src: BorrowedFd<'_>, dirfd: BorrowedFd<'_>, name: &CStr) -> SysResult<()> {
    // SAFETY: "" is a valid C string; `name` is NUL-terminated.
    let r = check(unsafe {
        libc::linkat(src.as_raw_fd(), c"".as_ptr(), dirfd.as_raw_fd(), name.as_ptr(), libc::AT_EMPTY_PATH)
    });
    match r {
        Err(Errno(libc::ENOENT | libc::EPERM)) => {
            let proc = proc_fd_path(src);
            // SAFETY: `proc` and `name` are NUL-terminated and outlive the call.
            check(unsafe {
                libc::linkat(libc::AT_FDCWD, proc.as_ptr(), dirfd.as_raw_fd(), name.as_ptr(), libc::AT_SYMLINK_FOLLOW)
            })
        }
        r => r,
    }
}

/// `mknodat(dirfd, name, mode, dev)` (mode includes the file type bits).
pub fn mknodat(dirfd: BorrowedFd<'_>, name: &CStr, mode: u32, dev: libc::dev_t) -> SysResult<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::mknodat(dirfd.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, dev) })
}

/// `fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW)`: lchown semantics.
pub fn lchownat(dirfd: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> SysResult<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::fchownat(dirfd.as_raw_fd(), name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
}

/// `fchown(fd)`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> SysResult<()> {
    // SAFETY: plain syscall on an fd we hold.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })
}

/// `fchmod(fd)`.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> SysResult<()> {
    // SAFETY: plain syscall on an fd we hold.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })
}

/// The fchmodat2 syscall number where it is known to be 452.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64"))]
const SYS_FCHMODAT2: libc::c_long = 452;

/// chmod of `dirfd/name` without following a final symlink.
///
/// `fchmodat()` cannot refuse symlinks before Linux 6.6; this uses
/// `fchmodat2(AT_SYMLINK_NOFOLLOW)` where the kernel has it, else opens the
/// name with `O_PATH|O_NOFOLLOW`, checks it is not a symlink, and chmods the
/// inode through `/proc/self/fd/N` (which cannot be swapped under us).
pub fn chmod_nofollow(dirfd: BorrowedFd<'_>, name: &CStr, mode: u32) -> SysResult<()> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64"))]
    {
        // SAFETY: `name` is NUL-terminated and outlives the call.
        let r = unsafe {
            libc::syscall(
                SYS_FCHMODAT2,
                dirfd.as_raw_fd(),
                name.as_ptr(),
                mode as libc::mode_t,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r == 0 {
            return Ok(());
        }
        match Errno::last() {
            Errno(libc::ENOSYS | libc::EINVAL) => {}
            e => return Err(e),
        }
    }
    let fd = openat(dirfd, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    if fstat(fd.as_fd())?.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(Errno(libc::EOPNOTSUPP));
    }
    let proc = proc_fd_path(fd.as_fd());
    // SAFETY: `proc` is NUL-terminated and outlives the call.
    check(unsafe { libc::chmod(proc.as_ptr(), mode as libc::mode_t) })
}

/// `futimens(fd, {mtime, mtime})`.
pub fn futimens(fd: BorrowedFd<'_>, sec: i64, nsec: i64) -> SysResult<()> {
    let ts = times(sec, nsec);
    // SAFETY: `ts` points to two valid timespecs.
    check(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) })
}

/// `utimensat(dirfd, name, {mtime, mtime}, AT_SYMLINK_NOFOLLOW)`.
pub fn lutimensat(dirfd: BorrowedFd<'_>, name: &CStr, sec: i64, nsec: i64) -> SysResult<()> {
    let ts = times(sec, nsec);
    // SAFETY: `name` is NUL-terminated; `ts` points to two valid timespecs.
    check(unsafe { libc::utimensat(dirfd.as_raw_fd(), name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
}

fn times(sec: i64, nsec: i64) -> [libc::timespec; 2] {
    let t = libc::timespec { tv_sec: sec as libc::time_t, tv_nsec: nsec as _ };
    [t, t]
}

/// `fsetxattr(fd, name, value, 0)`.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> SysResult<()> {
    // SAFETY: `name` is NUL-terminated; `value` is valid for its length.
    check(unsafe { libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
}

/// The names in the directory `dirfd/name` (opened `O_NOFOLLOW`), without `.`
/// and `..`, with a flag telling whether each is a directory (from d_type,
/// or `lstat` when the filesystem does not fill d_type).
pub fn list_dir(dir: BorrowedFd<'_>) -> SysResult<Vec<(std::ffi::CString, bool)>> {
    // fdopendir takes ownership of the fd it is given: give it a duplicate.
    let dup = openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let raw = dup.as_raw_fd();
    // SAFETY: `raw` is an open directory fd we own; on success DIR owns it.
    let dirp = unsafe { libc::fdopendir(raw) };
    if dirp.is_null() {
        return Err(Errno::last());
    }
    std::mem::forget(dup); // now owned by `dirp`, closed by closedir below
    let mut out = Vec::new();
    let result = loop {
        // Reset errno to tell end-of-directory from an error.
        // SAFETY: __errno_location returns this thread's errno slot.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dirp` is a valid DIR stream until closedir.
        let ent = unsafe { libc::readdir(dirp) };
        if ent.is_null() {
            let e = Errno::last();
            break if e.0 == 0 { Ok(()) } else { Err(e) };
        }
        // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated.
        let (name, dtype) = unsafe { (CStr::from_ptr((*ent).d_name.as_ptr()), (*ent).d_type) };
        let b = name.to_bytes();
        if b == b"." || b == b".." {
            continue;
        }
        let is_dir = match dtype {
            libc::DT_DIR => true,
            libc::DT_UNKNOWN => {
                lstatat(dir, name).map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR).unwrap_or(false)
            }
            _ => false,
        };
        out.push((name.to_owned(), is_dir));
    };
    // SAFETY: `dirp` is valid and closed exactly once.
    unsafe { libc::closedir(dirp) };
    result.map(|()| out)
}

/// `/proc/self/fd/N` as a C string.
fn proc_fd_path(fd: BorrowedFd<'_>) -> std::ffi::CString {
    std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a formatted number")
}

/// `geteuid() == 0`.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
