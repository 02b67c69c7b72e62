//! A small libcni equivalent: parse network configuration lists, run CNI plugins (ADD, CHECK, DEL) with
//! the spec's environment and stdin, cache ADD results in libcni's format, and a few host-side helpers.
//!
//! Plugins run in the caller's network namespace (the "host side"); the container side is `CNI_NETNS`.
//!
//! By duty: `config` (network lists, the built-in network), `attachment` (what to attach, CNI_ARGS),
//! `runner` ([`Cni`]: ADD, CHECK, DEL), `exec` (one plugin process, host tools), `result`, `cache`, and the
//! host side: `hostport`, `masquerade`, `teardown`. Everything public is re-exported here.

use std::time::Duration;

mod attachment;
mod cache;
mod config;
mod error;
mod exec;
mod hostport;
mod masquerade;
mod result;
mod runner;
mod teardown;

pub use attachment::{Attachment, PortMapping};
pub use config::{
    default_network, default_network_without_portmap, first_network, load_network, NetworkList, DEFAULT_CONFLIST,
};
pub use error::{CniError, PluginFailure, Result};
pub use hostport::check_host_port_free;
pub use masquerade::{ensure_masquerade, remove_masquerade};
pub use result::{CniInterface, CniResult};
pub use runner::Cni;
pub use teardown::{remove_bridge_if_unused, remove_portmap_chains_if_unused};

/// Highest `cniVersion` that Debian's containernetworking-plugins 1.1.1 accept.
pub const MAX_CNI_VERSION: &str = "1.0.0";
/// Lowest `cniVersion` this module handles (the first with configuration lists and `ips[]` results).
pub const MIN_CNI_VERSION: &str = "0.3.0";
/// Default time a single plugin invocation may take before it is killed.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);
