//! Both sides of a container (`capsa inspect --namespaces`): what the kernel gave a
//! running container, next to what the host has.
//!
//! - **Namespaces**: for each type, the inode of the container init's namespace
//!   (`readlink /proc/PID/ns/TYPE`) beside the host's (`/proc/1/ns/TYPE`; capsa's own
//!   where a sandbox hides pid 1's), and whose it
//!   is: the container's own, a pod's (the inode of a pin in `<store>/pods/P/ns/`),
//!   the host's, another container's (under the same runtime root), a named network
//!   namespace (`ip netns`, `/run/netns/N`), or the caller's (capsa's own, when that is
//!   not pid 1's).
//! - **cgroups**: the container's directory per controller, usage against limits from
//!   the runtime's own readers ([`capsa_runtime::cgroups::Manager::stats`],
//!   [`Manager::limits`](capsa_runtime::cgroups::Manager::limits)).
//! - **Processes**: every process of the container's cgroup with its host pid, its pid
//!   in the container's pid namespace (the `NSpid` line of `/proc/PID/status`), its
//!   parent and command line, in tree order.
//!
//! Containers are found by runtime id under the runtime root, by name in the store
//! (managed containers and pod members, whose runtime id is their name; capsa-cri's
//! containers are managed containers named by their id), or by a unique prefix of a
//! hexadecimal id (crictl prints 13 digits of one).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use capsa_image::images::ImageStore;
use capsa_runtime::cgroups::{HostMode, IoThrottle, Manager};
use capsa_runtime::container::{Status, Store};
use serde::Serialize;

use crate::error::{PodError, Result};
use crate::{containers, netns, pods};

/// The namespace types shown, as named in `/proc/PID/ns`.
pub const NAMESPACES: [&str; 9] = ["cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "user", "uts"];

/// What kind of container was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Only in the runtime's state (`capsa create`/`run` of a bundle).
    Runtime,
    /// A managed container (`capsa run -d`).
    Managed,
    /// A container of a capsa pod.
    PodMember,
    /// A container of a capsa-cri sandbox (a pod named by its 64-hex-digit id).
    Cri,
}

impl Kind {
    /// Words for the human report.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Runtime => "runtime container",
            Kind::Managed => "managed container",
            Kind::PodMember => "pod member",
            Kind::Cri => "CRI container",
        }
    }
}

/// Whose a namespace is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Owner {
    /// The container's alone.
    Own,
    /// The host's (pid 1's).
    Host,
    /// Pinned by a pod (`kubernetes`: NAMESPACE/NAME of a CRI sandbox).
    Pod {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        kubernetes: Option<String>,
    },
    /// Another container's init is in it too.
    Container { name: String },
    /// A named network namespace (`/run/netns/NAME`).
    Netns { name: String },
    /// The caller's (capsa's own), which is not pid 1's.
    Caller,
    /// The container's side could not be read (a type this kernel lacks).
    Unknown,
}

/// A 64-hex-digit CRI id as crictl prints it (13 digits); other names whole.
pub fn short(name: &str) -> &str {
    if pods::is_hex_id(name) {
        &name[..13]
    } else {
        name
    }
}

/// The verdict in words (a CRI id shortened as crictl prints it).
impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Own => write!(f, "own"),
            Owner::Host => write!(f, "host"),
            Owner::Pod { name, kubernetes: Some(k) } => write!(f, "shared with pod {} ({k})", short(name)),
            Owner::Pod { name, kubernetes: None } => write!(f, "shared with pod {}", short(name)),
            Owner::Container { name } => write!(f, "shared with container {}", short(name)),
            Owner::Netns { name } => write!(f, "shared with netns {name} (/run/netns)"),
            Owner::Caller => write!(f, "capsa's own (not pid 1's)"),
            Owner::Unknown => write!(f, "-"),
        }
    }
}

/// One namespace type, both sides.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
    /// `readlink /proc/PID/ns/TYPE` of the container's init, e.g. `net:[4026532301]`.
    pub container: Option<String>,
    pub inode: Option<u64>,
    /// The same for the host: pid 1, or capsa itself where pid 1's are unreadable
    /// (see [`Report::host_view`]).
    pub host: Option<String>,
    pub host_inode: Option<u64>,
    pub owner: Owner,
    /// `owner` in words.
    pub verdict: String,
}

/// A cgroup directory and the controllers it serves.
#[derive(Debug, Clone, Serialize)]
pub struct CgroupDir {
    pub controllers: Vec<String>,
    pub path: PathBuf,
}

/// Memory usage against the limit (bytes; `limit` none: unlimited).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    pub usage: u64,
    pub limit: Option<u64>,
    /// Highest usage seen (v1 max_usage_in_bytes, v2 memory.peak; 0 when the kernel has none).
    pub peak: u64,
    /// Times the limit was hit (v1 failcnt, v2 memory.events `max`).
    pub failcnt: u64,
    /// Processes the OOM killer killed in this cgroup.
    pub oom_kills: u64,
}

/// Pids against the limit.
#[derive(Debug, Clone, Serialize)]
pub struct Pids {
    pub current: u64,
    pub limit: Option<u64>,
}

/// CPU use, quota and throttling.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    pub usage_ns: u64,
    pub user_ns: u64,
    pub system_ns: u64,
    pub quota_us: Option<u64>,
    pub period_us: u64,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

/// Bytes read and written on one device.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IoBytes {
    pub major: u64,
    pub minor: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

/// IO throttles and usage.
#[derive(Debug, Clone, Serialize)]
pub struct Io {
    pub throttles: Vec<IoThrottle>,
    pub devices: Vec<IoBytes>,
}

/// The container's cgroups, usage against limits.
#[derive(Debug, Clone, Serialize)]
pub struct Cgroups {
    /// `v1`, `hybrid` (v1 controllers and a cgroup2 mount) or `v2`.
    pub mode: &'static str,
    pub dirs: Vec<CgroupDir>,
    pub memory: Memory,
    pub pids: Pids,
    pub cpu: Cpu,
    pub io: Io,
}

/// One process of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub host_pid: i32,
    /// The pid in the container init's pid namespace.
    pub container_pid: Option<i32>,
    /// The parent's host pid.
    pub ppid: i32,
    /// Depth in the tree of the container's processes (0: its parent is outside).
    pub depth: usize,
    pub command: String,
}

/// Everything `inspect --namespaces` shows of one container.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The runtime id (a managed container's name).
    pub id: String,
    pub kind: Kind,
    pub pod: Option<String>,
    /// NAMESPACE/NAME of a CRI container's pod.
    pub kubernetes_pod: Option<String>,
    pub status: String,
    /// The init's host pid.
    pub pid: i32,
    pub runtime_root: PathBuf,
    pub bundle: PathBuf,
    /// Whose namespaces stand for the host's: `/proc/1/ns` (pid 1), or `/proc/self/ns`
    /// (capsa) where a sandbox makes pid 1's unreadable.
    pub host_view: String,
    pub namespaces: Vec<Namespace>,
    pub cgroups: Option<Cgroups>,
    pub processes: Vec<Process>,
}

/// Where to look: the runtime root, and the store (if there is one).
pub struct Lookup<'a> {
    pub runtime_root: &'a Path,
    pub store: Option<&'a ImageStore>,
}

/// The inode in a `TYPE:[INODE]` namespace link.
fn link_inode(link: &str) -> Option<u64> {
    link.rsplit_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

fn ns_link(pid: &str, kind: &str) -> Option<String> {
    Some(std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?.to_string_lossy().into_owned())
}

/// A CRI pod's NAMESPACE/NAME, from the CNI_ARGS capsa-cri recorded.
fn kubernetes_name(rec: &pods::PodRecord) -> Option<String> {
    let arg = |k: &str| rec.cni_args.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    Some(format!("{}/{}", arg("K8S_POD_NAMESPACE")?, arg("K8S_POD_NAME")?))
}

/// Finds `name`: a managed container, a runtime id, or a unique prefix of a hex id.
fn resolve(l: &Lookup<'_>, rt: &Store, name: &str) -> Result<(String, Option<containers::Meta>)> {
    let managed = |n: &str| l.store.and_then(|s| containers::load_meta(s, n).ok());
    if let Some(m) = managed(name) {
        return Ok((name.to_owned(), Some(m)));
    }
    if rt.dir(name).join("state.json").exists() {
        return Ok((name.to_owned(), None));
    }
    let mut ids: Vec<String> = rt.list();
    if let Some(s) = l.store {
        if let Ok(rd) = std::fs::read_dir(s.root().join("containers")) {
            ids.extend(rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()));
        }
    }
    ids.sort();
    ids.dedup();
    // Only ids are abbreviated (crictl prints 13 hex digits of one), never names.
    let hex = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let hits: Vec<&String> = ids.iter().filter(|i| hex && i.starts_with(name)).collect();
    match hits.as_slice() {
        [one] => Ok(((*one).clone(), managed(one))),
        [] => Err(PodError::msg(format!(
            "no container {name:?} under the runtime root {}{} (capsa-cri's containers: --root its runtime_root, \
             --store its store_dir)",
            l.runtime_root.display(),
            l.store.map(|s| format!(" nor in the store {}", s.root().display())).unwrap_or_default()
        ))),
        many => Err(PodError::msg(format!(
            "{name:?} is a prefix of {} containers ({}): give more of the id",
            many.len(),
            many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The process whose namespaces are the host's: pid 1, or this process where pid 1's
/// cannot be read (a sandbox whose pid 1 is not ptrace-readable).
fn host_proc() -> &'static str {
    if ns_link("1", "mnt").is_some() {
        "1"
    } else {
        "self"
    }
}

/// Whose namespaces are whose, by inode; the first owner recorded for an inode wins:
/// pods, the host, other containers, named network namespaces, the caller.
fn owners(l: &Lookup<'_>, rt: &Store, me: &str, host: &str) -> BTreeMap<u64, Owner> {
    let mut map = BTreeMap::new();
    if let Some(store) = l.store {
        for rec in pods::list(store).unwrap_or_default() {
            let ns = pods::pod_dir(store, &rec.name).join("ns");
            let kubernetes = if pods::is_hex_id(&rec.name) { kubernetes_name(&rec) } else { None };
            for k in ["net", "ipc", "uts", "pid"] {
                if netns::is_pinned(&ns, k) {
                    if let Ok(md) = std::fs::metadata(ns.join(k)) {
                        let o = Owner::Pod { name: rec.name.clone(), kubernetes: kubernetes.clone() };
                        map.entry(md.ino()).or_insert(o);
                    }
                }
            }
        }
    }
    fn add(map: &mut BTreeMap<u64, Owner>, pid: &str, owner: Owner) {
        for k in NAMESPACES {
            if let Some(ino) = ns_link(pid, k).as_deref().and_then(link_inode) {
                map.entry(ino).or_insert_with(|| owner.clone());
            }
        }
    }
    add(&mut map, host, Owner::Host);
    for id in rt.list().into_iter().filter(|i| i != me) {
        if let Ok(c) = capsa_runtime::lifecycle::load(rt, &id) {
            if c.status != Status::Stopped {
                add(&mut map, &c.state.pid.to_string(), Owner::Container { name: id });
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir("/run/netns") {
        for e in rd.flatten() {
            if let Ok(md) = std::fs::metadata(e.path()) {
                let name = e.file_name().to_string_lossy().into_owned();
                map.entry(md.ino()).or_insert(Owner::Netns { name });
            }
        }
    }
    add(&mut map, "self", Owner::Caller);
    map
}

/// Looks at container `name` from both sides.
pub fn inspect(l: &Lookup<'_>, name: &str) -> Result<Report> {
    let rt = Store::new(l.runtime_root);
    let (id, meta) = resolve(l, &rt, name)?;
    let c = capsa_runtime::lifecycle::load(&rt, &id).map_err(|e| {
        PodError::msg(format!(
            "container {id}: no runtime state under {} ({e}): it is not running{}",
            l.runtime_root.display(),
            if meta.is_some() { " (capsa ps -a shows its state), or it runs under another --root" } else { "" }
        ))
    })?;
    if matches!(c.status, Status::Stopped | Status::Creating) {
        return Err(PodError::msg(format!(
            "container {id} is {}: its init (pid {}) is gone, and with it the namespaces to show",
            c.status.as_str(),
            c.state.pid
        )));
    }
    let pid = c.state.pid;
    let pod = meta.as_ref().and_then(|m| m.pod.clone());
    let kind = match (&meta, &pod) {
        (None, _) => Kind::Runtime,
        (Some(_), None) => Kind::Managed,
        (Some(_), Some(p)) if pods::is_hex_id(p) => Kind::Cri,
        (Some(_), Some(_)) => Kind::PodMember,
    };
    let kubernetes_pod = match (kind, l.store, &pod) {
        (Kind::Cri, Some(s), Some(p)) => pods::load(s, p).ok().as_ref().and_then(kubernetes_name),
        _ => None,
    };
    let hp = host_proc();
    let map = owners(l, &rt, &id, hp);
    let namespaces = NAMESPACES
        .iter()
        .map(|k| {
            let container = ns_link(&pid.to_string(), k);
            let host = ns_link(hp, k);
            let inode = container.as_deref().and_then(link_inode);
            let owner = match inode {
                None => Owner::Unknown,
                Some(i) => map.get(&i).cloned().unwrap_or(Owner::Own),
            };
            Namespace {
                kind: k.to_string(),
                host_inode: host.as_deref().and_then(link_inode),
                container,
                inode,
                host,
                verdict: owner.to_string(),
                owner,
            }
        })
        .collect();
    let cgroups = c.state.cgroup.as_ref().map(cgroups);
    let pids = match &c.state.cgroup {
        Some(m) => m.pids().map_err(|source| PodError::Processes { id: id.clone(), source })?,
        None => vec![pid],
    };
    Ok(Report {
        id,
        kind,
        pod,
        kubernetes_pod,
        status: c.status.as_str().to_owned(),
        pid,
        runtime_root: l.runtime_root.to_path_buf(),
        bundle: c.state.bundle.clone(),
        host_view: if hp == "1" { "/proc/1/ns (pid 1)" } else { "/proc/self/ns (capsa: pid 1's are unreadable here)" }
            .to_owned(),
        namespaces,
        cgroups,
        processes: processes(pid, &pids),
    })
}

/// Usage and limits, from the runtime's cgroup readers.
fn cgroups(m: &Manager) -> Cgroups {
    let s = m.stats();
    let lim = m.limits();
    let mut dirs: Vec<CgroupDir> = Vec::new();
    for (c, p) in m.paths() {
        match dirs.iter_mut().find(|d| d.path == p) {
            Some(d) => d.controllers.push(c),
            None => dirs.push(CgroupDir { controllers: vec![c], path: p }),
        }
    }
    // v1's "unlimited" is the largest page-aligned counter (2^63 - 4096 on x86_64), v2's "max".
    let limit = |v: u64| (v > 0 && v < 1 << 62).then_some(v);
    let mut devices: Vec<IoBytes> = Vec::new();
    for e in &s.blkio.io_service_bytes_recursive {
        let i = match devices.iter().position(|d| (d.major, d.minor) == (e.major, e.minor)) {
            Some(i) => i,
            None => {
                devices.push(IoBytes { major: e.major, minor: e.minor, ..Default::default() });
                devices.len() - 1
            }
        };
        match e.op.as_str() {
            "Read" => devices[i].read_bytes += e.value,
            "Write" => devices[i].write_bytes += e.value,
            _ => {}
        }
    }
    devices.retain(|d| d.read_bytes > 0 || d.write_bytes > 0);
    Cgroups {
        mode: match m.mode() {
            HostMode::Legacy => "v1",
            HostMode::Hybrid => "hybrid",
            HostMode::Unified => "v2",
        },
        dirs,
        memory: Memory {
            usage: s.memory.usage.usage,
            limit: limit(s.memory.usage.limit),
            peak: s.memory.usage.max,
            failcnt: s.memory.usage.failcnt,
            oom_kills: m.oom_kills(),
        },
        pids: Pids { current: s.pids.current, limit: limit(s.pids.limit) },
        cpu: Cpu {
            usage_ns: s.cpu.usage.total,
            user_ns: s.cpu.usage.user,
            system_ns: s.cpu.usage.kernel,
            quota_us: lim.cpu_quota_us,
            period_us: lim.cpu_period_us,
            periods: s.cpu.throttling.periods,
            throttled_periods: s.cpu.throttling.throttled_periods,
            throttled_ns: s.cpu.throttling.throttled_time,
        },
        io: Io { throttles: lim.io, devices },
    }
}

/// The `NSpid` pids of a process (outermost first), from its `/proc/PID/status`.
fn nspid(status: &str) -> Vec<i32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|r| r.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// The processes `pids` (host pids) in tree order; container pids are counted in the
/// pid namespace of `init` (the entry of NSpid at the depth of init's own).
fn processes(init: i32, pids: &[i32]) -> Vec<Process> {
    let read = |p: i32, f: &str| std::fs::read_to_string(format!("/proc/{p}/{f}")).unwrap_or_default();
    let level = nspid(&read(init, "status")).len();
    let mut found: Vec<Process> = pids
        .iter()
        .filter_map(|&p| {
            let status = read(p, "status");
            let ns = nspid(&status);
            let cmd = read(p, "cmdline").trim_end_matches('\0').replace('\0', " ");
            let command = if cmd.is_empty() {
                format!("[{}]", status.lines().find_map(|l| l.strip_prefix("Name:")).unwrap_or("").trim())
            } else {
                cmd
            };
            Some(Process {
                host_pid: p,
                container_pid: level.checked_sub(1).and_then(|i| ns.get(i)).copied(),
                ppid: capsa_fsutil::sys::ProcStat::parse(&read(p, "stat"))?.ppid,
                depth: 0,
                command,
            })
        })
        .collect();
    found.sort_by_key(|p| p.host_pid);
    tree_order(found)
}

/// Orders processes depth-first (parents before their children, siblings by pid) and
/// sets each one's depth; a process whose parent is not in the list is a root.
fn tree_order(mut list: Vec<Process>) -> Vec<Process> {
    fn walk(list: &[Process], parent: Option<i32>, depth: usize, out: &mut Vec<Process>) {
        let pids: Vec<i32> = list.iter().map(|p| p.host_pid).collect();
        for p in list {
            let is_child = match parent {
                Some(pp) => p.ppid == pp,
                None => !pids.contains(&p.ppid) || p.ppid == p.host_pid,
            };
            if is_child && !out.iter().any(|o| o.host_pid == p.host_pid) {
                out.push(Process { depth, ..p.clone() });
                walk(list, Some(p.host_pid), depth + 1, out);
            }
        }
    }
    list.sort_by_key(|p| p.host_pid);
    let mut out = Vec::with_capacity(list.len());
    walk(&list, None, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(link_inode("net:[4026531840]"), Some(4026531840));
        assert_eq!(link_inode("pid_for_children:[12]"), Some(12));
        assert_eq!(link_inode("net:"), None);
        assert_eq!(nspid("Name:\tsh\nNSpid:\t4711\t12\t1\nNSpgid:\t1\n"), [4711, 12, 1]);
        assert_eq!(nspid("Name:\tsh\n"), Vec::<i32>::new());
    }

    #[test]
    fn processes_in_tree_order() {
        let p = |host_pid, ppid| Process { host_pid, container_pid: None, ppid, depth: 0, command: String::new() };
        // init 10 (parent outside), its children 12 and 11 (11 has a child 20), an exec'd 30.
        let out = tree_order(vec![p(30, 5), p(12, 10), p(20, 11), p(10, 1), p(11, 10)]);
        let got: Vec<(i32, usize)> = out.iter().map(|p| (p.host_pid, p.depth)).collect();
        assert_eq!(got, [(10, 0), (11, 1), (20, 2), (12, 1), (30, 0)]);
    }

    #[test]
    fn owners_in_words() {
        assert_eq!(Owner::Pod { name: "web".into(), kubernetes: None }.to_string(), "shared with pod web");
        let id = "6916dcc5ef03728dbde769cd0341718993b53c274451bb161d1aa6abb21d4649";
        let k = Owner::Pod { name: id.into(), kubernetes: Some("default/web".into()) };
        assert_eq!(k.to_string(), "shared with pod 6916dcc5ef037 (default/web)");
        assert_eq!(
            serde_json::to_value(&k).unwrap(),
            serde_json::json!({"kind": "pod", "name": id, "kubernetes": "default/web"})
        );
        assert_eq!(serde_json::to_value(Owner::Own).unwrap(), serde_json::json!({"kind": "own"}));
    }
}
