//! Adding images: importing from a transport (OCI layout or archive, docker archive)
//! and pulling from a registry, with rollback on failure; default names.

use std::collections::BTreeSet;
use std::path::Path;

use crate::digest::Digest;
use crate::docker_archive::{DockerArchive, OciArchive};
use crate::layout::{LayoutError, OciLayout, ResolvedImage};
use crate::oci::Platform;
use crate::reference::{self, ImageRef};
use crate::source::{self, ImageSource};

use super::{ImageError, ImageRecord, ImageStore, Progress};

impl ImageStore {
    /// Imports an image from a transport (not the registry: see
    /// `crate::registry`) into the store and names it. `name` defaults to a
    /// name derived from the reference. Returns the record.
    pub fn import(
        &self,
        r: &ImageRef,
        name: Option<&str>,
        platform: &Platform,
        progress: Progress<'_>,
    ) -> Result<ImageRecord, ImageError> {
        if let ImageRef::Local(n) = r {
            return self.get(n).map(|i| i.record);
        }
        // One import at a time; on failure, the blobs this import added are
        // removed again (by `source::copy`), so a failed import leaves the
        // store as it was.
        let lock = self.lock()?;
        let (img, default_name) = self.import_locked(r, platform, progress)?;
        // Named before the lock is released: a prune in between would take
        // the blobs for garbage.
        let rec = self.tag_locked(name.unwrap_or(&default_name), &img, &r.to_string());
        drop(lock);
        rec
    }

    /// Removes the blobs not in `before` (a failed pull's).
    fn rollback(&self, before: &BTreeSet<Digest>) {
        for d in self.blobs.list().unwrap_or_default() {
            if !before.contains(&d) {
                let _ = self.blobs.remove(&d);
            }
        }
    }

    /// Pulls `name` from its registry and names it (`local_name`, default the
    /// full `host/repo:tag`). A failed pull leaves the store as it was.
    pub fn pull(
        &self,
        name: &reference::RegistryName,
        opts: &crate::registry::PullOptions,
        local_name: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<ImageRecord, ImageError> {
        let lock = self.lock()?;
        let before: BTreeSet<Digest> = self.blobs.list()?.into_iter().collect();
        // Root's store unpacks the layers as they download (see UnpackWhilePulling).
        let unpacker = self.rootless.is_none().then(|| super::snapshots::UnpackWhilePulling::new(self));
        let u = unpacker.as_ref().map(|u| u as &dyn crate::registry::LayerUnpacker);
        match crate::registry::pull(&self.blobs, name, opts, progress, u) {
            Ok(img) => {
                progress(&format!("stored {} ({} layers)", img.manifest_descriptor.digest, img.manifest.layers.len()));
                if let Some(k) = unpacker.as_ref().map(|u| u.count()).filter(|&k| k > 0) {
                    progress(&format!("unpacked {k} layer(s) while downloading"));
                }
                let rec = self.tag_locked(local_name.unwrap_or(&name.to_string()), &img, &format!("docker://{name}"));
                drop(lock);
                rec
            }
            Err(e) => {
                if let Some(u) = &unpacker {
                    u.discard();
                }
                self.rollback(&before);
                Err(e.into())
            }
        }
    }

    fn import_locked(
        &self,
        r: &ImageRef,
        platform: &Platform,
        progress: Progress<'_>,
    ) -> Result<(ResolvedImage, String), ImageError> {
        let (src, path, tag): (Box<dyn ImageSource>, _, _) = match r {
            ImageRef::OciDir { path, tag } => (Box::new(OciLayout::open(path)?), path, tag),
            ImageRef::OciArchive { path, tag } => {
                progress(&format!("importing OCI archive {}", path.display()));
                (Box::new(OciArchive::open(path).map_err(|e| named(e, r))?), path, tag)
            }
            ImageRef::DockerArchive { path, name } => {
                progress(&format!("importing docker archive {}", path.display()));
                (Box::new(DockerArchive::open(path).map_err(|e| named(e, r))?), path, name)
            }
            ImageRef::Registry(_) => {
                return Err(ImageError::Other("registry references are pulled with crate::registry".into()))
            }
            ImageRef::Local(_) => unreachable!("handled by import"),
        };
        let plan = src.plan(tag.as_deref(), platform)?;
        let default_name = match r {
            ImageRef::DockerArchive { name: Some(n), .. } => n.clone(),
            ImageRef::DockerArchive { name: None, .. } => {
                docker_archive_name(&plan.image).unwrap_or_else(|| derived_name(path, None))
            }
            _ => derived_name(path, tag.as_deref()),
        };
        if let ImageRef::OciDir { .. } = r {
            if plan.is_stored(&self.blobs) {
                // Nothing to copy (a repeated `run oci:DIR`): only the name is checked.
                return Ok((plan.image, default_name));
            }
            progress(&format!("importing OCI layout {}", path.display()));
        }
        source::copy(&*src, &self.blobs, &plan)?;
        let img = plan.image;
        progress(&format!("stored {} ({} layers)", img.manifest_descriptor.digest, img.manifest.layers.len()));
        Ok((img, default_name))
    }
}

/// An archive error named by the reference the user gave (`docker-archive:/tmp/x`).
fn named(e: LayoutError, r: &ImageRef) -> LayoutError {
    match e {
        LayoutError::NotTar { what, .. } => LayoutError::NotTar { archive: r.to_string(), what },
        e => e,
    }
}

/// A default local name for an image imported from a path: the ref.name when
/// it is a full name, else `<file stem>:<tag or latest>`.
fn derived_name(path: &Path, tag: Option<&str>) -> String {
    if let Some(t) = tag {
        if t.contains('/') || (t.contains(':') && reference::RegistryName::parse(t).is_ok()) {
            return t.to_owned();
        }
    }
    let stem = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = stem.strip_suffix(".tar").unwrap_or(&stem);
    let clean: String = stem
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' })
        .collect();
    let clean = clean.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let clean = if clean.is_empty() { "image" } else { clean };
    format!("{clean}:{}", tag.unwrap_or("latest"))
}

/// The name a docker archive gave its image (none when synthesized without tags).
fn docker_archive_name(img: &ResolvedImage) -> Option<String> {
    img.manifest_descriptor
        .annotation(crate::oci::ANNOTATION_CONTAINERD_IMAGE_NAME)
        .or_else(|| img.manifest_descriptor.annotation(crate::oci::ANNOTATION_REF_NAME))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(derived_name(Path::new("/tmp/busybox"), Some("latest")), "busybox:latest");
        assert_eq!(derived_name(Path::new("/tmp/My Img.tar"), None), "my-img:latest");
        assert_eq!(derived_name(Path::new("/x/y"), Some("docker.io/library/busybox:1")), "docker.io/library/busybox:1");
    }
}
