//! [`Cni`] runs a network list's plugins: ADD in list order (chaining results, rolling back on failure),
//! CHECK, and DEL in reverse order, with the cached ADD result.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::attachment::{capability_args, format_cni_args, Attachment};
use super::cache::Cached;
use super::config::{version_at_least, NetworkList};
use super::error::{io_err, CniError, PluginFailure, Result};
use super::exec::{child_path, plugin_stdin, run_with_timeout};
use super::result::CniResult;
use super::DEFAULT_PLUGIN_TIMEOUT;

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

impl Cni {
    /// Plugin dirs from `CNI_PATH` (colon-separated) or `/usr/lib/cni:/opt/cni/bin`; cache in `/var/lib/cni`.
    pub fn new() -> Cni {
        let plugin_dirs: Vec<PathBuf> = match std::env::var("CNI_PATH") {
            Ok(p) if !p.is_empty() => p.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect(),
            _ => vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
        };
        Cni { plugin_dirs, cache_dir: PathBuf::from("/var/lib/cni"), timeout: DEFAULT_PLUGIN_TIMEOUT }
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
            return Err(fail(PluginFailure::from_failed_output(&out.stdout, out.status, stderr)));
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
        CniResult::from_plugin_output(&out.stdout).map(|r| Some(r.raw)).map_err(invalid)
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

#[cfg(test)]
mod tests;
