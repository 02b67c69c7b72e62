//! Removal inside the target: replacing entries, whiteouts, opaque directories.
//!
//! Everything here works on a directory fd that was resolved inside the root
//! and on single names; recursion opens each subdirectory with
//! `O_NOFOLLOW|O_DIRECTORY` relative to its parent fd, so a symlink is only
//! ever unlinked, never descended into.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};

use super::sys::{self, Errno};
use super::{Applier, ApplyError, WhiteoutMode};

/// Name of the overlayfs opaque xattr.
const OVERLAY_OPAQUE: &CStr = c"trusted.overlay.opaque";
/// Its `userxattr` form (overlayfs mounted inside a user namespace).
const OVERLAY_OPAQUE_USER: &CStr = c"user.overlay.opaque";

impl Applier<'_> {
    /// Removes `dfd/name` if it exists: unlink, or for a directory, its whole
    /// subtree then the directory.
    pub(super) fn remove_existing(&mut self, dfd: BorrowedFd<'_>, name: &CStr) -> Result<(), ApplyError> {
        match sys::lstatat(dfd, name) {
            Ok(st) => {
                let dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                self.remove_entry(dfd, name, dir)
            }
            Err(Errno(libc::ENOENT)) => Ok(()),
            Err(e) => Err(self.sys("fstatat before removal", e)),
        }
    }

    /// Removes `dfd/name`, known to be a directory or not.
    fn remove_entry(&mut self, dfd: BorrowedFd<'_>, name: &CStr, dir: bool) -> Result<(), ApplyError> {
        if dir {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            let sub = sys::openat(dfd, name, flags, 0).map_err(|e| self.sys("open directory to remove", e))?;
            self.empty_dir(sub.as_fd())?;
            sys::unlinkat(dfd, name, libc::AT_REMOVEDIR).map_err(|e| self.sys("unlinkat(AT_REMOVEDIR)", e))
        } else {
            sys::unlinkat(dfd, name, 0).map_err(|e| self.sys("unlinkat", e))
        }
    }

    /// Removes every child of the directory `dfd`.
    fn empty_dir(&mut self, dfd: BorrowedFd<'_>) -> Result<(), ApplyError> {
        let children = sys::list_dir(dfd).map_err(|e| self.sys("read directory", e))?;
        for (child, dir) in &children {
            self.remove_entry(dfd, child, *dir)?;
        }
        Ok(())
    }

    /// `.wh.<target>` in directory `pfd` (path `parent`): deletes what lower
    /// layers put at `parent/target`, or marks it for overlayfs.
    pub(super) fn whiteout(&mut self, pfd: BorrowedFd<'_>, parent: &[u8], target: &[u8]) -> Result<(), ApplyError> {
        self.stats.whiteouts += 1;
        // Whiteouts apply to lower layers only: an entry of this same layer
        // with that name stays (OCI image spec, "Whiteouts").
        let mut full = std::mem::take(&mut self.scratch);
        full.clear();
        if !parent.is_empty() {
            full.extend_from_slice(parent);
            full.push(b'/');
        }
        full.extend_from_slice(target);
        let same_layer = self.layer.contains(full.as_slice());
        full.push(0);
        let r = if same_layer {
            Ok(())
        } else {
            // `full` now ends with the NUL; the name is its last component.
            let name = CStr::from_bytes_with_nul(&full[full.len() - target.len() - 1..])
                .expect("normalized components hold no NUL");
            match self.opts.whiteouts {
                WhiteoutMode::Apply => self.remove_existing(pfd, name),
                WhiteoutMode::Overlay => self.remove_existing(pfd, name).and_then(|()| {
                    sys::mknodat(pfd, name, libc::S_IFCHR, 0).map_err(|e| self.sys("mknodat whiteout (char 0:0)", e))
                }),
            }
        };
        self.scratch = full;
        r
    }

    /// `.wh..wh..opq` in directory `pfd` (path `dir`).
    pub(super) fn opaque(&mut self, pfd: BorrowedFd<'_>, dir: &[u8]) -> Result<(), ApplyError> {
        self.stats.opaque_dirs += 1;
        let d = sys::openat(pfd, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|e| self.sys("open opaque directory", e))?;
        match self.opts.whiteouts {
            WhiteoutMode::Apply => self.clear_lower(d.as_fd(), dir),
            WhiteoutMode::Overlay if self.opts.overlay_userxattr => {
                sys::fsetxattr(d.as_fd(), OVERLAY_OPAQUE_USER, b"y")
                    .map_err(|e| self.sys("fsetxattr user.overlay.opaque", e))
            }
            WhiteoutMode::Overlay => sys::fsetxattr(d.as_fd(), OVERLAY_OPAQUE, b"y")
                .map_err(|e| self.sys("fsetxattr trusted.overlay.opaque", e)),
        }
    }

    /// Deletes everything under directory `dfd` (path `dir`) that this layer
    /// did not create, keeping this layer's entries wherever they are in the
    /// tar relative to the opaque marker.
    fn clear_lower(&mut self, dfd: BorrowedFd<'_>, dir: &[u8]) -> Result<(), ApplyError> {
        let children = sys::list_dir(dfd).map_err(|e| self.sys("read opaque directory", e))?;
        let mut child_path = Vec::with_capacity(dir.len() + 64);
        for (name, is_dir) in &children {
            child_path.clear();
            if !dir.is_empty() {
                child_path.extend_from_slice(dir);
                child_path.push(b'/');
            }
            child_path.extend_from_slice(name.to_bytes());
            if !self.layer.contains(child_path.as_slice()) {
                self.remove_entry(dfd, name, *is_dir)?;
            } else if *is_dir {
                let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                let sub =
                    sys::openat(dfd, name, flags, 0).map_err(|e| self.sys("open directory in opaque directory", e))?;
                self.clear_lower(sub.as_fd(), &child_path.clone())?;
            }
        }
        Ok(())
    }
}
