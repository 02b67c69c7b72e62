//! OCI image layouts: `oci-layout`, `index.json`, `blobs/<alg>/<hex>`.
//!
//! [`OciLayout`] reads a layout directory; the same resolution code also runs
//! over the OCI layout inside an `oci-archive` or a Docker 25+ `docker save`
//! archive (see [`crate::docker_archive`]) through the [`ImageSource`] trait,
//! whose [`ImageSource::import`] copies a resolved image into the store.
//!
//! Resolution: `index.json` → the entry whose `org.opencontainers.image.ref.name`
//! (or `io.containerd.image.name`) matches the reference, or the only entry →
//! nested image indexes / Docker manifest lists, picking the wanted platform →
//! an image manifest → its config and layer descriptors. Every blob read is
//! checked against its descriptor's digest and size; JSON blobs are size-capped.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, DigestError, VerifyingReader};
use crate::oci::{self, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, Platform};
pub use crate::source::{ImageSource, ImportPlan};
use crate::store::StoreError;

/// Largest manifest or index accepted (containerd uses the same bound).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Largest image config accepted.
pub const MAX_CONFIG_SIZE: u64 = 16 << 20;
/// How many index levels may nest before the layout is refused.
const MAX_INDEX_DEPTH: usize = 4;

/// Errors reading or importing an image.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file could not be read.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Which file (relative to the layout or archive).
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A JSON document did not parse.
    #[error("parse {what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A blob's content does not match its descriptor.
    #[error("blob {what}: {source}")]
    Verify {
        /// Which blob.
        what: String,
        /// The mismatch.
        #[source]
        source: DigestError,
    },
    /// Writing to the content store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No entry matches the reference.
    #[error("image {reference:?} not found; available: {available:?}")]
    NotFound {
        /// What was asked for.
        reference: String,
        /// The names present.
        available: Vec<String>,
    },
    /// No reference given, and there is not exactly one image.
    #[error("{count} images present, name one of {available:?}")]
    Ambiguous {
        /// How many images.
        count: usize,
        /// Their names.
        available: Vec<String>,
    },
    /// No manifest for the wanted platform.
    #[error("no manifest for platform {wanted}; available: {available:?}")]
    NoPlatform {
        /// The platform asked for.
        wanted: String,
        /// The platforms present.
        available: Vec<String>,
    },
    /// An archive that is not a tar archive (`what`: what it is instead, printable).
    #[error("{archive}: not a tar archive ({what})")]
    NotTar {
        /// The archive (its path, or the reference given).
        archive: String,
        /// What the file is: `the file starts with text "..."`.
        what: String,
    },
    /// Something the layout or archive must not contain, or that capsa does not support.
    #[error("{0}")]
    Invalid(String),
}

/// The result of resolving a reference: a manifest, its config and layers.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Descriptor of the manifest (its digest identifies the image).
    pub manifest_descriptor: Descriptor,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The manifest's exact bytes.
    pub manifest_bytes: Vec<u8>,
    /// The image configuration.
    pub config: ImageConfiguration,
    /// The configuration's exact bytes.
    pub config_bytes: Vec<u8>,
    /// Index blobs walked through on the way (outermost first), with their bytes.
    pub indexes: Vec<(Descriptor, Vec<u8>)>,
}

impl ResolvedImage {
    /// The layer descriptors, base first.
    pub fn layers(&self) -> &[Descriptor] {
        &self.manifest.layers
    }

    /// The config descriptor.
    pub fn config_descriptor(&self) -> &Descriptor {
        &self.manifest.config
    }

    /// The uncompressed digests of the layers, base first.
    pub fn diff_ids(&self) -> &[Digest] {
        &self.config.rootfs.diff_ids
    }
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

impl ImageSource for OciLayout {
    fn open_file(&self, rel: &str) -> io::Result<(Box<dyn Read + '_>, u64)> {
        let f = File::open(self.root.join(rel))?;
        let size = f.metadata()?.len();
        Ok((Box::new(f), size))
    }
    fn exists(&self, rel: &str) -> bool {
        self.root.join(rel).exists()
    }
}

impl OciLayout {
    /// Opens a layout directory, checking its `oci-layout` file.
    pub fn open(dir: impl AsRef<Path>) -> Result<OciLayout, LayoutError> {
        let layout = OciLayout { root: dir.as_ref().to_owned() };
        check_oci_layout_file(&layout)?;
        Ok(layout)
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads `index.json`.
    pub fn index(&self) -> Result<ImageIndex, LayoutError> {
        read_index_json(self)
    }

    /// Resolves `reference` (or the only image) for `platform`.
    pub fn resolve(&self, reference: Option<&str>, platform: &Platform) -> Result<ResolvedImage, LayoutError> {
        resolve(self, reference, platform)
    }

    /// Opens a blob, verifying its digest and size while it is read.
    pub fn open_blob(&self, desc: &Descriptor) -> Result<VerifyingReader<File>, LayoutError> {
        let rel = blob_path(&desc.digest);
        let f = File::open(self.root.join(&rel)).map_err(|source| LayoutError::Io {
            op: "open blob",
            path: rel,
            source,
        })?;
        Ok(VerifyingReader::new(f, desc.digest.clone(), Some(desc.size)))
    }
}

/// `blobs/<alg>/<hex>` for a digest (safe: the hex part is validated).
pub fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

/// Checks `oci-layout` says `imageLayoutVersion` 1.x.
pub(crate) fn check_oci_layout_file<S: ImageSource + ?Sized>(src: &S) -> Result<(), LayoutError> {
    #[derive(serde::Deserialize)]
    struct OciLayoutFile {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    let bytes = read_file_limited(src, "oci-layout", 4096)?;
    let f: OciLayoutFile = parse_json("oci-layout", &bytes)?;
    if !f.version.starts_with("1.") {
        return Err(LayoutError::Invalid(format!("oci-layout: unsupported imageLayoutVersion {:?}", f.version)));
    }
    Ok(())
}

pub(crate) fn read_index_json<S: ImageSource + ?Sized>(src: &S) -> Result<ImageIndex, LayoutError> {
    let bytes = read_file_limited(src, "index.json", MAX_MANIFEST_SIZE)?;
    parse_json("index.json", &bytes)
}

/// Reads a whole file, refusing more than `limit` bytes.
pub(crate) fn read_file_limited<S: ImageSource + ?Sized>(
    src: &S,
    rel: &str,
    limit: u64,
) -> Result<Vec<u8>, LayoutError> {
    let io_err = |op| move |source| LayoutError::Io { op, path: rel.to_owned(), source };
    let (r, _) = src.open_file(rel).map_err(io_err("open"))?;
    let mut out = Vec::new();
    r.take(limit + 1).read_to_end(&mut out).map_err(io_err("read"))?;
    if out.len() as u64 > limit {
        return Err(LayoutError::Invalid(format!("{rel}: larger than the {limit}-byte limit")));
    }
    Ok(out)
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, LayoutError> {
    serde_json::from_slice(bytes).map_err(|source| LayoutError::Json { what: what.to_owned(), source })
}

/// Reads a JSON blob named by `desc`, checking size limit, size and digest.
fn read_blob_verified<S: ImageSource + ?Sized>(src: &S, desc: &Descriptor, limit: u64) -> Result<Vec<u8>, LayoutError> {
    if desc.size > limit {
        return Err(LayoutError::Invalid(format!(
            "{} ({}): declared size {} exceeds the {limit}-byte limit",
            desc.digest, desc.media_type, desc.size
        )));
    }
    let bytes = read_file_limited(src, &blob_path(&desc.digest), limit)?;
    let mut h = crate::digest::Hasher::new();
    h.update(&bytes);
    h.verify(Some(&desc.digest), Some(desc.size))
        .map_err(|source| LayoutError::Verify { what: format!("{} ({})", desc.digest, desc.media_type), source })?;
    Ok(bytes)
}

/// Normalizes a Docker-style reference for comparison: `busybox` →
/// `docker.io/library/busybox:latest`, `me/app:1` → `docker.io/me/app:1`.
/// Digest references (`name@sha256:...`) keep their digest and get no tag.
pub fn normalize_reference(r: &str) -> String {
    let (name, suffix) = match r.find('@') {
        Some(i) => (&r[..i], r[i..].to_owned()),
        None => {
            let last = r.rsplit('/').next().unwrap_or(r);
            if last.contains(':') {
                let i = r.rfind(':').unwrap_or(r.len());
                (&r[..i], r[i..].to_owned())
            } else {
                (r, ":latest".to_owned())
            }
        }
    };
    let first = name.split('/').next().unwrap_or(name);
    let has_domain = name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_domain {
        name.to_owned()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    format!("{full}{suffix}")
}

/// The names an `index.json` entry answers to.
fn entry_names(d: &Descriptor) -> Vec<&str> {
    [oci::ANNOTATION_REF_NAME, oci::ANNOTATION_CONTAINERD_IMAGE_NAME].iter().filter_map(|k| d.annotation(k)).collect()
}

/// Whether an `index.json` entry matches `reference`: an exact `ref.name`
/// (a tag such as `latest` or `v1`), or the same normalized full name.
fn entry_matches(d: &Descriptor, reference: &str) -> bool {
    let norm = normalize_reference(reference);
    entry_names(d).iter().any(|n| *n == reference || normalize_reference(n) == norm)
}

/// Resolves `reference` (or the only image) to a manifest for `platform`.
pub fn resolve<S: ImageSource + ?Sized>(
    src: &S,
    reference: Option<&str>,
    platform: &Platform,
) -> Result<ResolvedImage, LayoutError> {
    let index = read_index_json(src)?;
    let available = || {
        index
            .manifests
            .iter()
            .map(|d| entry_names(d).first().map_or_else(|| d.digest.to_string(), |s| s.to_string()))
            .collect::<Vec<_>>()
    };
    let top = match reference {
        Some(r) => index
            .manifests
            .iter()
            .find(|d| entry_matches(d, r))
            .ok_or_else(|| LayoutError::NotFound { reference: r.to_owned(), available: available() })?,
        None if index.manifests.len() == 1 => &index.manifests[0],
        None => return Err(LayoutError::Ambiguous { count: index.manifests.len(), available: available() }),
    };
    resolve_descriptor(src, top.clone(), platform)
}

/// [`ImageSource::plan`] for an OCI layout: checks `oci-layout`, resolves
/// `reference` (or the only image) for `platform` through `index.json`.
pub fn plan<S: ImageSource + ?Sized>(
    src: &S,
    reference: Option<&str>,
    platform: &Platform,
) -> Result<ImportPlan, LayoutError> {
    check_oci_layout_file(src)?;
    resolve(src, reference, platform).map(ImportPlan::oci)
}

/// Follows `desc` through nested indexes to a manifest, then reads its config.
pub(crate) fn resolve_descriptor<S: ImageSource + ?Sized>(
    src: &S,
    mut desc: Descriptor,
    platform: &Platform,
) -> Result<ResolvedImage, LayoutError> {
    let mut indexes = Vec::new();
    loop {
        if oci::is_index_media_type(&desc.media_type) {
            if indexes.len() >= MAX_INDEX_DEPTH {
                return Err(LayoutError::Invalid(format!("image indexes nest deeper than {MAX_INDEX_DEPTH} levels")));
            }
            let bytes = read_blob_verified(src, &desc, MAX_MANIFEST_SIZE)?;
            let idx: ImageIndex = parse_json(&format!("image index {}", desc.digest), &bytes)?;
            let next = pick_platform(&idx, platform)?.clone();
            indexes.push((desc, bytes));
            desc = next;
        } else if oci::is_manifest_media_type(&desc.media_type) {
            break;
        } else {
            return Err(LayoutError::Invalid(format!(
                "{}: unsupported media type {:?} (expected an image manifest or index)",
                desc.digest, desc.media_type
            )));
        }
    }
    let manifest_bytes = read_blob_verified(src, &desc, MAX_MANIFEST_SIZE)?;
    let manifest: ImageManifest = parse_json(&format!("image manifest {}", desc.digest), &manifest_bytes)?;
    check_manifest(&manifest, &desc)?;
    let config_bytes = read_blob_verified(src, &manifest.config, MAX_CONFIG_SIZE)?;
    let config: ImageConfiguration = parse_json(&format!("image config {}", manifest.config.digest), &config_bytes)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(LayoutError::Invalid(format!(
            "image config {} lists {} diff_ids but manifest {} has {} layers",
            manifest.config.digest,
            config.rootfs.diff_ids.len(),
            desc.digest,
            manifest.layers.len()
        )));
    }
    if config.os != platform.os || config.architecture != platform.architecture {
        tracing::warn!("image {} is for {}/{}, not {platform}", desc.digest, config.os, config.architecture);
    }
    Ok(ResolvedImage { manifest_descriptor: desc, manifest, manifest_bytes, config, config_bytes, indexes })
}

/// Checks media types inside a manifest.
pub(crate) fn check_manifest(m: &ImageManifest, desc: &Descriptor) -> Result<(), LayoutError> {
    if let Some(mt) = &m.media_type {
        if !oci::is_manifest_media_type(mt) {
            return Err(LayoutError::Invalid(format!(
                "manifest {}: mediaType {mt:?} is not an image manifest",
                desc.digest
            )));
        }
    }
    if !oci::is_config_media_type(&m.config.media_type) {
        return Err(LayoutError::Invalid(format!(
            "manifest {}: config media type {:?} is not an image config (an artifact?)",
            desc.digest, m.config.media_type
        )));
    }
    for l in &m.layers {
        if !oci::is_layer_media_type(&l.media_type) {
            return Err(LayoutError::Invalid(format!(
                "manifest {}: layer {} has unsupported media type {:?}",
                desc.digest, l.digest, l.media_type
            )));
        }
    }
    Ok(())
}

/// Picks the entry of an index for `platform`, skipping attestation manifests.
pub(crate) fn pick_platform<'a>(idx: &'a ImageIndex, want: &Platform) -> Result<&'a Descriptor, LayoutError> {
    let candidates: Vec<&Descriptor> = idx
        .manifests
        .iter()
        .filter(|d| d.annotation("vnd.docker.reference.type") != Some("attestation-manifest"))
        .collect();
    if let Some(d) = candidates.iter().find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p))) {
        return Ok(d);
    }
    // A single entry without any platform: take it (common in hand-made layouts).
    if candidates.len() == 1 && candidates[0].platform.is_none() {
        return Ok(candidates[0]);
    }
    Err(LayoutError::NoPlatform {
        wanted: want.to_string(),
        available: candidates
            .iter()
            .map(|d| d.platform.as_ref().map_or("(none)".to_owned(), |p| p.to_string()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::normalize_reference as n;

    #[test]
    fn normalize() {
        assert_eq!(n("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(n("me/app"), "docker.io/me/app:latest");
        assert_eq!(n("docker.io/library/busybox:latest"), "docker.io/library/busybox:latest");
        assert_eq!(n("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(n("quay.io/a/b:c"), "quay.io/a/b:c");
        let d = format!("x@sha256:{}", "0".repeat(64));
        assert_eq!(n(&d), format!("docker.io/library/x@sha256:{}", "0".repeat(64)));
    }
}
