//! Resolving paths *inside* the container's rootfs without ever leaving it.
//!
//! Every lookup goes through `openat2(2)` with `RESOLVE_IN_ROOT`: `..` and absolute
//! symlinks are resolved as if the rootfs were `/`, so a hostile image cannot point a
//! mount target at the host (`/etc -> /../../../etc`). Missing directories are made one
//! component at a time with `mkdirat` on an fd, never through a path that could change.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use crate::sys::{SysError, SysResult};

/// Lexically clean a container path: make it relative to the root, drop `.`, and
/// keep `..` (openat2 clamps it at the root). Used for messages and lookups.
pub fn rel(path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => out.push(".."),
            _ => {}
        }
    }
    out
}

/// `openat2(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: open `path`
/// as seen from inside `root` ([`capsa_fsutil::sys::openat2`]).
pub fn open_in_root(root: RawFd, path: &Path, flags: i32) -> SysResult<OwnedFd> {
    use capsa_fsutil::sys::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
    let p = if path.as_os_str().is_empty() { Path::new(".") } else { path };
    let c = crate::sys::cstr(p)?;
    // SAFETY: `root` is the rootfs fd the caller holds open across this call; the
    // borrow does not outlive it.
    let root = unsafe { BorrowedFd::borrow_raw(root) };
    openat2(root, &c, flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS).map_err(|e| {
        let e =
            SysError::from_errno(format!("openat2 {} (inside the rootfs)", Path::new("/").join(path).display()), e.0);
        if e.errno == libc::ENOSYS {
            e.hint("openat2 needs Linux 5.6 (capsa needs 5.8)")
        } else {
            e
        }
    })
}

fn errno_of(e: &SysError) -> i32 {
    e.errno
}

/// The names and `..` of a path, without the root and `.`.
fn parts(p: &Path) -> impl Iterator<Item = std::ffi::OsString> + '_ {
    p.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    })
}

/// Make every missing directory of `path` inside `root` (mode 0755) and return an
/// `O_PATH` fd of the final directory. A dangling symlink on the way is followed
/// (inside the root) and its target created, as runc does for mount points.
pub fn mkdir_all_in_root(root: RawFd, path: &Path) -> SysResult<OwnedFd> {
    match open_in_root(root, path, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => return Ok(fd),
        Err(e) if errno_of(&e) == libc::ENOENT => {}
        Err(e) => return Err(e),
    }
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = parts(path).collect();
    let mut cur = PathBuf::new();
    let mut links = 0;
    let mut dir = open_in_root(root, &cur, libc::O_PATH | libc::O_DIRECTORY)?;
    while let Some(name) = todo.pop_front() {
        let next = cur.join(&name);
        match open_in_root(root, &next, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => {
                dir = fd;
                cur = next;
                continue;
            }
            Err(e) if errno_of(&e) == libc::ENOENT => {}
            Err(e) => return Err(e),
        }
        let cname = crate::sys::cstr(&name)?;
        // SAFETY: `cname` is a single path component; mkdirat works on our (O_PATH)
        // dir fd and never follows a symlink at the final component.
        let r = unsafe { libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), 0o755) };
        if r < 0 {
            let err = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if err != libc::EEXIST {
                return Err(SysError::from_errno(
                    format!("mkdir {} (inside the rootfs)", Path::new("/").join(&next).display()),
                    err,
                ));
            }
            // Something is there but cannot be opened as a directory: a dangling symlink?
            let mut buf = [0u8; 4096];
            // SAFETY: readlinkat into a local buffer of the given size.
            let n = unsafe { libc::readlinkat(dir.as_raw_fd(), cname.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                return Err(SysError::from_errno(
                    format!(
                        "mkdir {} (inside the rootfs): exists and is not a directory",
                        Path::new("/").join(&next).display()
                    ),
                    libc::ENOTDIR,
                ));
            }
            links += 1;
            if links > 40 {
                return Err(SysError::from_errno(
                    format!("resolve {} (inside the rootfs)", Path::new("/").join(path).display()),
                    libc::ELOOP,
                ));
            }
            use std::os::unix::ffi::OsStrExt;
            let target = Path::new(std::ffi::OsStr::from_bytes(&buf[..n as usize]));
            let mut parts: Vec<std::ffi::OsString> = parts(target).collect();
            if target.is_absolute() {
                cur = PathBuf::new();
            }
            parts.extend(todo.drain(..));
            todo = parts.into();
            dir = open_in_root(root, &cur, libc::O_PATH | libc::O_DIRECTORY)?;
            continue;
        }
        dir = open_in_root(root, &next, libc::O_PATH | libc::O_DIRECTORY)?;
        cur = next;
    }
    Ok(dir)
}

/// Make sure a regular file exists at `path` inside `root` (its parent directories
/// too) and return an `O_PATH` fd of it: the target of a file bind mount.
pub fn create_file_in_root(root: RawFd, path: &Path) -> SysResult<OwnedFd> {
    if let Ok(fd) = open_in_root(root, path, libc::O_PATH) {
        return Ok(fd);
    }
    let parent = path.parent().unwrap_or(Path::new(""));
    let name = path.file_name().ok_or_else(|| {
        SysError::from_errno(format!("mount target {} has no file name", path.display()), libc::EINVAL)
    })?;
    let dir = mkdir_all_in_root(root, parent)?;
    let cname = crate::sys::cstr(name)?;
    // SAFETY: single component name relative to a directory fd we own; O_NOFOLLOW and
    // O_EXCL-free create: an existing symlink there makes the call fail instead of following.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            cname.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if e != libc::ELOOP && e != libc::EEXIST {
            return Err(SysError::last(format!("create {} (inside the rootfs)", Path::new("/").join(path).display())));
        }
    } else {
        // SAFETY: we own fd.
        unsafe { libc::close(fd) };
    }
    open_in_root(root, path, libc::O_PATH)
}

/// A readable fd of the directory an `O_PATH` fd names, for listing it (getdents).
/// The `*at` calls that create or read entries take the `O_PATH` fd itself; no path
/// is resolved here (a reopen through `/proc/self/fd` would go through the container's
/// `/proc` after pivot_root, or find none).
pub fn listable_dir(fd: &OwnedFd) -> SysResult<OwnedFd> {
    // SAFETY: openat of "." relative to our fd; O_DIRECTORY, close-on-exec.
    let r =
        unsafe { libc::openat(fd.as_raw_fd(), c".".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if r < 0 {
        return Err(SysError::last(format!("open the directory of fd {} for reading", fd.as_raw_fd())));
    }
    // SAFETY: a fresh fd from the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// `lstat` of `path` inside `root`, not following the final symlink.
pub fn lstat_in_root(root: RawFd, path: &Path) -> SysResult<Option<libc::stat>> {
    match open_in_root(root, path, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(fd) => Ok(Some(fstat(fd.as_raw_fd())?)),
        Err(e) if errno_of(&e) == libc::ENOENT => Ok(None),
        Err(e) => Err(e),
    }
}

/// `fstat(2)`.
pub fn fstat(fd: RawFd) -> SysResult<libc::stat> {
    // SAFETY: zeroed stat is a valid value to be overwritten by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out-pointer for the duration of the call.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(SysError::last(format!("fstat fd {fd}")));
    }
    Ok(st)
}

/// The id of the mount `fd` is on: the 64-bit id that is never reused
/// (`STATX_MNT_ID_UNIQUE`, Linux 6.8) where the kernel has it, else the one of
/// /proc/self/mountinfo (`STATX_MNT_ID`, 5.8), which a later mount may get again. One
/// kernel always answers the same kind.
pub fn mount_id(fd: RawFd) -> SysResult<u64> {
    // SAFETY: zeroed statx is a valid out-buffer.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let want = libc::STATX_MNT_ID | libc::STATX_MNT_ID_UNIQUE;
    // SAFETY: "" with AT_EMPTY_PATH on our fd; st is valid for writes.
    let r = unsafe { libc::statx(fd, c"".as_ptr(), libc::AT_EMPTY_PATH, want, &mut st) };
    if r < 0 {
        return Err(SysError::last(format!("statx fd {fd} (mount id)")));
    }
    if st.stx_mask & want == 0 {
        return Err(SysError::from_errno(format!("statx fd {fd}: no mount id"), libc::ENOSYS)
            .hint("statx reports mount ids since Linux 5.8, which capsa needs"));
    }
    Ok(st.stx_mnt_id)
}

/// Fail before anything is made on a kernel older than capsa needs: every lookup in
/// the rootfs is an `openat2` (Linux 5.6) and mounts are checked by their statx
/// mount id (5.8). A few microseconds.
pub fn check_kernel() -> SysResult<()> {
    let root = crate::sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let what = |e: SysError| SysError { step: format!("check the kernel: {}", e.step), ..e };
    let fd = open_in_root(root.as_raw_fd(), Path::new(""), libc::O_PATH).map_err(what)?;
    mount_id(fd.as_raw_fd()).map_err(what)?;
    Ok(())
}

/// A C string for a path, for messages and syscalls.
pub fn c(p: &Path) -> SysResult<CString> {
    crate::sys::cstr(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside() {
        let t = std::env::temp_dir().join(format!("capsa-paths-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("etc")).unwrap();
        symlink("/../../../../etc", t.join("evil")).unwrap();
        let root = crate::sys::open(&t, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        // A directory created through the symlink must land inside the root.
        let fd = mkdir_all_in_root(root.as_raw_fd(), &rel("/evil/capsa-made")).unwrap();
        drop(fd);
        assert!(t.join("etc/capsa-made").is_dir());
        assert!(!Path::new("/etc/capsa-made").exists());
        let fd = create_file_in_root(root.as_raw_fd(), &rel("/../../x/y")).unwrap();
        drop(fd);
        assert!(t.join("x/y").is_file());
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn rel_paths() {
        assert_eq!(rel("/a/./b/"), PathBuf::from("a/b"));
        assert_eq!(rel("/../x"), PathBuf::from("../x"));
        assert_eq!(rel("/"), PathBuf::new());
    }
}
