//! Hardlinks, device nodes and FIFOs.
//!
//! A hardlink's target is normalized like an entry name, its parent resolved
//! with `openat2(RESOLVE_IN_ROOT)` and its final component opened `O_PATH |
//! O_NOFOLLOW`; only a regular file inside the root is linked, through the fd.
//! Device nodes and FIFOs are made with `mknodat` on the parent fd.

use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use tar::EntryType;

use super::entry::{cstr_in, Meta, IN_ROOT};
use super::path::{self, normalize_into, Split};
use super::sys::{self, Errno};
use super::{Applier, ApplyError};

impl Applier<'_> {
    pub(super) fn hardlink<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        pfd: BorrowedFd<'_>,
        name: &CStr,
    ) -> Result<(), ApplyError> {
        let mut link = std::mem::take(&mut self.link);
        let r = match e.link_name_bytes() {
            Some(t) => {
                normalize_into(&t, &mut link).map_err(|pe| self.refuse(format!("hardlink target: {}", pe.reason())))
            }
            None => Err(self.refuse("hardlink without a target")),
        };
        let r = r.and_then(|()| self.hardlink_to(&link, pfd, name));
        self.link = link;
        r
    }

    /// Links `pfd/name` to the regular file `target` (normalized, with NUL),
    /// resolved inside the root.
    fn hardlink_to(&mut self, target: &[u8], pfd: BorrowedFd<'_>, name: &CStr) -> Result<(), ApplyError> {
        if path::body(target).is_empty() {
            return Err(self.refuse("hardlink to the root directory"));
        }
        let shown_target = || String::from_utf8_lossy(path::body(target)).into_owned();
        let split = Split::of(target);
        let tparent = split.parent(target);
        let tdir = if tparent.is_empty() {
            self.root.try_clone().map_err(|e| self.sys("dup root fd", Errno(e.raw_os_error().unwrap_or(0))))?
        } else {
            let c = cstr_in(&mut self.scratch, tparent);
            match sys::openat2(self.root.as_fd(), c, libc::O_PATH | libc::O_DIRECTORY, 0, IN_ROOT) {
                Ok(fd) => fd,
                Err(Errno(libc::ENOENT | libc::ENOTDIR)) => {
                    return Err(self.refuse(format!("hardlink target {:?} does not exist in the root", shown_target())))
                }
                Err(e) => return Err(self.sys("openat2 hardlink target directory", e)),
            }
        };
        let src = match sys::openat(tdir.as_fd(), split.name(target), libc::O_PATH | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(Errno(libc::ENOENT)) => {
                return Err(self.refuse(format!("hardlink target {:?} does not exist in the root", shown_target())))
            }
            Err(e) => return Err(self.sys("open hardlink target", e)),
        };
        let st = sys::fstat(src.as_fd()).map_err(|e| self.sys("fstat hardlink target", e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(self.refuse(format!("hardlink target {:?} is not a regular file", shown_target())));
        }
        match sys::link_fd(src.as_fd(), pfd, name) {
            Ok(()) => {}
            Err(Errno(libc::EEXIST)) => {
                let old = sys::lstatat(pfd, name).map_err(|e| self.sys("fstatat", e))?;
                if (old.st_dev, old.st_ino) != (st.st_dev, st.st_ino) {
                    self.remove_existing(pfd, name)?;
                    sys::link_fd(src.as_fd(), pfd, name).map_err(|e| self.sys("linkat", e))?;
                }
            }
            Err(e) => return Err(self.sys("linkat", e)),
        }
        self.stats.hardlinks += 1;
        Ok(())
    }

    pub(super) fn node<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        kind: EntryType,
        meta: &Meta,
        pfd: BorrowedFd<'_>,
        name: &CStr,
    ) -> Result<(), ApplyError> {
        let h = e.header();
        let (ftype, dev) = match kind {
            EntryType::Fifo => (libc::S_IFIFO, 0),
            _ => {
                let major = h.device_major().map_err(ApplyError::Read)?.unwrap_or(0);
                let minor = h.device_minor().map_err(ApplyError::Read)?.unwrap_or(0);
                let t = if kind == EntryType::Char { libc::S_IFCHR } else { libc::S_IFBLK };
                (t, libc::makedev(major, minor))
            }
        };
        let r =
            self.create_replacing(pfd, name, "mknodat", || sys::mknodat(pfd, name, ftype | (meta.mode & 0o777), dev));
        match r {
            Err(ApplyError::Sys { errno: Errno(libc::EPERM), .. })
                if ftype != libc::S_IFIFO && self.opts.skip_unpermitted_devices =>
            {
                tracing::warn!("layer entry {:?}: device node skipped (EPERM)", self.shown());
                self.stats.skipped += 1;
                return Ok(());
            }
            Err(ApplyError::Sys { errno: Errno(libc::EPERM), .. }) if ftype != libc::S_IFIFO => {
                return Err(
                    self.sys("mknodat (device nodes need CAP_MKNOD in the initial user namespace)", Errno(libc::EPERM))
                );
            }
            r => r?,
        }
        if self.opts.preserve_owners {
            sys::lchownat(pfd, name, meta.uid, meta.gid).map_err(|e| self.sys("fchownat(AT_SYMLINK_NOFOLLOW)", e))?;
        }
        sys::chmod_nofollow(pfd, name, meta.mode).map_err(|e| self.sys("fchmodat2(AT_SYMLINK_NOFOLLOW)", e))?;
        sys::lutimensat(pfd, name, meta.mtime.0, meta.mtime.1)
            .map_err(|e| self.sys("utimensat(AT_SYMLINK_NOFOLLOW)", e))?;
        if ftype == libc::S_IFIFO {
            self.stats.fifos += 1;
        } else {
            self.stats.devices += 1;
        }
        Ok(())
    }
}
