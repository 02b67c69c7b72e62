//! The named images (`images.json`): listing, tagging, finding, loading and removing
//! names.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::layout::{self, ResolvedImage, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use crate::oci::{ImageConfiguration, ImageManifest};
use crate::reference;

use super::{fs_error, io_err, ImageError, ImageStore, LocalImage, META_MODE};

/// One named image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The name (`busybox:latest`, `127.0.0.1:5000/app:v1`).
    pub name: String,
    /// The manifest digest.
    pub digest: Digest,
    /// The config digest (the image id, as Docker shows it).
    pub config: Digest,
    /// Where it came from (the reference imported or pulled).
    #[serde(default)]
    pub source: String,
    /// Seconds since the epoch when it was added.
    #[serde(default)]
    pub added: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ImagesFile {
    images: Vec<ImageRecord>,
}

impl ImageStore {
    fn images_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    /// Every named image, in name order.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let p = self.images_path();
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &p)(e)),
        };
        let f: ImagesFile =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::Other(format!("parse {}: {e}", p.display())))?;
        let mut v = f.images;
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// Rewrites `images.json` atomically. Call with the lock held.
    fn write_list(&self, images: Vec<ImageRecord>) -> Result<(), ImageError> {
        let data = serde_json::to_vec_pretty(&ImagesFile { images })
            .map_err(|e| ImageError::Other(format!("serialize images.json: {e}")))?;
        capsa_fsutil::write_atomic(&self.images_path(), &data, META_MODE, capsa_fsutil::Durability::Durable)
            .map_err(fs_error)
    }

    /// Names `img` (already in the content store) as `name`, replacing any
    /// image of that name.
    pub fn tag(&self, name: &str, img: &ResolvedImage, source: &str) -> Result<ImageRecord, ImageError> {
        let _l = self.lock()?;
        self.tag_locked(name, img, source)
    }

    /// [`ImageStore::tag`] with the store lock already held.
    pub(super) fn tag_locked(&self, name: &str, img: &ResolvedImage, source: &str) -> Result<ImageRecord, ImageError> {
        let mut list = self.list()?;
        // Already so (`run oci:DIR` again): no rewrite, no fsync; the record keeps its date.
        if let Some(r) = list.iter().find(|r| {
            r.name == name
                && r.digest == img.manifest_descriptor.digest
                && r.config == img.manifest.config.digest
                && r.source == source
        }) {
            return Ok(r.clone());
        }
        list.retain(|r| r.name != name);
        let rec = ImageRecord {
            name: name.to_owned(),
            digest: img.manifest_descriptor.digest.clone(),
            config: img.manifest.config.digest.clone(),
            source: source.to_owned(),
            added: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        };
        list.push(rec.clone());
        self.write_list(list)?;
        Ok(rec)
    }

    /// Finds an image: by exact name, by normalized name (`busybox` =
    /// `docker.io/library/busybox:latest`), by image id or manifest digest
    /// (or a prefix of at least 12 hex digits).
    pub fn find(&self, name: &str) -> Result<ImageRecord, ImageError> {
        let list = self.list()?;
        if let Some(r) = list.iter().find(|r| r.name == name) {
            return Ok(r.clone());
        }
        let norm = layout::normalize_reference(name);
        if let Some(r) = list.iter().find(|r| layout::normalize_reference(&r.name) == norm) {
            return Ok(r.clone());
        }
        if reference::is_id_prefix(name) {
            let h = name.strip_prefix("sha256:").unwrap_or(name);
            let hits: Vec<&ImageRecord> =
                list.iter().filter(|r| r.config.hex().starts_with(h) || r.digest.hex().starts_with(h)).collect();
            let distinct: BTreeSet<&Digest> = hits.iter().map(|r| &r.digest).collect();
            match distinct.len() {
                0 => {}
                1 => return Ok(hits[0].clone()),
                _ => return Err(ImageError::AmbiguousId(name.to_owned())),
            }
        }
        Err(ImageError::NotFound(name.to_owned()))
    }

    /// [`ImageStore::find`] and parse the manifest and config.
    pub fn get(&self, name: &str) -> Result<LocalImage, ImageError> {
        let record = self.find(name)?;
        let (manifest, config) = self.load(&record.digest)?;
        Ok(LocalImage { record, manifest, config })
    }

    /// Reads a manifest and its config from the content store.
    pub fn load(&self, manifest: &Digest) -> Result<(ImageManifest, ImageConfiguration), ImageError> {
        let mb = self.blobs.read_bytes(manifest, MAX_MANIFEST_SIZE)?;
        let m: ImageManifest = layout::parse_json(&format!("manifest {manifest}"), &mb)?;
        let cb = self.blobs.read_bytes(&m.config.digest, MAX_CONFIG_SIZE)?;
        let c: ImageConfiguration = layout::parse_json(&format!("config {}", m.config.digest), &cb)?;
        if c.rootfs.diff_ids.len() != m.layers.len() {
            return Err(ImageError::Other(format!(
                "image {manifest}: config lists {} diff_ids for {} layers",
                c.rootfs.diff_ids.len(),
                m.layers.len()
            )));
        }
        Ok((m, c))
    }

    /// Removes a name. Blobs and snapshots stay until [`ImageStore::prune`].
    pub fn remove(&self, name: &str) -> Result<ImageRecord, ImageError> {
        let _l = self.lock()?;
        let rec = self.find(name)?;
        let mut list = self.list()?;
        list.retain(|r| r.name != rec.name);
        self.write_list(list)?;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_roundtrip() {
        let t = tempfile::tempdir().unwrap();
        let s = ImageStore::open(t.path()).unwrap();
        assert!(s.list().unwrap().is_empty());
        let rec = ImageRecord {
            name: "a:latest".into(),
            digest: Digest::sha256_of(b"m"),
            config: Digest::sha256_of(b"c"),
            source: String::new(),
            added: 0,
        };
        s.write_list(vec![rec.clone()]).unwrap();
        assert_eq!(s.find("a:latest").unwrap(), rec);
        assert_eq!(s.find("a").unwrap(), rec);
        assert_eq!(s.find(&rec.config.hex()[..12]).unwrap(), rec);
        assert!(matches!(s.find("b"), Err(ImageError::NotFound(_))));
        let names: Vec<String> =
            fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(!names.iter().any(|n| n.starts_with('.')), "a temp file was left: {names:?}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(s.images_path()).unwrap().permissions().mode() & 0o777, META_MODE);
    }
}
