//! capsa-pod: managed containers and pods.
//!
//! - [`containers`]: `run -d`, `ps`, `stop`, `rm`, `inspect`, `stats` over the
//!   image store, the runtime CLI and one `capsa-shim` per container.
//! - [`logs`]: reading the shim's CRI-format logs (`logs -f --tail --timestamps`).
//! - [`pods`]: pods whose containers share pinned net/ipc/uts namespaces
//!   ([`netns`]), networked by standard CNI plugins ([`cni`]), and applied from
//!   Kubernetes `v1/Pod` manifests ([`manifest`], [`apply`]).
//! - [`seccomp`]: the seccomp profile of each container, checked before it is made.
//! - [`both_sides`]: a running container's namespaces, cgroups and processes next to the host's.
//! - [`filter`]: labels and the `--filter` of `ps` and `pod ls` (docker's semantics).

pub mod apply;
pub mod both_sides;
pub mod cni;
pub mod containers;
pub mod error;
pub mod filter;
pub mod logs;
pub mod manifest;
pub mod netns;
pub mod pidns;
pub mod pods;
pub mod rootless;
pub mod runtime_cli;
pub mod seccomp;
pub mod signals;

pub use error::{PodError, Result};
