//! The local image store: the content store plus names, snapshots and
//! container root filesystems.
//!
//! Layout under the store root (`--store`, default `/var/lib/capsa`):
//! - `blobs/sha256/<hex>`: the content store ([`Store`]);
//! - `images.json`: `{"images":[{name, digest, config, ...}]}`, names → manifest
//!   digests, rewritten atomically (temp file, fsync, rename, fsync dir);
//! - `snapshots/<chainid-hex>/`: each layer unpacked once, in overlayfs form
//!   (whiteouts as 0:0 character devices, opaque dirs as
//!   `trusted.overlay.opaque=y`), keyed by the layer's ChainID;
//! - `containers/<id>/`: a container's bundle (`config.json`, `rootfs/` the
//!   overlay mount point, `upper/`, `work/`, `layers` = the chain ids it uses,
//!   `lock` held while it runs);
//! - `lock`: serializes changes to names and snapshots (flock).
//!
//! Nobody but root may look in: the root, `blobs/`, `snapshots/`, `containers/`
//! and `pods/` are 0700 (as containerd and podman keep theirs), since snapshots
//! hold the images' setuid files and device nodes and bundles hold secrets;
//! opening a store made by an older version (0755) narrows them.
//!
//! A snapshot is unpacked into `snapshots/.tmp-*` and renamed into place when
//! complete and verified (diff_id), so a crash or a bad layer never leaves a
//! half snapshot under a chain id; `prune` removes leftovers.
//!
//! The code: `error` (the errors), `lock` (flock), `names` (`images.json`: the
//! named images), `import` (import and pull), `snapshots` (unpacking layers),
//! `prune`, and `fsops` (removing trees, unmounting).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::apply::{ApplyOptions, WhiteoutMode};
use crate::digest::Digest;
use crate::oci::{ImageConfiguration, ImageManifest};
use crate::store::Store;

pub(crate) mod error;
mod fsops;
mod import;
mod lock;
mod names;
mod prune;
mod snapshots;

use error::io_err;
pub use error::ImageError;
pub(crate) use error::{fs_error, io_error};
pub use fsops::{remove_tree, unmount};
pub use lock::Lock;
pub use names::ImageRecord;

/// Default store root (root's; an unprivileged user's is [`default_root`]).
pub const DEFAULT_ROOT: &str = "/var/lib/capsa";

/// The default store root for the caller: [`DEFAULT_ROOT`] for root, else
/// `$XDG_DATA_HOME/capsa` (see [`crate::rootless`]).
pub fn default_root() -> PathBuf {
    match crate::rootless::Rootless::detect() {
        None => PathBuf::from(DEFAULT_ROOT),
        Some(_) => crate::rootless::default_store_root(),
    }
}
/// Prefix of temporary names (snapshots in progress).
const TMP_PREFIX: &str = ".tmp-";

/// Mode of the store's metadata files (`images.json`, a container's `layers`).
pub const META_MODE: u32 = 0o600;

/// An image found in the local store, with its manifest and config parsed.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// Its record.
    pub record: ImageRecord,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config.
    pub config: ImageConfiguration,
}

impl LocalImage {
    /// The chain ids of its layers, base first.
    pub fn chain_ids(&self) -> Vec<Digest> {
        chain_ids(&self.config.rootfs.diff_ids)
    }
}

/// ChainIDs per the OCI image spec: `ChainID(L0) = DiffID(L0)`,
/// `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::sha256_of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// What happened on an import, for progress output.
pub type Progress<'a> = &'a mut dyn FnMut(&str);

/// The local image store.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    blobs: Store,
    rootless: Option<crate::rootless::Rootless>,
}

impl ImageStore {
    /// Opens (creating) the store at `root`.
    /// An unprivileged caller's store must be their own (see [`crate::rootless`]).
    pub fn open(root: impl AsRef<Path>) -> Result<ImageStore, ImageError> {
        let root = root.as_ref().to_owned();
        let rootless = crate::rootless::Rootless::detect();
        if rootless.is_some() {
            crate::rootless::check_owner(&root)?;
            if let Some(parent) = root.parent() {
                fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
            }
        }
        // The root and blobs/ (made private by the content store).
        let blobs = Store::new(&root)?;
        // Snapshots hold the images' setuid files and device nodes; containers their
        // bundles (config.json holds the process environment) and what the containers
        // wrote; pods (made on first use) their records.
        for d in ["snapshots", "containers"] {
            crate::store::private_dir(&root.join(d)).map_err(fs_error)?;
        }
        let pods = root.join("pods");
        if pods.is_dir() {
            crate::store::private_dir(&pods).map_err(fs_error)?;
        }
        Ok(ImageStore { root, blobs, rootless })
    }

    /// The unprivileged user this store belongs to (`None`: root's store).
    pub fn rootless(&self) -> Option<&crate::rootless::Rootless> {
        self.rootless.as_ref()
    }

    /// Removes a tree of the store ([`remove_tree`]); in a rootless store, as root
    /// of the user's namespace (its files belong to the subordinate ids).
    pub fn remove_tree(&self, p: &Path) -> io::Result<()> {
        match &self.rootless {
            Some(r) if r.has_ranges() && p.exists() => {
                let what = format!("remove {}", p.display());
                // Mapping can fail (newuidmap missing): what is the user's own still goes.
                // The child's error comes back as text (a process boundary); the
                // mapped attempt's error is the one kept when both fail.
                r.run_mapped(&what, || remove_tree(p).map_err(|e| e.to_string()))
                    .or_else(|e| remove_tree(p).map_err(|_| io::Error::other(e)))
            }
            _ => remove_tree(p),
        }
    }

    /// The options for applying a layer of this store: rootless stores mark opaque
    /// directories in the `userxattr` form and skip device nodes (with a note).
    pub(crate) fn apply_options(&self, whiteouts: WhiteoutMode) -> ApplyOptions {
        let Some(r) = &self.rootless else { return ApplyOptions { whiteouts, ..ApplyOptions::default() } };
        // With a subordinate range the layer is applied as root of the user's namespace
        // ([`ImageStore::as_owner`]): owners and file capabilities can be kept there.
        let mapped = r.has_ranges();
        ApplyOptions {
            whiteouts,
            overlay_userxattr: true,
            skip_unpermitted_devices: true,
            preserve_owners: mapped,
            security_xattrs: mapped,
            ..ApplyOptions::default()
        }
    }

    /// Runs `f` where this store's files may be written: in-process for root's
    /// store, else as root of the user's namespace ([`crate::rootless::Rootless::run_mapped`]).
    pub(crate) fn as_owner(&self, what: &str, f: impl FnOnce() -> Result<(), ImageError>) -> Result<(), ImageError> {
        match &self.rootless {
            // In a forked child, whose error comes back as text.
            Some(r) if r.has_ranges() => r.run_mapped(what, || f().map_err(|e| e.to_string())),
            // In this process: the error keeps its variant (NotFound, Io...).
            _ => f(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The content store.
    pub fn blobs(&self) -> &Store {
        &self.blobs
    }

    /// The store-wide lock (names and snapshots).
    pub fn lock(&self) -> Result<Lock, ImageError> {
        Lock::acquire(&self.root.join("lock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_rule() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::sha256_of(format!("{a} {b}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }
}
