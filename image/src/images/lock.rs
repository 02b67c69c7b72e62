//! [`Lock`]: an exclusive flock on a file (the store lock, a container's lock).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{io_err, ImageError};

/// An exclusive lock on a file (flock), released on drop.
pub struct Lock(#[allow(dead_code)] File);

impl Lock {
    /// Takes the lock, waiting for it.
    pub fn acquire(path: &Path) -> Result<Lock, ImageError> {
        let f = open_lock_file(path)?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err("lock", path)(io::Error::last_os_error()));
        }
        Ok(Lock(f))
    }

    /// Takes the lock if free; `None` when someone holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<Lock>, ImageError> {
        let f = open_lock_file(path)?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(io_err("lock", path)(e));
        }
        Ok(Some(Lock(f)))
    }

    /// The lock's fd (close-on-exec). A flock belongs to the open file, so a
    /// child given this fd (made inheritable in the child only, between fork and
    /// exec) holds the lock until every holder has closed it: a container's
    /// monitor keeps it for as long as the container lives.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

fn open_lock_file(path: &Path) -> Result<File, ImageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err("open lock file", path))
}
