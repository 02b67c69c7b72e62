//! `pod create` and a CRI sandbox's creation: pinning the namespaces, attaching the
//! pod to its CNI network, writing its files; undone on any error.

use std::path::PathBuf;

use capsa_image::images::ImageStore;

use super::network::{attachment, network_list, own_netns, teardown};
use super::record::check_name;
use super::{list, lock, make_pod_dir, save, write_files, NetConfig, PodCreate, PodRecord};
use crate::cni;
use crate::error::{PodError, Result};
use crate::netns;
use crate::pidns;

/// What a sandbox asks of its pod beyond [`PodCreate`] (a CRI `RunPodSandbox`).
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// The namespace kinds to pin, among net, ipc, uts; the others are the host's.
    /// `None`: net, ipc and uts (ipc and uts for the host network).
    pub pin: Option<Vec<String>>,
    /// CNI_ARGS (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_INFRA_CONTAINER_ID`, `K8S_POD_UID`).
    pub cni_args: Vec<(String, String)>,
    /// The content of the pod's `/etc/resolv.conf` (default: the host's, minus loopback resolvers).
    pub resolv_conf: Option<String>,
    /// Namespaced sysctls set in the pinned namespaces (see [`netns::pin_with`]).
    pub sysctls: Vec<(String, String)>,
    /// Give the pod a shared pid namespace held by `<this binary> --pause` (capsa-shim).
    pub pid_holder: Option<PathBuf>,
}

/// 8 random hex digits.
fn random_hex() -> String {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        b = (t ^ std::process::id()).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `pod create`: pins the namespaces, attaches the pod to its network, writes
/// hosts/resolv.conf/hostname. On any error everything made so far is undone.
pub fn create(store: &ImageStore, net: &NetConfig, req: &PodCreate) -> Result<PodRecord> {
    create_with(store, net, req, &mut |_| Ok(()))
}

/// [`create`], running `during` (on this thread) while the CNI plugins attach
/// the pod's network on another: the pod's containers can be *created* (not
/// started) meanwhile, since that needs only the pinned namespaces. If either
/// fails, the pod is torn down and the error returned (`during` undoes its own work).
pub fn create_with(
    store: &ImageStore,
    net: &NetConfig,
    req: &PodCreate,
    during: &mut dyn FnMut(&PodRecord) -> Result<()>,
) -> Result<PodRecord> {
    create_sandbox(store, net, req, &SandboxOptions::default(), during)
}

/// The kinds a pod pins, from its options and network.
fn kinds_to_pin(opts: &SandboxOptions, network: &str) -> Result<Vec<String>> {
    match &opts.pin {
        Some(k) => {
            if let Some(bad) = k.iter().find(|k| !netns::KINDS.contains(&k.as_str())) {
                return Err(PodError::invalid(format!("cannot pin a {bad:?} namespace (net, ipc, uts)")));
            }
            if network == "host" && k.iter().any(|k| k == "net") {
                return Err(PodError::invalid("a host-network pod has no network namespace of its own to pin"));
            }
            Ok(netns::KINDS.iter().filter(|x| k.iter().any(|k| k == *x)).map(|x| x.to_string()).collect())
        }
        None if network == "host" => Ok(vec!["ipc".into(), "uts".into()]),
        None => Ok(netns::KINDS.iter().map(|k| k.to_string()).collect()),
    }
}

/// [`create_with`] for a sandbox: which namespaces are the pod's own, its CNI_ARGS,
/// resolv.conf and sysctls (`opts`). `req.name` may be a 64-hex-digit sandbox id.
pub fn create_sandbox(
    store: &ImageStore,
    net: &NetConfig,
    req: &PodCreate,
    opts: &SandboxOptions,
    during: &mut dyn FnMut(&PodRecord) -> Result<()>,
) -> Result<PodRecord> {
    check_name(&req.name)?;
    let _lock = lock(store)?;
    let network = if req.network.is_empty() { "bridge".to_owned() } else { req.network.clone() };
    let kinds = kinds_to_pin(opts, &network)?;
    if network != "host" && !kinds.iter().any(|k| k == "net") {
        return Err(PodError::invalid(format!(
            "pod {}: network {network} needs the pod's own network namespace",
            req.name
        )));
    }
    if network == "none" && !req.ports.is_empty() {
        return Err(PodError::invalid(format!(
            "pod {}: published ports need a network (not --network none)",
            req.name
        )));
    }
    // Ports: not used by another pod, and free on the host.
    let others = list(store)?;
    for pm in &req.ports {
        if let Some(o) =
            others.iter().find(|o| o.ports.iter().any(|q| q.host_port == pm.host_port && q.protocol == pm.protocol))
        {
            return Err(PodError::msg(format!(
                "pod {}: host port {}/{} is already published by pod {}",
                req.name, pm.host_port, pm.protocol, o.name
            )));
        }
        cni::check_host_port_free(pm)?;
    }
    if let Some(r) = store.rootless() {
        return crate::rootless::pod::create(store, req, r, &network, during);
    }
    let list_net = match network.as_str() {
        "none" | "host" => None,
        "bridge" => Some(network_list(net, "capsa", !req.ports.is_empty())?),
        other => Some(network_list(net, other, !req.ports.is_empty())?),
    };
    let dir = make_pod_dir(store, &req.name)?;
    let hostname = req.hostname.clone().unwrap_or_else(|| {
        if network == "host" {
            std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_default()
        } else {
            req.name.clone()
        }
    });
    let mut rec = PodRecord {
        name: req.name.clone(),
        created: capsa_runtime::time::now_rfc3339(),
        network: network.clone(),
        cni_network: list_net.as_ref().map(|l| l.name.clone()),
        ports: req.ports.clone(),
        cni_id: format!("capsa-pod-{}-{}", req.name, random_hex()),
        ip: None,
        hostname: hostname.clone(),
        labels: req.labels.clone(),
        manifest: req.manifest.clone(),
        pinned: opts.pin.as_ref().map(|_| kinds.clone()),
        cni_args: opts.cni_args.clone(),
        resolv_conf: opts.resolv_conf.clone(),
        pid_holder: None,
        host_netns: own_netns(),
        rootless: None,
    };
    // Whether CNI ADD succeeded: a failed ADD has undone its own plugins' work (no DEL then).
    let mut attached = false;
    let made = (|| -> Result<()> {
        let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
        netns::pin_with(&dir.join("ns"), &kinds, &hostname, &opts.sysctls)?;
        tracing::debug!("pod {}: namespaces pinned", rec.name);
        if let Some(bin) = &opts.pid_holder {
            let h = pidns::start(&dir.join("ns"), bin);
            if h.is_err() {
                netns::unpin(&dir.join("ns"));
            }
            rec.pid_holder = Some(h?);
            tracing::debug!("pod {}: pid namespace held by pid {:?}", rec.name, rec.pid_holder);
        }
        // Saved before ADD: a failure from here on is cleaned up by teardown().
        save(&dir, &rec)?;
        // The files exist before any container mounts them; with the IP known they
        // are rewritten in place (same inode: bind mounts see the new content).
        write_files(&dir, &rec)?;
        let (added, masq, ran) = std::thread::scope(|s| {
            let panicked =
                || cni::CniError::Io { context: "CNI ADD".into(), source: std::io::Error::other("thread panicked") };
            // The masquerade rule does not depend on the bridge: added alongside.
            let masq = list_net.as_ref().map(|l| s.spawn(move || cni::ensure_masquerade(l)));
            let adding = list_net.as_ref().map(|l| {
                let a = attachment(store, &rec);
                s.spawn(move || net.cni.add(l, &a))
            });
            let ran = during(&rec);
            tracing::debug!("pod {}: containers prepared; waiting for the network", rec.name);
            let added = adding.map(|h| h.join().unwrap_or_else(|_| Err(panicked())));
            let masq = masq.map(|h| h.join().unwrap_or_else(|_| Err(panicked())));
            tracing::debug!("pod {}: network attached", rec.name);
            (added, masq, ran)
        });
        if let Some(added) = added {
            let r = added?;
            attached = true;
            rec.ip = r.ip();
        }
        if let Some(m) = masq {
            m?;
        }
        ran?;
        write_files(&dir, &rec)?;
        save(&dir, &rec)
    })();
    if let Err(e) = made {
        if let Err(ce) = teardown(store, net, &rec, attached) {
            tracing::warn!("clean up pod {}: {ce}", rec.name);
        }
        return Err(e);
    }
    Ok(rec)
}
