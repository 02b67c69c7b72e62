//! Property-based fuzzing of the Kubernetes Pod manifest parser ([`capsa_pod::manifest::parse_all`]) and of
//! the resource quantities ([`parse_quantity_memory`], [`parse_quantity_cpu`]).
//!
//! Properties: any text, YAML-ish token soup or valid manifest mutated (values replaced, keys removed or
//! added, bytes spliced into the YAML) parses to `Ok` or `Err` without panicking, and what it accepts keeps
//! the rules (ports in range, positive limits, DNS-1123 names); generated valid manifests (one or several
//! documents) parse to exactly the pod they describe, without warnings; generated quantities parse to the
//! value they stand for, and the CPU and memory readings of one quantity agree.
//!
//! Default: 256 cases per property (well under a second in release mode). Run longer with
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --release -p capsa-pod --test fuzz_manifest
//! ```
//!
//! A failing case is shrunk and its seed appended to `tests/proptest-regressions/fuzz_manifest.txt`, which
//! every later run replays first: commit that file (and keep a real bug's input as a named unit test).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use capsa_pod::manifest::{
    parse_all, parse_quantity_cpu, parse_quantity_memory, ContainerPort, ContainerSpec, ManifestError, PodManifest,
    RestartPolicy, SeccompProfile, Volume, VolumeMount, VolumeSource,
};
use fuzz_common::{apply_splice, mutate, mutation, splice};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};

#[path = "../../fuzz/common.rs"]
mod fuzz_common;

// ---------------------------------------------------------------------------------------------------
// Quantities.
// ---------------------------------------------------------------------------------------------------

/// Suffixes with their multiplier (as `2^exp2 * 10^exp10`).
const SUFFIXES: &[(&str, u32, u32)] = &[
    ("", 0, 0),
    ("Ki", 10, 0),
    ("Mi", 20, 0),
    ("Gi", 30, 0),
    ("Ti", 40, 0),
    ("Pi", 50, 0),
    ("Ei", 60, 0),
    ("k", 0, 3),
    ("M", 0, 6),
    ("G", 0, 9),
    ("T", 0, 12),
    ("P", 0, 15),
    ("E", 0, 18),
    ("e0", 0, 0),
    ("e3", 0, 3),
    ("E+6", 0, 6),
    ("e12", 0, 12),
];

/// A whole number with a suffix and the byte count it stands for (always within i64).
fn memory_quantity() -> impl Strategy<Value = (String, i64)> {
    (prop::sample::select(SUFFIXES), any::<u64>()).prop_map(|((suffix, exp2, exp10), raw)| {
        let mult = (1u128 << exp2) * 10u128.pow(exp10);
        let max = (i64::MAX as u128) / mult;
        let n = u128::from(raw) % (max + 1);
        (format!("{n}{suffix}"), i64::try_from(n * mult).unwrap())
    })
}

/// `int.frac<suffix>` with the byte count Kubernetes gives it (fractional bytes rounded up), or `None`
/// beyond i64.
fn fractional_memory() -> impl Strategy<Value = (String, Option<i64>)> {
    (0u64..100_000, 0u64..1_000_000, 1u32..7, prop::sample::select(&SUFFIXES[..7])).prop_map(
        |(int, frac, digits, (suffix, exp2, _))| {
            let frac = frac % 10u64.pow(digits);
            let text = format!("{int}.{frac:0width$}{suffix}", width = digits as usize);
            let scaled = (u128::from(int) * 10u128.pow(digits) + u128::from(frac)) << exp2;
            let bytes = scaled.div_ceil(10u128.pow(digits));
            (text, i64::try_from(bytes).ok())
        },
    )
}

fn quantity_soup() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[-+]?[0-9]{0,45}(\\.[0-9]{0,45})?([KMGTPE]i?|[numkKi]|[eE][-+]?[0-9]{1,4})?",
        1 => "[-+0-9.eEKMGTPimnuk ]{0,12}",
        1 => any::<String>(),
    ]
}

// ---------------------------------------------------------------------------------------------------
// A model of a valid pod, turned into the YAML document and into the PodManifest expected from it.
// ---------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct PortM {
    name: Option<String>,
    container: u16,
    /// `None`: absent; `Some(0)`: written as 0, which means absent.
    host: Option<u16>,
    protocol: Option<&'static str>,
    host_ip: Option<String>,
}

#[derive(Debug, Clone)]
struct MountM {
    volume: Index,
    path: String,
    read_only: Option<bool>,
    sub_path: Option<String>,
}

#[derive(Debug, Clone)]
struct ContainerM {
    image: String,
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    env: Vec<(String, Option<String>)>,
    working_dir: Option<String>,
    ports: Vec<PortM>,
    cpu: Option<(Value, f64)>,
    memory: Option<(Value, i64)>,
    mounts: Vec<MountM>,
    seccomp: Option<SeccompProfile>,
}

#[derive(Debug, Clone)]
enum SourceM {
    Empty { medium: Option<&'static str>, size: Option<(Value, i64)> },
    Host { path: String, kind: Option<&'static str> },
}

#[derive(Debug, Clone)]
struct PodM {
    name: String,
    labels: BTreeMap<String, Option<String>>,
    /// Unique across containers and init containers.
    names: BTreeSet<String>,
    containers: Vec<ContainerM>,
    init: Vec<ContainerM>,
    volumes: Vec<(String, SourceM)>,
    restart: Option<&'static str>,
    host_network: Option<bool>,
    hostname: Option<String>,
    seccomp: Option<SeccompProfile>,
}

const DNS_LABEL: &str = "[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?";

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[ -~]{0,12}", 1 => any::<String>(), 1 => prop::sample::select(&["true", "1", "~", "null", "1e3", "-", "*a", "&a", "'", "0x1F", ""][..]).prop_map(String::from)]
}

fn port_name() -> impl Strategy<Value = String> {
    "[a-z0-9]{0,4}[a-z][a-z0-9]{0,4}(-[a-z0-9]{1,3})?"
}

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
        any::<std::net::Ipv6Addr>().prop_map(|a| a.to_string()),
        Just(String::new())
    ]
}

fn port() -> impl Strategy<Value = PortM> {
    (
        prop::option::of(port_name()),
        1u16..=65535,
        prop_oneof![Just(None), Just(Some(0u16)), (1u16..=65535).prop_map(Some)],
        prop::option::of(prop::sample::select(&["TCP", "UDP"][..])),
        prop::option::of(ip()),
    )
        .prop_map(|(name, container, host, protocol, host_ip)| PortM { name, container, host, protocol, host_ip })
}

fn cpu() -> impl Strategy<Value = (Value, f64)> {
    prop_oneof![
        (1u64..4_000_000).prop_map(|m| (json!(format!("{m}m")), m as f64 / 1000.0)),
        (1u64..4_000_000).prop_map(|m| (json!(format!("{}.{:03}", m / 1000, m % 1000)), m as f64 / 1000.0)),
        (1u64..256).prop_map(|c| (json!(c), c as f64)),
    ]
}

fn memory() -> impl Strategy<Value = (Value, i64)> {
    prop_oneof![
        3 => memory_quantity().prop_filter("positive", |(_, v)| *v > 0).prop_map(|(t, v)| (json!(t), v)),
        1 => fractional_memory().prop_filter_map("positive", |(t, v)| v.filter(|&v| v > 0).map(|v| (json!(t), v))),
        1 => (1i64..i64::MAX).prop_map(|v| (json!(v), v)),
    ]
}

fn seccomp() -> impl Strategy<Value = SeccompProfile> {
    prop_oneof![
        Just(SeccompProfile::RuntimeDefault),
        Just(SeccompProfile::Unconfined),
        "[a-z]{1,6}(/[a-z][a-z.]{0,5}){0,2}".prop_map(SeccompProfile::Localhost),
    ]
}

fn container() -> impl Strategy<Value = ContainerM> {
    (
        "[a-z0-9][a-z0-9./:@_-]{0,30}",
        prop::option::of(prop::collection::vec(any_text(), 0..4)),
        prop::option::of(prop::collection::vec(any_text(), 0..4)),
        prop::collection::vec(("[A-Za-z_][A-Za-z0-9_.-]{0,8}", prop::option::of(any_text())), 0..4),
        prop::option::of("/[a-z0-9/]{0,10}"),
        prop::collection::vec(port(), 0..4),
        (prop::option::of(cpu()), prop::option::of(memory())),
        prop::collection::vec(
            (
                any::<Index>(),
                "/[a-z]{1,3}",
                prop::option::of(any::<bool>()),
                prop::option::of("([a-z]{1,5}(/[a-z]{1,5}){0,2})?"),
            )
                .prop_map(|(volume, path, read_only, sub_path)| MountM {
                    volume,
                    path,
                    read_only,
                    sub_path,
                }),
            0..3,
        ),
        prop::option::of(seccomp()),
    )
        .prop_map(|(image, command, args, env, working_dir, ports, (cpu, memory), mounts, seccomp)| ContainerM {
            image,
            command,
            args,
            env,
            working_dir,
            ports,
            cpu,
            memory,
            mounts,
            seccomp,
        })
}

fn source() -> impl Strategy<Value = SourceM> {
    prop_oneof![
        (prop::option::of(prop::sample::select(&["", "Memory"][..])), prop::option::of(memory()))
            .prop_map(|(medium, size)| SourceM::Empty { medium, size }),
        (
            "/[a-z0-9_-]{0,8}(/[a-z0-9_-]{1,8}){0,3}",
            prop::option::of(prop::sample::select(
                &["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"]
                    [..]
            ))
        )
            .prop_map(|(path, kind)| SourceM::Host { path, kind }),
    ]
}

fn label_key() -> impl Strategy<Value = String> {
    ("([a-z]{1,5}(\\.[a-z]{1,5}){0,2}/)?", "[A-Za-z0-9]([A-Za-z0-9._-]{0,10}[A-Za-z0-9])?").prop_map(|(p, n)| p + &n)
}

fn pod() -> impl Strategy<Value = PodM> {
    (
        DNS_LABEL,
        prop::collection::btree_map(
            label_key(),
            prop::option::of("([A-Za-z0-9]([A-Za-z0-9._-]{0,10}[A-Za-z0-9])?)?"),
            0..4,
        ),
        prop::collection::btree_set(DNS_LABEL, 1..5),
        prop::collection::vec(container(), 5),
        0usize..3,
        prop::collection::btree_map(DNS_LABEL, source(), 0..4),
        prop::option::of(prop::sample::select(&["Always", "OnFailure", "Never"][..])),
        prop::option::of(prop::bool::weighted(0.2)),
        prop::option::of(DNS_LABEL),
        prop::option::of(seccomp()),
    )
        .prop_map(|(name, labels, names, mut all, n_init, volumes, restart, host_network, hostname, seccomp)| {
            let n_init = n_init.min(names.len() - 1);
            all.truncate(names.len());
            let init = all.split_off(names.len() - n_init);
            let mut p = PodM {
                name,
                labels,
                names,
                containers: all,
                init,
                volumes: volumes.into_iter().collect(),
                restart,
                host_network,
                hostname,
                seccomp,
            };
            fix_up(&mut p);
            p
        })
}

/// Drops what would make a generated pod invalid across fields: host port clashes (and host ports that
/// differ from the container port under hostNetwork), mounts without volumes, mount path clashes.
fn fix_up(p: &mut PodM) {
    let host_net = p.host_network == Some(true);
    let mut taken = BTreeSet::new();
    for c in &mut p.containers {
        c.ports.retain_mut(|port| {
            if host_net && port.host.is_some_and(|h| h != 0 && h != port.container) {
                port.host = Some(port.container);
            }
            let effective = if host_net { Some(port.container) } else { port.host.filter(|&h| h != 0) };
            match effective {
                Some(h) => taken.insert((h, port.protocol == Some("UDP"))),
                None => true,
            }
        });
    }
    for c in p.init.iter_mut() {
        c.ports.clear();
    }
    for c in p.containers.iter_mut().chain(p.init.iter_mut()) {
        if p.volumes.is_empty() {
            c.mounts.clear();
        }
        let mut paths = BTreeSet::new();
        c.mounts.retain(|m| paths.insert(m.path.clone()));
    }
}

fn seccomp_json(s: &SeccompProfile) -> Value {
    match s {
        SeccompProfile::RuntimeDefault => json!({"seccompProfile": {"type": "RuntimeDefault"}}),
        SeccompProfile::Unconfined => json!({"seccompProfile": {"type": "Unconfined"}}),
        SeccompProfile::Localhost(l) => json!({"seccompProfile": {"type": "Localhost", "localhostProfile": l}}),
    }
}

fn container_json(name: &str, c: &ContainerM, volumes: &[(String, SourceM)]) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("image".into(), json!(c.image));
    if let Some(v) = &c.command {
        m.insert("command".into(), json!(v));
    }
    if let Some(v) = &c.args {
        m.insert("args".into(), json!(v));
    }
    if !c.env.is_empty() {
        let env: Vec<Value> = c
            .env
            .iter()
            .map(|(n, v)| match v {
                Some(v) => json!({"name": n, "value": v}),
                None => json!({"name": n}),
            })
            .collect();
        m.insert("env".into(), Value::Array(env));
    }
    if let Some(d) = &c.working_dir {
        m.insert("workingDir".into(), json!(d));
    }
    if !c.ports.is_empty() {
        let ports: Vec<Value> = c
            .ports
            .iter()
            .map(|p| {
                let mut o = Map::new();
                o.insert("containerPort".into(), json!(p.container));
                if let Some(n) = &p.name {
                    o.insert("name".into(), json!(n));
                }
                if let Some(h) = p.host {
                    o.insert("hostPort".into(), json!(h));
                }
                if let Some(pr) = p.protocol {
                    o.insert("protocol".into(), json!(pr));
                }
                if let Some(ip) = &p.host_ip {
                    o.insert("hostIP".into(), json!(ip));
                }
                Value::Object(o)
            })
            .collect();
        m.insert("ports".into(), Value::Array(ports));
    }
    if c.cpu.is_some() || c.memory.is_some() {
        let mut limits = Map::new();
        if let Some((v, _)) = &c.cpu {
            limits.insert("cpu".into(), v.clone());
        }
        if let Some((v, _)) = &c.memory {
            limits.insert("memory".into(), v.clone());
        }
        m.insert("resources".into(), json!({"limits": limits}));
    }
    if !c.mounts.is_empty() {
        let mounts: Vec<Value> = c
            .mounts
            .iter()
            .map(|mt| {
                let mut o = Map::new();
                o.insert("name".into(), json!(volumes[mt.volume.index(volumes.len())].0));
                o.insert("mountPath".into(), json!(mt.path));
                if let Some(r) = mt.read_only {
                    o.insert("readOnly".into(), json!(r));
                }
                if let Some(s) = &mt.sub_path {
                    o.insert("subPath".into(), json!(s));
                }
                Value::Object(o)
            })
            .collect();
        m.insert("volumeMounts".into(), Value::Array(mounts));
    }
    if let Some(s) = &c.seccomp {
        m.insert("securityContext".into(), seccomp_json(s));
    }
    Value::Object(m)
}

fn pod_json(p: &PodM) -> Value {
    let names: Vec<&String> = p.names.iter().collect();
    let (cnames, inames) = names.split_at(p.containers.len());
    let mut spec = Map::new();
    let containers: Vec<Value> =
        p.containers.iter().zip(cnames).map(|(c, n)| container_json(n, c, &p.volumes)).collect();
    spec.insert("containers".into(), Value::Array(containers));
    if !p.init.is_empty() {
        let init: Vec<Value> = p.init.iter().zip(inames).map(|(c, n)| container_json(n, c, &p.volumes)).collect();
        spec.insert("initContainers".into(), Value::Array(init));
    }
    if !p.volumes.is_empty() {
        let vols: Vec<Value> = p
            .volumes
            .iter()
            .map(|(name, s)| match s {
                SourceM::Empty { medium, size } => {
                    let mut o = Map::new();
                    if let Some(m) = medium {
                        o.insert("medium".into(), json!(m));
                    }
                    if let Some((v, _)) = size {
                        o.insert("sizeLimit".into(), v.clone());
                    }
                    json!({"name": name, "emptyDir": o})
                }
                SourceM::Host { path, kind } => match kind {
                    Some(k) => json!({"name": name, "hostPath": {"path": path, "type": k}}),
                    None => json!({"name": name, "hostPath": {"path": path}}),
                },
            })
            .collect();
        spec.insert("volumes".into(), Value::Array(vols));
    }
    if let Some(r) = p.restart {
        spec.insert("restartPolicy".into(), json!(r));
    }
    if let Some(h) = p.host_network {
        spec.insert("hostNetwork".into(), json!(h));
    }
    if let Some(h) = &p.hostname {
        spec.insert("hostname".into(), json!(h));
    }
    if let Some(s) = &p.seccomp {
        spec.insert("securityContext".into(), seccomp_json(s));
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(p.name));
    if !p.labels.is_empty() {
        metadata.insert("labels".into(), json!(p.labels));
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

fn expected_container(name: &str, c: &ContainerM, volumes: &[(String, SourceM)], init: bool) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: c.image.clone(),
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        env: c.env.iter().map(|(n, v)| (n.clone(), v.clone().unwrap_or_default())).collect(),
        working_dir: c.working_dir.clone().filter(|d| !d.is_empty()),
        ports: if init {
            Vec::new()
        } else {
            c.ports
                .iter()
                .map(|p| ContainerPort {
                    name: p.name.clone(),
                    container_port: p.container,
                    host_port: p.host.filter(|&h| h != 0),
                    protocol: if p.protocol == Some("UDP") { "udp" } else { "tcp" }.to_string(),
                    host_ip: p.host_ip.clone().filter(|ip| !ip.is_empty()),
                })
                .collect()
        },
        cpu_limit: c.cpu.as_ref().map(|(_, v)| *v),
        memory_limit: c.memory.as_ref().map(|(_, v)| *v),
        volume_mounts: c
            .mounts
            .iter()
            .map(|m| VolumeMount {
                name: volumes[m.volume.index(volumes.len())].0.clone(),
                mount_path: m.path.clone(),
                read_only: m.read_only.unwrap_or(false),
                sub_path: m.sub_path.clone().filter(|s| !s.is_empty()),
            })
            .collect(),
        seccomp: c.seccomp.clone(),
    }
}

fn expected_pod(p: &PodM) -> PodManifest {
    let names: Vec<&String> = p.names.iter().collect();
    let (cnames, inames) = names.split_at(p.containers.len());
    PodManifest {
        name: p.name.clone(),
        labels: p.labels.iter().map(|(k, v)| (k.clone(), v.clone().unwrap_or_default())).collect(),
        containers: p.containers.iter().zip(cnames).map(|(c, n)| expected_container(n, c, &p.volumes, false)).collect(),
        init_containers: p.init.iter().zip(inames).map(|(c, n)| expected_container(n, c, &p.volumes, true)).collect(),
        volumes: p
            .volumes
            .iter()
            .map(|(name, s)| Volume {
                name: name.clone(),
                source: match s {
                    SourceM::Empty { medium, size } => VolumeSource::EmptyDir {
                        memory: *medium == Some("Memory"),
                        size_limit: size.as_ref().map(|(_, v)| *v),
                    },
                    SourceM::Host { path, kind } => {
                        VolumeSource::HostPath { path: path.clone(), kind: kind.map(str::to_string) }
                    }
                },
            })
            .collect(),
        restart_policy: match p.restart {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        },
        host_network: p.host_network == Some(true),
        hostname: p.hostname.clone(),
        seccomp: p.seccomp.clone(),
    }
}

fn to_yaml(v: &Value) -> String {
    serde_norway::to_string(v).unwrap()
}

// ---------------------------------------------------------------------------------------------------
// Mutations: of the document tree, and of its text.
// ---------------------------------------------------------------------------------------------------

/// Field names the parser knows (so mutations reach the code behind them).
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "status",
    "name",
    "labels",
    "annotations",
    "namespace",
    "containers",
    "initContainers",
    "volumes",
    "restartPolicy",
    "hostNetwork",
    "hostname",
    "securityContext",
    "seccompProfile",
    "type",
    "localhostProfile",
    "image",
    "command",
    "args",
    "env",
    "value",
    "valueFrom",
    "workingDir",
    "ports",
    "containerPort",
    "hostPort",
    "protocol",
    "hostIP",
    "resources",
    "limits",
    "requests",
    "cpu",
    "memory",
    "volumeMounts",
    "mountPath",
    "readOnly",
    "subPath",
    "subPathExpr",
    "emptyDir",
    "medium",
    "sizeLimit",
    "hostPath",
    "path",
    "envFrom",
    "configMap",
    "privileged",
    "<<",
    "",
];

const STRINGS: &[&str] = &[
    "",
    "0",
    "-1",
    "65536",
    "1e400",
    "1e-400",
    "9999999999999999999999999999999999999999",
    "0.0000000000000000000000000000000000000000001",
    "Mi",
    "500m",
    "-0",
    "+",
    ".",
    "..",
    "/",
    "/../x",
    "a/../../b",
    "Always",
    "TCP",
    "UDP",
    "SCTP",
    "Memory",
    "Localhost",
    "RuntimeDefault",
    "Unconfined",
    "v1",
    "Pod",
    "::1",
    "0.0.0.0",
    "a--b",
    "x=y",
    "Directory",
    "8Ei",
    "1.5.5",
    "\u{0}",
    "ünïcödé",
];

/// YAML pieces spliced into the text.
const TOKENS: &[&str] = &[
    "\n",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!str ",
    "!!int ",
    "!!binary ",
    "!!map ",
    "!custom ",
    "---\n",
    "...\n",
    "? ",
    "|\n",
    ">-\n",
    "\t",
    "'",
    "\"",
    "#",
    "%YAML 1.2\n",
    "\u{feff}",
    " ",
    "~",
    "null",
    "0x1F",
    "0o17",
    ".inf",
    "-.nan",
    "1_000",
    "\\",
    "\r",
    "  ",
    "- - - ",
    "*b",
    "&b [*a, *a, *a, *a]\n",
];

/// What any accepted pod must satisfy, whatever the input was.
fn check_accepted(r: &Result<Vec<capsa_pod::manifest::Parsed>, ManifestError>) -> Result<(), TestCaseError> {
    let dns = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    match r {
        Ok(pods) => {
            prop_assert!(!pods.is_empty());
            let mut pod_names = BTreeSet::new();
            for p in pods {
                let pod = &p.pod;
                prop_assert!(dns(&pod.name), "pod name {:?}", pod.name);
                prop_assert!(pod_names.insert(pod.name.clone()), "duplicate pod {:?}", pod.name);
                prop_assert!(!pod.containers.is_empty());
                let mut names = BTreeSet::new();
                let volumes: BTreeSet<&str> = pod.volumes.iter().map(|v| v.name.as_str()).collect();
                for c in pod.containers.iter().chain(&pod.init_containers) {
                    prop_assert!(dns(&c.name) && names.insert(c.name.clone()), "container name {:?}", c.name);
                    prop_assert!(!c.image.is_empty() && c.image.trim() == c.image);
                    prop_assert!(c.cpu_limit.is_none_or(|v| v > 0.0 && v.is_finite()));
                    prop_assert!(c.memory_limit.is_none_or(|v| v > 0));
                    prop_assert!(c.working_dir.as_deref().is_none_or(|d| d.starts_with('/')));
                    for port in &c.ports {
                        prop_assert!(port.container_port >= 1 && port.host_port.is_none_or(|h| h >= 1));
                        prop_assert!(port.protocol == "tcp" || port.protocol == "udp");
                        prop_assert!(port.host_ip.as_deref().is_none_or(|ip| ip.parse::<IpAddr>().is_ok()));
                    }
                    for m in &c.volume_mounts {
                        prop_assert!(volumes.contains(m.name.as_str()), "mount of undeclared {:?}", m.name);
                        prop_assert!(m.mount_path.starts_with('/'));
                        prop_assert!(m
                            .sub_path
                            .as_deref()
                            .is_none_or(|s| !s.starts_with('/') && !s.split('/').any(|c| c == "..")));
                    }
                    for (k, _) in &c.env {
                        prop_assert!(!k.is_empty() && !k.contains('='));
                    }
                }
                for v in &pod.volumes {
                    prop_assert!(dns(&v.name));
                    if let VolumeSource::HostPath { path, .. } = &v.source {
                        prop_assert!(path.starts_with('/') && !path.split('/').any(|c| c == ".."));
                    }
                }
                if let Some(SeccompProfile::Localhost(l)) = &pod.seccomp {
                    prop_assert!(!l.is_empty() && !l.starts_with('/') && !l.split('/').any(|c| c == ".."));
                }
            }
        }
        Err(e) => {
            let text = e.to_string();
            prop_assert!(!text.is_empty());
            if let ManifestError::Invalid { errors, .. } = e {
                prop_assert!(!errors.is_empty());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(fuzz_common::config(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/proptest-regressions/fuzz_manifest.txt"
    )))]

    /// Any text: no panic.
    #[test]
    fn any_text_never_panics(text in prop_oneof![any::<String>(), "[ -~\n\t]{0,200}"]) {
        check_accepted(&parse_all(&text, "fuzz.yaml"))?;
    }

    /// Token soup that looks like YAML and like a pod: no panic.
    #[test]
    fn yaml_soup_never_panics(tokens in prop::collection::vec(prop_oneof![
        prop::sample::select(TOKENS).prop_map(String::from),
        prop::sample::select(KEYS).prop_map(String::from),
        prop::sample::select(STRINGS).prop_map(String::from),
    ], 0..60)) {
        check_accepted(&parse_all(&tokens.concat(), "fuzz.yaml"))?;
    }

    /// Generated valid pods, one or several documents: parsed to exactly the pods they describe.
    #[test]
    fn valid_pods_parse_exactly(pods in prop::collection::vec(pod(), 1..4)) {
        let mut seen = BTreeSet::new();
        let pods: Vec<PodM> = pods.into_iter().filter(|p| seen.insert(p.name.clone())).collect();
        let text: Vec<String> = pods.iter().map(|p| to_yaml(&pod_json(p))).collect();
        let text = text.join("---\n");
        let parsed = parse_all(&text, "fuzz.yaml").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed.len(), pods.len());
        for (got, want) in parsed.iter().zip(&pods) {
            prop_assert_eq!(&got.warnings, &Vec::<String>::new());
            prop_assert_eq!(&got.pod, &expected_pod(want), "{}", text);
        }
    }

    /// Valid pods with their tree mutated, then their text: no panic, and what is accepted keeps the rules.
    #[test]
    fn mutated_pods_never_panic(
        p in pod(),
        mutations in prop::collection::vec(mutation(KEYS, STRINGS), 1..5),
        splices in prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(splice(TOKENS), 1..4)],
    ) {
        let mut doc = pod_json(&p);
        for m in &mutations {
            mutate(&mut doc, m);
        }
        let mut text = to_yaml(&doc);
        for s in &splices {
            apply_splice(&mut text, s);
        }
        check_accepted(&parse_all(&text, "fuzz.yaml"))?;
    }

    /// Whole numbers with any suffix parse to their exact byte count; as CPU, to the same value.
    #[test]
    fn memory_quantities_round_trip((text, bytes) in memory_quantity()) {
        prop_assert_eq!(parse_quantity_memory(&text), Ok(bytes), "{}", text);
        let cores = parse_quantity_cpu(&text).map_err(TestCaseError::fail)?;
        prop_assert!((cores - bytes as f64).abs() <= bytes as f64 * 1e-12, "{} -> {} cores", text, cores);
    }

    /// Decimal fractions round up to whole bytes, as Kubernetes does.
    #[test]
    fn fractional_memory_rounds_up((text, bytes) in fractional_memory()) {
        match bytes {
            Some(b) => prop_assert_eq!(parse_quantity_memory(&text), Ok(b), "{}", text),
            None => prop_assert!(parse_quantity_memory(&text).is_err_and(|e| e.contains("too large")), "{}", text),
        }
    }

    /// Millicores read as cores, in both spellings; the same quantity as memory is rounded up.
    #[test]
    fn cpu_quantities_round_trip(m in 0u64..100_000_000) {
        let milli = format!("{m}m");
        let decimal = format!("{}.{:03}", m / 1000, m % 1000);
        prop_assert_eq!(parse_quantity_cpu(&milli), Ok(m as f64 / 1000.0));
        prop_assert_eq!(parse_quantity_cpu(&decimal), Ok(m as f64 / 1000.0));
        let bytes = i64::try_from(m.div_ceil(1000)).unwrap();
        prop_assert_eq!(parse_quantity_memory(&milli), Ok(bytes));
        prop_assert_eq!(parse_quantity_memory(&decimal), Ok(bytes));
    }

    /// Any quantity text: no panic; accepted values are non-negative, and the memory reading is the CPU
    /// reading rounded up.
    #[test]
    fn any_quantity_is_consistent(text in quantity_soup()) {
        let mem = parse_quantity_memory(&text);
        let cpu = parse_quantity_cpu(&text);
        if let Ok(v) = mem {
            prop_assert!(v >= 0);
            let c = cpu.clone().map_err(|e| TestCaseError::fail(format!("{text:?}: memory {v} but cpu {e}")))?;
            let tolerance = (v as f64) * 1e-9 + 1e-9;
            prop_assert!(c >= -0.0 && c <= v as f64 + tolerance && (v as f64) < c + 1.0 + tolerance,
                "{:?}: memory {} vs cpu {}", text, v, c);
        }
        if let Ok(c) = cpu {
            prop_assert!(c >= 0.0 && c.is_finite(), "{:?}: cpu {}", text, c);
        }
    }
}
