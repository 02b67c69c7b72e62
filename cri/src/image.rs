//! ImageService: the capsa image store behind CRI (list, status, pull with auth and
//! mirrors, remove, filesystem usage).

use std::collections::{BTreeMap, HashMap};

use capsa_image::images::{ImageRecord, LocalImage};
use capsa_image::layout::normalize_reference;
use capsa_image::reference::{RegistryName, TagOrDigest};
use capsa_image::registry::PullOptions;
use serde_json::json;

use crate::daemon::Cri;
use crate::error::{Error, Result};
use crate::proto::{
    AuthConfig, FilesystemIdentifier, FilesystemUsage, Image, ImageFsInfoResponse, ImageSpec, ImageStatusResponse,
    Int64Value, UInt64Value,
};

/// `(repo tag, repo digest)` of a stored image: `docker.io/library/busybox:latest`,
/// `docker.io/library/busybox@sha256:...` (digest-only names have no tag).
pub fn refs(r: &ImageRecord) -> (String, String) {
    let norm = normalize_reference(&r.name);
    let repo = match norm.find('@') {
        Some(i) => norm[..i].to_owned(),
        None => {
            let last = norm.rfind('/').map_or(0, |i| i + 1);
            match norm[last..].rfind(':') {
                Some(i) => norm[..last + i].to_owned(),
                None => norm.clone(),
            }
        }
    };
    let tag = if norm.contains('@') { String::new() } else { norm };
    (tag, format!("{repo}@{}", r.digest))
}

/// Finds an image by name, id (or prefix) or repo digest.
pub fn resolve(cri: &Cri, name: &str) -> Result<LocalImage> {
    match cri.store.get(name) {
        Ok(i) => Ok(i),
        Err(capsa_image::images::ImageError::NotFound(_)) => {
            // `repo@sha256:...`: the image with that manifest digest.
            if let Some((_, d)) = name.split_once('@') {
                if let Some(r) = cri.store.list()?.into_iter().find(|r| r.digest.to_string() == d) {
                    return Ok(cri.store.get(&r.name)?);
                }
            }
            Err(Error::not_found(format!("image {name:?} not found")))
        }
        Err(e) => Err(e.into()),
    }
}

/// The CRI view of one image (all its names).
fn to_image(cri: &Cri, names: &[&ImageRecord]) -> Option<Image> {
    let first = names.first()?;
    let (manifest, config) = cri.store.load(&first.digest).ok()?;
    let mut repo_tags = Vec::new();
    let mut repo_digests = Vec::new();
    for r in names {
        let (t, d) = refs(r);
        if !t.is_empty() && !repo_tags.contains(&t) {
            repo_tags.push(t);
        }
        if !repo_digests.contains(&d) {
            repo_digests.push(d);
        }
    }
    let size = manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
    let user = config.config.as_ref().and_then(|c| c.user.clone()).unwrap_or_default();
    let u = user.split(':').next().unwrap_or("");
    let (uid, username) = match u.parse::<i64>() {
        Ok(n) => (Some(Int64Value { value: n }), String::new()),
        Err(_) if u.is_empty() => (None, String::new()),
        Err(_) => (None, u.to_owned()),
    };
    let id = first.config.to_string();
    Some(Image {
        id: id.clone(),
        repo_tags,
        repo_digests,
        size,
        uid,
        username,
        spec: Some(ImageSpec { image: id, ..Default::default() }),
        pinned: false,
    })
}

/// The stored images grouped by image id (config digest).
fn grouped(cri: &Cri) -> Result<BTreeMap<String, Vec<ImageRecord>>> {
    let mut by_id: BTreeMap<String, Vec<ImageRecord>> = BTreeMap::new();
    for r in cri.store.list()? {
        by_id.entry(r.config.to_string()).or_default().push(r);
    }
    Ok(by_id)
}

/// ListImages (optionally only those matching `filter`, a name or id).
pub fn list(cri: &Cri, filter: Option<&str>) -> Result<Vec<Image>> {
    let want = match filter.filter(|f| !f.is_empty()) {
        Some(f) => match resolve(cri, f) {
            Ok(i) => Some(i.record.config.to_string()),
            Err(_) => return Ok(Vec::new()),
        },
        None => None,
    };
    Ok(grouped(cri)?
        .iter()
        .filter(|(id, _)| want.as_ref().is_none_or(|w| w == *id))
        .filter_map(|(_, rs)| to_image(cri, &rs.iter().collect::<Vec<_>>()))
        .collect())
}

/// ImageStatus: an empty answer (no error) when the image is not there.
pub fn status(cri: &Cri, name: &str, verbose: bool) -> Result<ImageStatusResponse> {
    let img = match resolve(cri, name) {
        Ok(i) => i,
        Err(e) if e.code == tonic::Code::NotFound => return Ok(ImageStatusResponse::default()),
        Err(e) => return Err(e),
    };
    let id = img.record.config.to_string();
    let all = grouped(cri)?;
    let names: Vec<&ImageRecord> = all.get(&id).map(|v| v.iter().collect()).unwrap_or_default();
    let image = to_image(cri, &names);
    let mut info = HashMap::new();
    if verbose {
        let v = json!({
            "imageSpec": img.config,
            "manifestDigest": img.record.digest.to_string(),
            "chainID": img.chain_ids().last().map(|c| c.to_string()),
            "source": img.record.source,
        });
        info.insert("info".to_owned(), v.to_string());
    }
    Ok(ImageStatusResponse { image, info })
}

/// Credentials of a pull, from CRI's AuthConfig.
fn credentials(auth: Option<&AuthConfig>, opts: &mut PullOptions) -> Result<()> {
    let Some(a) = auth else { return Ok(()) };
    if !a.username.is_empty() || !a.password.is_empty() {
        opts.creds = Some(format!("{}:{}", a.username, a.password));
    } else if !a.auth.is_empty() {
        let raw = base64_decode(a.auth.trim()).ok_or_else(|| Error::invalid("auth: not valid base64"))?;
        let s = String::from_utf8(raw).map_err(|_| Error::invalid("auth: not UTF-8"))?;
        if !s.contains(':') {
            return Err(Error::invalid("auth: expected base64 of user:password"));
        }
        opts.creds = Some(s);
    }
    if !a.registry_token.is_empty() {
        opts.registry_token = Some(a.registry_token.clone());
    }
    if !a.identity_token.is_empty() {
        opts.identity_token = Some(a.identity_token.clone());
    }
    Ok(())
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let k = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&n.to_be_bytes()[1..1 + k]);
    }
    Some(out)
}

/// An endpoint from the config (`http://host:port`, `https://host:port`, `host:port`):
/// (host, plain http).
fn endpoint(e: &str, insecure: &[String]) -> (String, bool) {
    let (host, http) = if let Some(h) = e.strip_prefix("http://") {
        (h, true)
    } else if let Some(h) = e.strip_prefix("https://") {
        (h, false)
    } else {
        (e, false)
    };
    let host = host.trim_end_matches('/').to_owned();
    let http = http || insecure.contains(&host);
    (host, http)
}

/// PullImage: the registry's mirrors first, then the registry itself; the image keeps
/// its own name. Returns the image id (`sha256:...` of its config).
pub fn pull(cri: &Cri, image: &str, auth: Option<&AuthConfig>) -> Result<String> {
    if image.is_empty() {
        return Err(Error::invalid("PullImage: no image name"));
    }
    let name = RegistryName::parse(image).map_err(|e| Error::invalid(e.to_string()))?;
    let mut opts = PullOptions::default();
    credentials(auth, &mut opts)?;
    let reg = &cri.cfg.registry;
    let mut sources: Vec<(RegistryName, bool)> = Vec::new();
    for m in reg.mirrors.get(&name.host).into_iter().flatten() {
        let (host, http) = endpoint(m, &reg.insecure);
        sources.push((RegistryName { host, ..name.clone() }, http));
    }
    sources.push((name.clone(), reg.insecure.contains(&name.host)));
    let local = name.to_string();
    let mut errors = Vec::new();
    let mut all_missing = true;
    for (src, http) in sources {
        let mut o = opts.clone();
        o.insecure = http;
        tracing::info!("pull {image} from {}", src.host);
        match cri.store.pull(&src, &o, Some(&local), &mut |m| tracing::debug!("pull {image}: {m}")) {
            Ok(rec) => {
                // Pulled by tag: also known by digest, as containerd names it.
                if let TagOrDigest::Tag(_) = name.reference {
                    tracing::debug!("pulled {local} = {}", rec.digest);
                }
                return Ok(rec.config.to_string());
            }
            Err(e) => {
                tracing::warn!("pull {image} from {}: {e}", src.host);
                all_missing &= crate::error::image_code(&e) == tonic::Code::NotFound;
                errors.push(format!("{}: {e}", src.host));
            }
        }
    }
    // NotFound only when every mirror said so (HTTP 404), as containerd.
    let code = if all_missing { tonic::Code::NotFound } else { tonic::Code::Unknown };
    Err(Error::new(code, format!("failed to pull image {image:?}: {}", errors.join("; "))))
}

/// RemoveImage: removes every name of the image (kubelet removes by id); an image
/// that is not there is not an error. Blobs and snapshots are freed when no
/// container uses them (store prune).
pub fn remove(cri: &Cri, image: &str) -> Result<()> {
    let img = match resolve(cri, image) {
        Ok(i) => i,
        Err(e) if e.code == tonic::Code::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let id = img.record.config.clone();
    // When named by a tag, only that name goes (as containerd); by id, all of them.
    let by_name = cri
        .store
        .find(image)
        .ok()
        .filter(|r| r.name == image || normalize_reference(&r.name) == normalize_reference(image));
    let names: Vec<String> = match by_name {
        Some(r) if !image.starts_with("sha256:") && !capsa_image::reference::is_id_prefix(image) => vec![r.name],
        _ => cri.store.list()?.into_iter().filter(|r| r.config == id).map(|r| r.name).collect(),
    };
    for n in names {
        cri.store.remove(&n)?;
    }
    if let Err(e) = prune_unused(cri) {
        tracing::warn!("free the blobs of removed image {image}: {e}");
    }
    Ok(())
}

/// Frees blobs and snapshots that no image and no container uses.
fn prune_unused(cri: &Cri) -> Result<()> {
    let (b, sn) = cri.store.prune_images()?;
    tracing::debug!("freed {b} blobs and {sn} snapshots");
    Ok(())
}

fn du(p: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut stack = vec![p.to_path_buf()];
    let mut seen = std::collections::HashSet::new();
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.nlink() > 1 && !m.is_dir() && !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            inodes += 1;
            bytes += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    (bytes, inodes)
}

/// ImageFsInfo: the store's blobs and snapshots.
pub fn fs_info(cri: &Cri) -> Result<ImageFsInfoResponse> {
    let now = crate::util::now_ns();
    let mut used = 0;
    let mut inodes = 0;
    for d in ["blobs", "snapshots"] {
        let (b, i) = du(&cri.store.root().join(d));
        used += b;
        inodes += i;
    }
    let u = FilesystemUsage {
        timestamp: now,
        fs_id: Some(FilesystemIdentifier { mountpoint: cri.store.root().join("snapshots").display().to_string() }),
        used_bytes: Some(UInt64Value { value: used }),
        inodes_used: Some(UInt64Value { value: inodes }),
    };
    Ok(ImageFsInfoResponse { image_filesystems: vec![u], container_filesystems: Vec::new() })
}

/// The size a container's writable layer uses (its overlay upper dir).
pub fn writable_layer(cri: &Cri, id: &str) -> FilesystemUsage {
    let dir = capsa_pod::containers::container_dir(&cri.store, id);
    let (b, i) = du(&dir.join("upper"));
    FilesystemUsage {
        timestamp: crate::util::now_ns(),
        fs_id: Some(FilesystemIdentifier { mountpoint: cri.store.root().join("containers").display().to_string() }),
        used_bytes: Some(UInt64Value { value: b }),
        inodes_used: Some(UInt64Value { value: i }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capsa_image::Digest;

    #[test]
    fn repo_tags_and_digests() {
        let r = ImageRecord {
            name: "busybox".into(),
            digest: Digest::sha256_of(b"m"),
            config: Digest::sha256_of(b"c"),
            source: String::new(),
            added: 0,
        };
        let (t, d) = refs(&r);
        assert_eq!(t, "docker.io/library/busybox:latest");
        assert_eq!(d, format!("docker.io/library/busybox@{}", r.digest));
        let r2 = ImageRecord { name: "127.0.0.1:5000/app:v1".into(), ..r.clone() };
        assert_eq!(refs(&r2).0, "127.0.0.1:5000/app:v1");
        assert_eq!(refs(&r2).1, format!("127.0.0.1:5000/app@{}", r.digest));
    }

    #[test]
    fn auth_and_endpoints() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert!(base64_decode("!!").is_none());
        let mut o = PullOptions::default();
        credentials(Some(&AuthConfig { auth: "dXNlcjpwYXNz".into(), ..Default::default() }), &mut o).unwrap();
        assert_eq!(o.creds.as_deref(), Some("user:pass"));
        let mut o = PullOptions::default();
        credentials(Some(&AuthConfig { registry_token: "t".into(), ..Default::default() }), &mut o).unwrap();
        assert_eq!((o.creds, o.registry_token.as_deref()), (None, Some("t")));
        assert_eq!(endpoint("http://10.0.0.5:5000/", &[]), ("10.0.0.5:5000".into(), true));
        assert_eq!(endpoint("mirror:5000", &["mirror:5000".into()]), ("mirror:5000".into(), true));
        assert_eq!(endpoint("https://m", &[]), ("m".into(), false));
    }
}
