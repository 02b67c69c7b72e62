//! Container and sandbox stats from the cgroups (CPU, memory, pids), the writable
//! layer's size, and the pod's network counters (read inside its network namespace).

use std::collections::HashMap;

use capsa_runtime::cgroups::stats::Stats;

use crate::daemon::Cri;
use crate::error::Result;
use crate::proto::{
    ContainerAttributes, ContainerState, ContainerStats, ContainerStatsFilter, CpuUsage, LinuxPodSandboxStats,
    MemoryUsage, NetworkInterfaceUsage, NetworkUsage, PodSandboxAttributes, PodSandboxStats, PodSandboxStatsFilter,
    ProcessUsage, UInt64Value,
};
use crate::state::{ContainerRecord, Kind, SandboxRecord};
use crate::util::now_ns;

fn u(v: u64) -> Option<UInt64Value> {
    Some(UInt64Value { value: v })
}

/// The cgroup stats of a running container.
fn cgroup_stats(cri: &Cri, id: &str) -> Option<Stats> {
    let rt = capsa_runtime::container::Store::new(&cri.tools.root);
    let st = rt.load(id).ok()?;
    Some(st.cgroup?.stats())
}

fn raw(s: &Stats, v1: &str, v2: &str) -> u64 {
    s.memory.raw.get(v1).or_else(|| s.memory.raw.get(v2)).copied().unwrap_or(0)
}

/// CPU usage, and the rate since the last sample of `key`.
fn cpu(cri: &Cri, key: &str, s: &Stats, ts: i64) -> CpuUsage {
    let total = s.cpu.usage.total;
    let mut samples = cri.cpu_samples.lock().unwrap_or_else(|p| p.into_inner());
    let rate = samples.get(key).and_then(|(t0, c0)| {
        let dt = ts.checked_sub(*t0).filter(|d| *d > 0)?;
        Some((total.saturating_sub(*c0) as u128 * 1_000_000_000 / dt as u128) as u64)
    });
    samples.insert(key.to_owned(), (ts, total));
    CpuUsage { timestamp: ts, usage_core_nano_seconds: u(total), usage_nano_cores: rate.and_then(u) }
}

fn memory(s: &Stats, ts: i64) -> MemoryUsage {
    let usage = s.memory.usage.usage;
    let inactive = raw(s, "total_inactive_file", "inactive_file");
    let working = usage.saturating_sub(inactive);
    let limit = s.memory.usage.limit;
    // No limit reads as a huge number (v1) or max (v2): no "available" then.
    let available = (limit > 0 && limit < (1 << 62)).then(|| limit.saturating_sub(working));
    MemoryUsage {
        timestamp: ts,
        working_set_bytes: u(working),
        available_bytes: available.and_then(u),
        usage_bytes: u(usage),
        rss_bytes: u(raw(s, "total_rss", "anon")),
        page_faults: u(raw(s, "total_pgfault", "pgfault")),
        major_page_faults: u(raw(s, "total_pgmajfault", "pgmajfault")),
    }
}

/// Stats of one container (CPU and memory only while it runs).
pub fn container(cri: &Cri, rec: &ContainerRecord) -> ContainerStats {
    let ts = now_ns();
    let running = crate::container::live(cri, rec).state == ContainerState::ContainerRunning as i32;
    let cg = if running { cgroup_stats(cri, &rec.id) } else { None };
    ContainerStats {
        attributes: Some(ContainerAttributes {
            id: rec.id.clone(),
            metadata: rec.config.metadata.clone(),
            labels: rec.config.labels.clone(),
            annotations: rec.config.annotations.clone(),
        }),
        cpu: cg.as_ref().map(|s| cpu(cri, &rec.id, s, ts)),
        memory: cg.as_ref().map(|s| memory(s, ts)),
        writable_layer: Some(crate::image::writable_layer(cri, &rec.id)),
        swap: None,
    }
}

/// ContainerStats.
pub fn container_stats(cri: &Cri, id: &str) -> Result<ContainerStats> {
    let rec = cri.state.container(id)?;
    Ok(container(cri, &rec))
}

fn labels_match(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// ListContainerStats (running containers, as containerd).
pub fn list_container_stats(cri: &Cri, f: Option<ContainerStatsFilter>) -> Vec<ContainerStats> {
    let f = f.unwrap_or_default();
    let id = (!f.id.is_empty()).then(|| cri.state.resolve(Kind::Container, &f.id).unwrap_or(f.id.clone()));
    let sb = (!f.pod_sandbox_id.is_empty())
        .then(|| cri.state.resolve(Kind::Sandbox, &f.pod_sandbox_id).unwrap_or(f.pod_sandbox_id.clone()));
    cri.state
        .containers()
        .iter()
        .filter(|r| id.as_ref().is_none_or(|i| *i == r.id))
        .filter(|r| sb.as_ref().is_none_or(|s| *s == r.sandbox_id))
        .filter(|r| labels_match(&r.config.labels, &f.label_selector))
        .filter(|r| crate::container::live(cri, r).state == ContainerState::ContainerRunning as i32)
        .map(|r| container(cri, r))
        .collect()
}

/// `/proc/net/dev` of the network namespace at `netns` (read from a thread that joins it).
fn net_dev(netns: &str) -> Option<String> {
    let path = netns.to_owned();
    std::thread::spawn(move || -> Option<String> {
        let f = std::fs::File::open(&path).ok()?;
        use std::os::fd::AsRawFd;
        // SAFETY: setns on this short-lived thread only; the fd is a namespace file.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        std::fs::read_to_string("/proc/thread-self/net/dev").ok()
    })
    .join()
    .ok()
    .flatten()
}

fn network(rec: &SandboxRecord, ts: i64) -> Option<NetworkUsage> {
    if rec.netns_path.is_empty() {
        return None;
    }
    let text = net_dev(&rec.netns_path)?;
    let mut ifs = Vec::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if f.len() < 16 {
            continue;
        }
        ifs.push(NetworkInterfaceUsage {
            name: name.to_owned(),
            rx_bytes: u(f[0]),
            rx_errors: u(f[2]),
            tx_bytes: u(f[8]),
            tx_errors: u(f[10]),
        });
    }
    let default = ifs.iter().find(|i| i.name == "eth0").cloned();
    Some(NetworkUsage { timestamp: ts, default_interface: default, interfaces: ifs })
}

/// The pod's cgroup (kubelet's cgroup_parent), if it has one.
fn pod_cgroup(rec: &SandboxRecord) -> Option<Stats> {
    let parent = rec.config.linux.as_ref().map(|l| l.cgroup_parent.clone()).filter(|p| !p.is_empty())?;
    let host = capsa_runtime::cgroups::detect().ok()?;
    let path = capsa_runtime::cgroups::resolve_path(&parent, &rec.id).ok()?;
    let m = capsa_runtime::cgroups::Manager::new(&host, &path);
    Some(m.stats())
}

/// Stats of one sandbox: its cgroup (or the sum of its containers'), network, processes.
pub fn sandbox(cri: &Cri, rec: &SandboxRecord) -> PodSandboxStats {
    let ts = now_ns();
    let containers: Vec<ContainerStats> = cri
        .state
        .containers_of(&rec.id)
        .iter()
        .filter(|c| crate::container::live(cri, c).state == ContainerState::ContainerRunning as i32)
        .map(|c| container(cri, c))
        .collect();
    let running: Vec<Stats> =
        cri.state.containers_of(&rec.id).iter().filter_map(|c| cgroup_stats(cri, &c.id)).collect();
    let procs: u64 = running.iter().map(|s| s.pids.current).sum();
    let (cpu_u, mem_u) = match pod_cgroup(rec) {
        Some(s) => (cpu(cri, &format!("pod:{}", rec.id), &s, ts), memory(&s, ts)),
        None => {
            let mut sum = Stats::default();
            for s in &running {
                sum.cpu.usage.total += s.cpu.usage.total;
                sum.memory.usage.usage += s.memory.usage.usage;
                for (k, v) in &s.memory.raw {
                    *sum.memory.raw.entry(k.clone()).or_default() += v;
                }
            }
            (cpu(cri, &format!("pod:{}", rec.id), &sum, ts), memory(&sum, ts))
        }
    };
    PodSandboxStats {
        attributes: Some(PodSandboxAttributes {
            id: rec.id.clone(),
            metadata: rec.config.metadata.clone(),
            labels: rec.config.labels.clone(),
            annotations: rec.config.annotations.clone(),
        }),
        linux: Some(LinuxPodSandboxStats {
            cpu: Some(cpu_u),
            memory: Some(mem_u),
            network: network(rec, ts),
            process: Some(ProcessUsage { timestamp: ts, process_count: u(procs) }),
            containers,
        }),
        windows: None,
    }
}

/// PodSandboxStats.
pub fn sandbox_stats(cri: &Cri, id: &str) -> Result<PodSandboxStats> {
    let rec = cri.state.sandbox(id)?;
    Ok(sandbox(cri, &rec))
}

/// ListPodSandboxStats (ready sandboxes).
pub fn list_sandbox_stats(cri: &Cri, f: Option<PodSandboxStatsFilter>) -> Vec<PodSandboxStats> {
    let f = f.unwrap_or_default();
    let id = (!f.id.is_empty()).then(|| cri.state.resolve(Kind::Sandbox, &f.id).unwrap_or(f.id.clone()));
    cri.state
        .sandboxes()
        .iter()
        .filter(|r| id.as_ref().is_none_or(|i| *i == r.id))
        .filter(|r| labels_match(&r.config.labels, &f.label_selector))
        .filter(|r| crate::sandbox::is_ready(cri, r))
        .map(|r| sandbox(cri, r))
        .collect()
}
