//! Snapshots: each layer unpacked once (overlayfs form) under `snapshots/<chainid>`,
//! in parallel, through a temp dir renamed into place.

use std::fs;
use std::path::{Path, PathBuf};

use crate::apply::{apply_layer_verified, WhiteoutMode};
use crate::digest::Digest;
use crate::oci::ImageConfiguration;
use crate::registry::LayerUnpacker;

use super::{io_err, remove_tree, ImageError, ImageStore, LocalImage, Progress, TMP_PREFIX};

impl ImageStore {
    pub(super) fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Where the snapshot of chain id `c` lives.
    pub fn snapshot_path(&self, c: &Digest) -> PathBuf {
        self.snapshots_dir().join(c.hex())
    }

    /// Where the snapshot of chain id `c` is unpacked before it is renamed into place.
    fn snapshot_tmp(&self, c: &Digest) -> PathBuf {
        self.snapshots_dir().join(format!("{TMP_PREFIX}{}-{}", std::process::id(), c.hex()))
    }

    /// Every complete snapshot, by chain id.
    pub fn snapshots(&self) -> Result<Vec<Digest>, ImageError> {
        let dir = self.snapshots_dir();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let e = e.map_err(io_err("list", &dir))?;
            if let Some(d) = e.file_name().to_str().and_then(|n| Digest::from_hex(n).ok()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Makes sure every layer of `img` is unpacked into its snapshot
    /// (overlayfs form); returns the snapshot paths, base first. Layers
    /// already unpacked are not touched.
    pub fn ensure_snapshots(&self, img: &LocalImage, progress: Progress<'_>) -> Result<Vec<PathBuf>, ImageError> {
        let chain = img.chain_ids();
        let _l = self.lock()?;
        let n = chain.len();
        let out: Vec<PathBuf> = chain.iter().map(|c| self.snapshot_path(c)).collect();
        // An overlay snapshot holds only its own layer's diff (whiteouts kept
        // as overlay markers), so the missing ones are independent: unpack
        // them in parallel, one thread per core at most.
        let todo: Vec<usize> = (0..n).filter(|&i| !out[i].is_dir()).collect();
        if todo.is_empty() {
            return Ok(out);
        }
        for &i in &todo {
            let l = &img.manifest.layers[i];
            progress(&format!("unpacking layer {}/{n} {} ({} bytes)", i + 1, l.digest, l.size));
        }
        let t = std::time::Instant::now();
        // Rootless: one child, root of the user's namespace, unpacks them all (forked
        // before any worker thread exists).
        self.as_owner("unpack the image's layers", || self.unpack_snapshots(img, &chain, &out, &todo))?;
        progress(&format!("unpacked {} layer(s) in {:.2}s", todo.len(), t.elapsed().as_secs_f64()));
        Ok(out)
    }

    /// Unpacks the layers `todo` of `img` (chain ids `chain`, snapshot paths `out`) in
    /// parallel, one thread per core at most; the first failing layer's error.
    fn unpack_snapshots(
        &self,
        img: &LocalImage,
        chain: &[Digest],
        out: &[PathBuf],
        todo: &[usize],
    ) -> Result<(), ImageError> {
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get()).min(todo.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<(usize, Result<(), ImageError>)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(&i) = todo.get(k) else { break };
                            done.push((i, self.unpack_snapshot(img, i, &chain[i], &out[i])));
                        }
                        done
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
        });
        let mut first_err = None;
        for (i, r) in results {
            if let Err(e) = r {
                if first_err.as_ref().is_none_or(|(j, _)| i < *j) {
                    first_err = Some((i, e));
                }
            }
        }
        first_err.map_or(Ok(()), |(_, e)| Err(e))
    }

    /// Unpacks layer `i` of `img` into a temp dir, then renames it to `dest` (as the
    /// store's owner: see [`ImageStore::as_owner`]).
    fn unpack_snapshot(&self, img: &LocalImage, i: usize, chain: &Digest, dest: &Path) -> Result<(), ImageError> {
        let layer = &img.manifest.layers[i];
        let tmp = self.snapshot_tmp(chain);
        let _ = remove_tree(&tmp);
        fs::create_dir(&tmp).map_err(io_err("create snapshot directory", &tmp))?;
        let opts = self.apply_options(WhiteoutMode::Overlay);
        let r = self
            .blobs
            .open(&layer.digest)
            .map_err(ImageError::from)
            .and_then(|f| {
                let n = img.manifest.layers.len();
                let bar = crate::progress::layer("unpack", i + 1, n, &layer.digest, layer.size);
                let mut f = crate::progress::Counting::new(f, bar);
                let r = apply_layer_verified(&mut f, &tmp, &opts, &img.config.rootfs.diff_ids[i]);
                f.finish(r.is_ok());
                r.map_err(|source| ImageError::Apply { layer: layer.digest.clone(), source })
            })
            .and_then(|_| fs::rename(&tmp, dest).map_err(io_err("rename snapshot into place", dest)));
        if r.is_err() {
            let _ = remove_tree(&tmp);
        }
        r
    }
}

/// Unpacks a pulled image's layers into their snapshots while they download (root's
/// store: a rootless store unpacks in a forked child, which cannot run beside the
/// download threads). The store lock is held by the pull. A layer that fails here
/// is unpacked again from the store by [`ImageStore::ensure_snapshots`], which
/// reports the error.
pub(super) struct UnpackWhilePulling<'s> {
    store: &'s ImageStore,
    opts: crate::apply::ApplyOptions,
    /// Snapshots made, removed again if the pull fails.
    made: std::sync::Mutex<Vec<PathBuf>>,
    /// The image's chain ids, computed once (one config per pull).
    chain: std::sync::OnceLock<Vec<Digest>>,
}

impl<'s> UnpackWhilePulling<'s> {
    pub(super) fn new(store: &'s ImageStore) -> Self {
        UnpackWhilePulling {
            store,
            opts: store.apply_options(WhiteoutMode::Overlay),
            made: Default::default(),
            chain: Default::default(),
        }
    }

    /// Removes the snapshots made (the pull failed).
    pub(super) fn discard(&self) {
        for p in self.made.lock().map(|m| m.clone()).unwrap_or_default() {
            let _ = remove_tree(&p);
        }
    }

    /// The chain id of layer `i` of `config`.
    fn chain_id(&self, config: &ImageConfiguration, i: usize) -> Option<&Digest> {
        self.chain.get_or_init(|| super::chain_ids(&config.rootfs.diff_ids)).get(i)
    }

    /// How many layers were unpacked while downloading.
    pub(super) fn count(&self) -> usize {
        self.made.lock().map_or(0, |m| m.len())
    }
}

impl LayerUnpacker for UnpackWhilePulling<'_> {
    fn unpack(&self, i: usize, config: &ImageConfiguration, layer: &mut (dyn std::io::Read + Send)) -> bool {
        let (Some(c), Some(diff_id)) = (self.chain_id(config, i), config.rootfs.diff_ids.get(i)) else { return false };
        if self.store.snapshot_path(c).is_dir() {
            return false;
        }
        let tmp = self.store.snapshot_tmp(c);
        let _ = remove_tree(&tmp);
        if fs::create_dir(&tmp).is_err() {
            return false;
        }
        match apply_layer_verified(layer, &tmp, &self.opts, diff_id) {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(layer = i, error = %e, "unpack while downloading failed; the layer is unpacked from the store later");
                let _ = remove_tree(&tmp);
                false
            }
        }
    }

    fn commit(&self, i: usize, config: &ImageConfiguration, keep: bool) {
        let Some(c) = self.chain_id(config, i) else { return };
        let (tmp, dest) = (self.store.snapshot_tmp(c), self.store.snapshot_path(c));
        if keep && !dest.exists() && fs::rename(&tmp, &dest).is_ok() {
            if let Ok(mut m) = self.made.lock() {
                m.push(dest);
            }
        } else {
            let _ = remove_tree(&tmp);
        }
    }
}
