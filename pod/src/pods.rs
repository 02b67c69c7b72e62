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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use capsa_image::images::ImageStore;
use serde::{Deserialize, Serialize};

use crate::cni::{self, Attachment, Cni, PortMapping};
use crate::containers::{self, Info, PodJoin};
use crate::error::{io, PodError, Result};
use crate::netns;
use crate::pidns;
use crate::runtime_cli::Tools;

/// Where user network configs live (`--network NAME` picks one by its name).
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/capsa/net.d";

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
    /// The namespace kinds the pod pins (see [`SandboxOptions::pin`]); `None` in records
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

/// The inode of this process's network namespace.
fn own_netns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net").ok().map(|m| m.ino())
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

/// Serializes pod create and remove: port and bridge bookkeeping (is a port
/// published? is the bridge still used?) must not race another pod, and a
/// container joining a pod (`run -d --pod`) must not race its removal.
pub fn lock(store: &ImageStore) -> Result<capsa_image::images::Lock> {
    let d = store.root().join("pods");
    // The directory holds the lock file, so it is made first (0700: pod files are root's).
    capsa_fsutil::ensure_dir(&d, 0o700)?;
    Ok(capsa_image::images::Lock::acquire(&d.join(".lock"))?)
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

/// The network list of a pod: the named conflist, or the built-in one (without
/// portmap when the pod publishes no port). Create and teardown derive it alike.
fn network_list(net: &NetConfig, name: &str, has_ports: bool) -> Result<cni::NetworkList> {
    let l = cni::load_network(&net.conf_dir, name)?;
    Ok(if l.is_builtin() && !has_ports { cni::default_network_without_portmap() } else { l })
}

/// Makes `<store>/pods/NAME`; an error if the pod exists.
pub(crate) fn make_pod_dir(store: &ImageStore, name: &str) -> Result<PathBuf> {
    let dir = pod_dir(store, name);
    match std::fs::create_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(PodError::msg(format!("pod {name} already exists")))
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

fn check_name(name: &str) -> Result<()> {
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
        Err(PodError::msg(format!(
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
    serde_json::from_slice(&data).map_err(|e| PodError::msg(format!("{}: {e}", p.display())))
}

pub(crate) fn save(dir: &Path, rec: &PodRecord) -> Result<()> {
    crate::error::write_state(&dir.join("pod.json"), &serde_json::to_vec_pretty(rec).unwrap_or_default())
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

/// The managed containers of pod `name`, in creation order.
pub fn members(store: &ImageStore, tools: &Tools, name: &str) -> Result<Vec<Info>> {
    Ok(containers::list(store, tools)?.into_iter().filter(|i| i.meta.pod.as_deref() == Some(name)).collect())
}

/// The attachment of a pod to its CNI network.
fn attachment(store: &ImageStore, rec: &PodRecord) -> Attachment {
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
                return Err(PodError::msg(format!("cannot pin a {bad:?} namespace (net, ipc, uts)")));
            }
            if network == "host" && k.iter().any(|k| k == "net") {
                return Err(PodError::msg("a host-network pod has no network namespace of its own to pin"));
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
        return Err(PodError::msg(format!(
            "pod {}: network {network} needs the pod's own network namespace",
            req.name
        )));
    }
    if network == "none" && !req.ports.is_empty() {
        return Err(PodError::msg(format!("pod {}: published ports need a network (not --network none)", req.name)));
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

/// /etc/hosts, /etc/resolv.conf and /etc/hostname for the pod's containers.
pub(crate) fn write_files(dir: &Path, rec: &PodRecord) -> Result<()> {
    let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    match &rec.ip {
        Some(ip) => hosts.push_str(&format!("{ip}\t{}\n", rec.hostname)),
        None => hosts.push_str(&format!("127.0.1.1\t{}\n", rec.hostname)),
    }
    // The host's resolvers, minus loopback ones (unreachable from the pod's
    // network namespace, e.g. systemd-resolved's 127.0.0.53 stub).
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv: String = if let Some(r) = &rec.resolv_conf {
        r.clone()
    } else {
        host.lines()
            .filter(|l| {
                let mut w = l.split_whitespace();
                !(w.next() == Some("nameserver") && w.next().is_some_and(|a| a.starts_with("127.") || a == "::1"))
                    || rec.network == "host"
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    // Rewritten in place, not replaced (same inode: the containers' bind mounts see the
    // new content), and world-readable: a container's non-root user reads them.
    for (f, data) in [("hosts", hosts), ("resolv.conf", resolv), ("hostname", format!("{}\n", rec.hostname))] {
        let p = dir.join(f);
        std::fs::write(&p, data).map_err(io("write", &p))?;
    }
    Ok(())
}

/// What a container must do to join the pod.
pub fn join(store: &ImageStore, rec: &PodRecord) -> Result<PodJoin> {
    let dir = pod_dir(store, &rec.name);
    let files = ["hosts", "resolv.conf", "hostname"].iter().map(|f| (dir.join(f), format!("/etc/{f}"))).collect();
    if let Some(net) = &rec.rootless {
        return Ok(PodJoin { pod: rec.name.clone(), namespaces: net.namespaces(&rec.name)?, files });
    }
    let ns = dir.join("ns");
    let mut namespaces = Vec::new();
    for k in netns::KINDS {
        if rec.network == "host" && k == "net" {
            continue;
        }
        if rec.pinned.as_ref().is_some_and(|p| !p.iter().any(|x| x == k)) {
            // Not the pod's own: the host's (an empty path drops the entry).
            let ty = if k == "net" { "network" } else { k };
            namespaces.push((ty.to_owned(), PathBuf::new()));
            continue;
        }
        if !netns::is_pinned(&ns, k) {
            return Err(PodError::msg(format!(
                "pod {}: its {k} namespace is not pinned at {} (host rebooted?): remove and re-create the pod",
                rec.name,
                ns.join(k).display()
            )));
        }
        let ty = if k == "net" { "network" } else { k };
        namespaces.push((ty.to_owned(), ns.join(k)));
    }
    if rec.network == "host" {
        // Sharing the host's network: no namespace of its own (an empty path drops the entry).
        namespaces.push(("network".to_owned(), PathBuf::new()));
    }
    Ok(PodJoin { pod: rec.name.clone(), namespaces, files })
}

/// Detaches the pod from its network and removes its pins and directory.
/// `del`: run CNI DEL (not after a failed ADD, which undid its own work).
fn teardown(store: &ImageStore, net: &NetConfig, rec: &PodRecord, del: bool) -> Result<()> {
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

/// Kills the holder of the pod's pid namespace, if it has one: every process of
/// that namespace dies with it (a CRI `StopPodSandbox`).
pub fn stop_pid_holder(store: &ImageStore, name: &str) -> Result<()> {
    if let Some(h) = load(store, name)?.pid_holder {
        h.kill();
    }
    Ok(())
}

/// The pod's shared pid namespace to join, if it has one; an error once its holder is gone.
pub fn pid_namespace(store: &ImageStore, rec: &PodRecord) -> Result<Option<PathBuf>> {
    let Some(h) = &rec.pid_holder else { return Ok(None) };
    let ns = pod_dir(store, &rec.name).join("ns");
    if !h.alive() || !netns::is_pinned(&ns, "pid") {
        return Err(PodError::msg(format!(
            "pod {}: the holder of its pid namespace (pid {}) is gone: stop and remove the pod",
            rec.name, h.pid
        )));
    }
    Ok(Some(ns.join("pid")))
}

/// A CRI `StopPodSandbox`: detaches the pod from its network (CNI DEL: its IP, veth and
/// port mappings are released) and keeps the rest (pins, files, containers) until
/// [`remove`]. Doing it again does nothing.
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
