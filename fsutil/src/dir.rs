//! Directories that are at most as open as asked.

use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::atomic::{cstring, open_dir};
use crate::{Error, Result};

/// Makes `path` a directory whose permission bits are within `mode`: created with
/// `mode` when missing (missing parents as `mkdir -p` makes them), and an existing
/// one narrowed by removing the bits outside `mode` (0755 with `mode` 0700 becomes
/// 0700; 0500 stays 0500). A symlink to a directory is followed (an admin may move a
/// store elsewhere). Returns the old permission bits when it narrowed them.
///
/// The check and the chmod are made on one open fd, so a directory swapped in
/// between is never the one changed.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<Option<u32>> {
    let c = cstring(path.as_os_str().as_bytes(), path)?;
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::mkdir(c.as_ptr(), mode as libc::mode_t) } != 0 {
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EEXIST) => {}
            Some(libc::ENOENT) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|source| Error {
                        step: "create directory",
                        path: parent.into(),
                        source,
                    })?;
                }
                // SAFETY: as above.
                if unsafe { libc::mkdir(c.as_ptr(), mode as libc::mode_t) } != 0
                    && std::io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
                {
                    return Err(Error::last("create directory", path));
                }
            }
            _ => return Err(Error { step: "create directory", path: path.into(), source: e }),
        }
    }
    let fd = open_dir(path)?;
    // SAFETY: an all-zero stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on an fd we own, into a valid out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(Error::last("stat", path));
    }
    let bits = st.st_mode & 0o7777;
    if bits & !(mode as libc::mode_t) == 0 {
        return Ok(None);
    }
    // SAFETY: fchmod on an fd we own.
    if unsafe { libc::fchmod(fd.as_raw_fd(), bits & mode as libc::mode_t) } != 0 {
        return Err(Error::last("narrow the permissions of", path));
    }
    Ok(Some(bits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_private_and_narrows_an_open_one() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a/b/store");
        assert_eq!(ensure_dir(&p, 0o700).unwrap(), None);
        assert_eq!(mode(&p), 0o700);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).unwrap();
        assert_eq!(ensure_dir(&p, 0o700).unwrap(), Some(0o4755));
        assert_eq!(mode(&p), 0o700);
        assert_eq!(ensure_dir(&p, 0o700).unwrap(), None, "already private: unchanged");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o500)).unwrap();
        assert_eq!(ensure_dir(&p, 0o700).unwrap(), None, "narrower than asked: left alone");
        assert_eq!(mode(&p), 0o500);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(ensure_dir(&p, 0o711).unwrap(), Some(0o755));
        assert_eq!(mode(&p), 0o711);
    }

    #[test]
    fn follows_a_symlink_to_a_directory_and_refuses_a_file() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(ensure_dir(&link, 0o700).unwrap(), Some(0o755));
        assert_eq!(mode(&real), 0o700);
        let f = t.path().join("file");
        fs::write(&f, "").unwrap();
        let e = ensure_dir(&f, 0o700).unwrap_err();
        assert_eq!(e.source.raw_os_error(), Some(libc::ENOTDIR), "{e}");
    }
}
