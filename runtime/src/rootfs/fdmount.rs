//! Mounting from fd to fd with the new mount API (`open_tree`, `fsopen`/`fsmount`,
//! `move_mount`, `mount_setattr`): no path is resolved at mount time, not even
//! `/proc/self/fd/N`, which after pivot_root would go through the container's own
//! (image-influenced) `/proc`. Used for everything mounted after the root switch:
//! masked and read-only paths and /dev/console (runc CVE-2025-31133, CVE-2025-52565).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::sys::{SysError, SysResult};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
/// `MOUNT_ATTR_RDONLY`.
pub const ATTR_RDONLY: u64 = 0x1;

fn owned(r: libc::c_long, step: impl FnOnce() -> String) -> SysResult<OwnedFd> {
    if r < 0 {
        return Err(SysError::last(step()));
    }
    // SAFETY: a fresh fd the kernel just returned; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// A detached copy of the mount at `fd` (`open_tree(OPEN_TREE_CLONE)`, i.e. what a bind
/// mount would attach), with its submounts when `recursive`.
pub fn clone_tree(fd: RawFd, recursive: bool, what: &str) -> SysResult<OwnedFd> {
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | libc::AT_EMPTY_PATH as libc::c_uint
        | if recursive { libc::AT_RECURSIVE as libc::c_uint } else { 0 };
    tracing::debug!("open_tree(fd {fd} = {what}, OPEN_TREE_CLONE{})", if recursive { "|AT_RECURSIVE" } else { "" });
    // SAFETY: "" is a valid C string; the fd is ours.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, fd, c"".as_ptr(), flags) };
    owned(r, || format!("clone the mount of {what} (open_tree)"))
}

/// A new read-only tmpfs, not yet attached anywhere (`fsopen` + `fsmount`).
pub fn new_tmpfs_ro(what: &str) -> SysResult<OwnedFd> {
    let step = || format!("create a read-only tmpfs to {what}");
    // SAFETY: a valid C string and flags.
    let fs = owned(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) }, step)?;
    // SAFETY: FSCONFIG_CMD_CREATE takes no key/value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(SysError::last(step()));
    }
    tracing::debug!("{}: fsopen(tmpfs) + fsmount(MOUNT_ATTR_RDONLY)", step());
    // SAFETY: fsmount on our fs context fd.
    owned(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, ATTR_RDONLY) }, step)
}

/// Attach the detached mount `tree` on top of whatever `target` (an fd) is.
pub fn attach(tree: &OwnedFd, target: RawFd, what: &str) -> SysResult<()> {
    tracing::debug!("{what}: move_mount(fd {}, fd {target})", tree.as_raw_fd());
    let empty: &CStr = c"";
    // SAFETY: both paths are "" with the EMPTY_PATH flags; the fds are ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target,
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(SysError::last(format!("{what} (move_mount)")));
    }
    Ok(())
}

/// Make the (detached or attached) mount `tree` read-only, only its top mount.
pub fn set_readonly(tree: &OwnedFd, what: &str) -> SysResult<()> {
    super::mounts::mount_setattr(tree.as_raw_fd(), ATTR_RDONLY, 0, false)
        .map_err(|e| SysError { step: format!("make {what} read-only (mount_setattr)"), ..e })
}

/// Check that `path` under `root` (opened with `flags`) now lands on the mount `tree`
/// that was just attached onto what an earlier lookup of `path` found: nothing was
/// swapped in between, so the path really shows what was mounted.
pub fn verify(root: RawFd, path: &Path, flags: libc::c_int, tree: &OwnedFd, what: &str) -> SysResult<()> {
    let now = super::paths::open_in_root(root, path, flags)?;
    let (want, got) = (super::paths::mount_id(tree.as_raw_fd())?, super::paths::mount_id(now.as_raw_fd())?);
    if want != got {
        return Err(SysError::from_errno(
            format!("{what}: /{} does not show the new mount (mount {got}, not {want})", path.display()),
            libc::EXDEV,
        )
        .hint("the path changed while it was being mounted over"));
    }
    Ok(())
}
