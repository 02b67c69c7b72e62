//! [`CniResult`], the result the last plugin of an ADD printed, and what capsa reads from it: addresses,
//! gateway, interfaces.

use std::fmt;

use serde_json::Value;

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
    /// Parses what a plugin printed on stdout after a successful ADD: a JSON object, or `Err` with why not
    /// (the reason of [`PluginFailure::InvalidOutput`](super::PluginFailure::InvalidOutput)).
    pub fn from_plugin_output(stdout: &[u8]) -> Result<CniResult, String> {
        match serde_json::from_slice::<Value>(stdout) {
            Ok(raw @ Value::Object(_)) => Ok(CniResult { raw }),
            Ok(_) => Err("not a JSON object".into()),
            Err(e) => Err(e.to_string()),
        }
    }

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

impl fmt::Display for CniResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
