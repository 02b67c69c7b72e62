//! `readonlyPaths` and `maskedPaths`, applied inside the new root after pivot_root.
//!
//! Every target is resolved once, inside the root (openat2 `RESOLVE_IN_ROOT`), and
//! the mount goes onto that fd with the new mount API: a path swapped or a symlink
//! planted after the lookup cannot redirect it. The source of a file mask is the
//! container's `/dev/null`, which the image may control (a symlink to
//! `/proc/sys/kernel/core_pattern`, a regular file): it is used only after checking it
//! is the null character device 1:3, as runc 1.2.8 does since CVE-2025-31133.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::fdmount;
use super::paths::{fstat, open_in_root, rel};
use crate::sys::{SysError, SysResult};

/// Apply `readonly` then `masked` (runc's order) under the root `root`.
pub fn apply(root: RawFd, readonly: &[String], masked: &[String]) -> SysResult<()> {
    for p in readonly {
        readonly_path(root, p)?;
    }
    let mut null: Option<OwnedFd> = None;
    let mut seen = HashSet::new();
    for p in masked {
        if seen.insert(rel(p)) {
            mask_path(root, p, &mut null)?;
        }
    }
    Ok(())
}

/// Open `p` inside the root; `None` when it does not exist (runc skips those).
fn target(root: RawFd, p: &str, what: &str) -> SysResult<Option<OwnedFd>> {
    match open_in_root(root, &rel(p), libc::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.errno == libc::ENOENT => Ok(None),
        Err(e) => Err(SysError { step: format!("{what} {p}: {}", e.step), ..e }),
    }
}

/// A read-only bind of `p` (with its submounts) onto itself, attached onto the
/// resolved fd. Only the top mount is read-only, as with runc's bind remount.
fn readonly_path(root: RawFd, p: &str) -> SysResult<()> {
    let Some(t) = target(root, p, "readonlyPaths")? else {
        return Ok(());
    };
    let what = format!("readonlyPaths {p}");
    let tree = fdmount::clone_tree(t.as_raw_fd(), true, &what)?;
    // Read-only before it is attached where the kernel can (5.12), so no copy that
    // propagates from it is writable; else right after.
    let done = fdmount::try_set_readonly(&tree, &what)?;
    fdmount::attach(&tree, t.as_raw_fd(), &format!("bind {p} read-only onto itself"))?;
    if !done {
        fdmount::remount_readonly(&tree, &what)?;
    }
    fdmount::verify(root, &rel(p), libc::O_PATH, &tree, &what)
}

/// Hide `p`: a read-only tmpfs over a directory, the null device over anything else.
fn mask_path(root: RawFd, p: &str, null: &mut Option<OwnedFd>) -> SysResult<()> {
    let Some(t) = target(root, p, "maskedPaths")? else {
        return Ok(());
    };
    let st = fstat(t.as_raw_fd())?;
    let tree = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let tmpfs = fdmount::new_tmpfs_ro(&format!("mask {p}"))?;
        fdmount::attach(&tmpfs, t.as_raw_fd(), &format!("mask {p} (read-only tmpfs over it)"))?;
        tmpfs
    } else {
        if null.is_none() {
            *null = Some(dev_null(root, p)?);
        }
        let src = null.as_ref().expect("just set");
        let tree = fdmount::clone_tree(src.as_raw_fd(), false, "/dev/null")?;
        fdmount::attach(&tree, t.as_raw_fd(), &format!("mask {p} (bind /dev/null over it)"))?;
        tree
    };
    fdmount::verify(root, &rel(p), libc::O_PATH, &tree, &format!("mask {p}"))
}

/// The container's `/dev/null`, checked to be the null device.
fn dev_null(root: RawFd, masking: &str) -> SysResult<OwnedFd> {
    let step = || format!("mask {masking}: open the container's /dev/null");
    let fd = open_in_root(root, Path::new("dev/null"), libc::O_PATH)
        .map_err(|e| SysError { step: format!("{}: {}", step(), e.step), ..e })?;
    let st = fstat(fd.as_raw_fd())?;
    if !is_null_device(&st) {
        return Err(SysError::from_errno(
            format!("{}: it is {}, not the null device (character 1:3)", step(), describe(&st)),
            libc::EINVAL,
        )
        .hint("refusing to bind it over masked paths: the image controls /dev/null"));
    }
    Ok(fd)
}

/// A character device 1:3.
pub fn is_null_device(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3)
}

/// "a regular file", "character device 5:1", ...
pub fn describe(st: &libc::stat) -> String {
    let dev = || format!("{}:{}", libc::major(st.st_rdev), libc::minor(st.st_rdev));
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => "a regular file".into(),
        libc::S_IFDIR => "a directory".into(),
        libc::S_IFLNK => "a symlink".into(),
        libc::S_IFCHR => format!("character device {}", dev()),
        libc::S_IFBLK => format!("block device {}", dev()),
        libc::S_IFIFO => "a fifo".into(),
        libc::S_IFSOCK => "a socket".into(),
        _ => "of an unknown type".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_device_check() {
        let st = |path: &str| {
            let f = crate::sys::open(Path::new(path), libc::O_PATH, 0).unwrap();
            fstat(f.as_raw_fd()).unwrap()
        };
        assert!(is_null_device(&st("/dev/null")));
        assert!(!is_null_device(&st("/dev/zero")));
        assert!(!is_null_device(&st("/proc/self/stat")));
        assert_eq!(describe(&st("/dev/zero")), "character device 1:5");
        assert_eq!(describe(&st("/")), "a directory");
    }
}
