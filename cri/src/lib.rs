//! capsa-cri: the Kubernetes Container Runtime Interface (CRI v1) over capsa's pods.
//!
//! A sandbox is a capsa pod ([`capsa_pod::pods`]) named by its id; a container is a
//! capsa managed container ([`capsa_pod::containers`]) under its own `capsa-shim`.
//! The daemon keeps its own records ([`state`]) of what kubelet asked; the live state
//! comes from the pods', containers' and shims' files, so it survives a restart.
//!
//! - [`config`]: the configuration file (`/etc/capsa/cri.toml`); [`start_error`]: why the daemon could not start;
//! - [`server`], [`service`]: the socket and the gRPC services;
//! - [`sandbox`], [`container`], [`spec`], [`seccomp`]: sandboxes and containers;
//! - [`image`]: the image service; [`exec`], [`streaming`], [`forward`]: ExecSync, Exec/Attach/PortForward;
//! - [`stats`], [`events`], [`status`]: stats, container events, runtime status.

/// The generated `runtime.v1` types, clients and servers (from `proto/api.proto`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("runtime.v1");
}

pub mod authority;
pub mod config;
pub mod container;
pub mod daemon;
pub mod error;
pub mod events;
pub mod exec;
pub mod forward;
pub mod image;
pub mod sandbox;
pub mod seccomp;
pub mod server;
pub mod service;
pub mod shm;
pub mod spec;
pub mod start_error;
pub mod state;
pub mod stats;
pub mod status;
pub mod streaming;
pub mod util;
