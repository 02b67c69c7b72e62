//! A managed container's record (`capsa.json`), its directory's paths, and reading
//! and writing its JSON files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use capsa_image::images::ImageStore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{io, PodError, Result};

/// The record of a managed container (`capsa.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    pub name: String,
    /// The image name as the user gave it, and its config digest.
    pub image: String,
    pub image_id: String,
    /// RFC 3339.
    pub created: String,
    /// The process args.
    pub command: Vec<String>,
    /// `no`, `on-failure[:N]` or `always`.
    pub restart: String,
    /// Started under a shim (`run -d`, pods); false for a foreground `run`.
    pub detached: bool,
    pub tty: bool,
    pub stdin: bool,
    /// The image's StopSignal, or SIGTERM.
    pub stop_signal: String,
    /// The pod this container belongs to.
    #[serde(default)]
    pub pod: Option<String>,
    /// For pod members: the name in the manifest (`NAME` is `<pod>-<name>`).
    #[serde(default)]
    pub pod_container: Option<String>,
    /// Init containers run to completion before the pod's containers start.
    #[serde(default)]
    pub init: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `<store>/containers/NAME`.
pub fn container_dir(store: &ImageStore, name: &str) -> PathBuf {
    store.root().join("containers").join(name)
}

/// The shim's state directory of a container.
pub fn shim_dir(store: &ImageStore, name: &str) -> PathBuf {
    container_dir(store, name).join("shim")
}

/// The CRI-format log of a container.
pub fn log_path(store: &ImageStore, name: &str) -> PathBuf {
    shim_dir(store, name).join("container.log")
}

/// Rotate the container log past this size (one rotated file is kept).
pub const LOG_MAX_SIZE: u64 = 10 << 20;

pub(super) fn write_json(path: &Path, v: &impl Serialize, durability: capsa_fsutil::Durability) -> Result<()> {
    let data = serde_json::to_vec_pretty(v).map_err(|source| PodError::Encode { path: path.to_path_buf(), source })?;
    Ok(capsa_fsutil::write_atomic(path, &data, crate::error::STATE_MODE, durability)?)
}

/// Reads a container's `capsa.json`.
pub fn load_meta(store: &ImageStore, name: &str) -> Result<Meta> {
    let p = container_dir(store, name).join("capsa.json");
    let data = std::fs::read(&p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PodError::NotFound { kind: "container", name: name.to_owned() }
        } else {
            PodError::Io { what: "read", path: p.clone(), source: e }
        }
    })?;
    serde_json::from_slice(&data).map_err(|source| PodError::Json { path: p, source })
}

pub(super) fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

/// The runtime's view of a running container: its config and cgroup.
pub fn config(store: &ImageStore, name: &str) -> Result<Value> {
    let p = container_dir(store, name).join("config.json");
    let data = std::fs::read(&p).map_err(io("read", &p))?;
    serde_json::from_slice(&data).map_err(|source| PodError::Json { path: p, source })
}
