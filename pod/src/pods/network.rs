//! A pod's CNI network: the settings ([`NetConfig`]), its attachment, detaching it
//! (CNI DEL and the network's shared host state), CNI CHECK, and the pod's teardown.

use std::path::PathBuf;

use capsa_image::images::ImageStore;

use super::{list, load, lock, pod_dir, save, PodRecord};
use crate::cni::{self, Attachment, Cni};
use crate::error::{io, PodError, Result};
use crate::netns;

/// Where user network configs live (`--network NAME` picks one by its name).
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/capsa/net.d";

/// Networking settings: where conflists and plugins are.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub conf_dir: PathBuf,
    pub cni: Cni,
    /// Leave a network's shared host state (its bridge, masquerade rule and portmap's
    /// chains) in place when its last pod leaves. capsa's own pods tidy up after
    /// themselves; under kubelet the network is the node's (containerd leaves `cni0`
    /// too), and deleting a bridge costs ~45 ms that the next pod pays again.
    pub keep_shared: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        let conf_dir =
            std::env::var_os("CAPSA_CNI_CONF_DIR").map_or_else(|| DEFAULT_CNI_CONF_DIR.into(), PathBuf::from);
        NetConfig { conf_dir, cni: Cni::new(), keep_shared: false }
    }
}

/// The inode of this process's network namespace.
pub(super) fn own_netns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net").ok().map(|m| m.ino())
}

/// The network list of a pod: the named conflist, or the built-in one (without
/// portmap when the pod publishes no port). Create and teardown derive it alike.
pub(super) fn network_list(net: &NetConfig, name: &str, has_ports: bool) -> Result<cni::NetworkList> {
    let l = cni::load_network(&net.conf_dir, name)?;
    Ok(if l.is_builtin() && !has_ports { cni::default_network_without_portmap() } else { l })
}

/// The attachment of a pod to its CNI network.
pub(super) fn attachment(store: &ImageStore, rec: &PodRecord) -> Attachment {
    let args = if rec.cni_args.is_empty() {
        vec![("K8S_POD_NAME".into(), rec.name.clone()), ("K8S_POD_NAMESPACE".into(), "capsa".into())]
    } else {
        rec.cni_args.clone()
    };
    Attachment {
        container_id: if rec.cni_id.is_empty() { format!("capsa-pod-{}", rec.name) } else { rec.cni_id.clone() },
        netns: pod_dir(store, &rec.name).join("ns").join("net"),
        ifname: "eth0".into(),
        port_mappings: rec.ports.clone(),
        args,
    }
}

/// Detaches the pod from its network and removes its pins and directory.
/// `del`: run CNI DEL (not after a failed ADD, which undid its own work).
pub(super) fn teardown(store: &ImageStore, net: &NetConfig, rec: &PodRecord, del: bool) -> Result<()> {
    let dir = pod_dir(store, &rec.name);
    if let Some(h) = &rec.pid_holder {
        h.kill();
    }
    if let Some(n) = &rec.rootless {
        n.stop();
    }
    // A failed DEL keeps the pod (record, pins): its lease, veth and rules are still out there.
    let mut first_err = detach(store, net, rec, del)?;
    let vols = dir.join("volumes");
    if let Ok(rd) = std::fs::read_dir(&vols) {
        for e in rd.flatten() {
            let _ = capsa_image::images::unmount(&e.path());
        }
    }
    // A CRI sandbox's /dev/shm tmpfs (capsa-cri mounts it at `shm`), if it is still
    // mounted: removing the tree under a mount would fail half-way.
    let _ = capsa_image::images::unmount(&dir.join("shm"));
    netns::unpin(&dir.join("ns"));
    if let Err(e) = store.remove_tree(&dir) {
        first_err.get_or_insert(io("remove", &dir)(e));
    }
    first_err.map_or(Ok(()), Err)
}

/// A CRI `StopPodSandbox`: detaches the pod from its network (CNI DEL: its IP, veth and
/// port mappings are released) and keeps the rest (pins, files, containers) until
/// [`remove`](super::remove). Doing it again does nothing.
pub fn detach_network(store: &ImageStore, net: &NetConfig, name: &str) -> Result<PodRecord> {
    let _lock = lock(store)?;
    let mut rec = load(store, name)?;
    if rec.cni_network.is_none() {
        return Ok(rec);
    }
    if let Some(e) = detach(store, net, &rec, true)? {
        return Err(e);
    }
    rec.cni_network = None;
    rec.ip = None;
    // Released with the attachment: a new pod may publish them.
    rec.ports.clear();
    save(&pod_dir(store, name), &rec)?;
    Ok(rec)
}

/// The network part of [`teardown`]: CNI DEL (when `del`), then the network's shared
/// host state (bridge, masquerade rule, portmap chains) once no other pod uses it.
/// A DEL failure is the `Err` (the caller keeps the pod, so that the removal can be
/// retried); a network config that cannot be loaded any more is `Ok(Some(error))`.
fn detach(store: &ImageStore, net: &NetConfig, rec: &PodRecord, del: bool) -> Result<Option<PodError>> {
    let dir = pod_dir(store, &rec.name);
    let mut first_err = None;
    if let Some(name) = &rec.cni_network {
        let ns = dir.join("ns");
        if !netns::is_pinned(&ns, "net") {
            // A pin lost to a reboot leaves an empty file: the plugins must see no netns
            // (they then release what they hold) rather than a path that is not one.
            let _ = std::fs::remove_file(ns.join("net"));
        }
        match network_list(net, name, !rec.ports.is_empty()) {
            Ok(l) => {
                if let Err(e) = if del { net.cni.del(&l, &attachment(store, rec)) } else { Ok(()) } {
                    // Keep the pod (record, pins): its lease, veth and rules are still out
                    // there, and `pod rm` can try again.
                    return Err(PodError::msg(format!(
                        "pod {}: detach from network {name}: {e} (the pod is kept; retry capsa pod rm -f {})",
                        rec.name, rec.name
                    )));
                }
                // The bridge and rules live in the netns the pod was attached from:
                // removed from here only when that is ours and no pod attached from it
                // (or from an unknown one: records before `host_netns`) remains.
                let here = own_netns();
                let ours = rec.host_netns.is_none() || rec.host_netns == here;
                let still_used = list(store).unwrap_or_default().iter().any(|o| {
                    o.name != rec.name
                        && o.cni_network.as_deref() == Some(name)
                        && (o.host_netns.is_none() || o.host_netns == here)
                });
                if ours && !still_used && !net.keep_shared {
                    if let Err(e) = cni::remove_masquerade(&l) {
                        tracing::warn!("remove the masquerade rule of network {name}: {e}");
                    }
                    if let Err(e) = cni::remove_bridge_if_unused(&l) {
                        tracing::warn!("remove the bridge of network {name}: {e}");
                    }
                }
                if ours && !rec.ports.is_empty() && !net.keep_shared {
                    if let Err(e) = cni::remove_portmap_chains_if_unused() {
                        tracing::warn!("remove portmap's chains: {e}");
                    }
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Ok(first_err)
}

/// `pod check`: CNI CHECK of the pod's attachment (each plugin verifies that what it
/// set up is still there: veth, address, routes, rules). Ok for pods without a network.
pub fn check(store: &ImageStore, net: &NetConfig, name: &str) -> Result<()> {
    let rec = load(store, name)?;
    let Some(n) = &rec.cni_network else { return Ok(()) };
    let l = network_list(net, n, !rec.ports.is_empty())?;
    Ok(net.cni.check(&l, &attachment(store, &rec))?)
}
