//! Mounting from fd to fd with the new mount API (`open_tree`, `fsopen`/`fsmount`,
//! `move_mount`, `mount_setattr`): no path is resolved at mount time, not even
//! `/proc/self/fd/N`, which after pivot_root would go through the container's own
//! (image-influenced) `/proc`. Used for everything mounted after the root switch:
//! masked and read-only paths and /dev/console (runc CVE-2025-31133, CVE-2025-52565).
//!
//! Kernels: `open_tree`, `move_mount` and `fsopen`/`fsmount` are 5.2, older than the
//! `openat2` (5.6) every lookup in the rootfs needs, so they need no fallback (an
//! ENOSYS from them means a seccomp filter, and says so). `mount_setattr` is 5.12:
//! read-only mounts fall back to a bind remount before that.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::sys::{check, fd_path, mount, SysError, SysResult};

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
        return Err(new_api_hint(SysError::last(step())));
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
        return Err(new_api_hint(SysError::last(step())));
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
        return Err(new_api_hint(SysError::last(format!("{what} (move_mount)"))));
    }
    crate::explain::step(crate::explain::Kind::Mount, || {
        let (host, inside) = crate::explain::target_paths(&format!("/proc/self/fd/{target}"));
        crate::explain::Step::new(
            what.to_string(),
            format!(
                "move_mount({}, \"\", {target} = {host:?}, \"\", MOVE_MOUNT_F_EMPTY_PATH|MOVE_MOUNT_T_EMPTY_PATH)",
                tree.as_raw_fd()
            ),
        )
        .field("target", inside.unwrap_or(host))
    });
    Ok(())
}

/// ENOSYS from a call of the 5.2 mount API: on a kernel that has openat2 (5.6), a
/// seccomp filter (the runtime's own, inherited from its caller) denies it.
fn new_api_hint(e: SysError) -> SysError {
    if e.errno == libc::ENOSYS {
        return e.hint("the new mount API (Linux 5.2) is missing: a seccomp filter on the runtime blocks it?");
    }
    e
}

/// Make the mount `tree` (detached or attached) read-only, only its top mount, with
/// `mount_setattr`. `Ok(false)` when the kernel has no mount_setattr (ENOSYS, before
/// 5.12): [`remount_readonly`] does it once the mount is attached.
pub fn try_set_readonly(tree: &OwnedFd, what: &str) -> SysResult<bool> {
    match super::mounts::mount_setattr(tree.as_raw_fd(), ATTR_RDONLY, 0, false) {
        Ok(()) => {
            crate::explain::step(crate::explain::Kind::Mount, || {
                crate::explain::Step::new(
                    format!("make {what} read-only (that mount only)"),
                    format!(
                        "mount_setattr({}, \"\", AT_EMPTY_PATH, {{attr_set: MOUNT_ATTR_RDONLY}})",
                        tree.as_raw_fd()
                    ),
                )
                .field("readonly", what)
            });
            Ok(true)
        }
        Err(e) if e.errno == libc::ENOSYS => {
            tracing::debug!("make {what} read-only: mount_setattr: ENOSYS; a bind remount instead");
            Ok(false)
        }
        Err(e) => Err(SysError { step: format!("make {what} read-only (mount_setattr)"), ..e }),
    }
}

/// Make the attached mount `fd` is the root of read-only, that mount only.
pub fn set_readonly(fd: &OwnedFd, what: &str) -> SysResult<()> {
    if !try_set_readonly(fd, what)? {
        remount_readonly(fd, what)?;
    }
    Ok(())
}

/// Read-only the way kernels before 5.12 allow: a bind remount
/// (`MS_REMOUNT|MS_BIND|MS_RDONLY`) of the attached mount `fd`, repeating the flags it
/// has (the locked ones of a mount from a more privileged namespace must stay). No
/// path names the mount: a directory is reached as the cwd (fchdir, then "."), a file
/// through `/proc/self/fd/N`. Checked afterwards on the fd itself.
pub fn remount_readonly(fd: &OwnedFd, what: &str) -> SysResult<()> {
    let raw = fd.as_raw_fd();
    let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | super::mounts::statvfs_flags(raw);
    let step = || format!("make {what} read-only (bind remount: no mount_setattr before Linux 5.12)");
    if super::paths::fstat(raw)?.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let cwd = crate::sys::open(Path::new("."), libc::O_PATH | libc::O_DIRECTORY, 0)?;
        // SAFETY: fchdir to fds we own.
        check(unsafe { libc::fchdir(raw) }, || format!("{}: fchdir", step()))?;
        let r = mount(None, c".", None, flags, None, step);
        // SAFETY: as above.
        check(unsafe { libc::fchdir(cwd.as_raw_fd()) }, || format!("{}: fchdir back", step()))?;
        r?;
    } else {
        mount(None, &fd_path(raw), None, flags, None, step)?;
    }
    // SAFETY: zeroed statvfs is a valid out-buffer, written by the kernel.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: s is valid for writes for the duration of the call.
    if unsafe { libc::fstatvfs(raw, &mut s) } != 0 || s.f_flag & libc::ST_RDONLY == 0 {
        return Err(SysError::from_errno(format!("{}: the mount is still writable", step()), libc::EXDEV)
            .hint("the remount reached another mount"));
    }
    Ok(())
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
