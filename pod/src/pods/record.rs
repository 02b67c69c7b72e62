//! A pod's record (`pod.json`) and directory: [`PodRecord`], [`PodCreate`], pod names,
//! and loading, listing and saving records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use capsa_image::images::ImageStore;
use serde::{Deserialize, Serialize};

use crate::cni::PortMapping;
use crate::error::{io, PodError, Result};
use crate::pidns;
use capsa_fsutil::Durability;

/// The record of a pod (`pod.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PodRecord {
    pub name: String,
    pub created: String,
    /// `bridge` (capsa's default CNI network), `none`, `host`, or a CNI network name.
    pub network: String,
    /// The CNI network list name used (for DEL), when the pod has one.
    #[serde(default)]
    pub cni_network: Option<String>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// CNI_CONTAINERID of the pod's attachment: unique per pod instance (a lease
    /// or cache left by a crash of an earlier pod of the same name never collides).
    #[serde(default)]
    pub cni_id: String,
    /// The pod's IPv4 address on its CNI network.
    #[serde(default)]
    pub ip: Option<String>,
    pub hostname: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The manifest it was applied from, if any.
    #[serde(default)]
    pub manifest: Option<String>,
    /// The namespace kinds the pod pins (see [`SandboxOptions::pin`](super::SandboxOptions::pin)); `None` in records
    /// written before this field: net, ipc and uts (net not for a host-network pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<Vec<String>>,
    /// CNI_ARGS of the pod's attachment; empty: `K8S_POD_NAME=<name>`, `K8S_POD_NAMESPACE=capsa`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<(String, String)>,
    /// The pod's `/etc/resolv.conf`; `None`: the host's, minus loopback resolvers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolv_conf: Option<String>,
    /// The holder of the pod's shared pid namespace, pinned at `ns/pid` (see [`crate::pidns`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_holder: Option<pidns::Holder>,
    /// The network namespace the pod's CNI network was attached from (the inode of
    /// capsa's own `/proc/self/ns/net` then): its bridge and rules live there, so only
    /// pods attached from the same one keep them. `None` in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_netns: Option<u64>,
    /// A rootless pod: the process holding its namespaces, and its pasta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootless: Option<crate::rootless::net::PodNet>,
}

/// What `pod create` asks for.
#[derive(Debug, Clone, Default)]
pub struct PodCreate {
    pub name: String,
    pub network: String,
    pub ports: Vec<PortMapping>,
    pub hostname: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub manifest: Option<String>,
}

/// Makes `<store>/pods/NAME`; an error if the pod exists.
pub(crate) fn make_pod_dir(store: &ImageStore, name: &str) -> Result<PathBuf> {
    let dir = pod_dir(store, name);
    match std::fs::create_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(PodError::AlreadyExists { kind: "pod", name: name.to_owned() })
        }
        Err(e) => Err(io("create", &dir)(e)),
    }
}

/// `<store>/pods/NAME`.
pub fn pod_dir(store: &ImageStore, name: &str) -> PathBuf {
    store.root().join("pods").join(name)
}

/// A CRI sandbox or container id: 64 lowercase hex digits.
pub fn is_hex_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(super) fn check_name(name: &str) -> Result<()> {
    if is_hex_id(name) {
        return Ok(());
    }
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(PodError::invalid(format!(
            "invalid pod name {name:?}: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63"
        )))
    }
}

/// Reads a pod's record.
pub fn load(store: &ImageStore, name: &str) -> Result<PodRecord> {
    let p = pod_dir(store, name).join("pod.json");
    let data = std::fs::read(&p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PodError::NotFound { kind: "pod", name: name.to_owned() }
        } else {
            PodError::Io { what: "read", path: p.clone(), source: e }
        }
    })?;
    serde_json::from_slice(&data).map_err(|source| PodError::Json { path: p, source })
}

pub(crate) fn save(dir: &Path, rec: &PodRecord) -> Result<()> {
    let data = serde_json::to_vec_pretty(rec).unwrap_or_default();
    // Durable: a pod outlives a reboot.
    Ok(capsa_fsutil::write_atomic(&dir.join("pod.json"), &data, crate::error::STATE_MODE, Durability::Durable)?)
}

/// Every pod record, sorted by name.
pub fn list(store: &ImageStore) -> Result<Vec<PodRecord>> {
    let d = store.root().join("pods");
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(PodError::Io { what: "list", path: d, source: e }),
    };
    for e in rd.flatten() {
        if let Ok(r) = load(store, &e.file_name().to_string_lossy()) {
            out.push(r);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
