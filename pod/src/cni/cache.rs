//! The cache of ADD results in libcni's format (`<cache_dir>/results/<network>-<container>-<ifname>`),
//! written by ADD and read back by CHECK and DEL.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::attachment::{capability_args, Attachment};
use super::config::NetworkList;
use super::error::{io_err, Result};
use super::result::CniResult;
use super::runner::Cni;

/// Standard base64 (with padding), as Go's encoding/json writes `[]byte`.
pub(super) fn base64_encode(data: &[u8]) -> String {
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

/// Data read back from a cache file.
pub(super) struct Cached {
    pub(super) result: Option<Value>,
    pub(super) caps: Option<Map<String, Value>>,
}

impl Cni {
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

    pub(super) fn read_cache(&self, net_name: &str, container_id: &str, ifname: &str) -> Option<Cached> {
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

    pub(super) fn write_cache(&self, net: &NetworkList, a: &Attachment, result: &Value) -> Result<()> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
