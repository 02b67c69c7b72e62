//! Errors of the local image store, and the helpers that build them from I/O errors.

use std::io;
use std::path::{Path, PathBuf};

use crate::apply::ApplyError;
use crate::digest::Digest;
use crate::layout::LayoutError;
use crate::reference;
use crate::store::StoreError;

/// Errors of the local image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Content store error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Import error.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Reference error.
    #[error(transparent)]
    Reference(#[from] reference::ReferenceError),
    /// Registry error.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// A layer could not be unpacked.
    #[error("unpack layer {layer}: {source}")]
    Apply {
        /// The layer's blob digest.
        layer: Digest,
        /// Why.
        #[source]
        source: ApplyError,
    },
    /// No such image in the local store.
    #[error("image {0:?} not found in the local store (import or pull it first; see `capsa image ls`)")]
    NotFound(String),
    /// A container of that name exists (`running`: its lock is held).
    #[error(
        "container name {name:?} is in use by a {} container: `capsa rm {}{name}` removes it, or choose another --name",
        if *running { "running" } else { "stopped" },
        if *running { "-f " } else { "" }
    )]
    NameInUse {
        /// The name asked for.
        name: String,
        /// Whether that container runs.
        running: bool,
    },
    /// A short id matches several images.
    #[error("image id prefix {0:?} matches several images; give more digits")]
    AmbiguousId(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

pub(super) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| ImageError::Io { op, path: path.to_owned(), source }
}

pub(crate) fn io_error(op: &'static str, path: &Path, source: io::Error) -> ImageError {
    ImageError::Io { op, path: path.to_owned(), source }
}

pub(crate) fn fs_error(e: capsa_fsutil::Error) -> ImageError {
    ImageError::Io { op: e.step, path: e.path, source: e.source }
}
