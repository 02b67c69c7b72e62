//! Pod sandboxes: a sandbox is a capsa pod named by its id (pinned net/ipc/uts, a
//! pid namespace holder when containers share one, CNI networking), plus the
//! record of what kubelet asked.

use std::collections::{BTreeMap, HashMap};

use capsa_pod::cni::PortMapping as CniPort;
use capsa_pod::pods::{self, PodCreate, SandboxOptions};
use serde_json::json;

use crate::daemon::Cri;
use crate::error::{Error, Result};
use crate::proto::{
    self, NamespaceMode, PodIp, PodSandbox, PodSandboxConfig, PodSandboxFilter, PodSandboxNetworkStatus,
    PodSandboxState, PodSandboxStatus, PodSandboxStatusResponse, Protocol, RunPodSandboxRequest,
};
use crate::state::{Kind, SandboxRecord};
use crate::util::{new_id, now_ns};

/// The name a sandbox reserves: `<name>_<namespace>_<uid>_<attempt>` (containerd's).
fn reserved_name(c: &PodSandboxConfig) -> Result<String> {
    let md = c.metadata.as_ref().ok_or_else(|| Error::invalid("sandbox config must include metadata"))?;
    if md.name.is_empty() {
        return Err(Error::invalid("sandbox metadata must include a name"));
    }
    Ok(format!("{}_{}_{}_{}", md.name, md.namespace, md.uid, md.attempt))
}

/// The sandbox's namespace options (all POD when absent, the proto's default).
pub fn namespace_options(c: &PodSandboxConfig) -> proto::NamespaceOption {
    c.linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default()
}

/// `/etc/resolv.conf` from kubelet's DNS config (none: the host's).
fn resolv_conf(c: &PodSandboxConfig) -> Option<String> {
    let d = c.dns_config.as_ref()?;
    if d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty() {
        return None;
    }
    let mut s = String::new();
    if !d.searches.is_empty() {
        s.push_str(&format!("search {}\n", d.searches.join(" ")));
    }
    for n in &d.servers {
        s.push_str(&format!("nameserver {n}\n"));
    }
    if !d.options.is_empty() {
        s.push_str(&format!("options {}\n", d.options.join(" ")));
    }
    Some(s)
}

fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// RunPodSandbox. Returns the new sandbox's id; on failure nothing is left.
pub fn run(cri: &Cri, req: RunPodSandboxRequest) -> Result<String> {
    let config = req.config.ok_or_else(|| Error::invalid("RunPodSandbox: no sandbox config"))?;
    let name = reserved_name(&config)?;
    if !matches!(req.runtime_handler.as_str(), "" | "capsa" | "runc") {
        return Err(Error::unknown(format!("no runtime for {:?} is configured", req.runtime_handler)));
    }
    let id = new_id();
    cri.state.reserve(Kind::Sandbox, &name, &id)?;
    let r = make(cri, &id, &name, config, req.runtime_handler);
    if r.is_err() {
        cri.state.release(Kind::Sandbox, &name, &id);
    }
    r.map(|_| id)
}

fn make(cri: &Cri, id: &str, name: &str, config: PodSandboxConfig, handler: String) -> Result<()> {
    let ns = namespace_options(&config);
    let host_net = ns.network == NamespaceMode::Node as i32;
    let host_ipc = ns.ipc == NamespaceMode::Node as i32;
    if ns.userns_options.as_ref().is_some_and(|u| u.mode == NamespaceMode::Pod as i32) {
        return Err(Error::unknown("user namespaces (userns_options mode POD) are not supported"));
    }
    let network = if host_net {
        "host".to_owned()
    } else {
        match capsa_pod::cni::first_network(&cri.net.conf_dir).map_err(|e| Error::unknown(e.to_string()))? {
            Some(l) => l.name,
            None => {
                return Err(Error::unknown(format!(
                    "failed to setup network for sandbox {id:?}: cni config not initialized (no network config in {})",
                    cri.net.conf_dir.display()
                )))
            }
        }
    };
    let mut pin: Vec<String> = Vec::new();
    if !host_net {
        pin.push("net".into());
        pin.push("uts".into());
    }
    if !host_ipc {
        pin.push("ipc".into());
    }
    let hostname = if !config.hostname.is_empty() { config.hostname.clone() } else { host_hostname() };
    let mut ports = Vec::new();
    for p in &config.port_mappings {
        if p.host_port <= 0 {
            continue;
        }
        let (Ok(host_port), Ok(container_port)) = (u16::try_from(p.host_port), u16::try_from(p.container_port)) else {
            return Err(Error::invalid(format!("port mapping {}:{} is out of range", p.host_port, p.container_port)));
        };
        let protocol = match Protocol::try_from(p.protocol) {
            Ok(Protocol::Tcp) => "tcp",
            Ok(Protocol::Udp) => "udp",
            Ok(Protocol::Sctp) => "sctp",
            Err(_) => return Err(Error::invalid(format!("port mapping protocol {} is unknown", p.protocol))),
        };
        ports.push(CniPort {
            host_port,
            container_port,
            protocol: protocol.into(),
            host_ip: (!p.host_ip.is_empty()).then(|| p.host_ip.clone()),
        });
    }
    let md = config.metadata.clone().unwrap_or_default();
    let cni_args = vec![
        ("K8S_POD_NAMESPACE".to_owned(), md.namespace.clone()),
        ("K8S_POD_NAME".to_owned(), md.name.clone()),
        ("K8S_POD_INFRA_CONTAINER_ID".to_owned(), id.to_owned()),
        ("K8S_POD_UID".to_owned(), md.uid.clone()),
    ];
    let sysctls: Vec<(String, String)> = {
        let s: BTreeMap<&String, &String> =
            config.linux.as_ref().map(|l| l.sysctls.iter().collect()).unwrap_or_default();
        s.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    // Containers that ask for the pod's pid namespace (the default when no option is
    // given) join one held by `capsa-shim --pause`.
    let shared_pid = ns.pid == NamespaceMode::Pod as i32;
    let create = PodCreate {
        name: id.to_owned(),
        network,
        ports,
        hostname: Some(hostname),
        labels: config.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        manifest: None,
    };
    let opts = SandboxOptions {
        pin: Some(pin),
        cni_args,
        resolv_conf: resolv_conf(&config),
        sysctls,
        pid_holder: shared_pid.then(|| cri.tools.shim.clone()),
    };
    tracing::debug!("sandbox {id} ({name}): creating the pod");
    let pod = pods::create_sandbox(&cri.store, &cri.net, &create, &opts, &mut |_| Ok(()))
        .map_err(|e| Error::from(e).context(format!("failed to create sandbox {name:?}")))?;
    if !host_ipc {
        if let Err(e) = crate::shm::mount(&crate::shm::path(&cri.store, id)) {
            if let Err(ce) = pods::remove(&cri.store, &cri.tools, &cri.net, id, true) {
                tracing::warn!("clean up sandbox {id}: {ce}");
            }
            return Err(e);
        }
    }
    let rec = SandboxRecord {
        id: id.to_owned(),
        name: name.to_owned(),
        config,
        runtime_handler: handler,
        created_at: now_ns(),
        stopped: false,
        netns_path: if host_net {
            String::new()
        } else {
            pods::pod_dir(&cri.store, id).join("ns").join("net").display().to_string()
        },
        ips: pod.ip.into_iter().collect(),
    };
    if let Err(e) = cri.state.put_sandbox(&rec) {
        // (pods::remove unmounts the pod's shm too)
        if let Err(ce) = pods::remove(&cri.store, &cri.tools, &cri.net, id, true) {
            tracing::warn!("clean up sandbox {id}: {ce}");
        }
        return Err(e);
    }
    tracing::info!("sandbox {id} ({name}) ready{}", rec.ips.first().map(|i| format!(", IP {i}")).unwrap_or_default());
    Ok(())
}

/// Whether the sandbox is READY: not stopped, its namespaces still pinned and its pid
/// holder alive (a reboot or an external umount makes it NOTREADY).
pub fn is_ready(cri: &Cri, rec: &SandboxRecord) -> bool {
    if rec.stopped {
        return false;
    }
    let Ok(pod) = pods::load(&cri.store, &rec.id) else { return false };
    let ns = pods::pod_dir(&cri.store, &rec.id).join("ns");
    let pinned = pod.pinned.clone().unwrap_or_default();
    pinned.iter().all(|k| capsa_pod::netns::is_pinned(&ns, k)) && pod.pid_holder.as_ref().is_none_or(|h| h.alive())
}

/// StopPodSandbox: kills every container (no grace: kubelet stopped them before),
/// kills the pid holder, releases the network. The record stays (NOTREADY).
pub fn stop(cri: &Cri, rec: &SandboxRecord) -> Result<()> {
    for c in cri.state.containers_of(&rec.id) {
        crate::container::stop_now(cri, &c, 0)?;
    }
    match pods::stop_pid_holder(&cri.store, &rec.id) {
        Ok(()) | Err(capsa_pod::PodError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    crate::shm::unmount(&crate::shm::path(&cri.store, &rec.id))?;
    match pods::detach_network(&cri.store, &cri.net, &rec.id) {
        Ok(_) | Err(capsa_pod::PodError::NotFound { .. }) => {}
        Err(e) => return Err(Error::from(e).context(format!("failed to destroy network for sandbox {:?}", rec.id))),
    }
    if !rec.stopped {
        let mut r = rec.clone();
        r.stopped = true;
        r.ips.clear();
        cri.state.put_sandbox(&r)?;
    }
    Ok(())
}

/// RemovePodSandbox: stops it if needed, removes its containers, the pod, the record.
pub fn remove(cri: &Cri, rec: &SandboxRecord) -> Result<()> {
    stop(cri, rec)?;
    for c in cri.state.containers_of(&rec.id) {
        crate::container::remove_now(cri, &c)?;
    }
    match pods::remove(&cri.store, &cri.tools, &cri.net, &rec.id, true) {
        Ok(()) | Err(capsa_pod::PodError::NotFound { .. }) => {}
        Err(e) => return Err(Error::from(e).context(format!("failed to remove sandbox {:?}", rec.id))),
    }
    cri.state.remove(Kind::Sandbox, &rec.id)?;
    tracing::info!("sandbox {} removed", rec.id);
    Ok(())
}

/// The CRI status of a sandbox.
pub fn to_status(cri: &Cri, rec: &SandboxRecord) -> PodSandboxStatus {
    let ready = is_ready(cri, rec);
    let ns = namespace_options(&rec.config);
    let ips = if ready { rec.ips.clone() } else { Vec::new() };
    PodSandboxStatus {
        id: rec.id.clone(),
        metadata: rec.config.metadata.clone(),
        state: if ready { PodSandboxState::SandboxReady } else { PodSandboxState::SandboxNotready } as i32,
        created_at: rec.created_at,
        network: Some(PodSandboxNetworkStatus {
            ip: ips.first().cloned().unwrap_or_default(),
            additional_ips: ips.iter().skip(1).map(|ip| PodIp { ip: ip.clone() }).collect(),
        }),
        linux: Some(proto::LinuxPodSandboxStatus { namespaces: Some(proto::Namespace { options: Some(ns) }) }),
        labels: rec.config.labels.clone(),
        annotations: rec.config.annotations.clone(),
        runtime_handler: rec.runtime_handler.clone(),
    }
}

/// PodSandboxStatus.
pub fn status(cri: &Cri, id: &str, verbose: bool) -> Result<PodSandboxStatusResponse> {
    let rec = cri.state.sandbox(id)?;
    let status = to_status(cri, &rec);
    let mut info = HashMap::new();
    if verbose {
        let pod = pods::load(&cri.store, &rec.id).ok();
        let cni_result = pod.as_ref().and_then(|p| {
            let net = p.cni_network.as_ref()?;
            cri.net.cni.cached_result(net, &p.cni_id, "eth0").map(|r| r.raw)
        });
        let v = json!({
            "sandboxID": rec.id,
            "name": rec.name,
            "netNamespacePath": rec.netns_path,
            "podDir": pods::pod_dir(&cri.store, &rec.id),
            "pinnedNamespaces": pod.as_ref().and_then(|p| p.pinned.clone()),
            "pidHolder": pod.as_ref().and_then(|p| p.pid_holder.as_ref().map(|h| h.pid)),
            "runtimeHandler": rec.runtime_handler,
            "cniResult": cni_result,
            "config": rec.config,
        });
        info.insert("info".to_owned(), v.to_string());
    }
    let containers_statuses =
        cri.state.containers_of(&rec.id).iter().map(|c| crate::container::to_status(cri, c)).collect();
    Ok(PodSandboxStatusResponse { status: Some(status), info, containers_statuses, timestamp: now_ns() })
}

fn labels_match(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// ListPodSandbox.
pub fn list(cri: &Cri, filter: Option<PodSandboxFilter>) -> Vec<PodSandbox> {
    let f = filter.unwrap_or_default();
    // As containerd: an id filter may be a unique prefix.
    let want_id =
        if f.id.is_empty() { None } else { Some(cri.state.resolve(Kind::Sandbox, &f.id).unwrap_or(f.id.clone())) };
    cri.state
        .sandboxes()
        .into_iter()
        .filter(|r| want_id.as_ref().is_none_or(|id| *id == r.id))
        .filter(|r| labels_match(&r.config.labels, &f.label_selector))
        .filter_map(|r| {
            let state =
                if is_ready(cri, &r) { PodSandboxState::SandboxReady } else { PodSandboxState::SandboxNotready } as i32;
            if f.state.as_ref().is_some_and(|s| s.state != state) {
                return None;
            }
            Some(PodSandbox {
                id: r.id.clone(),
                metadata: r.config.metadata.clone(),
                state,
                created_at: r.created_at,
                labels: r.config.labels.clone(),
                annotations: r.config.annotations.clone(),
                runtime_handler: r.runtime_handler.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{DnsConfig, PodSandboxMetadata};

    #[test]
    fn names_and_dns() {
        let mut c = PodSandboxConfig::default();
        assert_eq!(reserved_name(&c).unwrap_err().code, tonic::Code::InvalidArgument);
        c.metadata =
            Some(PodSandboxMetadata { name: "web".into(), uid: "u1".into(), namespace: "default".into(), attempt: 2 });
        assert_eq!(reserved_name(&c).unwrap(), "web_default_u1_2");
        assert_eq!(resolv_conf(&c), None);
        c.dns_config = Some(DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["default.svc.cluster.local".into(), "svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        });
        assert_eq!(
            resolv_conf(&c).unwrap(),
            "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }
}
