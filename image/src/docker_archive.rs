//! `docker save` archives (and OCI layouts packed in a tar, `oci-archive`).
//!
//! Two layouts exist:
//! - classic (Docker < 25): `manifest.json` = `[{"Config": "<hex>.json",
//!   "RepoTags": ["name:tag"], "Layers": ["<id>/layer.tar", ...]}]`, plus
//!   `repositories` (ignored: `manifest.json` carries the same tags) and
//!   uncompressed `layer.tar` files whose sha256 is the layer's diff_id;
//! - Docker 25+: an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/...`)
//!   plus a `manifest.json` whose paths point into `blobs/sha256/`, and
//!   `<id>/layer.tar` symlinks into the blobs for old readers.
//!
//! The archive is indexed in one pass (member name → offset, size, link
//! target), then members are read in place with `pread`. When `index.json` is
//! present and names the wanted image, the OCI route is used (it keeps the
//! original manifest digest). Otherwise `manifest.json` is used, and an OCI
//! manifest is synthesized for the image; every layer is checked against the
//! config's diff_ids. A gzip- or zstd-compressed archive is first decompressed
//! into an unnamed temp file (O_TMPFILE), since reading members needs seeks.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::apply::{detect_compression, Compression};
use crate::digest::{Digest, HashingReader};
use crate::layout::{
    self, normalize_reference, parse_json, read_file_limited, LayoutError, ResolvedImage, MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
};
use crate::oci::{self, Descriptor, ImageConfiguration, ImageManifest, Platform};
use crate::sniff::{describe_start, is_tar_header, printable, TAR_BLOCK};
use crate::source::{ImageSource, ImportPlan, LayerFile};

/// Symlink hops followed when resolving a member name.
const MAX_LINK_HOPS: usize = 16;

/// One member of the archive.
#[derive(Debug, Clone)]
enum Member {
    /// A regular file's data at `offset`, `size` bytes.
    File { offset: u64, size: u64 },
    /// A symlink (target resolved lexically against the member's directory) or
    /// a hardlink (target is an archive path).
    Link { target: String },
    /// Directories and anything else: not readable.
    Other,
}

/// A `docker save` archive opened for import.
pub struct DockerArchive {
    file: File,
    members: HashMap<String, Member>,
}

/// One entry of `manifest.json`.
#[derive(Debug, serde::Deserialize)]
struct SaveManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// Reads `[pos, end)` of a file with `pread`, so readers do not share a cursor.
struct PreadReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for PreadReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Lexically normalizes an archive member name or link target: no leading
/// `/` or `./`, no `.`, `..` resolved; `None` if it climbs above the top.
fn clean(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

impl DockerArchive {
    /// Opens and indexes an archive (decompressing it first if compressed).
    pub fn open(path: impl AsRef<Path>) -> Result<DockerArchive, LayoutError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let io_err = |op| {
            let p = shown.clone();
            move |source| LayoutError::Io { op, path: p, source }
        };
        let mut file = File::open(path).map_err(io_err("open archive"))?;
        let head = read_head(&mut file).map_err(io_err("read archive"))?;
        let compression = detect_compression(&head);
        let (file, head) = match compression {
            Compression::None => (file, head),
            c => {
                let mut f = decompress_to_tempfile(file, c).map_err(io_err("decompress archive"))?;
                let head = read_head(&mut f).map_err(io_err("read decompressed archive"))?;
                (f, head)
            }
        };
        // Checked before the tar parser sees it: its errors on a file that is no tar
        // at all quote header bytes raw, or say "failed to read entire block".
        if !is_tar_header(&head) {
            let d = describe_start(&head);
            let what = match compression {
                Compression::None => format!("the file {d}"),
                Compression::Gzip => format!("gzip-compressed data that {d}"),
                Compression::Zstd => format!("zstd-compressed data that {d}"),
            };
            return Err(LayoutError::NotTar { archive: shown, what });
        }
        Self::index(file).map_err(|source| LayoutError::Io {
            op: "read tar archive",
            path: shown.clone(),
            source: io::Error::new(source.kind(), printable(&source.to_string())),
        })
    }

    /// One pass over the tar headers.
    fn index(file: File) -> io::Result<DockerArchive> {
        let mut members = HashMap::new();
        {
            let mut ar = tar::Archive::new(BufReader::with_capacity(1 << 16, &file));
            let mut last: Option<String> = None;
            for e in ar.entries_with_seek()? {
                let e = e.map_err(|err| {
                    let at =
                        last.as_deref().map_or("at its first member".to_owned(), |n| format!("after member {n:?}"));
                    io::Error::new(err.kind(), format!("corrupt or truncated {at}: {err}"))
                })?;
                let Some(name) = clean(&String::from_utf8_lossy(&e.path_bytes())) else {
                    continue;
                };
                last = Some(name.clone());
                let kind = e.header().entry_type();
                let link = || e.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned());
                let m = match kind {
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        Member::File { offset: e.raw_file_position(), size: e.size() }
                    }
                    tar::EntryType::Symlink => match link() {
                        Some(t) => {
                            let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                            let full = if t.starts_with('/') { t } else { format!("{dir}/{t}") };
                            match clean(&full) {
                                Some(target) => Member::Link { target },
                                None => Member::Other,
                            }
                        }
                        None => Member::Other,
                    },
                    tar::EntryType::Link => match link().and_then(|t| clean(&t)) {
                        Some(target) => Member::Link { target },
                        None => Member::Other,
                    },
                    _ => Member::Other,
                };
                members.insert(name, m);
            }
        }
        Ok(DockerArchive { file, members })
    }

    /// Finds a regular member by name, following links inside the archive.
    fn lookup(&self, rel: &str) -> io::Result<(u64, u64)> {
        let not_found = || io::Error::new(io::ErrorKind::NotFound, format!("no member {rel:?}"));
        let mut name = clean(rel).ok_or_else(not_found)?;
        for _ in 0..MAX_LINK_HOPS {
            match self.members.get(&name) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link { target }) => name = target.clone(),
                _ => return Err(not_found()),
            }
        }
        Err(io::Error::new(io::ErrorKind::InvalidData, "too many links"))
    }

    /// The `manifest.json` route: the image's config and layers as named
    /// there, with an OCI manifest synthesized for them. Each layer is stored
    /// under its diff_id when uncompressed; a compressed one under the digest
    /// its name carries (else its hash) and its diff_id checked once copied.
    fn plan_manifest_json(&self, reference: Option<&str>) -> Result<ImportPlan, LayoutError> {
        let bytes = read_file_limited(self, "manifest.json", MAX_MANIFEST_SIZE)?;
        let entries: Vec<SaveManifestEntry> = parse_json("manifest.json", &bytes)?;
        let tags = |e: &SaveManifestEntry| e.repo_tags.clone().unwrap_or_default();
        let available = || entries.iter().flat_map(tags).collect::<Vec<_>>();
        let entry = match reference {
            Some(r) => {
                let want = normalize_reference(r);
                entries
                    .iter()
                    .find(|e| tags(e).iter().any(|t| normalize_reference(t) == want))
                    .ok_or_else(|| LayoutError::NotFound { reference: r.to_owned(), available: available() })?
            }
            None if entries.len() == 1 => &entries[0],
            None => return Err(LayoutError::Ambiguous { count: entries.len(), available: available() }),
        };

        // Config: its sha256 is the image ID; check it against the name when
        // the name carries a digest (`<hex>.json` or `blobs/sha256/<hex>`).
        let config_bytes = read_file_limited(self, &entry.config, MAX_CONFIG_SIZE)?;
        let config_digest = Digest::sha256_of(&config_bytes);
        if let Some(named) = digest_in_name(&entry.config) {
            if named != config_digest {
                return Err(LayoutError::Verify {
                    what: entry.config.clone(),
                    source: crate::digest::DigestError::Mismatch { expected: named, actual: config_digest },
                });
            }
        }
        let config: ImageConfiguration = parse_json(&entry.config, &config_bytes)?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(LayoutError::Invalid(format!(
                "{}: {} diff_ids but manifest.json lists {} layers",
                entry.config,
                config.rootfs.diff_ids.len(),
                entry.layers.len()
            )));
        }

        let mut layers = Vec::with_capacity(entry.layers.len());
        let mut files = Vec::with_capacity(entry.layers.len());
        for (path, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            layers.push(self.layer_descriptor(path, diff_id)?);
            files.push(LayerFile { path: path.clone(), diff_id: Some(diff_id.clone()) });
        }

        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(oci::MEDIA_TYPE_OCI_MANIFEST.to_owned()),
            config: Descriptor::new(oci::MEDIA_TYPE_OCI_CONFIG, config_digest, config_bytes.len() as u64),
            layers,
            annotations: Default::default(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest)
            .map_err(|source| LayoutError::Json { what: "synthesized manifest".into(), source })?;
        let md = Digest::sha256_of(&manifest_bytes);
        let mut manifest_descriptor = Descriptor::new(oci::MEDIA_TYPE_OCI_MANIFEST, md, manifest_bytes.len() as u64);
        // The image's first RepoTag names it (as index.json's annotation does).
        if let Some(tag) = tags(entry).into_iter().next() {
            manifest_descriptor.annotations.insert(oci::ANNOTATION_CONTAINERD_IMAGE_NAME.to_owned(), tag);
        }
        let image =
            ResolvedImage { manifest_descriptor, manifest, manifest_bytes, config, config_bytes, indexes: Vec::new() };
        Ok(ImportPlan { image, layers: files })
    }

    /// A layer's descriptor: media type from its first bytes; digest its
    /// diff_id when uncompressed, else the one its name carries, else its hash.
    fn layer_descriptor(&self, path: &str, diff_id: &Digest) -> Result<Descriptor, LayoutError> {
        let io_err = |op| move |source| LayoutError::Io { op, path: path.to_owned(), source };
        let (r, size) = self.open_file(path).map_err(io_err("open layer"))?;
        let mut head = Vec::with_capacity(4);
        r.take(4).read_to_end(&mut head).map_err(io_err("read layer"))?;
        let compression = detect_compression(&head);
        let digest = match (compression, digest_in_name(path)) {
            (Compression::None, _) => diff_id.clone(),
            (_, Some(named)) => named,
            _ => {
                let mut h = HashingReader::new(self.open_file(path).map_err(io_err("open layer"))?.0);
                io::copy(&mut h, &mut io::sink()).map_err(io_err("read layer"))?;
                h.finish().0
            }
        };
        let mt = match compression {
            Compression::None => oci::MEDIA_TYPE_OCI_LAYER,
            Compression::Gzip => oci::MEDIA_TYPE_OCI_LAYER_GZIP,
            Compression::Zstd => oci::MEDIA_TYPE_OCI_LAYER_ZSTD,
        };
        Ok(Descriptor::new(mt, digest, size))
    }
}

impl ImageSource for DockerArchive {
    fn open_file(&self, rel: &str) -> io::Result<(Box<dyn Read + '_>, u64)> {
        let (offset, size) = self.lookup(rel)?;
        let r = PreadReader { file: &self.file, pos: offset, end: offset + size };
        Ok((Box::new(BufReader::with_capacity(1 << 20, r)), size))
    }

    fn exists(&self, rel: &str) -> bool {
        self.lookup(rel).is_ok()
    }

    /// The OCI route when `index.json` names the image (it keeps the original
    /// manifest digest), else `manifest.json`. With the `manifest.json` route
    /// the manifest is synthesized (OCI media types).
    fn plan(&self, reference: Option<&str>, platform: &Platform) -> Result<ImportPlan, LayoutError> {
        let has_manifest_json = self.exists("manifest.json");
        if self.exists("index.json") && self.exists("oci-layout") {
            match layout::plan(self, reference, platform) {
                Err(LayoutError::NotFound { .. } | LayoutError::Ambiguous { .. }) if has_manifest_json => {}
                r => return r,
            }
        }
        if !has_manifest_json {
            return Err(LayoutError::Invalid(
                "archive has neither manifest.json nor an OCI index.json \
                 (docker save from Docker < 1.10 is not supported)"
                    .into(),
            ));
        }
        self.plan_manifest_json(reference)
    }
}

/// An OCI image layout packed in a tar (`oci-archive:`): only its
/// `index.json` is read, never a `manifest.json`.
pub struct OciArchive(DockerArchive);

impl OciArchive {
    /// Opens and indexes an archive (decompressing it first if compressed).
    pub fn open(path: impl AsRef<Path>) -> Result<OciArchive, LayoutError> {
        DockerArchive::open(path).map(OciArchive)
    }
}

impl ImageSource for OciArchive {
    fn open_file(&self, rel: &str) -> io::Result<(Box<dyn Read + '_>, u64)> {
        self.0.open_file(rel)
    }

    fn exists(&self, rel: &str) -> bool {
        self.0.exists(rel)
    }
}

/// The digest a member name carries: `blobs/sha256/<hex>` or `<hex>.json`.
fn digest_in_name(path: &str) -> Option<Digest> {
    let p = clean(path)?;
    if let Some(hex) = p.strip_prefix("blobs/sha256/") {
        return Digest::from_hex(hex).ok();
    }
    p.strip_suffix(".json").and_then(|h| Digest::from_hex(h).ok())
}

/// The first tar block of `file` (less if shorter), rewound.
fn read_head(file: &mut File) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(TAR_BLOCK);
    (&mut *file).take(TAR_BLOCK as u64).read_to_end(&mut head)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(head)
}

/// Decompresses `file` into an unnamed temp file and returns it, rewound.
fn decompress_to_tempfile(file: File, c: Compression) -> io::Result<File> {
    let mut out = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .mode(0o600)
        .open(std::env::temp_dir())?;
    let mut r = crate::apply::decompressor(BufReader::with_capacity(1 << 20, file), c)?;
    io::copy(&mut r, &mut out)?;
    out.seek(SeekFrom::Start(0))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean("./a/b/../c").as_deref(), Some("a/c"));
        assert_eq!(clean("/a//b/").as_deref(), Some("a/b"));
        assert_eq!(clean("../x"), None);
        assert_eq!(clean("a/../../x"), None);
        let hex = "a".repeat(64);
        assert!(digest_in_name(&format!("blobs/sha256/{hex}")).is_some());
        assert!(digest_in_name(&format!("{hex}.json")).is_some());
        assert!(digest_in_name("abc/layer.tar").is_none());
    }
}
