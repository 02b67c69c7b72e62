//! A small libcni equivalent: parse network configuration lists, run CNI plugins (ADD, CHECK, DEL) with
//! the spec's environment and stdin, cache ADD results in libcni's format, and a few host-side helpers.
//!
//! Plugins run in the caller's network namespace (the "host side"); the container side is `CNI_NETNS`.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Highest `cniVersion` that Debian's containernetworking-plugins 1.1.1 accept.
pub const MAX_CNI_VERSION: &str = "1.0.0";
/// Lowest `cniVersion` this module handles (the first with configuration lists and `ips[]` results).
pub const MIN_CNI_VERSION: &str = "0.3.0";
/// Default time a single plugin invocation may take before it is killed.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The built-in `capsa` network: a `capsa0` bridge on 10.99.0.0/16 (not podman's 10.88.0.0/16) plus portmap.
pub const DEFAULT_CONFLIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "capsa",
  "capsaMasquerade": true,
  "plugins": [
    {
      "type": "bridge",
      "bridge": "capsa0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.99.0.0/16", "gateway": "10.99.0.1" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    {
      "type": "portmap",
      "capabilities": { "portMappings": true },
      "snat": true
    }
  ]
}
"#;

/// Errors of this module; messages say what was asked, of which plugin, and what it answered.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// A network configuration could not be parsed or is incomplete.
    #[error("invalid CNI network config {origin}: {reason}")]
    InvalidConfig { origin: String, reason: String },
    /// The configuration asks for a `cniVersion` the installed plugins cannot speak.
    #[error(
        "CNI network config {origin} has cniVersion {version}, which is not supported: Debian's \
         containernetworking-plugins 1.1.1 accept at most {MAX_CNI_VERSION} (this runtime needs at least \
         {MIN_CNI_VERSION})"
    )]
    UnsupportedVersion { origin: String, version: String },
    /// No configuration file defines the requested network.
    #[error("no CNI network named \"{name}\" in {}; available: {}", conf_dir.display(), list_or_none(available))]
    NetworkNotFound { name: String, conf_dir: PathBuf, available: Vec<String> },
    /// The attachment (container id, interface name, CNI_ARGS, port mappings) is unusable.
    #[error("invalid CNI attachment: {0}")]
    InvalidAttachment(String),
    /// A plugin invocation failed.
    #[error("CNI {command} of plugin \"{plugin}\" (network \"{network}\", container \"{container}\"): {failure}")]
    Plugin { command: &'static str, plugin: String, network: String, container: String, failure: Box<PluginFailure> },
    /// CHECK needs the result cached by ADD.
    #[error(
        "CNI CHECK of network \"{network}\" (container \"{container}\", interface {ifname}): no cached ADD result"
    )]
    NoCachedResult { network: String, container: String, ifname: String },
    /// CHECK does not exist before cniVersion 0.4.0.
    #[error("CNI CHECK of network \"{network}\": cniVersion {version} does not support CHECK (needs 0.4.0 or later)")]
    CheckUnsupported { network: String, version: String },
    /// A host port is bound by some process in the current network namespace.
    #[error("host port {port}/{protocol} is already in use")]
    PortInUse { port: u16, protocol: String },
    /// A helper command (`ip ...`) failed.
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

/// How a single plugin invocation failed (the part after the plugin's name in [`CniError::Plugin`]).
#[derive(Debug, thiserror::Error)]
pub enum PluginFailure {
    /// The plugin binary is in none of the plugin directories.
    #[error("plugin binary not found in {dirs} (set CNI_PATH or install containernetworking-plugins)")]
    NotFound { dirs: String },
    /// The plugin could not be started or talked to.
    #[error("could not run {}: {source}", path.display())]
    Exec { path: PathBuf, source: io::Error },
    /// The plugin did not finish in time and was killed.
    #[error("no answer within {}s; the plugin was killed{}", timeout.as_secs(), stderr_suffix(stderr))]
    Timeout { timeout: Duration, stderr: String },
    /// The plugin exited non-zero; `msg`/`details`/`code` come from its JSON error on stdout.
    #[error("{msg}{}{}{}", details_suffix(details), code_suffix(*code), stderr_suffix(stderr))]
    Failed { code: Option<u64>, msg: String, details: String, stderr: String },
    /// The plugin exited zero but its output is not a valid result.
    #[error("invalid result ({reason}); stdout: {stdout:?}{}", stderr_suffix(stderr))]
    InvalidOutput { reason: String, stdout: String, stderr: String },
    /// The plugin's configuration inside the list is broken.
    #[error("{0}")]
    BadConfig(String),
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

fn details_suffix(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(": {d}")
    }
}

fn code_suffix(code: Option<u64>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}

fn stderr_suffix(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!("; stderr: {s}")
    }
}

/// Result alias of this module.
pub type Result<T, E = CniError> = std::result::Result<T, E>;

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> CniError {
    let context = context.into();
    move |source| CniError::Io { context, source }
}

/// A parsed network configuration list (a `.conflist`, or a single `.conf` wrapped into a list).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    /// The network name (`name`).
    pub name: String,
    /// The list's `cniVersion`, injected into every plugin's config.
    pub cni_version: String,
    /// Plugin configurations in invocation order (each has a string `type`).
    pub plugins: Vec<Value>,
    /// The configuration bytes (the file's; for a wrapped single `.conf`, the synthesized list).
    pub raw: Vec<u8>,
}

impl NetworkList {
    /// Parses a conflist, or a single plugin config (an object with `type` and no `plugins`) which is wrapped
    /// into a one-plugin list. `origin` names the source (e.g. the file path) in errors.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<NetworkList> {
        let bad = |reason: String| CniError::InvalidConfig { origin: origin.to_string(), reason };
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| bad("the top level is not a JSON object".into()))?;
        let name = match obj.get("name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) | None => return Err(bad("missing network \"name\"".into())),
            Some(_) => return Err(bad("\"name\" is not a string".into())),
        };
        if !valid_network_name(&name) {
            return Err(bad(format!("network name {name:?} is invalid (must match [a-zA-Z0-9][a-zA-Z0-9_.-]*)")));
        }
        let cni_version = match obj.get("cniVersion") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(bad("missing \"cniVersion\"".into())),
        };
        let parsed =
            parse_version(&cni_version).ok_or_else(|| bad(format!("cniVersion {cni_version:?} is malformed")))?;
        if parsed > parse_version(MAX_CNI_VERSION).unwrap() || parsed < parse_version(MIN_CNI_VERSION).unwrap() {
            return Err(CniError::UnsupportedVersion { origin: origin.to_string(), version: cni_version });
        }
        let (plugins, raw) = match obj.get("plugins") {
            Some(Value::Array(p)) => (p.clone(), bytes.to_vec()),
            Some(_) => return Err(bad("\"plugins\" is not an array".into())),
            None if obj.contains_key("type") => {
                let list = json!({ "cniVersion": cni_version, "name": name, "plugins": [v.clone()] });
                (vec![v.clone()], serde_json::to_vec(&list).expect("serializing a JSON value cannot fail"))
            }
            None => {
                return Err(bad("no \"plugins\" (and not a single plugin config with \"type\")".into()));
            }
        };
        if plugins.is_empty() {
            return Err(bad("the network has no plugins".into()));
        }
        for (i, p) in plugins.iter().enumerate() {
            match p.get("type") {
                Some(Value::String(t)) if !t.is_empty() => {
                    if t.contains('/') || t == "." || t == ".." {
                        return Err(bad(format!("plugin {i} has an invalid type {t:?}")));
                    }
                }
                _ => return Err(bad(format!("plugin {i} has no \"type\""))),
            }
        }
        Ok(NetworkList { name, cni_version, plugins, raw })
    }
}

fn valid_network_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let r = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(r)
}

fn version_at_least(v: &str, min: &str) -> bool {
    matches!((parse_version(v), parse_version(min)), (Some(a), Some(b)) if a >= b)
}

/// The comment on the masquerade rule capsa adds for a network (see [`ensure_masquerade`]).
fn masquerade_rule(net: &NetworkList, subnet: &str) -> Vec<String> {
    ["-w", "-t", "nat", "POSTROUTING", "-s", subnet, "!", "-d", subnet, "-m", "comment", "--comment"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("capsa: masquerade network {}", net.name), "-j".into(), "MASQUERADE".into()])
        .collect()
}

impl NetworkList {
    /// The subnet to masquerade when the list asks capsa to (`"capsaMasquerade": true` at
    /// the top level; the first plugin's first ipam range). Plugins never see that key.
    pub fn masquerade_subnet(&self) -> Option<String> {
        let top: Value = serde_json::from_slice(&self.raw).ok()?;
        if top.get("capsaMasquerade").and_then(Value::as_bool) != Some(true) {
            return None;
        }
        let ipam = self.plugins.first()?.get("ipam")?;
        ipam.pointer("/ranges/0/0/subnet").or_else(|| ipam.get("subnet")).and_then(Value::as_str).map(str::to_owned)
    }
}

/// Outbound NAT for a network that asks capsa for it (`"capsaMasquerade": true`; the
/// built-in network does): one `POSTROUTING -s SUBNET ! -d SUBNET -j MASQUERADE` rule per
/// network, added with its first pod, instead of the bridge plugin's `ipMasq`, which
/// makes a chain per pod with ~8 iptables calls: measured, bridge ADD 25 ms → 15 ms.
pub fn ensure_masquerade(net: &NetworkList) -> Result<()> {
    let Some(subnet) = net.masquerade_subnet() else { return Ok(()) };
    let mut rule = masquerade_rule(net, &subnet);
    rule.insert(3, "-C".into());
    if run_tool("iptables", &rule.iter().map(String::as_str).collect::<Vec<_>>()).is_ok() {
        return Ok(());
    }
    rule[3] = "-A".into();
    run_tool("iptables", &rule.iter().map(String::as_str).collect::<Vec<_>>()).map(|_| ())
}

/// Removes the rule of [`ensure_masquerade`] (with the network's last pod).
pub fn remove_masquerade(net: &NetworkList) -> Result<()> {
    let Some(subnet) = net.masquerade_subnet() else { return Ok(()) };
    let mut del = masquerade_rule(net, &subnet);
    del.insert(3, "-D".into());
    let del: Vec<&str> = del.iter().map(String::as_str).collect();
    while run_tool("iptables", &del).is_ok() {}
    Ok(())
}

/// The built-in `capsa` network for a pod that publishes no port: the same list without
/// portmap. capsa chains portmap only where it has work (a no-op portmap is a ~4 ms exec
/// of a Go binary on the pod's start path). Each attachment's ADD, CHECK and DEL all use
/// the list it was made with, as the CNI spec asks.
pub fn default_network_without_portmap() -> NetworkList {
    let mut v: Value = serde_json::from_str(DEFAULT_CONFLIST).expect("built-in network is valid");
    if let Some(plugins) = v.get_mut("plugins").and_then(Value::as_array_mut) {
        plugins.retain(|p| p.get("type").and_then(Value::as_str) != Some("portmap"));
    }
    let raw = serde_json::to_vec_pretty(&v).expect("JSON serializes");
    NetworkList::parse(&raw, "<built-in capsa network, no ports>").expect("built-in network is valid")
}

impl NetworkList {
    /// Whether this is the built-in list, unchanged (no user conflist named `capsa`).
    pub fn is_builtin(&self) -> bool {
        self.raw == DEFAULT_CONFLIST.as_bytes()
    }
}

/// The built-in `capsa` network (see [`DEFAULT_CONFLIST`]).
pub fn default_network() -> NetworkList {
    NetworkList::parse(DEFAULT_CONFLIST.as_bytes(), "<built-in capsa network>").expect("built-in network is valid")
}

/// Finds the network `name` among `conf_dir`'s `*.conflist`, `*.conf` and `*.json` files (sorted by file name,
/// first match wins; unparsable files are skipped with a warning). `capsa` falls back to [`default_network`].
pub fn load_network(conf_dir: &Path, name: &str) -> Result<NetworkList> {
    let files = config_files(conf_dir)?;
    let mut available = Vec::new();
    for path in files {
        let bytes = fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        match NetworkList::parse(&bytes, &path.display().to_string()) {
            Ok(list) if list.name == name => return Ok(list),
            Ok(list) => available.push(list.name),
            Err(e) => tracing::warn!("skipping CNI config: {e}"),
        }
    }
    if name == "capsa" {
        return Ok(default_network());
    }
    available.push("capsa (built-in)".to_string());
    Err(CniError::NetworkNotFound { name: name.to_string(), conf_dir: conf_dir.to_path_buf(), available })
}

/// The `*.conflist`, `*.conf` and `*.json` files of `conf_dir`, sorted by name (none if it is missing).
fn config_files(conf_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    match fs::read_dir(conf_dir) {
        Ok(rd) => {
            for entry in rd {
                let path = entry.map_err(io_err(format!("reading {}", conf_dir.display())))?.path();
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if matches!(ext, "conflist" | "conf" | "json") && path.is_file() {
                    files.push(path);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("reading {}", conf_dir.display()))(e)),
    }
    files.sort();
    Ok(files)
}

/// The default network of `conf_dir`, as libcni and containerd's CRI pick it: the first
/// file by name that parses (others skipped with a warning). `None` when there is none.
pub fn first_network(conf_dir: &Path) -> Result<Option<NetworkList>> {
    for path in config_files(conf_dir)? {
        let bytes = fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        match NetworkList::parse(&bytes, &path.display().to_string()) {
            Ok(list) => return Ok(Some(list)),
            Err(e) => tracing::warn!("skipping CNI config: {e}"),
        }
    }
    Ok(None)
}

/// One entry of the CNI `portMappings` capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Port on the host.
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    /// Port in the container.
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Host address to bind to; `None` means all.
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// What to attach: one container interface to one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// CNI_CONTAINERID (letters, digits, `_`, `.`, `-`).
    pub container_id: String,
    /// CNI_NETNS: path of the container's network namespace.
    pub netns: PathBuf,
    /// CNI_IFNAME, usually `eth0`.
    pub ifname: String,
    /// The `portMappings` capability (passed to plugins that declare it).
    pub port_mappings: Vec<PortMapping>,
    /// CNI_ARGS pairs, e.g. `("K8S_POD_NAME", "web")`.
    pub args: Vec<(String, String)>,
}

impl Attachment {
    /// An `eth0` attachment without port mappings or args.
    pub fn new(container_id: impl Into<String>, netns: impl Into<PathBuf>) -> Attachment {
        Attachment {
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: "eth0".to_string(),
            port_mappings: Vec::new(),
            args: Vec::new(),
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CniError::InvalidAttachment(m));
        let id = &self.container_id;
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return bad(format!("container id {id:?} must be non-empty and use only [a-zA-Z0-9_.-]"));
        }
        if id.starts_with('.') {
            return bad(format!("container id {id:?} must not start with '.'"));
        }
        let ifn = &self.ifname;
        if ifn.is_empty() || ifn.len() > 15 || ifn == "." || ifn == ".." || ifn.contains(['/', ':']) {
            return bad(format!("interface name {ifn:?} is invalid"));
        }
        if ifn.chars().any(|c| c.is_whitespace()) {
            return bad(format!("interface name {ifn:?} contains whitespace"));
        }
        for pm in &self.port_mappings {
            if !matches!(pm.protocol.as_str(), "tcp" | "udp" | "sctp") {
                return bad(format!("port mapping protocol {:?} is not tcp, udp or sctp", pm.protocol));
            }
        }
        format_cni_args(&self.args).map(|_| ())
    }
}

/// Formats CNI_ARGS as `K=V;K=V`; `None` when there are no args. Like containerd and CRI-O, it starts with
/// `IgnoreUnknown=1` unless the caller set that key: host-local and bridge reject any other unknown key.
fn format_cni_args(args: &[(String, String)]) -> Result<Option<String>> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut parts = Vec::with_capacity(args.len() + 1);
    if !args.iter().any(|(k, _)| k == "IgnoreUnknown") {
        parts.push("IgnoreUnknown=1".to_string());
    }
    for (k, v) in args {
        if k.is_empty() || k.contains(['=', ';']) || v.contains(';') {
            return Err(CniError::InvalidAttachment(format!("CNI_ARGS pair {k:?}={v:?} contains '=' or ';'")));
        }
        parts.push(format!("{k}={v}"));
    }
    Ok(Some(parts.join(";")))
}

/// The `capabilityArgs` for a set of port mappings (empty map when there are none).
fn capability_args(pms: &[PortMapping]) -> Map<String, Value> {
    let mut caps = Map::new();
    if !pms.is_empty() {
        caps.insert("portMappings".into(), serde_json::to_value(pms).expect("port mappings serialize"));
    }
    caps
}

/// A plugin's interface from a CNI result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniInterface {
    /// Interface name.
    pub name: String,
    /// MAC address, if reported.
    pub mac: Option<String>,
    /// Netns path for container interfaces; `None` for host-side ones.
    pub sandbox: Option<String>,
}

/// A CNI result (0.3.0 to 1.0.0 format: `interfaces[]`, `ips[].address`, `ips[].gateway`, `routes[]`, `dns`).
#[derive(Debug, Clone, PartialEq)]
pub struct CniResult {
    /// The result JSON as the last plugin printed it.
    pub raw: Value,
}

impl CniResult {
    fn ip_entries(&self) -> impl Iterator<Item = &Value> {
        self.raw.get("ips").and_then(Value::as_array).into_iter().flatten()
    }

    /// All addresses with prefix length, e.g. `10.99.0.5/16`.
    pub fn ips(&self) -> Vec<String> {
        self.ip_entries().filter_map(|e| e.get("address")?.as_str().map(str::to_string)).collect()
    }

    /// The first IPv4 address without prefix length.
    pub fn ip(&self) -> Option<String> {
        self.ips().into_iter().find_map(|a| {
            let addr = a.split('/').next()?;
            addr.parse::<std::net::Ipv4Addr>().ok().map(|ip| ip.to_string())
        })
    }

    /// The gateway of the first address that has one, preferring IPv4.
    pub fn gateway(&self) -> Option<String> {
        let gws: Vec<&str> = self.ip_entries().filter_map(|e| e.get("gateway")?.as_str()).collect();
        gws.iter().find(|g| g.parse::<std::net::Ipv4Addr>().is_ok()).or(gws.first()).map(|g| g.to_string())
    }

    /// The interfaces the plugins reported (host-side bridge and veth, container interface).
    pub fn interfaces(&self) -> Vec<CniInterface> {
        let ifs = self.raw.get("interfaces").and_then(Value::as_array).into_iter().flatten();
        ifs.filter_map(|i| {
            let s = |k: &str| i.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
            Some(CniInterface { name: s("name")?, mac: s("mac"), sandbox: s("sandbox") })
        })
        .collect()
    }

    /// The result's `cniVersion`.
    pub fn cni_version(&self) -> Option<&str> {
        self.raw.get("cniVersion").and_then(Value::as_str)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Del,
    Check,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Add => "ADD",
            Op::Del => "DEL",
            Op::Check => "CHECK",
        }
    }
}

/// Builds a plugin's stdin: its config plus `name`, `cniVersion`, `prevResult` (if any) and a `runtimeConfig`
/// holding only the capabilities the plugin declares (`"capabilities": {"portMappings": true}`).
fn plugin_stdin(net: &NetworkList, plugin: &Value, prev: Option<&Value>, caps: &Map<String, Value>) -> Value {
    let mut conf = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("name".into(), Value::String(net.name.clone()));
    conf.insert("cniVersion".into(), Value::String(net.cni_version.clone()));
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    let declared = plugin.get("capabilities").and_then(Value::as_object);
    let rt: Map<String, Value> = caps
        .iter()
        .filter(|(k, _)| declared.and_then(|d| d.get(*k)).and_then(Value::as_bool) == Some(true))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !rt.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rt));
    }
    Value::Object(conf)
}

/// Standard base64 (with padding), as Go's encoding/json writes `[]byte`.
fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0) as u32;
        let b2 = chunk.get(2).copied().unwrap_or(0) as u32;
        let n = (chunk[0] as u32) << 16 | b1 << 8 | b2;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

/// What a plugin process produced.
struct PluginOutput {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs CNI plugins found in `plugin_dirs`, caching ADD results under `cache_dir/results/`.
#[derive(Debug, Clone)]
pub struct Cni {
    /// Directories searched for plugin binaries, in order (also passed as CNI_PATH).
    pub plugin_dirs: Vec<PathBuf>,
    /// libcni-style cache directory (results go to `<cache_dir>/results/`).
    pub cache_dir: PathBuf,
    /// Time a single plugin invocation may take before it is killed.
    pub timeout: Duration,
}

impl Default for Cni {
    fn default() -> Self {
        Self::new()
    }
}

/// Data read back from a cache file.
struct Cached {
    result: Option<Value>,
    caps: Option<Map<String, Value>>,
}

impl Cni {
    /// Plugin dirs from `CNI_PATH` (colon-separated) or `/usr/lib/cni:/opt/cni/bin`; cache in `/var/lib/cni`.
    pub fn new() -> Cni {
        let plugin_dirs: Vec<PathBuf> = match std::env::var("CNI_PATH") {
            Ok(p) if !p.is_empty() => p.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect(),
            _ => vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
        };
        Cni { plugin_dirs, cache_dir: PathBuf::from("/var/lib/cni"), timeout: DEFAULT_PLUGIN_TIMEOUT }
    }

    /// Path of the cache file for one attachment.
    pub fn cache_path(&self, net_name: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.cache_dir.join("results").join(format!("{net_name}-{container_id}-{ifname}"))
    }

    /// The result cached by a successful ADD, if any.
    pub fn cached_result(&self, net_name: &str, container_id: &str, ifname: &str) -> Option<CniResult> {
        if [net_name, container_id, ifname].iter().any(|s| s.is_empty() || s.contains('/')) {
            return None;
        }
        self.read_cache(net_name, container_id, ifname)?.result.map(|raw| CniResult { raw })
    }

    fn read_cache(&self, net_name: &str, container_id: &str, ifname: &str) -> Option<Cached> {
        let path = self.cache_path(net_name, container_id, ifname);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cannot read CNI cache {}: {e}", path.display());
                return None;
            }
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Some(Cached {
                result: m.get("result").filter(|r| r.is_object()).cloned(),
                caps: m.get("capabilityArgs").and_then(Value::as_object).cloned(),
            }),
            _ => {
                tracing::warn!("ignoring corrupt CNI cache {}", path.display());
                None
            }
        }
    }

    fn write_cache(&self, net: &NetworkList, a: &Attachment, result: &Value) -> Result<()> {
        let path = self.cache_path(&net.name, &a.container_id, &a.ifname);
        let dir = path.parent().expect("cache path has a parent");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(format!("creating CNI cache dir {}", dir.display())))?;
        let mut info = Map::new();
        info.insert("kind".into(), json!("cniCacheV1"));
        info.insert("containerId".into(), json!(a.container_id));
        info.insert("config".into(), json!(base64_encode(&net.raw)));
        info.insert("ifName".into(), json!(a.ifname));
        info.insert("networkName".into(), json!(net.name));
        info.insert("netns".into(), json!(a.netns.to_string_lossy()));
        if !a.args.is_empty() {
            let args: Vec<[&str; 2]> = a.args.iter().map(|(k, v)| [k.as_str(), v.as_str()]).collect();
            info.insert("cniArgs".into(), json!(args));
        }
        let caps = capability_args(&a.port_mappings);
        if !caps.is_empty() {
            info.insert("capabilityArgs".into(), Value::Object(caps));
        }
        info.insert("result".into(), result.clone());
        let bytes = serde_json::to_vec(&Value::Object(info)).expect("serializing a JSON value cannot fail");
        capsa_fsutil::write_atomic(&path, &bytes, 0o600, capsa_fsutil::Durability::Durable)
            .map_err(|e| io_err(format!("writing CNI cache {}", path.display()))(e.into()))
    }

    /// Runs ADD for every plugin in list order, chaining results; on failure runs DEL for the plugins
    /// already called (including the failed one) in reverse and returns the ADD error. Caches the result.
    pub fn add(&self, net: &NetworkList, a: &Attachment) -> Result<CniResult> {
        a.validate()?;
        let caps = capability_args(&a.port_mappings);
        let mut prev: Option<Value> = None;
        for (k, plugin) in net.plugins.iter().enumerate() {
            match self.invoke(Op::Add, net, a, plugin, prev.as_ref(), &caps) {
                Ok(out) => prev = out,
                Err(e) => {
                    self.rollback(net, a, k, prev.as_ref(), &caps);
                    return Err(e);
                }
            }
        }
        let result = prev.expect("a network list has at least one plugin");
        if let Err(e) = self.write_cache(net, a, &result) {
            self.rollback(net, a, net.plugins.len() - 1, Some(&result), &caps);
            return Err(e);
        }
        Ok(CniResult { raw: result })
    }

    fn rollback(
        &self,
        net: &NetworkList,
        a: &Attachment,
        last: usize,
        prev: Option<&Value>,
        caps: &Map<String, Value>,
    ) {
        let prev = prev.filter(|_| version_at_least(&net.cni_version, "0.4.0"));
        for plugin in net.plugins[..=last].iter().rev() {
            if let Err(e) = self.invoke(Op::Del, net, a, plugin, prev, caps) {
                tracing::warn!("cleanup after failed ADD: {e}");
            }
        }
    }

    /// Runs DEL for every plugin in reverse order with the cached result as `prevResult` and the cached
    /// capability args (falling back to the attachment's). Continues past failures and returns the first;
    /// removes the cache file only when all plugins succeeded (so a retry still has the cached data).
    pub fn del(&self, net: &NetworkList, a: &Attachment) -> Result<()> {
        a.validate()?;
        let cached = self.read_cache(&net.name, &a.container_id, &a.ifname);
        let prev =
            cached.as_ref().and_then(|c| c.result.as_ref()).filter(|_| version_at_least(&net.cni_version, "0.4.0"));
        let caps = cached.as_ref().and_then(|c| c.caps.clone()).unwrap_or_else(|| capability_args(&a.port_mappings));
        let mut first_err = None;
        for plugin in net.plugins.iter().rev() {
            if let Err(e) = self.invoke(Op::Del, net, a, plugin, prev, &caps) {
                tracing::warn!("{e}");
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let path = self.cache_path(&net.name, &a.container_id, &a.ifname);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_err(format!("removing CNI cache {}", path.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// Runs CHECK for every plugin in list order with the cached ADD result as `prevResult`.
    pub fn check(&self, net: &NetworkList, a: &Attachment) -> Result<()> {
        a.validate()?;
        if !version_at_least(&net.cni_version, "0.4.0") {
            return Err(CniError::CheckUnsupported { network: net.name.clone(), version: net.cni_version.clone() });
        }
        let cached = self.read_cache(&net.name, &a.container_id, &a.ifname);
        let Some(Cached { result: Some(prev), caps }) = cached else {
            return Err(CniError::NoCachedResult {
                network: net.name.clone(),
                container: a.container_id.clone(),
                ifname: a.ifname.clone(),
            });
        };
        let caps = caps.unwrap_or_else(|| capability_args(&a.port_mappings));
        let has_ipv6 = CniResult { raw: prev.clone() }.ips().iter().any(|a| a.contains(':'));
        for plugin in &net.plugins {
            match self.invoke(Op::Check, net, a, plugin, Some(&prev), &caps) {
                Err(e) if !has_ipv6 && is_portmap_ipv6_check_bug(&e) => {
                    tracing::debug!("ignoring portmap 1.1.1's IPv6 CHECK of an IPv4-only attachment: {e}");
                }
                r => {
                    r?;
                }
            }
        }
        Ok(())
    }

    fn find_plugin(&self, ty: &str) -> Option<PathBuf> {
        self.plugin_dirs.iter().map(|d| d.join(ty)).find(|p| p.is_file())
    }

    fn cni_path(&self) -> String {
        let dirs: Vec<String> = self.plugin_dirs.iter().map(|d| d.to_string_lossy().into_owned()).collect();
        dirs.join(":")
    }

    /// Invokes one plugin; returns its parsed result for ADD, `None` otherwise.
    fn invoke(
        &self,
        op: Op,
        net: &NetworkList,
        a: &Attachment,
        plugin: &Value,
        prev: Option<&Value>,
        caps: &Map<String, Value>,
    ) -> Result<Option<Value>> {
        let ty = plugin.get("type").and_then(Value::as_str).unwrap_or("");
        let fail = |failure: PluginFailure| CniError::Plugin {
            command: op.as_str(),
            plugin: ty.to_string(),
            network: net.name.clone(),
            container: a.container_id.clone(),
            failure: Box::new(failure),
        };
        if ty.is_empty() || ty.contains('/') {
            return Err(fail(PluginFailure::BadConfig("plugin config has no valid \"type\"".into())));
        }
        let Some(path) = self.find_plugin(ty) else {
            return Err(fail(PluginFailure::NotFound { dirs: self.cni_path() }));
        };
        let stdin = serde_json::to_vec(&plugin_stdin(net, plugin, prev, caps)).expect("JSON serializes");
        let mut env: Vec<(&str, String)> = vec![
            ("CNI_COMMAND", op.as_str().to_string()),
            ("CNI_CONTAINERID", a.container_id.clone()),
            ("CNI_NETNS", a.netns.to_string_lossy().into_owned()),
            ("CNI_IFNAME", a.ifname.clone()),
            ("CNI_PATH", self.cni_path()),
            ("PATH", child_path()),
        ];
        if let Some(args) = format_cni_args(&a.args)? {
            env.push(("CNI_ARGS", args));
        }
        tracing::debug!(plugin = ty, command = op.as_str(), container = %a.container_id, "running CNI plugin");
        let out = run_with_timeout(&path, &env, stdin, self.timeout).map_err(fail)?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(fail(plugin_error(&out.stdout, out.status, stderr)));
        }
        capsa_runtime::explain::step(capsa_runtime::explain::Kind::Network, || {
            let what = match (op, ty) {
                (Op::Add, "bridge") => "CNI bridge: a veth pair, one end in the pod as the interface, the other on the host bridge; an IP from IPAM".to_string(),
                (Op::Add, "portmap") => "CNI portmap: iptables DNAT rules so the host's ports reach the pod".to_string(),
                (Op::Add, "loopback") => "CNI loopback: bring lo up in the pod".to_string(),
                (Op::Add, t) => format!("CNI plugin {t}: attach the pod to network {}", net.name),
                (Op::Del, t) => format!("CNI plugin {t}: release what ADD made (interfaces, addresses, rules)"),
                (_, t) => format!("CNI plugin {t}: {}", op.as_str()),
            };
            let ips: Vec<Value> = serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v.get("ips").and_then(Value::as_array).cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|i| i.get("address").cloned())
                .collect();
            let got: Vec<&str> = ips.iter().filter_map(Value::as_str).collect();
            let what = if got.is_empty() { what } else { format!("{what}: {}", got.join(", ")) };
            capsa_runtime::explain::Step::new(
                what,
                format!(
                    "execve({}, CNI_COMMAND={} CNI_NETNS={} CNI_IFNAME={}, stdin: the network config)",
                    path.display(),
                    op.as_str(),
                    a.netns.display(),
                    a.ifname
                ),
            )
            .field("plugin", ty)
            .field("addresses", ips)
        });
        if op != Op::Add {
            return Ok(None);
        }
        let invalid = |reason: String| {
            fail(PluginFailure::InvalidOutput {
                reason,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: stderr.clone(),
            })
        };
        match serde_json::from_slice::<Value>(&out.stdout) {
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            Ok(_) => Err(invalid("not a JSON object".into())),
            Err(e) => Err(invalid(e.to_string())),
        }
    }
}

/// portmap 1.1.1's CHECK looks for the DNAT chain with ip6tables too whenever ip6tables works, even for an
/// IPv4-only container, and fails with "could not check ipv6 dnat: chain ... not found". It only gets there
/// after the IPv4 check passed, so for attachments without IPv6 addresses the error is spurious.
fn is_portmap_ipv6_check_bug(e: &CniError) -> bool {
    let CniError::Plugin { plugin, failure, .. } = e else {
        return false;
    };
    matches!(&**failure, PluginFailure::Failed { msg, .. }
        if plugin == "portmap" && msg.starts_with("could not check ipv6 dnat"))
}

/// The plugin's PATH: the caller's, plus the standard sbin/bin dirs (portmap and bridge exec `iptables`).
fn child_path() -> String {
    let mut dirs: Vec<String> =
        std::env::var("PATH").unwrap_or_default().split(':').filter(|s| !s.is_empty()).map(String::from).collect();
    for d in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        if !dirs.iter().any(|x| x == d) {
            dirs.push(d.to_string());
        }
    }
    dirs.join(":")
}

/// Turns a failed plugin's stdout (a CNI error object, ideally) into a [`PluginFailure::Failed`].
fn plugin_error(stdout: &[u8], status: ExitStatus, stderr: String) -> PluginFailure {
    #[derive(Deserialize)]
    struct ErrObj {
        code: Option<u64>,
        msg: Option<String>,
        details: Option<String>,
    }
    match serde_json::from_slice::<ErrObj>(stdout) {
        Ok(e) if e.msg.is_some() || e.code.is_some() => PluginFailure::Failed {
            code: e.code,
            msg: e.msg.filter(|m| !m.is_empty()).unwrap_or_else(|| format!("plugin failed ({status})")),
            details: e.details.unwrap_or_default(),
            stderr,
        },
        _ => {
            let text = String::from_utf8_lossy(stdout).trim().to_string();
            let msg = if text.is_empty() { format!("plugin failed ({status})") } else { format!("{status}: {text}") };
            PluginFailure::Failed { code: None, msg, details: String::new(), stderr }
        }
    }
}

/// Runs `path` with exactly `env`, feeding `stdin`, reading stdout and stderr fully; kills it after `timeout`.
fn run_with_timeout(
    path: &Path,
    env: &[(&str, String)],
    stdin: Vec<u8>,
    timeout: Duration,
) -> Result<PluginOutput, PluginFailure> {
    let exec_err = |source: io::Error| PluginFailure::Exec { path: path.to_path_buf(), source };
    let spawn = || {
        Command::new(path)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    // Like libcni: a plugin binary being installed right now (ETXTBSY) is retried a few times.
    let mut attempts = 0;
    let mut child = loop {
        match spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 5 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            r => break r.map_err(exec_err)?,
        }
    };
    let deadline = Instant::now() + timeout;
    let mut child_stdin = child.stdin.take().expect("stdin is piped");
    // A broken pipe just means the plugin did not read all of its config; its exit status tells the rest.
    std::thread::spawn(move || {
        let _ = child_stdin.write_all(&stdin);
    });
    let (tx, rx) = mpsc::channel::<(u8, Vec<u8>)>();
    let readers: [(u8, Box<dyn Read + Send>); 2] = [
        (1, Box::new(child.stdout.take().expect("stdout is piped"))),
        (2, Box::new(child.stderr.take().expect("stderr is piped"))),
    ];
    for (which, mut r) in readers {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send((which, buf));
        });
    }
    drop(tx);
    let mut outputs: HashMap<u8, Vec<u8>> = HashMap::new();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(exec_err)? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        // Collect what stderr the plugin wrote, without waiting for grandchildren that might hold the pipe.
        while let Ok((which, buf)) = rx.recv_timeout(Duration::from_millis(200)) {
            outputs.insert(which, buf);
        }
        let stderr = String::from_utf8_lossy(outputs.get(&2).map(Vec::as_slice).unwrap_or_default()).into_owned();
        return Err(PluginFailure::Timeout { timeout, stderr });
    };
    // The plugin has exited; its pipes close unless a process it started still holds them.
    let grace = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
    while outputs.len() < 2 {
        match rx.recv_timeout(grace) {
            Ok((which, buf)) => {
                outputs.insert(which, buf);
            }
            Err(_) => {
                return Err(exec_err(io::Error::other(
                    "the plugin exited but a process it started keeps its stdout/stderr open",
                )));
            }
        }
    }
    Ok(PluginOutput { status, stdout: outputs.remove(&1).unwrap(), stderr: outputs.remove(&2).unwrap() })
}

/// Checks that `pm`'s host port can be bound (to `hostIP`, or 0.0.0.0) in the caller's current network
/// namespace by binding a socket of its protocol and closing it at once.
pub fn check_host_port_free(pm: &PortMapping) -> Result<()> {
    let (ty, proto) = match pm.protocol.as_str() {
        "tcp" => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
        "udp" => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        other => {
            return Err(CniError::InvalidAttachment(format!("port mapping protocol {other:?} is not tcp or udp")));
        }
    };
    let host = pm.host_ip.as_deref().filter(|h| !h.is_empty()).unwrap_or("0.0.0.0");
    let ip: IpAddr = host
        .parse()
        .map_err(|_| CniError::InvalidAttachment(format!("port mapping hostIP {host:?} is not an IP address")))?;
    let what = format!("checking host port {}/{} on {ip}", pm.host_port, pm.protocol);
    let domain = if ip.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2) takes only integer arguments; the result is checked before use.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io_err(what)(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else; OwnedFd closes it on drop.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    if ty == libc::SOCK_STREAM {
        // Like std's TcpListener: TIME_WAIT connections must not make the port look busy (listeners still do).
        let one: libc::c_int = 1;
        // SAFETY: valid socket fd; the option value pointer and length describe a live c_int.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    let rc = match ip {
        IpAddr::V4(v4) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: pm.host_port.to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: valid socket fd; the pointer and length describe a live, initialized sockaddr_in.
            unsafe {
                libc::bind(
                    sock.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        IpAddr::V6(v6) => {
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: pm.host_port.to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v6.octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: valid socket fd; the pointer and length describe a live, initialized sockaddr_in6.
            unsafe {
                libc::bind(
                    sock.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EADDRINUSE) {
            return Err(CniError::PortInUse { port: pm.host_port, protocol: pm.protocol.clone() });
        }
        return Err(io_err(what)(e));
    }
    Ok(())
}

/// Runs `ip args...`; returns stdout, or the exit status and stderr as a [`CniError::Command`].
fn run_ip(args: &[&str]) -> Result<String> {
    run_tool("ip", args)
}

/// Runs `tool args...`; returns stdout, or the exit status and stderr as a [`CniError::Command`].
fn run_tool(tool: &str, args: &[&str]) -> Result<String> {
    let command = format!("{tool} {}", args.join(" "));
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| CniError::Command { command: command.clone(), detail: e.to_string() })?;
    if !out.status.success() {
        let detail = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        return Err(CniError::Command { command, detail });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The rules portmap (containernetworking-plugins 1.1) installs once per host and never removes:
/// (chain, rule) in the nat table.
const PORTMAP_SHARED_RULES: &[(&str, &[&str])] = &[
    ("PREROUTING", &["-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"]),
    ("OUTPUT", &["-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"]),
    ("POSTROUTING", &["-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"]),
];
const PORTMAP_SHARED_CHAINS: &[&str] = &["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"];

/// Removes portmap's shared nat chains and the jumps to them when no port mapping uses them any
/// more (`CNI-HOSTPORT-DNAT` holds no rule: no pod of capsa or of anyone else publishes a port), so
/// that removing the last pod leaves the host's iptables as they were. Returns whether it removed them.
pub fn remove_portmap_chains_if_unused() -> Result<bool> {
    let dnat = match run_tool("iptables", &["-w", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT"]) {
        Ok(out) => out,
        // No such chain: nothing to do (or no iptables at all).
        Err(_) => return Ok(false),
    };
    if dnat.lines().any(|l| l.starts_with("-A ")) {
        return Ok(false);
    }
    for (chain, rule) in PORTMAP_SHARED_RULES {
        let mut args = vec!["-w", "-t", "nat", "-D", chain];
        args.extend_from_slice(rule);
        // Each jump is present once; repeat while iptables finds another copy.
        while run_tool("iptables", &args).is_ok() {}
    }
    for chain in PORTMAP_SHARED_CHAINS {
        let _ = run_tool("iptables", &["-w", "-t", "nat", "-F", chain]);
    }
    for chain in PORTMAP_SHARED_CHAINS {
        if let Err(e) = run_tool("iptables", &["-w", "-t", "nat", "-X", chain]) {
            tracing::debug!("remove portmap chain {chain}: {e}");
        }
    }
    Ok(true)
}

/// For a network whose first plugin is `bridge`, deletes that bridge (default `cni0`) in the caller's network
/// namespace if no interface is enslaved to it any more. Returns whether it was removed.
///
/// Not atomic against a concurrent ADD on the same network: callers serialize pod creation and removal.
pub fn remove_bridge_if_unused(net: &NetworkList) -> Result<bool> {
    let Some(first) = net.plugins.first() else {
        return Ok(false);
    };
    if first.get("type").and_then(Value::as_str) != Some("bridge") {
        return Ok(false);
    }
    let br = first.get("bridge").and_then(Value::as_str).unwrap_or("cni0");
    let details = match run_ip(&["-o", "-d", "link", "show", "dev", br]) {
        Ok(out) => out,
        Err(CniError::Command { detail, .. }) if detail.contains("does not exist") => return Ok(false),
        Err(e) => return Err(e),
    };
    if !details.split_whitespace().any(|w| w == "bridge") {
        tracing::warn!("{br} of network {} is not a bridge; leaving it alone", net.name);
        return Ok(false);
    }
    if !run_ip(&["-o", "link", "show", "master", br])?.trim().is_empty() {
        return Ok(false);
    }
    run_ip(&["link", "del", "dev", br])?;
    Ok(true)
}

impl fmt::Display for CniResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn parse_err(s: &str) -> String {
        NetworkList::parse(s.as_bytes(), "test.conflist").unwrap_err().to_string()
    }

    #[test]
    fn parse_errors_are_clear() {
        assert!(parse_err("{").contains("test.conflist: not valid JSON"));
        assert!(parse_err("[]").contains("not a JSON object"));
        assert!(
            parse_err(r#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}"#).contains("missing network \"name\"")
        );
        assert!(parse_err(r#"{"cniVersion":"1.0.0","name":"a/b","plugins":[{"type":"x"}]}"#).contains("invalid"));
        assert!(parse_err(r#"{"name":"n","plugins":[{"type":"bridge"}]}"#).contains("missing \"cniVersion\""));
        assert!(parse_err(r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#).contains("has no plugins"));
        assert!(parse_err(r#"{"cniVersion":"1.0.0","name":"n"}"#).contains("no \"plugins\""));
        let e = parse_err(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"ipam":{}}]}"#);
        assert!(e.contains("plugin 1 has no \"type\""), "{e}");
        assert!(parse_err(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../x"}]}"#).contains("invalid type"));
        assert!(parse_err(r#"{"cniVersion":"1.x","name":"n","plugins":[{"type":"x"}]}"#).contains("malformed"));
        let e =
            NetworkList::parse(br#"{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"bridge"}]}"#, "f").unwrap_err();
        assert!(matches!(e, CniError::UnsupportedVersion { .. }));
        let msg = e.to_string();
        assert!(msg.contains("1.1.0") && msg.contains("at most 1.0.0") && msg.contains("Debian"), "{msg}");
        assert!(parse_err(r#"{"cniVersion":"0.2.0","name":"n","type":"bridge"}"#).contains("not supported"));
    }

    #[test]
    fn single_conf_is_wrapped() {
        let n = NetworkList::parse(br#"{"cniVersion":"0.4.0","name":"one","type":"bridge","bridge":"b0"}"#, "x.conf")
            .unwrap();
        assert_eq!((n.name.as_str(), n.cni_version.as_str(), n.plugins.len()), ("one", "0.4.0", 1));
        assert_eq!(n.plugins[0]["bridge"], "b0");
        let again = NetworkList::parse(&n.raw, "raw").unwrap();
        assert_eq!(again.plugins, n.plugins);
    }

    #[test]
    fn default_network_is_capsa_bridge_and_portmap() {
        let n = default_network();
        assert_eq!((n.name.as_str(), n.cni_version.as_str()), ("capsa", "1.0.0"));
        let b = &n.plugins[0];
        assert_eq!((b["type"].as_str(), b["bridge"].as_str()), (Some("bridge"), Some("capsa0")));
        assert_eq!(
            (b["isGateway"].as_bool(), b["ipMasq"].as_bool(), b["hairpinMode"].as_bool()),
            (Some(true), Some(false), Some(true))
        );
        // Outbound NAT: one rule per network, by capsa (see ensure_masquerade).
        assert_eq!(n.masquerade_subnet().as_deref(), Some("10.99.0.0/16"));
        assert!(n.is_builtin());
        let bare = default_network_without_portmap();
        assert_eq!((bare.name.as_str(), bare.plugins.len()), ("capsa", 1));
        assert_eq!(bare.plugins[0], n.plugins[0]);
        assert_eq!(bare.masquerade_subnet().as_deref(), Some("10.99.0.0/16"));
        assert!(!bare.is_builtin());
        assert_eq!(b["ipam"]["type"], "host-local");
        assert_eq!(b["ipam"]["ranges"][0][0]["subnet"], "10.99.0.0/16");
        assert_eq!(b["ipam"]["ranges"][0][0]["gateway"], "10.99.0.1");
        assert_eq!(b["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        let p = &n.plugins[1];
        assert_eq!((p["type"].as_str(), p["snat"].as_bool()), (Some("portmap"), Some(true)));
        assert_eq!(p["capabilities"]["portMappings"], true);
        assert_eq!(n.raw, DEFAULT_CONFLIST.as_bytes());
    }

    #[test]
    fn load_network_scans_sorted_and_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let list = |name: &str, br: &str| {
            format!(r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[{{"type":"bridge","bridge":"{br}"}}]}}"#)
        };
        fs::write(dir.path().join("20-b.conflist"), list("b", "first")).unwrap();
        fs::write(dir.path().join("30-b.conflist"), list("b", "second")).unwrap();
        fs::write(dir.path().join("10-a.conf"), r#"{"cniVersion":"1.0.0","name":"a","type":"macvlan"}"#).unwrap();
        fs::write(dir.path().join("05-broken.json"), "{nope").unwrap();
        fs::write(dir.path().join("01-c.txt"), list("c", "x")).unwrap();
        assert_eq!(load_network(dir.path(), "b").unwrap().plugins[0]["bridge"], "first");
        assert_eq!(load_network(dir.path(), "a").unwrap().plugins[0]["type"], "macvlan");
        assert_eq!(load_network(dir.path(), "capsa").unwrap(), default_network());
        let e = load_network(dir.path(), "c").unwrap_err().to_string();
        assert!(e.contains("no CNI network named \"c\"") && e.contains("available: a, b, b, capsa (built-in)"), "{e}");
        fs::write(dir.path().join("00-capsa.conflist"), list("capsa", "mine")).unwrap();
        assert_eq!(load_network(dir.path(), "capsa").unwrap().plugins[0]["bridge"], "mine");
        assert_eq!(load_network(&dir.path().join("missing"), "capsa").unwrap(), default_network());
    }

    #[test]
    fn runtime_config_only_for_declared_capabilities() {
        let net = default_network();
        let pms = vec![PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: None }];
        let caps = capability_args(&pms);
        let bridge = plugin_stdin(&net, &net.plugins[0], None, &caps);
        assert!(bridge.get("runtimeConfig").is_none());
        assert!(bridge.get("prevResult").is_none());
        assert_eq!((bridge["name"].as_str(), bridge["cniVersion"].as_str()), (Some("capsa"), Some("1.0.0")));
        let prev = json!({"cniVersion":"1.0.0","ips":[]});
        let pm = plugin_stdin(&net, &net.plugins[1], Some(&prev), &caps);
        assert_eq!(
            pm["runtimeConfig"],
            json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]})
        );
        assert_eq!(pm["prevResult"], prev);
        let none = plugin_stdin(&net, &net.plugins[1], Some(&prev), &capability_args(&[]));
        assert!(none.get("runtimeConfig").is_none());
        let declared_false = json!({"type":"portmap","capabilities":{"portMappings":false}});
        assert!(plugin_stdin(&net, &declared_false, None, &caps).get("runtimeConfig").is_none());
        let with_ip = PortMapping { host_ip: Some("127.0.0.1".into()), ..pms[0].clone() };
        assert_eq!(serde_json::to_value(&with_ip).unwrap()["hostIP"], "127.0.0.1");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")];
        for (plain, enc) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn cni_args_formatting() {
        assert_eq!(format_cni_args(&[]).unwrap(), None);
        let args = vec![("K8S_POD_NAME".to_string(), "web".to_string()), ("A".into(), "b=c".into())];
        assert_eq!(format_cni_args(&args).unwrap().unwrap(), "IgnoreUnknown=1;K8S_POD_NAME=web;A=b=c");
        let own = vec![("IgnoreUnknown".to_string(), "0".to_string()), ("X".into(), "y".into())];
        assert_eq!(format_cni_args(&own).unwrap().unwrap(), "IgnoreUnknown=0;X=y");
        assert!(format_cni_args(&[("K".into(), "a;b".into())]).is_err());
        assert!(format_cni_args(&[("K=".into(), "a".into())]).is_err());
    }

    #[test]
    fn result_parsing() {
        let r = CniResult {
            raw: json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "capsa0", "mac": "aa:bb:cc:dd:ee:01"},
                    {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
                    {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/netns/p"}
                ],
                "ips": [
                    {"address": "fd00::5/64", "gateway": "fd00::1", "interface": 2},
                    {"address": "10.99.0.5/16", "gateway": "10.99.0.1", "interface": 2}
                ],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dns": {}
            }),
        };
        assert_eq!(r.ips(), vec!["fd00::5/64", "10.99.0.5/16"]);
        assert_eq!(r.ip().as_deref(), Some("10.99.0.5"));
        assert_eq!(r.gateway().as_deref(), Some("10.99.0.1"));
        assert_eq!(r.cni_version(), Some("1.0.0"));
        let ifs = r.interfaces();
        assert_eq!(ifs.len(), 3);
        assert_eq!(
            ifs[2],
            CniInterface {
                name: "eth0".into(),
                mac: Some("aa:bb:cc:dd:ee:03".into()),
                sandbox: Some("/run/netns/p".into())
            }
        );
        assert_eq!(ifs[0].sandbox, None);
        let empty = CniResult { raw: json!({"cniVersion":"1.0.0"}) };
        assert!(
            empty.ips().is_empty()
                && empty.ip().is_none()
                && empty.gateway().is_none()
                && empty.interfaces().is_empty()
        );
    }

    #[test]
    fn attachment_validation() {
        let ok = Attachment::new("pod-1_a.b", "/run/netns/x");
        assert!(ok.validate().is_ok());
        for id in ["", "a/b", "../x", ".hidden", "a b"] {
            assert!(Attachment::new(id, "/x").validate().is_err(), "{id:?}");
        }
        for ifname in ["", "a/b", "sixteen-chars-xx", "..", "e th0"] {
            assert!(Attachment { ifname: ifname.into(), ..ok.clone() }.validate().is_err(), "{ifname:?}");
        }
        let pm = PortMapping { host_port: 1, container_port: 1, protocol: "icmp".into(), host_ip: None };
        assert!(Attachment { port_mappings: vec![pm], ..ok.clone() }.validate().is_err());
    }

    /// A directory of shell-script plugins that log their env, stdin and calls to `log`.
    struct FakePlugins {
        dir: tempfile::TempDir,
    }

    impl FakePlugins {
        fn new() -> FakePlugins {
            let f = FakePlugins { dir: tempfile::tempdir().unwrap() };
            fs::create_dir(f.dir.path().join("bin")).unwrap();
            fs::create_dir(f.dir.path().join("log")).unwrap();
            let log = f.dir.path().join("log").display().to_string();
            let common = format!(
                "#!/bin/sh\nn=$(basename \"$0\")\nenv > \"{log}/$CNI_COMMAND.$n.env\"\ncat > \"{log}/$CNI_COMMAND.$n.stdin\"\n\
                 echo \"$CNI_COMMAND $n\" >> \"{log}/calls\"\n"
            );
            let ok = format!(
                "{common}[ \"$CNI_COMMAND\" = ADD ] && printf '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.1.2.3/24\",\"gateway\":\"10.1.2.1\"}}],\"by\":\"%s\"}}' \"$n\"\nexit 0\n"
            );
            let fail = format!(
                "{common}if [ \"$CNI_COMMAND\" = ADD ]; then echo 'boom on stderr' >&2; \
                 printf '{{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"failed to frob\",\"details\":\"no frobs left\"}}'; exit 1; fi\n"
            );
            f.script("fake-a", &ok);
            f.script("fake-b", &ok);
            f.script("fake-fail", &fail);
            f.script("fake-garbage", &format!("{common}echo not-json\n"));
            f.script("fake-sleep", "#!/bin/sh\necho started >&2\nexec sleep 5\n");
            f
        }

        fn script(&self, name: &str, text: &str) {
            let p = self.dir.path().join("bin").join(name);
            fs::write(&p, text).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }

        fn cni(&self) -> Cni {
            Cni {
                plugin_dirs: vec![self.dir.path().join("nothing-here"), self.dir.path().join("bin")],
                cache_dir: self.dir.path().join("cache"),
                timeout: Duration::from_secs(20),
            }
        }

        fn log(&self, file: &str) -> String {
            fs::read_to_string(self.dir.path().join("log").join(file)).unwrap_or_default()
        }

        fn net(&self, plugins: &[&str]) -> NetworkList {
            let p: Vec<Value> =
                plugins.iter().map(|t| json!({"type": t, "capabilities": {"portMappings": *t == "fake-b"}})).collect();
            let raw = serde_json::to_vec(&json!({"cniVersion":"1.0.0","name":"fakenet","plugins":p})).unwrap();
            NetworkList::parse(&raw, "fake").unwrap()
        }
    }

    fn attachment() -> Attachment {
        Attachment {
            port_mappings: vec![PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: None,
            }],
            args: vec![("K8S_POD_NAME".into(), "web".into())],
            ..Attachment::new("c1", "/run/netns/nonexistent-fake")
        }
    }

    #[test]
    fn fake_plugins_get_spec_env_stdin_and_cache() {
        let f = FakePlugins::new();
        let cni = f.cni();
        let net = f.net(&["fake-a", "fake-b"]);
        let a = attachment();
        let res = cni.add(&net, &a).unwrap();
        assert_eq!(res.raw["by"], "fake-b");
        assert_eq!(res.ip().as_deref(), Some("10.1.2.3"));
        let env: Vec<String> = f.log("ADD.fake-a.env").lines().map(String::from).collect();
        let cni_path = format!("{}:{}", cni.plugin_dirs[0].display(), cni.plugin_dirs[1].display());
        for want in [
            "CNI_COMMAND=ADD".to_string(),
            "CNI_CONTAINERID=c1".into(),
            "CNI_NETNS=/run/netns/nonexistent-fake".into(),
            "CNI_IFNAME=eth0".into(),
            format!("CNI_PATH={cni_path}"),
            "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=web".into(),
        ] {
            assert!(env.contains(&want), "missing {want} in {env:?}");
        }
        assert!(env.iter().any(|l| l.starts_with("PATH=") && l.contains("/usr/sbin")));
        let extra: Vec<&String> = env
            .iter()
            .filter(|l| {
                !l.starts_with("CNI_")
                    && !l.starts_with("PATH=")
                    && !l.starts_with("PWD=")
                    && !l.starts_with("SHLVL=")
                    && !l.starts_with("_=")
            })
            .collect();
        assert!(extra.is_empty(), "unexpected env {extra:?}");
        let a_in: Value = serde_json::from_str(&f.log("ADD.fake-a.stdin")).unwrap();
        assert!(a_in.get("prevResult").is_none() && a_in.get("runtimeConfig").is_none());
        assert_eq!((a_in["name"].as_str(), a_in["cniVersion"].as_str()), (Some("fakenet"), Some("1.0.0")));
        let b_in: Value = serde_json::from_str(&f.log("ADD.fake-b.stdin")).unwrap();
        assert_eq!(b_in["prevResult"]["by"], "fake-a");
        assert_eq!(b_in["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);

        let cache_file = cni.cache_path("fakenet", "c1", "eth0");
        let cache: Value = serde_json::from_slice(&fs::read(&cache_file).unwrap()).unwrap();
        assert_eq!(cache["kind"], "cniCacheV1");
        assert_eq!((cache["containerId"].as_str(), cache["ifName"].as_str()), (Some("c1"), Some("eth0")));
        assert_eq!(cache["networkName"], "fakenet");
        assert_eq!(cache["config"], base64_encode(&net.raw));
        assert_eq!(cache["cniArgs"], json!([["K8S_POD_NAME", "web"]]));
        assert_eq!(cache["capabilityArgs"]["portMappings"][0]["containerPort"], 80);
        assert_eq!(cache["result"]["by"], "fake-b");
        assert_eq!(cni.cached_result("fakenet", "c1", "eth0").unwrap().raw, res.raw);

        cni.check(&net, &a).unwrap();
        let c_in: Value = serde_json::from_str(&f.log("CHECK.fake-a.stdin")).unwrap();
        assert_eq!(c_in["prevResult"]["by"], "fake-b");

        // DEL without port mappings still hands portmap-like plugins the cached capability args.
        let bare = Attachment { port_mappings: vec![], args: vec![], ..a.clone() };
        cni.del(&net, &bare).unwrap();
        let d_in: Value = serde_json::from_str(&f.log("DEL.fake-b.stdin")).unwrap();
        assert_eq!(d_in["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert_eq!(d_in["prevResult"]["by"], "fake-b");
        assert!(!f.log("DEL.fake-b.env").contains("CNI_ARGS"));
        assert!(!cache_file.exists());
        assert_eq!(f.log("calls"), "ADD fake-a\nADD fake-b\nCHECK fake-a\nCHECK fake-b\nDEL fake-b\nDEL fake-a\n");
        // Idempotent: no cache, DEL still runs the plugins and succeeds.
        cni.del(&net, &bare).unwrap();
        let d_in: Value = serde_json::from_str(&f.log("DEL.fake-b.stdin")).unwrap();
        assert!(d_in.get("prevResult").is_none() && d_in.get("runtimeConfig").is_none());
        let e = cni.check(&net, &a).unwrap_err();
        assert!(matches!(e, CniError::NoCachedResult { .. }), "{e}");
    }

    #[test]
    fn failed_add_rolls_back_in_reverse_and_reports_plugin_error() {
        let f = FakePlugins::new();
        let cni = f.cni();
        let net = f.net(&["fake-a", "fake-fail", "fake-b"]);
        let e = cni.add(&net, &attachment()).unwrap_err();
        let msg = e.to_string();
        assert_eq!(
            msg,
            "CNI ADD of plugin \"fake-fail\" (network \"fakenet\", container \"c1\"): failed to frob: no frobs left \
             (code 11); stderr: boom on stderr"
        );
        assert_eq!(f.log("calls"), "ADD fake-a\nADD fake-fail\nDEL fake-fail\nDEL fake-a\n");
        let d_in: Value = serde_json::from_str(&f.log("DEL.fake-a.stdin")).unwrap();
        assert_eq!(d_in["prevResult"]["by"], "fake-a");
        assert!(!cni.cache_path("fakenet", "c1", "eth0").exists());

        let missing = f.net(&["fake-a", "capsa-no-such-plugin"]);
        let msg = cni.add(&missing, &attachment()).unwrap_err().to_string();
        assert!(msg.starts_with("CNI ADD of plugin \"capsa-no-such-plugin\" (network \"fakenet\", container \"c1\"): plugin binary not found in "), "{msg}");

        let garbage = f.net(&["fake-garbage"]);
        let msg = cni.add(&garbage, &attachment()).unwrap_err().to_string();
        assert!(msg.contains("invalid result") && msg.contains("not-json"), "{msg}");
    }

    #[test]
    fn plugin_timeout_kills_it() {
        let f = FakePlugins::new();
        let cni = Cni { timeout: Duration::from_secs(1), ..f.cni() };
        let start = Instant::now();
        let e = cni.add(&f.net(&["fake-sleep"]), &attachment()).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(4), "took {:?}", start.elapsed());
        let msg = e.to_string();
        assert!(msg.contains("no answer within 1s") && msg.contains("stderr: started"), "{msg}");
    }

    #[test]
    fn check_needs_0_4_0() {
        let f = FakePlugins::new();
        let net =
            NetworkList::parse(br#"{"cniVersion":"0.3.1","name":"old","plugins":[{"type":"fake-a"}]}"#, "o").unwrap();
        assert!(matches!(f.cni().check(&net, &attachment()), Err(CniError::CheckUnsupported { .. })));
    }

    #[test]
    fn cni_new_defaults() {
        let c = Cni::new();
        assert_eq!(c.cache_dir, PathBuf::from("/var/lib/cni"));
        assert_eq!(c.timeout, DEFAULT_PLUGIN_TIMEOUT);
        if std::env::var_os("CNI_PATH").is_none() {
            assert_eq!(c.plugin_dirs, vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")]);
        }
    }
}
