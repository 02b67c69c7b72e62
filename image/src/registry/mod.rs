//! Registry client: the OCI distribution API v2, synchronous (ureq, rustls).
//!
//! - manifests negotiated with an `Accept` of the OCI and Docker schema 2
//!   manifest and index types; an index / manifest list resolves to the wanted
//!   platform (default: the host's, `--platform` to change);
//! - auth: on a 401, the `WWW-Authenticate` challenge is answered: `Bearer`
//!   → a token from the realm (with basic credentials when given), `Basic` →
//!   the credentials; credentials come from `--creds USER:PASS` or a
//!   docker-style auth file (`{"auths":{"host":{"auth":"base64(user:pass)"}}}`);
//! - redirects followed by hand (blob downloads go to object stores): the
//!   `Authorization` header is only sent to the registry's own host;
//! - plain http with `insecure`, and always for loopback hosts;
//! - every manifest and config is checked against its digest before it is
//!   parsed; every blob streams into the content store, which verifies the
//!   digest and the size (a bad blob never gets a name in the store); the
//!   layers' diff_ids are verified when they are unpacked.
//!
//! The code: `session` (requests, redirects), `auth` (challenges, tokens,
//! credentials), `manifest` (manifests and indexes), `blob` (resumable blob
//! downloads); [`pull`] here puts them together.

use std::path::PathBuf;

use crate::layout::{self, ResolvedImage, MAX_CONFIG_SIZE};
use crate::oci::{self, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, Platform};
use crate::reference::{RegistryName, TagOrDigest};
use crate::store::Store;

mod auth;
mod blob;
mod manifest;
mod session;

use session::Session;

/// Layers downloaded at once.
const PARALLEL_DOWNLOADS: usize = 4;
/// Index levels followed.
const MAX_INDEX_DEPTH: usize = 4;

/// Errors talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Transport failure (DNS, connection refused, TLS...).
    #[error("{msg}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        msg: String,
    },
    /// An HTTP error status.
    #[error("{url}: HTTP {status}{detail}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The registry's error text, if any.
        detail: String,
    },
    /// Content that fails verification or parsing.
    #[error("{0}")]
    Invalid(String),
    /// Import / store error.
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    /// Store error.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Use plain http (loopback hosts always do).
    pub insecure: bool,
    /// `USER:PASS`.
    pub creds: Option<String>,
    /// A docker-style auth file (default: `$REGISTRY_AUTH_FILE`, then
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, then `~/.docker/config.json`).
    pub auth_file: Option<PathBuf>,
    /// The platform to pick from an index.
    pub platform: Option<Platform>,
    /// A bearer token for the registry, sent as is (CRI `AuthConfig.registry_token`,
    /// skopeo's `--registry-token`).
    pub registry_token: Option<String>,
    /// An OAuth2 refresh token (CRI `AuthConfig.identity_token`): exchanged at the
    /// Bearer challenge's realm (`grant_type=refresh_token`) for an access token.
    pub identity_token: Option<String>,
}

/// Unpacks layers while they download, so a pull ends with the image ready to run
/// (the image store's snapshots). Each layer is handed to [`LayerUnpacker::unpack`]
/// on a thread of its own, byte by byte as it arrives (still unverified: the
/// unpacker checks the layer's diff_id, the content store its digest), then
/// [`LayerUnpacker::commit`] learns whether the blob verified.
pub trait LayerUnpacker: Sync {
    /// Unpacks layer `i` of the image configured by `config` from `layer` (its
    /// compressed bytes) somewhere temporary of its own; true when it did and
    /// [`LayerUnpacker::commit`] must follow. Errors are its own to report (or not:
    /// the layer is unpacked again from the store later).
    fn unpack(&self, i: usize, config: &ImageConfiguration, layer: &mut (dyn std::io::Read + Send)) -> bool;
    /// After an `unpack` that returned true: keep it (the blob verified and is in
    /// the store) or discard it.
    fn commit(&self, i: usize, config: &ImageConfiguration, keep: bool);
}

/// Pulls `name` into `store` (blobs only; the caller names it). `progress`
/// gets one line per step. With `unpacker`, layers are unpacked as they download.
pub fn pull(
    store: &Store,
    name: &RegistryName,
    opts: &PullOptions,
    progress: &mut dyn FnMut(&str),
    unpacker: Option<&dyn LayerUnpacker>,
) -> Result<ResolvedImage, RegistryError> {
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let mut s = Session::new(name, opts)?;
    let reference = match &name.reference {
        TagOrDigest::Tag(t) => t.clone(),
        TagOrDigest::Digest(d) => d.to_string(),
    };
    progress(&format!("pulling {name}"));
    let (mut bytes, mut mt, mut digest) = s.manifest(&reference, None)?;
    let mut indexes = Vec::new();
    while oci::is_index_media_type(&mt) {
        if indexes.len() >= MAX_INDEX_DEPTH {
            return Err(RegistryError::Invalid(format!("image indexes nest deeper than {MAX_INDEX_DEPTH} levels")));
        }
        let idx: ImageIndex = layout::parse_json(&format!("image index {digest}"), &bytes)?;
        let next = layout::pick_platform(&idx, &platform)?.clone();
        indexes.push((Descriptor::new(&mt, digest.clone(), bytes.len() as u64), bytes));
        (bytes, mt, digest) = s.manifest(&next.digest.to_string(), Some(&next))?;
        mt = if oci::is_manifest_media_type(&next.media_type) || oci::is_index_media_type(&next.media_type) {
            next.media_type.clone()
        } else {
            mt
        };
    }
    if !oci::is_manifest_media_type(&mt) {
        return Err(RegistryError::Invalid(format!(
            "{name}: unsupported manifest media type {mt:?} (schema 1 manifests are not supported)"
        )));
    }
    let desc = Descriptor::new(&mt, digest.clone(), bytes.len() as u64);
    let manifest: ImageManifest = layout::parse_json(&format!("image manifest {digest}"), &bytes)?;
    layout::check_manifest(&manifest, &desc)?;
    if manifest.config.size > MAX_CONFIG_SIZE {
        return Err(RegistryError::Invalid(format!("config {} too large", manifest.config.digest)));
    }
    s.blob(store, &manifest.config)?;
    let config_bytes = store.read_bytes(&manifest.config.digest, MAX_CONFIG_SIZE)?;
    let config: ImageConfiguration =
        layout::parse_json(&format!("image config {}", manifest.config.digest), &config_bytes)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(RegistryError::Invalid(format!(
            "image config lists {} diff_ids for {} layers",
            config.rootfs.diff_ids.len(),
            manifest.layers.len()
        )));
    }
    if config.os != platform.os || config.architecture != platform.architecture {
        return Err(RegistryError::Invalid(format!(
            "{name} is for {}/{}, not {platform} (use --platform)",
            config.os, config.architecture
        )));
    }
    let n = manifest.layers.len();
    let mut missing: Vec<(usize, &Descriptor, Option<indicatif::ProgressBar>)> = Vec::new();
    for (i, l) in manifest.layers.iter().enumerate() {
        if store.has(&l.digest) {
            progress(&format!("layer {}/{n} {} already present", i + 1, l.digest));
        } else if !missing.iter().any(|(_, m, _)| m.digest == l.digest) {
            progress(&format!("downloading layer {}/{n} {} ({} bytes)", i + 1, l.digest, l.size));
            missing.push((i, l, crate::progress::layer("download", i + 1, n, &l.digest, l.size)));
        }
    }
    // Layers download in parallel (a few connections, each with its own
    // session: the token obtained above is shared by cloning).
    let t = std::time::Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = missing.len().min(PARALLEL_DOWNLOADS);
    let errors: Vec<RegistryError> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let mut ws = s.clone();
                let (next, missing, config) = (&next, &missing, &config);
                sc.spawn(move || {
                    let mut errs = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((i, l, bar)) = missing.get(k) else { break };
                        let got = match unpacker {
                            Some(u) => download_unpacking(&mut ws, store, l, bar.clone(), (u, *i, config)),
                            None => ws.blob_bar(store, l, bar.clone(), None),
                        };
                        if let Err(e) = got {
                            errs.push(e);
                            // Stop the others early.
                            next.store(missing.len(), std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                    }
                    errs
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec![RegistryError::Invalid("download thread panicked".into())]))
            .collect()
    });
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    if !missing.is_empty() {
        progress(&format!("downloaded {} layer(s) in {:.2}s", missing.len(), t.elapsed().as_secs_f64()));
    }
    for (d, b) in &indexes {
        store.put_bytes(b, Some(&d.digest))?;
    }
    store.put_bytes(&bytes, Some(&digest))?;
    Ok(ResolvedImage { manifest_descriptor: desc, manifest, manifest_bytes: bytes, config, config_bytes, indexes })
}

/// Downloads layer `l` into `store` while `u` unpacks it (layer `i` of the image
/// configured by `config`) on a second thread from the same bytes.
fn download_unpacking(
    s: &mut Session<'_>,
    store: &Store,
    l: &Descriptor,
    bar: Option<indicatif::ProgressBar>,
    (u, i, config): (&dyn LayerUnpacker, usize, &ImageConfiguration),
) -> Result<(), RegistryError> {
    let (w, mut r) = crate::chunks::channel_pair();
    std::thread::scope(|sc| {
        let unpacking = std::thread::Builder::new()
            .name("capsa-unpack".into())
            .spawn_scoped(sc, move || u.unpack(i, config, &mut r))
            .map_err(|e| RegistryError::Invalid(format!("cannot start an unpacking thread: {e}")))?;
        let got = s.blob_bar(store, l, bar, Some(w));
        if unpacking.join().unwrap_or(false) {
            u.commit(i, config, got.is_ok());
        }
        got
    })
}
