//! Per-entry work of the applier: parent resolution and creation of each
//! entry type with its metadata, and the final directory metadata pass.

use std::cmp::Reverse;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

use tar::EntryType;

use super::path::{self, classify, normalize_into, NameKind, Split};
use super::sys::{self, Errno, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
use super::{Applier, ApplyError, DirMeta, WhiteoutMode};

/// Resolve flags for every lookup inside the target.
pub(super) const IN_ROOT: u64 = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

/// Header metadata of one entry.
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: (i64, i64),
}

/// Block size for holes: an all-zero block of file data, aligned in the file, is not written.
const HOLE_BLOCK: u64 = 4096;
static ZEROS: [u8; HOLE_BLOCK as usize] = [0; HOLE_BLOCK as usize];

/// Writes `data` at `off` of a new file (`cp --sparse=auto` style), skipping
/// the parts of it that are all-zero aligned blocks (partial at either end of
/// `data`), which then read back as zeros from holes. Returns the end of the
/// last write, `None` when all of `data` was skipped.
fn write_sparse(f: &File, data: &[u8], off: u64) -> io::Result<Option<u64>> {
    let mut end = None;
    // The run of non-zero blocks not yet written, from `run` to `i`.
    let mut run: Option<usize> = None;
    let mut i = 0;
    while i < data.len() {
        let pos = off + i as u64;
        let next = (pos / HOLE_BLOCK + 1) * HOLE_BLOCK;
        let j = data.len().min(i + (next - pos) as usize);
        if data[i..j] == ZEROS[..j - i] {
            if let Some(s) = run.take() {
                f.write_all_at(&data[s..i], off + s as u64)?;
                end = Some(pos);
            }
        } else if run.is_none() {
            run = Some(i);
        }
        i = j;
    }
    if let Some(s) = run {
        f.write_all_at(&data[s..], off + s as u64)?;
        end = Some(off + data.len() as u64);
    }
    Ok(end)
}

/// Fills `buf` with `bytes` and a NUL and returns it as a C string.
pub(super) fn cstr_in<'a>(buf: &'a mut Vec<u8>, bytes: &[u8]) -> &'a CStr {
    buf.clear();
    buf.extend_from_slice(bytes);
    buf.push(0);
    CStr::from_bytes_with_nul(buf).expect("normalized components hold no NUL")
}

/// `seconds[.fraction]` from a PAX time record.
fn parse_pax_time(v: &[u8]) -> Option<(i64, i64)> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nsec = if digits.is_empty() { 0 } else { format!("{digits:0<9}").parse().ok()? };
    Some((sec, if sec < 0 { -nsec } else { nsec }))
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

impl Applier<'_> {
    /// Applies one tar entry.
    pub(super) fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<(), ApplyError> {
        let kind = e.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        self.raw.clear();
        self.raw.extend_from_slice(&e.path_bytes());
        if let Err(pe) = normalize_into(&self.raw, &mut self.path) {
            return Err(self.refuse(pe.reason()));
        }
        self.stats.entries += 1;
        let meta = self.read_meta(e)?;
        // Work on the name buffer moved out of `self` (no copy, no allocation).
        let path = std::mem::take(&mut self.path);
        let r = self.entry_at(e, kind, &meta, &path);
        self.path = path;
        r
    }

    fn entry_at<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        kind: EntryType,
        meta: &Meta,
        path: &[u8],
    ) -> Result<(), ApplyError> {
        let body = path::body(path);
        if body.is_empty() {
            // "." or "/": only a directory may describe the root, and only
            // its metadata is applied (at the end).
            if kind != EntryType::Directory {
                return Err(self.refuse("entry would replace the root directory"));
            }
            let st = sys::fstat(self.root.as_fd()).map_err(|e| self.sys("fstat root", e))?;
            self.push_dir(body, &st, meta);
            self.stats.dirs += 1;
            return Ok(());
        }
        let split = Split::of(path);
        let parent = split.parent(path);
        let name = split.name(path);
        let nk = classify(name.to_bytes());
        let whiteout = matches!(nk, NameKind::Whiteout(_) | NameKind::Opaque);
        match nk {
            NameKind::AufsMeta => {
                self.stats.skipped += 1;
                return Ok(());
            }
            NameKind::BadWhiteout => {
                return Err(self.refuse("whiteout of an empty name, '.' or '..'"));
            }
            _ => {}
        }
        let create = !whiteout || self.opts.whiteouts == WhiteoutMode::Overlay;
        let Some(pfd) = self.take_parent(parent, create)? else {
            // A whiteout in a directory that does not exist: nothing to hide.
            self.stats.whiteouts += 1;
            return Ok(());
        };
        let r = match nk {
            NameKind::Whiteout(target) => self.whiteout(pfd.as_fd(), parent, target),
            NameKind::Opaque => self.opaque(pfd.as_fd(), parent),
            _ => self.create(e, kind, meta, pfd.as_fd(), name, body),
        };
        self.put_parent(parent, pfd);
        r?;
        if !whiteout {
            self.mark_layer(body);
        }
        Ok(())
    }

    fn create<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        kind: EntryType,
        meta: &Meta,
        pfd: BorrowedFd<'_>,
        name: &CStr,
        body: &[u8],
    ) -> Result<(), ApplyError> {
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => self.file(e, meta, pfd, name),
            EntryType::Directory => self.dir(meta, pfd, name, body),
            EntryType::Symlink => self.symlink(e, meta, pfd, name),
            EntryType::Link => self.hardlink(e, pfd, name),
            EntryType::Char | EntryType::Block | EntryType::Fifo => self.node(e, kind, meta, pfd, name),
            other => {
                tracing::warn!("layer entry {:?}: skipping entry type {:?}", self.shown(), other);
                self.stats.skipped += 1;
                Ok(())
            }
        }
    }

    /// Reads mode, owner, mtime, and (PAX) precise mtime and xattrs.
    fn read_meta<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<Meta, ApplyError> {
        let h = e.header();
        let mode = h.mode().map_err(ApplyError::Read)? & 0o7777;
        let uid = h.uid().map_err(ApplyError::Read)?;
        let gid = h.gid().map_err(ApplyError::Read)?;
        let mtime = h.mtime().map_err(ApplyError::Read)?;
        let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
            return Err(self.refuse(format!("uid {uid} or gid {gid} out of range")));
        };
        let mut meta = Meta { mode, uid, gid, mtime: (i64::try_from(mtime).unwrap_or(i64::MAX), 0) };
        self.xattrs.clear();
        if let Some(pax) = e.pax_extensions().map_err(ApplyError::Read)? {
            for ext in pax {
                let ext = ext.map_err(ApplyError::Read)?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        meta.mtime = t;
                    }
                } else if let Some(xname) = key.strip_prefix(b"SCHILY.xattr.") {
                    if self.opts.xattrs {
                        if let Ok(c) = CString::new(xname) {
                            self.xattrs.push((c, ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
        }
        Ok(meta)
    }

    /// The fd of directory `parent` (normalized, no NUL) inside the root,
    /// from the cache when the previous entry had the same parent. With
    /// `create`, missing components are made; without, `None` when missing.
    fn take_parent(&mut self, parent: &[u8], create: bool) -> Result<Option<OwnedFd>, ApplyError> {
        if self.cache_fd.is_some() && self.cache_key == parent {
            return Ok(self.cache_fd.take());
        }
        self.cache_fd = None;
        if parent.is_empty() {
            return self
                .root
                .try_clone()
                .map(Some)
                .map_err(|e| self.sys("dup root fd", Errno(e.raw_os_error().unwrap_or(0))));
        }
        let c = cstr_in(&mut self.scratch, parent);
        match sys::openat2(self.root.as_fd(), c, libc::O_PATH | libc::O_DIRECTORY, 0, IN_ROOT) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno(libc::ENOENT)) if create => self.make_parents(parent).map(Some),
            Err(Errno(libc::ENOENT | libc::ENOTDIR)) if !create => Ok(None),
            Err(e) => Err(self.sys("openat2 parent directory (RESOLVE_IN_ROOT)", e)),
        }
    }

    /// Keeps `fd` as the cached fd of `parent`.
    fn put_parent(&mut self, parent: &[u8], fd: OwnedFd) {
        self.cache_key.clear();
        self.cache_key.extend_from_slice(parent);
        self.cache_fd = Some(fd);
    }

    /// Creates the missing components of `parent`, one `mkdirat` at a time,
    /// each relative to the fd of the component before it.
    fn make_parents(&mut self, parent: &[u8]) -> Result<OwnedFd, ApplyError> {
        let mut cur =
            self.root.try_clone().map_err(|e| self.sys("dup root fd", Errno(e.raw_os_error().unwrap_or(0))))?;
        let mut start = 0;
        while start < parent.len() {
            let end = parent[start..].iter().position(|&b| b == b'/').map_or(parent.len(), |i| start + i);
            let prefix = &parent[..end];
            let c = cstr_in(&mut self.scratch, prefix);
            match sys::openat2(self.root.as_fd(), c, libc::O_PATH | libc::O_DIRECTORY, 0, IN_ROOT) {
                Ok(fd) => cur = fd,
                Err(Errno(libc::ENOENT)) => {
                    let comp = cstr_in(&mut self.scratch, &parent[start..end]);
                    match sys::mkdirat(cur.as_fd(), comp, 0o755) {
                        Ok(()) => {}
                        // The name exists but did not resolve: a dangling symlink.
                        Err(Errno(libc::EEXIST)) => {
                            return Err(self.refuse(format!(
                                "parent component {:?} is a dangling symlink",
                                String::from_utf8_lossy(prefix)
                            )))
                        }
                        Err(e) => return Err(self.sys("mkdirat missing parent", e)),
                    }
                    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                    cur = sys::openat(cur.as_fd(), comp, flags, 0).map_err(|e| self.sys("open new parent", e))?;
                    self.stats.implicit_dirs += 1;
                    self.mark_layer(prefix);
                }
                Err(e) => return Err(self.sys("openat2 parent component (RESOLVE_IN_ROOT)", e)),
            }
            start = end + 1;
        }
        Ok(cur)
    }

    /// Records `body` and its ancestors as belonging to this layer.
    pub(super) fn mark_layer(&mut self, body: &[u8]) {
        let mut p = body;
        // Stop at the first ancestor already present: its own ancestors are too.
        while !p.is_empty() && self.layer.insert(p) {
            p = path::parent_of(p);
        }
    }

    /// Runs `op` to create `name`; if it already exists, removes the old
    /// entry (recursively if a directory) and runs `op` once more.
    pub(super) fn create_replacing(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &CStr,
        what: &'static str,
        mut op: impl FnMut() -> Result<(), Errno>,
    ) -> Result<(), ApplyError> {
        match op() {
            Err(Errno(libc::EEXIST)) => {
                self.remove_existing(pfd, name)?;
                op().map_err(|e| self.sys(what, e))
            }
            r => r.map_err(|e| self.sys(what, e)),
        }
    }

    fn file<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        meta: &Meta,
        pfd: BorrowedFd<'_>,
        name: &CStr,
    ) -> Result<(), ApplyError> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let mut fd = None;
        self.create_replacing(pfd, name, "openat(O_CREAT|O_EXCL|O_NOFOLLOW)", || {
            fd = Some(sys::openat(pfd, name, flags, 0o600)?);
            Ok(())
        })?;
        let f = File::from(fd.expect("set on success"));
        // The file is new and empty: all-zero blocks are left as holes (a GNU
        // sparse entry's holes arrive as zeros too), the size set at the end.
        let (mut size, mut written) = (0u64, 0u64);
        loop {
            let n = match e.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(ApplyError::Read(err)),
            };
            let w = write_sparse(&f, &self.buf[..n], size)
                .map_err(|source| ApplyError::Write { entry: self.shown(), source })?;
            written = w.unwrap_or(written);
            size += n as u64;
            self.stats.file_bytes += n as u64;
        }
        if written < size {
            f.set_len(size).map_err(|source| ApplyError::Write { entry: self.shown(), source })?;
        }
        let fd = f.as_fd();
        // Owner first: chown clears setuid/setgid and security.capability.
        if self.opts.preserve_owners {
            sys::fchown(fd, meta.uid, meta.gid).map_err(|e| self.sys("fchown", e))?;
        }
        sys::fchmod(fd, meta.mode).map_err(|e| self.sys("fchmod", e))?;
        self.set_xattrs(fd)?;
        sys::futimens(fd, meta.mtime.0, meta.mtime.1).map_err(|e| self.sys("futimens", e))?;
        self.stats.files += 1;
        Ok(())
    }

    fn dir(&mut self, meta: &Meta, pfd: BorrowedFd<'_>, name: &CStr, body: &[u8]) -> Result<(), ApplyError> {
        match sys::mkdirat(pfd, name, 0o700) {
            Ok(()) => {}
            Err(Errno(libc::EEXIST)) => {
                let st = sys::lstatat(pfd, name).map_err(|e| self.sys("fstatat", e))?;
                if !is_dir(&st) {
                    // A file or symlink (even to a directory) is replaced.
                    self.remove_existing(pfd, name)?;
                    sys::mkdirat(pfd, name, 0o700).map_err(|e| self.sys("mkdirat", e))?;
                }
            }
            Err(e) => return Err(self.sys("mkdirat", e)),
        }
        let st = sys::lstatat(pfd, name).map_err(|e| self.sys("fstatat", e))?;
        if !self.xattrs.is_empty() {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            let dfd = sys::openat(pfd, name, flags, 0).map_err(|e| self.sys("open directory", e))?;
            self.set_xattrs(dfd.as_fd())?;
        }
        self.push_dir(body, &st, meta);
        self.stats.dirs += 1;
        Ok(())
    }

    fn push_dir(&mut self, body: &[u8], st: &libc::stat, meta: &Meta) {
        self.dirs.push(DirMeta {
            path: body.into(),
            dev: st.st_dev,
            ino: st.st_ino,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime,
        });
    }

    fn symlink<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        meta: &Meta,
        pfd: BorrowedFd<'_>,
        name: &CStr,
    ) -> Result<(), ApplyError> {
        let mut target = std::mem::take(&mut self.link);
        target.clear();
        match e.link_name_bytes() {
            Some(t) if !t.is_empty() && !t.contains(&0) => target.extend_from_slice(&t),
            _ => return Err(self.refuse("symlink with an empty or invalid target")),
        }
        target.push(0);
        // The target is stored verbatim: a symlink may point anywhere, since
        // nothing is ever resolved through it outside the root.
        let t = CStr::from_bytes_with_nul(&target).expect("checked for NUL");
        let r = self.create_replacing(pfd, name, "symlinkat", || sys::symlinkat(t, pfd, name));
        self.link = target;
        r?;
        if self.opts.preserve_owners {
            sys::lchownat(pfd, name, meta.uid, meta.gid).map_err(|e| self.sys("fchownat(AT_SYMLINK_NOFOLLOW)", e))?;
        }
        if !self.xattrs.is_empty() {
            tracing::debug!("layer entry {:?}: xattrs on a symlink not restored", self.shown());
        }
        sys::lutimensat(pfd, name, meta.mtime.0, meta.mtime.1)
            .map_err(|e| self.sys("utimensat(AT_SYMLINK_NOFOLLOW)", e))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    /// Sets the current entry's xattrs on `fd`, by policy, best effort for
    /// filesystems without support.
    fn set_xattrs(&mut self, fd: BorrowedFd<'_>) -> Result<(), ApplyError> {
        let xattrs = std::mem::take(&mut self.xattrs);
        let mut r = Ok(());
        for (name, value) in &xattrs {
            let n = name.to_bytes();
            if n.starts_with(b"trusted.overlay.") || n.starts_with(b"user.overlay.") {
                tracing::warn!("layer entry {:?}: refusing overlayfs xattr {name:?}", self.shown());
                continue;
            }
            if n.starts_with(b"security.") && !self.opts.security_xattrs {
                continue;
            }
            match sys::fsetxattr(fd, name, value) {
                Ok(()) => {}
                Err(Errno(libc::EOPNOTSUPP)) => {
                    if !self.warned_xattrs {
                        tracing::warn!("target filesystem does not support xattr {name:?}; xattrs not restored");
                        self.warned_xattrs = true;
                    }
                }
                Err(Errno(libc::EPERM)) if !sys::is_root() => {
                    tracing::warn!("layer entry {:?}: xattr {name:?} not permitted", self.shown());
                }
                Err(e) => {
                    r = Err(self.sys("fsetxattr", e));
                    break;
                }
            }
        }
        self.xattrs = xattrs;
        r
    }

    /// Applies the collected directory metadata, deepest first, skipping any
    /// path whose directory was replaced after its entry.
    pub(super) fn finish(&mut self) -> Result<(), ApplyError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| Reverse(path::depth(&d.path)));
        self.cache_fd = None;
        for d in &dirs {
            self.raw.clear();
            self.raw.extend_from_slice(&d.path);
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            let fd = if d.path.is_empty() {
                sys::openat(self.root.as_fd(), c".", flags, 0)
            } else {
                let c = cstr_in(&mut self.scratch, &d.path);
                sys::openat2(self.root.as_fd(), c, flags, 0, IN_ROOT)
            };
            let fd = match fd {
                Ok(fd) => fd,
                Err(Errno(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)) => continue,
                Err(e) => return Err(self.sys("open directory for metadata", e)),
            };
            let st = sys::fstat(fd.as_fd()).map_err(|e| self.sys("fstat", e))?;
            if (st.st_dev, st.st_ino) != (d.dev, d.ino) {
                continue;
            }
            if self.opts.preserve_owners {
                sys::fchown(fd.as_fd(), d.uid, d.gid).map_err(|e| self.sys("fchown", e))?;
            }
            sys::fchmod(fd.as_fd(), d.mode).map_err(|e| self.sys("fchmod", e))?;
            sys::futimens(fd.as_fd(), d.mtime.0, d.mtime.1).map_err(|e| self.sys("futimens", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_pax_time;

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"1700000000"), Some((1700000000, 0)));
        assert_eq!(parse_pax_time(b"1700000000.5"), Some((1700000000, 500_000_000)));
        assert_eq!(parse_pax_time(b"1.123456789123"), Some((1, 123_456_789)));
        assert_eq!(parse_pax_time(b"x"), None);
    }
}
