//! Pods: a group of containers sharing the net, ipc and uts namespaces that the
//! pod pins ([`crate::netns`]), with an IP from CNI.
//!
//! A pod `NAME` is the directory `<store>/pods/NAME/`:
//!
//! | path          | content |
//! |---------------|---------|
//! | `pod.json`    | [`PodRecord`]: network, ports, IP, hostname, labels |
//! | `ns/`         | the pins `net`, `ipc`, `uts` (a shared bind mount of itself) |
//! | `hosts`, `resolv.conf`, `hostname` | bind-mounted into every container of the pod |
//! | `volumes/`    | emptyDir volumes of a manifest |
//!
//! Its containers are managed containers whose `capsa.json` names the pod.

mod create;
mod files;
mod join;
mod network;
mod record;

use std::time::Duration;

use capsa_image::images::ImageStore;

use crate::containers::{self, Info};
use crate::error::{PodError, Result};
use crate::runtime_cli::Tools;

pub use create::{create, create_sandbox, create_with, SandboxOptions};
pub(crate) use files::write_files;
pub use join::{join, pid_namespace, stop_pid_holder};
use network::teardown;
pub use network::{check, detach_network, NetConfig, DEFAULT_CNI_CONF_DIR};
pub use record::{is_hex_id, list, load, pod_dir, PodCreate, PodRecord};
pub(crate) use record::{make_pod_dir, save};

/// Serializes pod create and remove: port and bridge bookkeeping (is a port
/// published? is the bridge still used?) must not race another pod, and a
/// container joining a pod (`run -d --pod`) must not race its removal.
pub fn lock(store: &ImageStore) -> Result<capsa_image::images::Lock> {
    let d = store.root().join("pods");
    // The directory holds the lock file, so it is made first (0700: pod files are root's).
    capsa_fsutil::ensure_dir(&d, 0o700)?;
    Ok(capsa_image::images::Lock::acquire(&d.join(".lock"))?)
}

/// The managed containers of pod `name`, in creation order.
pub fn members(store: &ImageStore, tools: &Tools, name: &str) -> Result<Vec<Info>> {
    Ok(containers::list(store, tools)?.into_iter().filter(|i| i.meta.pod.as_deref() == Some(name)).collect())
}

/// `pod stop`: stops every container of the pod (the pod keeps its namespaces and IP).
pub fn stop(store: &ImageStore, tools: &Tools, name: &str, grace: Duration) -> Result<Vec<Info>> {
    stop_with(store, tools, name, containers::Grace::Full(grace))
}

/// [`stop`] with a choice of [`containers::Grace`].
pub fn stop_with(store: &ImageStore, tools: &Tools, name: &str, grace: containers::Grace) -> Result<Vec<Info>> {
    load(store, name)?;
    // All at once, as the kubelet does: the grace period is the pod's, not per container.
    let ms = members(store, tools, name)?;
    std::thread::scope(|s| {
        let hs: Vec<_> =
            ms.iter().map(|m| s.spawn(move || containers::stop_with(store, tools, &m.meta.name, grace))).collect();
        hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(PodError::msg("stop: thread panicked")))).collect()
    })
}

/// `pod rm`: refuses while containers run unless `force` (then they are
/// killed); removes the containers, the network attachment, the pins, the directory.
pub fn remove(store: &ImageStore, tools: &Tools, net: &NetConfig, name: &str, force: bool) -> Result<()> {
    let _lock = lock(store)?;
    let rec = load(store, name)?;
    let ms = members(store, tools, name)?;
    if !force {
        if let Some(m) = ms.iter().find(|m| m.is_active()) {
            return Err(PodError::msg(format!(
                "pod {name}: container {} is {}: stop the pod first, or use pod rm -f",
                m.meta.name,
                m.state.as_str()
            )));
        }
    }
    for m in ms.iter().rev() {
        containers::remove(store, tools, &m.meta.name, true)?;
    }
    teardown(store, net, &rec, true)
}
