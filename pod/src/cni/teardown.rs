//! Cleanup after a network's last pod: portmap's shared iptables chains and an unused bridge.

use serde_json::Value;

use super::config::NetworkList;
use super::error::{CniError, Result};
use super::exec::{run_ip, run_tool};

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
