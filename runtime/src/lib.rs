//! capsa-runtime: an OCI runtime (runtime-spec 1.x) for Linux.
//!
//! The container's init is cloned directly by the runtime (no re-exec of the
//! binary), talks to its parent over a typed sync protocol ([`process::sync`]), and
//! waits on `exec.fifo` until `start`. See the crate's modules for each concern.

pub mod cgroups;
pub mod container;
pub mod error;
pub mod events;
pub mod hooks;
pub mod lifecycle;
pub mod mountinfo;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod rootless;
pub mod security;
pub mod spec;
pub mod sys;
pub mod time;

pub use capsa_explain as explain;
pub use error::{Error, Result};
