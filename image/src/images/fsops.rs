//! Filesystem helpers of the store: removing a tree (snapshots hold odd modes and
//! device nodes) and detaching a mount.

use std::fs;
use std::io;
use std::path::Path;

/// Removes a directory tree (or file) without following symlinks;
/// missing is fine. Snapshots contain device nodes and odd modes: a root
/// process removes them all; a directory without write permission is
/// chmodded first.
pub fn remove_tree(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => return fs::remove_file(p),
        Ok(_) => {}
    }
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            // Make every directory writable, then retry.
            fn fix(p: &Path) {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(m) = fs::symlink_metadata(p) {
                    if m.is_dir() {
                        let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
                        if let Ok(rd) = fs::read_dir(p) {
                            for e in rd.flatten() {
                                fix(&e.path());
                            }
                        }
                    }
                }
            }
            fix(p);
            fs::remove_dir_all(p)
        }
    }
}

/// Detaches a mount (lazy); `Ok` if it was not mounted.
pub fn unmount(p: &Path) -> io::Result<()> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) } != 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}
