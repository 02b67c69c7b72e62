//! `openat2(2)` (Linux 5.6), which libc does not wrap.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::Errno;

/// `resolve` flag: fail with ELOOP on a magic link (`/proc/self/fd/N`...).
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// `resolve` flag: the dirfd is `/` for the lookup: `..` and absolute symlinks
/// cannot climb above it (a hostile rootfs or layer cannot point at the host).
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// Times a lookup is retried on EAGAIN/EINTR before the error is returned.
const RETRIES: u32 = 64;

/// `struct open_how` (include/uapi/linux/openat2.h).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dirfd, path, {flags | O_CLOEXEC, mode, resolve})`.
///
/// Retried on EINTR, and on EAGAIN: with `RESOLVE_IN_ROOT` the kernel answers EAGAIN when a rename or a mount anywhere raced the lookup,
/// and asks the caller to try again. ENOSYS: a kernel before 5.6.
pub fn openat2(dirfd: BorrowedFd<'_>, path: &CStr, flags: i32, mode: u32, resolve: u64) -> Result<OwnedFd, Errno> {
    // As u32 first: the flags are a C int, not to be sign-extended into the u64.
    let how = OpenHow { flags: u64::from((flags | libc::O_CLOEXEC) as u32), mode: u64::from(mode), resolve };
    let mut tries = 0;
    loop {
        // SAFETY: `path` is NUL-terminated, `how` is a valid open_how and the size
        // passed is its size; the kernel does not keep either pointer.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this fd; nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        match Errno::last() {
            Errno(libc::EAGAIN | libc::EINTR) if tries < RETRIES => tries += 1,
            e => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn in_root_clamps_dotdot_and_absolute_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "inside").unwrap();
        std::fs::write(t.path().join("passwd"), "outside").unwrap();
        std::os::unix::fs::symlink("/../../passwd", root.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
        let dir = std::fs::File::open(&root).unwrap();
        let read = |p: &CStr, resolve| {
            let fd = openat2(dir.as_fd(), p, libc::O_RDONLY, 0, resolve)?;
            Ok::<_, Errno>(std::io::read_to_string(std::fs::File::from(fd)).unwrap())
        };
        assert_eq!(read(c"../../etc/passwd", RESOLVE_IN_ROOT).unwrap(), "inside");
        assert_eq!(read(c"abs", RESOLVE_IN_ROOT).unwrap(), "inside");
        assert_eq!(read(c"up", RESOLVE_IN_ROOT), Err(Errno(libc::ENOENT)), "clamped at the root: /passwd");
        let fd = openat2(dir.as_fd(), c"etc", libc::O_PATH, 0, RESOLVE_IN_ROOT).unwrap();
        // SAFETY: F_GETFD only reads the flags of an fd we own.
        let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(fl & libc::FD_CLOEXEC, 0, "always close-on-exec");
    }

    #[test]
    fn magic_links_refused_when_asked() {
        let dir = std::fs::File::open("/proc/self").unwrap();
        let e = openat2(dir.as_fd(), c"exe", libc::O_PATH, 0, RESOLVE_NO_MAGICLINKS).unwrap_err();
        assert_eq!(e, Errno(libc::ELOOP));
    }
}
