//! Network configuration: parsing a `.conflist` (or a single `.conf`) into a [`NetworkList`], the built-in
//! `capsa` network, and finding a network among a directory's files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::error::{io_err, CniError, Result};
use super::{MAX_CNI_VERSION, MIN_CNI_VERSION};

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
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|source| CniError::ConfigJson { origin: origin.to_string(), source })?;
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
                // capsa's own list-level key moves up to the synthesized list: the plugin
                // never sees it, and `masquerade_subnet` finds it where a conflist has it.
                let mut plugin = v.clone();
                let masquerade = plugin.as_object_mut().and_then(|o| o.remove("capsaMasquerade"));
                let mut list = json!({ "cniVersion": cni_version, "name": name, "plugins": [plugin.clone()] });
                if let Some(m) = masquerade {
                    list["capsaMasquerade"] = m;
                }
                (vec![plugin], serde_json::to_vec(&list).expect("serializing a JSON value cannot fail"))
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

pub(super) fn version_at_least(v: &str, min: &str) -> bool {
    matches!((parse_version(v), parse_version(min)), (Some(a), Some(b)) if a >= b)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // capsa's list-level key in a single .conf: honoured, and not handed to the plugin.
        let conf = br#"{"cniVersion":"1.0.0","name":"m","type":"bridge","capsaMasquerade":true,
                        "ipam":{"type":"host-local","subnet":"10.77.0.0/24"}}"#;
        let n = NetworkList::parse(conf, "m.conf").unwrap();
        assert_eq!(n.masquerade_subnet().as_deref(), Some("10.77.0.0/24"));
        assert!(n.plugins[0].get("capsaMasquerade").is_none(), "{}", n.plugins[0]);
        assert_eq!(NetworkList::parse(&n.raw, "raw").unwrap().masquerade_subnet().as_deref(), Some("10.77.0.0/24"));
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
}
