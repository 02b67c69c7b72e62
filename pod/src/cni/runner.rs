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
use super::exec::{child_path, plugin_error, plugin_stdin, run_with_timeout};
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
mod tests {
    use super::super::cache::base64_encode;
    use super::super::PortMapping;
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

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
