//! capsa-fsutil: the low-level layer every capsa crate shares, audited once: file
//! primitives and the few system calls more than one crate makes.
//!
//! - [`write_atomic`]: replace a file's content so that readers, and the file
//!   after a crash, see either the old content or the new, never a mix or an empty
//!   file ([`Durability`]: also after a power loss); created with the caller's mode,
//!   never wider (state files hold secrets).
//! - [`ensure_dir`]: a directory that is at most as open as asked, narrowing an
//!   existing one (how stores made by older versions are migrated).
//! - [`errno_name`]: `EPERM` for 1, for error messages.
//! - [`Errno`]: an errno shown as `EPERM (Operation not permitted)`.
//! - [`sock`]: unix sockets at paths longer than `sockaddr_un` holds.
//! - [`sys`]: `openat2` inside a root, fd passing (SCM_RIGHTS), `/proc/PID/stat`.
//!
//! It depends on libc only, so the shim (a tiny binary), the image store and the
//! runtime can all use it without depending on each other.

mod atomic;
mod dir;
mod errno;
pub mod sock;
pub mod sys;

pub use atomic::{write_atomic, Durability, TempFile};
pub use dir::ensure_dir;
pub use errno::{errno_name, Errno};

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A failed file operation: the step, the path it was asked on, the OS error.
#[derive(Debug)]
pub struct Error {
    /// What was being done (`create temp file`, `fsync`, `rename`...).
    pub step: &'static str,
    /// On which path.
    pub path: PathBuf,
    /// The OS error (its `raw_os_error` is the errno).
    pub source: io::Error,
}

impl Error {
    fn last(step: &'static str, path: impl Into<PathBuf>) -> Error {
        Error { step, path: path.into(), source: io::Error::last_os_error() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.step, self.path.display())?;
        match self.source.raw_os_error() {
            Some(n) => write!(f, "{}", Errno(n)),
            None => write!(f, "{}", self.source),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<Error> for io::Error {
    /// Keeps the errno's kind; the message keeps the step and the path.
    fn from(e: Error) -> io::Error {
        io::Error::new(e.source.kind(), e.to_string())
    }
}

/// Result of this crate's functions.
pub type Result<T> = std::result::Result<T, Error>;
