//! `/dev/console` for containers with a terminal: the pty slave bound over it.
//!
//! runc CVE-2025-52565: the bind went by path, both ways, so an image whose
//! /dev/console (or /dev/pts/N) is a symlink could redirect it, e.g. onto a procfs
//! file. Here the source is the pty fd itself (checked to be on devpts) and the
//! target is opened without following a final symlink; a symlink, directory or other
//! odd file at /dev/console is refused, as runc 1.2.8 does.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::fdmount;
use super::masks::describe;
use super::mounts::mount_setattr_prop;
use super::paths::{fstat, mount_id, open_in_root};
use crate::sys::{SysError, SysResult};

const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// Bind the terminal `pty` (the slave side) over `/dev/console` of the current root.
pub fn mount_console(pty: BorrowedFd<'_>) -> SysResult<()> {
    check_pty(pty.as_raw_fd())?;
    let root = crate::sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let target = console_target(root.as_raw_fd())?;
    let tree = match fdmount::clone_tree(pty.as_raw_fd(), false, "the terminal") {
        Err(e) if e.errno == libc::EINVAL => clone_from_unbindable(root.as_raw_fd(), pty.as_raw_fd()).ok_or(e)?,
        r => r?,
    };
    let what = "bind the terminal over /dev/console";
    fdmount::attach(&tree, target.as_raw_fd(), what)?;
    fdmount::verify(root.as_raw_fd(), Path::new("dev/console"), libc::O_PATH | libc::O_NOFOLLOW, &tree, what)
}

/// Create `/dev/console` (an empty regular file) under `root` if it is missing, so the
/// terminal can be bound over it after /dev is made read-only. A symlink or another
/// odd file there is an error now rather than later.
pub fn prepare(root: RawFd) -> SysResult<()> {
    match console_target(root) {
        Err(e) if e.errno == libc::EROFS => Ok(()),
        r => r.map(drop),
    }
}

/// `rootfsPropagation: "runbindable"` made the container's /dev/pts unbindable, so
/// the terminal cannot be cloned from it: make that mount private for the clone, then
/// unbindable again. `None` when the pty is not on the /dev/pts mount.
fn clone_from_unbindable(root: RawFd, pty: RawFd) -> Option<OwnedFd> {
    let pts = open_in_root(root, Path::new("dev/pts"), libc::O_PATH | libc::O_DIRECTORY).ok()?;
    if mount_id(pts.as_raw_fd()).ok()? != mount_id(pty).ok()? {
        return None;
    }
    let set = |p| mount_setattr_prop(pts.as_raw_fd(), 0, 0, p, false);
    set(libc::MS_PRIVATE).ok()?;
    let tree = fdmount::clone_tree(pty, false, "the terminal");
    if let Err(e) = set(libc::MS_UNBINDABLE) {
        tracing::warn!("make /dev/pts unbindable again: {e}");
    }
    tree.ok()
}

fn check_pty(fd: RawFd) -> SysResult<()> {
    let st = fstat(fd)?;
    // SAFETY: zeroed statfs is a valid out-buffer.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fs is valid for writes for the duration of the call.
    if unsafe { libc::fstatfs(fd, &mut fs) } != 0 {
        return Err(SysError::last("statfs the terminal"));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || fs.f_type as i64 != DEVPTS_SUPER_MAGIC {
        return Err(SysError::from_errno(
            format!("bind the terminal over /dev/console: the terminal is {}, not a pty on devpts", describe(&st)),
            libc::EINVAL,
        ));
    }
    Ok(())
}

/// An `O_PATH` fd of `/dev/console` under `root`, created (as an empty file) when
/// missing. /dev itself is resolved inside the root; the last component
/// is never followed.
fn console_target(root: RawFd) -> SysResult<OwnedFd> {
    let step = "/dev/console (mount point of the terminal)";
    let dev = open_in_root(root, Path::new("dev"), libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| SysError { step: format!("{step}: {}", e.step), ..e })?;
    let open = |flags: libc::c_int, mode: libc::c_uint| {
        // SAFETY: a single-component name relative to our (O_PATH) directory fd; O_NOFOLLOW.
        let fd = unsafe {
            libc::openat(dev.as_raw_fd(), c"console".as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC, mode)
        };
        if fd < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            // SAFETY: a fresh fd from the kernel.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        }
    };
    let fd = match open(libc::O_PATH, 0) {
        Ok(fd) => fd,
        Err(libc::ENOENT) => {
            match open(libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY, 0o666) {
                Ok(_) | Err(libc::EEXIST) => {}
                Err(e) => return Err(SysError::from_errno(format!("create {step}"), e)),
            }
            open(libc::O_PATH, 0).map_err(|e| SysError::from_errno(format!("open {step}"), e))?
        }
        Err(e) => return Err(SysError::from_errno(format!("open {step}"), e)),
    };
    let st = fstat(fd.as_raw_fd())?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG | libc::S_IFCHR => Ok(fd),
        _ => Err(SysError::from_errno(format!("{step}: it is {}", describe(&st)), libc::EINVAL)
            .hint("refusing to mount the terminal there: only a regular file or a device is replaced")),
    }
}
