//! Where images are imported from, and the one import that copies them into
//! the content store.
//!
//! An [`ImageSource`] is an OCI layout directory ([`crate::OciLayout`]), an OCI
//! layout packed in a tar ([`crate::docker_archive::OciArchive`]) or a
//! `docker save` archive ([`crate::DockerArchive`]). Each gives access to its
//! files and turns a reference and platform into an [`ImportPlan`]: the
//! resolved image (its indexes, manifest and config read, verified and held in
//! memory) and where each layer lies in the source. [`ImageSource::import`]
//! then copies what the store lacks, verifying every digest and size, and
//! removes the blobs it added if anything fails.

use std::io::{self, Read};

use crate::apply::diff_id_of;
use crate::digest::{Digest, DigestError};
use crate::layout::{self, LayoutError, ResolvedImage};
use crate::oci::Platform;
use crate::store::{Store, StoreError};

/// A place images are imported from: its files, and how a reference resolves in it.
pub trait ImageSource {
    /// Opens `rel` (a `/`-separated path relative to the source's root) and
    /// returns it with its size.
    fn open_file(&self, rel: &str) -> io::Result<(Box<dyn Read + '_>, u64)>;

    /// Whether `rel` exists.
    fn exists(&self, rel: &str) -> bool;

    /// Resolves `reference` (or the only image) for `platform` into what an
    /// import copies. Nothing is written. By default the source is read as an
    /// OCI layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`).
    fn plan(&self, reference: Option<&str>, platform: &Platform) -> Result<ImportPlan, LayoutError> {
        layout::plan(self, reference, platform)
    }

    /// Resolves `reference` (or the only image) for `platform` and copies the
    /// image (indexes, manifest, config, layers) into `store`; see [`copy`].
    fn import(
        &self,
        store: &Store,
        reference: Option<&str>,
        platform: &Platform,
    ) -> Result<ResolvedImage, LayoutError> {
        let plan = self.plan(reference, platform)?;
        copy(self, store, &plan)?;
        Ok(plan.image)
    }
}

/// A resolved image and where its layers lie in the source.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    /// The image; its index, manifest and config bytes are verified and in memory.
    pub image: ResolvedImage,
    /// One per layer of `image`, in the same order.
    pub layers: Vec<LayerFile>,
}

/// Where a layer lies in the source.
#[derive(Debug, Clone)]
pub struct LayerFile {
    /// Its file (relative to the source's root).
    pub path: String,
    /// The layer's diff_id, checked against the copied blob, when the source
    /// does not vouch for the layer's digest (a `docker save` `manifest.json`).
    pub diff_id: Option<Digest>,
}

impl ImportPlan {
    /// A plan whose layers are `blobs/<alg>/<hex>` files (an OCI layout).
    pub fn oci(image: ResolvedImage) -> ImportPlan {
        let layers =
            image.layers().iter().map(|l| LayerFile { path: layout::blob_path(&l.digest), diff_id: None }).collect();
        ImportPlan { image, layers }
    }

    /// Whether every blob of the image is already in `store` (nothing to copy).
    pub fn is_stored(&self, store: &Store) -> bool {
        let img = &self.image;
        store.has(&img.manifest_descriptor.digest)
            && store.has(&img.manifest.config.digest)
            && img.indexes.iter().all(|(d, _)| store.has(&d.digest))
            && img.layers().iter().all(|l| store.has(&l.digest))
    }
}

/// Copies a planned image from `src` into `store`: the index, manifest and
/// config bytes, then each layer the store lacks, checked against its digest
/// and size (and a compressed layer's diff_id when the plan asks). On failure
/// the blobs this copy added are removed again.
pub fn copy<S: ImageSource + ?Sized>(src: &S, store: &Store, plan: &ImportPlan) -> Result<(), LayoutError> {
    let mut added = Vec::new();
    let r = copy_tracked(src, store, plan, &mut added);
    if r.is_err() {
        for d in &added {
            let _ = store.remove(d);
        }
    }
    r
}

fn copy_tracked<S: ImageSource + ?Sized>(
    src: &S,
    store: &Store,
    plan: &ImportPlan,
    added: &mut Vec<Digest>,
) -> Result<(), LayoutError> {
    let img = &plan.image;
    let mut put_bytes = |bytes: &[u8], d: &Digest| -> Result<(), StoreError> {
        if !store.has(d) {
            store.put_bytes(bytes, Some(d))?;
            added.push(d.clone());
        }
        Ok(())
    };
    for (d, bytes) in &img.indexes {
        put_bytes(bytes, &d.digest)?;
    }
    put_bytes(&img.manifest_bytes, &img.manifest_descriptor.digest)?;
    put_bytes(&img.config_bytes, &img.manifest.config.digest)?;
    for (l, file) in img.layers().iter().zip(&plan.layers) {
        let path = &file.path;
        // An uncompressed layer with a diff_id to check is stored under it: a
        // mismatch is then the uncompressed content's.
        let layer_err = |source| LayoutError::Verify { what: format!("layer {path} (uncompressed)"), source };
        if !store.has(&l.digest) {
            let (r, _) = src.open_file(path).map_err(|source| LayoutError::Io {
                op: "open layer",
                path: path.clone(),
                source,
            })?;
            match store.put(r, Some(&l.digest), Some(l.size)) {
                Ok(_) => added.push(l.digest.clone()),
                Err(StoreError::Verify(e)) if file.diff_id.as_ref() == Some(&l.digest) => return Err(layer_err(e)),
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(want) = file.diff_id.as_ref().filter(|d| **d != l.digest) {
            let actual = diff_id_of(store.open(&l.digest)?).map_err(|source| LayoutError::Io {
                op: "decompress layer",
                path: path.clone(),
                source,
            })?;
            if actual != *want {
                return Err(layer_err(DigestError::Mismatch { expected: want.clone(), actual }));
            }
        }
    }
    Ok(())
}
