//! What to attach ([`Attachment`], with its [`PortMapping`]s), checked before any plugin runs, and how it
//! reaches the plugins: CNI_ARGS and the `capabilityArgs`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{CniError, Result};

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

    pub(super) fn validate(&self) -> Result<()> {
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
pub(super) fn format_cni_args(args: &[(String, String)]) -> Result<Option<String>> {
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
pub(super) fn capability_args(pms: &[PortMapping]) -> Map<String, Value> {
    let mut caps = Map::new();
    if !pms.is_empty() {
        caps.insert("portMappings".into(), serde_json::to_value(pms).expect("port mappings serialize"));
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
