//! Why the shim could not set itself up or start the container. Hand-written (no
//! `thiserror`): the shim stays a small binary with no dependency beyond libc.
//! The text goes to the launcher over the sync pipe, to `shim.json` and to the log.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// A failed setup or (re)start of the container.
#[derive(Debug)]
pub(crate) enum StartError {
    /// An OS call failed: `what` it did, on `path` if it names one.
    Os { what: &'static str, path: Option<PathBuf>, source: io::Error },
    /// `shim.pid` could not be written.
    PidFile(capsa_fsutil::Error),
    /// The runtime's `step` (`create`, `start`) exited with a failure; `log` is the
    /// last line of its runtime.log (its own error).
    Runtime { step: &'static str, id: String, status: ExitStatus, log: String },
    /// `runtime create` succeeded but wrote no pid file.
    NoPidFile,
    /// `runtime create` sent no pty master on the console socket.
    NoPtyMaster,
}

impl StartError {
    /// An OS error of `what`, with no path.
    pub(crate) fn os(what: &'static str) -> impl FnOnce(io::Error) -> StartError {
        move |source| StartError::Os { what, path: None, source }
    }

    /// An OS error of `what` on `path`.
    pub(crate) fn at(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StartError {
        move |source| StartError::Os { what, path: Some(path.into()), source }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Os { what, path: None, source } => write!(f, "{what}: {source}"),
            StartError::Os { what, path: Some(p), source } => write!(f, "{what} {}: {source}", p.display()),
            StartError::PidFile(e) => write!(f, "write shim.pid: {e}"),
            StartError::Runtime { step, id, status, log } => write!(f, "runtime {step} {id}: {status}: {log}"),
            StartError::NoPidFile => f.write_str("runtime create wrote no pid file"),
            StartError::NoPtyMaster => f.write_str(
                "runtime create sent no pty master on the console socket (is process.terminal true in config.json?)",
            ),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Os { source, .. } => Some(source),
            StartError::PidFile(e) => Some(e),
            _ => None,
        }
    }
}
