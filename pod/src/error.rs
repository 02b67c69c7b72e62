//! The crate's error type: each variant says what was asked and of what.

use std::path::PathBuf;

/// Any error of a managed-container or pod operation.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error(transparent)]
    Image(#[from] capsa_image::images::ImageError),
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `capsa` (runtime) or `capsa-shim` command failed; holds its own error text.
    #[error("{cmd}: {msg}")]
    Command { cmd: String, msg: String },
    #[error("no such {kind}: {name:?}")]
    NotFound { kind: &'static str, name: String },
    #[error(transparent)]
    Cni(#[from] crate::cni::CniError),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("{0}")]
    Msg(String),
}

impl PodError {
    /// A plain message error.
    pub fn msg(s: impl Into<String>) -> Self {
        PodError::Msg(s.into())
    }
}

/// `map_err` helper for io errors: `.map_err(io("read", &path))`.
pub fn io<'a>(what: &'static str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> PodError + 'a {
    move |source| PodError::Io { what, path: path.to_path_buf(), source }
}

impl From<capsa_fsutil::Error> for PodError {
    fn from(e: capsa_fsutil::Error) -> Self {
        PodError::Io { what: e.step, path: e.path, source: e.source }
    }
}

/// Mode of the state files this crate writes (`capsa.json`, `config.json` with the
/// process environment, `pod.json`, markers): root's alone.
pub const STATE_MODE: u32 = 0o600;

/// Result alias of this crate.
pub type Result<T, E = PodError> = std::result::Result<T, E>;
