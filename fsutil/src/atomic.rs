//! Atomic replacement of a file: the one way capsa writes state and metadata.
//!
//! The protocol, each step for a reason:
//! 1. open the target's directory once and do everything relative to that fd, so the
//!    temp file and the final name are in the same directory (rename is atomic only
//!    within one filesystem) even if the directory is renamed meanwhile;
//! 2. create `.<name>.tmp-<pid>-<n>` with `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC` and the
//!    final mode: never an existing file or a planted symlink, never inherited by a
//!    child, never readable by others for a moment (the mode is set at creation, and
//!    the umask can only narrow it, as with open(2));
//! 3. write everything, `fsync` it ([`Durability::Durable`]): after a power loss the
//!    rename below never exposes an empty or partial file (ext4, xfs and btrfs may
//!    persist a rename before the data);
//! 4. `renameat` over the final name: readers, and a writer killed at any point, see
//!    the old file or the new, never a mix (a symlink at the final name is replaced,
//!    not followed);
//! 5. `fsync` the directory ([`Durability::Durable`]): the rename itself is durable
//!    when we return.
//!
//! On any failure before the rename the temp file is removed, and the final name is
//! untouched.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Error, Result};

/// How many temp names are tried before giving up (each is O_EXCL).
const TEMP_ATTEMPTS: u32 = 64;
/// Longest part of the final name kept in the temp name (NAME_MAX is 255).
const NAME_KEEP: usize = 200;

/// Whether a write must survive a power loss, not only a crash of its writer. Every
/// caller says which, at the call site; the mode is its other explicit choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file before the rename and the directory after: after a power loss
    /// the file is whole (the old or the new one), and the new one once the write
    /// returned. For what outlives a reboot, and is read back after one:
    /// - the image store: `images.json`, a container rootfs's `layers` (prune keeps
    ///   what it names), the blobs ([`TempFile::persist`]);
    /// - pod records: `pod.json`, a kept container's `capsa.json` and `config.json`,
    ///   its `stop` and `lost` markers; the CNI result cache (what `DEL` is given);
    /// - the monitor's (capsa-shim's) `shim.pid`, `shim.json` and `exit`;
    /// - capsa-cri's sandbox and container records (loaded again when it starts).
    Durable,
    /// No fsync (runc and crun write their state so): readers and a killed writer
    /// still see the old file or the new, never a mix; after a power loss the file
    /// may be the old one, the new one, or empty. For files that describe kernel
    /// objects a reboot destroys anyway (the runtime's `--root`: a container's
    /// `state.json` with its pids, cgroups and namespaces; the `--pid-file`; the
    /// compiled seccomp cache, which checks its entries), and for records that live
    /// no longer than a process (a `run --rm`'s container) or only inform (the exit a
    /// foreground `run` records for `ps -a`).
    /// Each fsync was measured at ~0.5 ms on an idle ext4 root and ~10-30 ms while
    /// other processes write; on tmpfs (/run on most hosts) it costs nothing either way.
    Volatile,
}

/// Replaces `path` with `data` atomically (see the module doc), creating it with
/// `mode` (minus the umask). `path` may be relative (to the current directory).
///
/// The file never has a wider mode than `mode`, whatever mode an existing file at
/// `path` had: the new file replaces it.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32, durability: Durability) -> Result<()> {
    let (dir, name) = split(path)?;
    let mut f = TempFile::create(dir, name, mode)?;
    f.write_all(data)?;
    f.finish(name, durability == Durability::Durable)
}

/// A temp file in a directory, given its final name only once complete: the same
/// protocol as [`write_atomic`], for content that is streamed (and, for content-
/// addressed files, named after what was written). Removed on drop unless persisted.
pub struct TempFile {
    dirfd: OwnedFd,
    dir: PathBuf,
    fd: Option<OwnedFd>,
    tmp: CString,
}

impl TempFile {
    /// Creates a fresh temp file in `dir` with `mode` (minus the umask); `hint` (the
    /// final name, usually) shows in the temp name, for whoever finds a leftover.
    pub fn create(dir: &Path, hint: &OsStr, mode: u32) -> Result<TempFile> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dirfd = open_dir(dir)?;
        let (fd, tmp) = create_temp(&dirfd, dir, hint, mode, &SEQ)?;
        Ok(TempFile { dirfd, dir: dir.into(), fd: Some(fd), tmp })
    }

    /// Where the temp file is (for messages).
    pub fn path(&self) -> PathBuf {
        self.dir.join(OsStr::from_bytes(self.tmp.as_bytes()))
    }

    /// Appends all of `data`.
    pub fn write_all(&mut self, data: &[u8]) -> Result<()> {
        write_all(self.raw(), data).map_err(|source| Error { step: "write", path: self.path(), source })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// fsync, close, rename to `name` in the same directory (replacing what is
    /// there), fsync the directory ([`Durability::Durable`]). `name` is one path
    /// component.
    pub fn persist(self, name: &OsStr) -> Result<()> {
        self.finish(name, true)
    }

    fn finish(mut self, name: &OsStr, sync: bool) -> Result<()> {
        let final_path = self.dir.join(name);
        if name.as_bytes().contains(&b'/') || name.is_empty() || name == "." || name == ".." {
            return Err(Error {
                step: "rename (the final name must be one path component)",
                path: final_path,
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        // SAFETY: fsync on an fd we own.
        if sync && unsafe { libc::fsync(self.raw()) } != 0 {
            return Err(Error::last("fsync", self.path()));
        }
        // close(2) can report a deferred write error (NFS): check it rather than drop.
        let fd = self.fd.take().map(std::mem::ManuallyDrop::new);
        let raw = fd.as_ref().map_or(-1, |f| f.as_raw_fd());
        // SAFETY: `raw` is ours; ManuallyDrop keeps OwnedFd from closing it again.
        if unsafe { libc::close(raw) } != 0 {
            return Err(Error::last("close", self.path()));
        }
        let cname = cstring(name.as_bytes(), &final_path)?;
        let dirfd = self.dirfd.as_raw_fd();
        // SAFETY: both names are NUL-terminated and relative to a directory fd we own.
        if unsafe { libc::renameat(dirfd, self.tmp.as_ptr(), dirfd, cname.as_ptr()) } != 0 {
            return Err(Error::last("rename over", final_path));
        }
        // Renamed: nothing left to unlink.
        self.tmp = CString::default();
        // SAFETY: fsync on a directory fd we own.
        if sync && unsafe { libc::fsync(dirfd) } != 0 {
            let e = std::io::Error::last_os_error();
            // EINVAL: a filesystem without directory fsync (nothing to make durable).
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(Error { step: "fsync directory", path: self.dir.clone(), source: e });
            }
        }
        Ok(())
    }
}

impl std::io::Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: writes from a live slice to an fd we own.
        let n = unsafe { libc::write(self.raw(), buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.tmp.as_bytes().is_empty() {
            // SAFETY: a NUL-terminated name relative to a directory fd we own.
            unsafe { libc::unlinkat(self.dirfd.as_raw_fd(), self.tmp.as_ptr(), 0) };
        }
    }
}

/// (directory, file name) of a path to write; a bare name is in the current directory.
fn split(path: &Path) -> Result<(&Path, &OsStr)> {
    let name = path.file_name().ok_or_else(|| Error {
        step: "write (no file name in the path)",
        path: path.into(),
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// The temp name for attempt `n`: hidden, recognisable, unique per process and attempt.
pub(crate) fn temp_name(name: &OsStr, n: u32) -> Vec<u8> {
    let b = name.as_bytes();
    let keep = &b[..b.len().min(NAME_KEEP)];
    let mut out = Vec::with_capacity(keep.len() + 32);
    out.push(b'.');
    out.extend_from_slice(keep);
    out.extend_from_slice(format!(".tmp-{}-{n}", std::process::id()).as_bytes());
    out
}

fn create_temp(dirfd: &OwnedFd, dir: &Path, name: &OsStr, mode: u32, seq: &AtomicU32) -> Result<(OwnedFd, CString)> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    for _ in 0..TEMP_ATTEMPTS {
        let tmp = cstring(&temp_name(name, seq.fetch_add(1, Ordering::Relaxed)), dir)?;
        // SAFETY: a NUL-terminated name relative to a directory fd we own.
        let fd = unsafe { libc::openat(dirfd.as_raw_fd(), tmp.as_ptr(), flags, mode as libc::c_uint) };
        if fd >= 0 {
            // SAFETY: the kernel just returned this fd; nobody else owns it.
            return Ok((unsafe { OwnedFd::from_raw_fd(fd) }, tmp));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(Error {
                step: "create temp file",
                path: dir.join(OsStr::from_bytes(tmp.as_bytes())),
                source: e,
            });
        }
        // A leftover of a crashed writer with our pid (or a planted name): next one.
    }
    Err(Error {
        step: "create temp file (every name taken)",
        path: dir.join(OsStr::from_bytes(&temp_name(name, 0))),
        source: std::io::Error::from_raw_os_error(libc::EEXIST),
    })
}

/// Opens a directory for `*at` calls and fsync.
pub(crate) fn open_dir(dir: &Path) -> Result<OwnedFd> {
    let c = cstring(dir.as_os_str().as_bytes(), dir)?;
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::last("open directory", dir));
    }
    // SAFETY: the kernel just returned this fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn cstring(b: &[u8], path: &Path) -> Result<CString> {
    CString::new(b).map_err(|_| Error {
        step: "path contains a NUL byte",
        path: PathBuf::from(OsStr::from_bytes(path.as_os_str().as_bytes())),
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    })
}

fn write_all(fd: RawFd, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: writes from a live slice to an fd we own.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn writes_with_the_mode_and_replaces_a_wider_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("state.json");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        for d in [Durability::Durable, Durability::Volatile] {
            // The temp file exists before the old one is freed: its inode differs.
            let ino = fs::metadata(&p).unwrap().ino();
            write_atomic(&p, b"{\"secret\":1}", 0o600, d).unwrap();
            let m = fs::metadata(&p).unwrap();
            assert_eq!(m.mode() & 0o7777, 0o600);
            assert_ne!(m.ino(), ino, "the file must be replaced, not rewritten in place");
            assert_eq!(fs::read(&p).unwrap(), b"{\"secret\":1}");
            assert_eq!(names(t.path()), ["state.json"], "no temp file may remain");
        }
    }

    #[test]
    fn a_failed_rename_leaves_no_temp_and_the_target_untouched() {
        let t = tempfile::tempdir().unwrap();
        // A non-empty directory at the final name: rename(2) fails (EISDIR).
        let p = t.path().join("target");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("keep"), "x").unwrap();
        let e = write_atomic(&p, b"data", 0o600, Durability::Durable).unwrap_err();
        assert_eq!(e.step, "rename over");
        assert_eq!(e.source.raw_os_error(), Some(libc::EISDIR), "{e}");
        assert!(e.to_string().contains("EISDIR"), "{e}");
        assert_eq!(names(t.path()), ["target"]);
        assert_eq!(names(&p), ["keep"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("nope/state.json");
        let e = write_atomic(&p, b"x", 0o600, Durability::Durable).unwrap_err();
        assert_eq!(e.step, "open directory");
        assert_eq!(e.path, t.path().join("nope"));
        assert_eq!(e.source.raw_os_error(), Some(libc::ENOENT));
        assert!(write_atomic(Path::new("/"), b"x", 0o600, Durability::Durable).is_err(), "no file name");
    }

    #[test]
    fn a_symlink_at_the_final_name_is_replaced_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::write(&outside, "precious").unwrap();
        let p = t.path().join("pid");
        std::os::unix::fs::symlink(&outside, &p).unwrap();
        write_atomic(&p, b"42", 0o644, Durability::Durable).unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
        assert!(fs::symlink_metadata(&p).unwrap().file_type().is_file());
        assert_eq!(fs::read(&p).unwrap(), b"42");
    }

    #[test]
    fn taken_temp_names_are_skipped_without_following_them() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::write(&outside, "precious").unwrap();
        let name = OsStr::new("f");
        // Symlinks planted at the first three temp names (a crashed writer's leftovers
        // or an attacker's guess).
        for n in 0..3 {
            std::os::unix::fs::symlink(&outside, t.path().join(OsStr::from_bytes(&temp_name(name, n)))).unwrap();
        }
        let dirfd = open_dir(t.path()).unwrap();
        let seq = AtomicU32::new(0);
        let (fd, tmp) = create_temp(&dirfd, t.path(), name, 0o600, &seq).unwrap();
        assert_eq!(tmp.as_bytes(), temp_name(name, 3));
        write_all(fd.as_raw_fd(), b"new").unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"precious", "a planted symlink was followed");
        let m = fs::symlink_metadata(t.path().join(OsStr::from_bytes(tmp.as_bytes()))).unwrap();
        assert!(m.file_type().is_file());
        // Every name taken: a clear error, nothing followed.
        let seq = AtomicU32::new(0);
        for n in 4..TEMP_ATTEMPTS {
            std::os::unix::fs::symlink(&outside, t.path().join(OsStr::from_bytes(&temp_name(name, n)))).unwrap();
        }
        let e = create_temp(&dirfd, t.path(), name, 0o600, &seq).unwrap_err();
        assert_eq!(e.source.raw_os_error(), Some(libc::EEXIST), "{e}");
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
    }

    #[test]
    fn readers_see_the_old_or_the_new_content_never_a_mix() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("big");
        let a = vec![b'a'; 256 << 10];
        let b = vec![b'b'; 256 << 10];
        write_atomic(&p, &a, 0o600, Durability::Durable).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut seen = 0;
                while !stop.load(Ordering::Relaxed) {
                    let got = fs::read(&p).unwrap();
                    assert!(got == a || got == b, "a reader saw a mix or a partial file ({} bytes)", got.len());
                    seen += 1;
                }
                seen
            });
            for i in 0..60 {
                // Without fsync too: atomicity for readers comes from the rename alone.
                let d = if i % 3 == 0 { Durability::Durable } else { Durability::Volatile };
                write_atomic(&p, if i % 2 == 0 { &b } else { &a }, 0o600, d).unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
        assert_eq!(names(t.path()), ["big"]);
    }

    #[test]
    fn a_temp_file_is_named_only_when_persisted() {
        use std::io::Write;
        let t = tempfile::tempdir().unwrap();
        let mut f = TempFile::create(t.path(), OsStr::new("blob"), 0o600).unwrap();
        f.write_all(b"half").unwrap();
        assert_eq!(names(t.path()).len(), 1);
        drop(f);
        assert!(names(t.path()).is_empty(), "a dropped temp file must be removed");
        let mut f = TempFile::create(t.path(), OsStr::new("blob"), 0o640).unwrap();
        write!(f, "streamed {}", 1).unwrap();
        let e =
            TempFile::create(t.path(), OsStr::new("x"), 0o600).unwrap().persist(OsStr::new("../escape")).unwrap_err();
        assert_eq!(e.source.raw_os_error(), Some(libc::EINVAL), "{e}");
        f.persist(OsStr::new("sha256-abc")).unwrap();
        assert_eq!(names(t.path()), ["sha256-abc"]);
        assert_eq!(fs::read(t.path().join("sha256-abc")).unwrap(), b"streamed 1");
        let mode = fs::metadata(t.path().join("sha256-abc")).unwrap().mode() & 0o7777;
        assert_eq!(mode & !0o640, 0, "mode {mode:o} is wider than asked");
    }

    #[test]
    fn long_names_fit_name_max() {
        let t = tempfile::tempdir().unwrap();
        let long = "x".repeat(255);
        write_atomic(&t.path().join(&long), b"1", 0o600, Durability::Durable).unwrap();
        assert_eq!(fs::read(t.path().join(&long)).unwrap(), b"1");
        assert!(temp_name(OsStr::new(&long), u32::MAX).len() <= 255);
    }
}
