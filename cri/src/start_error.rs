//! Errors of starting (and running) the daemon itself: the configuration, the socket,
//! the store, the servers. `capsa-cri` prints them and exits; they never reach a
//! client (a CRI call's errors are [`crate::error::Error`], a gRPC status).

use std::io;
use std::path::PathBuf;

use crate::config::ConfigError;

/// Why the daemon could not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A filesystem or socket operation failed.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done (`create`, `listen on`, `chown`...).
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The configuration could not be read, or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A live daemon answers on the socket already.
    #[error("{}: another daemon is listening there", .0.display())]
    InUse(PathBuf),
    /// `socket_group` names no group of `/etc/group`.
    #[error("socket_group {0:?}: no such group in /etc/group")]
    NoGroup(String),
    /// The image store could not be opened.
    #[error("open the store {}: {source}", .path.display())]
    Store {
        /// The store's directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: capsa_image::images::ImageError,
    },
    /// The daemon's own executable could not be found (the tools live beside it).
    #[error("find capsa-cri's own path: {0}")]
    OwnPath(#[source] io::Error),
    /// The runtime or shim binary is missing.
    #[error("the {what} binary {} does not exist (set {what}_path in the config)", .path.display())]
    MissingBinary {
        /// `runtime` or `shim`.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// Loading the containers' states at start failed (the task panicked).
    #[error("load container states: {0}")]
    Load(#[source] tokio::task::JoinError),
    /// The streaming server (exec, attach, port-forward) could not listen.
    #[error("start the streaming server on {addr}: {source}")]
    Stream {
        /// The configured address.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The async runtime could not be built.
    #[error("start the async runtime: {0}")]
    AsyncRuntime(#[source] io::Error),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Grpc(#[source] tonic::transport::Error),
}

/// `map_err` helper for io errors: `.map_err(io("create", &dir))`.
pub fn io<'a>(what: &'static str, path: &'a std::path::Path) -> impl FnOnce(io::Error) -> StartError + 'a {
    move |source| StartError::Io { what, path: path.to_path_buf(), source }
}
