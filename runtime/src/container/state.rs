//! `state.json`: what capsa remembers about a container between CLI calls.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cgroups::Manager;
use crate::spec::{Hooks, LinuxSeccomp, Process};

/// How far `create` got. A container stuck in `Creating` was interrupted (e.g. the
/// runtime was killed): only `delete --force` applies to it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Creating,
    Created,
}

/// The persisted container record (`<root>/<id>/state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub phase: Phase,
    /// Host pid of the container's init (0 until known).
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/pid/stat): guards against pid reuse.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The container's cgroups (absent when the container has none of its own).
    #[serde(default)]
    pub cgroup: Option<Manager>,
    /// The init process as configured: defaults for `exec`.
    #[serde(default)]
    pub process: Option<Process>,
    /// The seccomp profile, re-applied to `exec`'d processes.
    #[serde(default)]
    pub seccomp: Option<LinuxSeccomp>,
    /// Hooks still to run (poststart at start, poststop at delete).
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// Whether the init runs in a user namespace of its own (exec joins it).
    #[serde(default)]
    pub user_ns: bool,
    /// No mount namespace of its own: the mounts the container left at its rootfs in
    /// the runtime's namespace, which `delete` detaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_mounts: Option<crate::rootfs::HostMounts>,
}

impl State {
    /// The OCI state document (`capsa state`, and hooks' stdin).
    pub fn oci(&self, status: &str) -> serde_json::Value {
        serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": status,
            "pid": if status == "stopped" { 0 } else { self.pid },
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": "",
            "annotations": self.annotations,
        })
    }
}
