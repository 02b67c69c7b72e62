//! Copying a directory tree by fds (for `tmpcopyup`): never through paths, never
//! following symlinks, keeping modes and owners.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::sys::{SysError, SysResult};

/// Copy the contents of directory `src` (readable: it is listed) into directory `dst`
/// (an `O_PATH` fd will do).
pub fn copy_tree(src: RawFd, dst: RawFd) -> SysResult<()> {
    // SAFETY: dup of a valid fd; fdopendir takes ownership of the duplicate.
    let dir = unsafe { libc::fdopendir(libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 0)) };
    if dir.is_null() {
        return Err(SysError::last("opendir (tmpcopyup source)"));
    }
    let mut result = Ok(());
    loop {
        // SAFETY: dir is a valid DIR*; the entry is read before the next readdir call.
        let ent = unsafe { libc::readdir(dir) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated within the dirent.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        if let Err(e) = copy_entry(src, dst, name) {
            result = Err(e);
            break;
        }
    }
    // SAFETY: closing the DIR* we opened.
    unsafe { libc::closedir(dir) };
    result
}

fn copy_entry(src: RawFd, dst: RawFd, name: &CStr) -> SysResult<()> {
    let shown = name.to_string_lossy();
    // SAFETY: stat is plain C data: all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `st` a live out-buffer; fstatat does not follow the symlink.
    if unsafe { libc::fstatat(src, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } < 0 {
        return Err(SysError::last(format!("stat {shown}")));
    }
    let mode = st.st_mode & 0o7777;
    // SAFETY: (whole block) *at calls on directory fds we own with a single-component
    // name; O_NOFOLLOW everywhere, so nothing outside the two directories is touched.
    // The fds wrapped in OwnedFd are fresh from openat; readlinkat leaves room for the NUL.
    unsafe {
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                if libc::mkdirat(dst, name.as_ptr(), mode) < 0
                    && std::io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
                {
                    return Err(SysError::last(format!("mkdir {shown}")));
                }
                let s = open_dir(src, name)?;
                let d = open_dir(dst, name)?;
                copy_tree(s.as_raw_fd(), d.as_raw_fd())?;
            }
            libc::S_IFREG => {
                let s = libc::openat(src, name.as_ptr(), libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC);
                if s < 0 {
                    return Err(SysError::last(format!("open {shown}")));
                }
                let s = OwnedFd::from_raw_fd(s);
                let d = libc::openat(
                    dst,
                    name.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    mode,
                );
                if d < 0 {
                    return Err(SysError::last(format!("create {shown}")));
                }
                let d = OwnedFd::from_raw_fd(d);
                let mut left = st.st_size as usize;
                while left > 0 {
                    let n = libc::copy_file_range(
                        s.as_raw_fd(),
                        std::ptr::null_mut(),
                        d.as_raw_fd(),
                        std::ptr::null_mut(),
                        left,
                        0,
                    );
                    if n <= 0 {
                        break;
                    }
                    left -= n as usize;
                }
            }
            libc::S_IFLNK => {
                let mut buf = [0u8; 4096];
                let n = libc::readlinkat(src, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len() - 1);
                if n < 0 {
                    return Err(SysError::last(format!("readlink {shown}")));
                }
                buf[n as usize] = 0;
                libc::symlinkat(buf.as_ptr().cast(), dst, name.as_ptr());
            }
            _ => {
                libc::mknodat(dst, name.as_ptr(), st.st_mode, st.st_rdev);
            }
        }
        libc::fchownat(dst, name.as_ptr(), st.st_uid, st.st_gid, libc::AT_SYMLINK_NOFOLLOW);
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            libc::fchmodat(dst, name.as_ptr(), mode, 0);
        }
    }
    Ok(())
}

fn open_dir(at: RawFd, name: &CStr) -> SysResult<OwnedFd> {
    // SAFETY: openat with a single component, O_NOFOLLOW|O_DIRECTORY.
    let fd = unsafe {
        libc::openat(at, name.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
    };
    if fd < 0 {
        return Err(SysError::last(format!("open dir {}", name.to_string_lossy())));
    }
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
