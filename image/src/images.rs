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

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::apply::{apply_layer_verified, ApplyError, ApplyOptions, WhiteoutMode};
use crate::digest::Digest;
use crate::layout::{self, LayoutError, ResolvedImage, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use crate::oci::{ImageConfiguration, ImageManifest, Platform};
use crate::reference::{self, ImageRef};
use crate::store::{Store, StoreError};

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

/// Errors of the local image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Content store error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Import error.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Reference error.
    #[error(transparent)]
    Reference(#[from] reference::ReferenceError),
    /// Registry error.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// A layer could not be unpacked.
    #[error("unpack layer {layer}: {source}")]
    Apply {
        /// The layer's blob digest.
        layer: Digest,
        /// Why.
        #[source]
        source: ApplyError,
    },
    /// No such image in the local store.
    #[error("image {0:?} not found in the local store (import or pull it first; see `capsa image ls`)")]
    NotFound(String),
    /// A container of that name exists (`running`: its lock is held).
    #[error(
        "container name {name:?} is in use by a {} container: `capsa rm {}{name}` removes it, or choose another --name",
        if *running { "running" } else { "stopped" },
        if *running { "-f " } else { "" }
    )]
    NameInUse {
        /// The name asked for.
        name: String,
        /// Whether that container runs.
        running: bool,
    },
    /// A short id matches several images.
    #[error("image id prefix {0:?} matches several images; give more digits")]
    AmbiguousId(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| ImageError::Io { op, path: path.to_owned(), source }
}

pub(crate) fn io_error(op: &'static str, path: &Path, source: io::Error) -> ImageError {
    ImageError::Io { op, path: path.to_owned(), source }
}

pub(crate) fn fs_error(e: capsa_fsutil::Error) -> ImageError {
    ImageError::Io { op: e.step, path: e.path, source: e.source }
}

/// Mode of the store's metadata files (`images.json`, a container's `layers`).
pub const META_MODE: u32 = 0o600;

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

/// An exclusive lock on a file (flock), released on drop.
pub struct Lock(#[allow(dead_code)] File);

impl Lock {
    /// Takes the lock, waiting for it.
    pub fn acquire(path: &Path) -> Result<Lock, ImageError> {
        let f = open_lock_file(path)?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err("lock", path)(io::Error::last_os_error()));
        }
        Ok(Lock(f))
    }

    /// Takes the lock if free; `None` when someone holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<Lock>, ImageError> {
        let f = open_lock_file(path)?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(io_err("lock", path)(e));
        }
        Ok(Some(Lock(f)))
    }

    /// The lock's fd (close-on-exec). A flock belongs to the open file, so a
    /// child given this fd (made inheritable in the child only, between fork and
    /// exec) holds the lock until every holder has closed it: a container's
    /// monitor keeps it for as long as the container lives.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

fn open_lock_file(path: &Path) -> Result<File, ImageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err("open lock file", path))
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
                r.run_mapped(&what, || remove_tree(p).map_err(|e| e.to_string()))
                    .or_else(|e| remove_tree(p).map_err(|_| io::Error::other(e.to_string())))
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
            Some(r) => r.run_mapped(what, || f().map_err(|e| e.to_string())),
            None => f(),
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
    fn tag_locked(&self, name: &str, img: &ResolvedImage, source: &str) -> Result<ImageRecord, ImageError> {
        let mut list = self.list()?;
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
        // removed again, so a failed import leaves the store as it was.
        let lock = self.lock()?;
        let before: BTreeSet<Digest> = self.blobs.list()?.into_iter().collect();
        match self.import_locked(r, platform, progress) {
            // Named before the lock is released: a prune in between would
            // take the blobs for garbage.
            Ok((img, default_name)) => {
                let rec = self.tag_locked(name.unwrap_or(&default_name), &img, &r.to_string());
                drop(lock);
                rec
            }
            Err(e) => {
                self.rollback(&before);
                Err(e)
            }
        }
    }

    /// Removes the blobs not in `before` (a failed import's).
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
        match crate::registry::pull(&self.blobs, name, opts, progress) {
            Ok(img) => {
                progress(&format!("stored {} ({} layers)", img.manifest_descriptor.digest, img.manifest.layers.len()));
                let rec = self.tag_locked(local_name.unwrap_or(&name.to_string()), &img, &format!("docker://{name}"));
                drop(lock);
                rec
            }
            Err(e) => {
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
        let (img, default_name) = match r {
            ImageRef::OciDir { path, tag } => {
                progress(&format!("importing OCI layout {}", path.display()));
                let l = layout::OciLayout::open(path)?;
                let img = l.import(&self.blobs, tag.as_deref(), platform)?;
                (img, derived_name(path, tag.as_deref()))
            }
            ImageRef::OciArchive { path, tag } => {
                progress(&format!("importing OCI archive {}", path.display()));
                let a = crate::docker_archive::DockerArchive::open(path).map_err(|e| named(e, r))?;
                layout::check_oci_layout_file(&a)?;
                let img = layout::resolve(&a, tag.as_deref(), platform)?;
                layout::import_resolved(&a, &self.blobs, &img)?;
                (img, derived_name(path, tag.as_deref()))
            }
            ImageRef::DockerArchive { path, name: n } => {
                progress(&format!("importing docker archive {}", path.display()));
                let a = crate::docker_archive::DockerArchive::open(path).map_err(|e| named(e, r))?;
                let img = a.import(&self.blobs, n.as_deref(), platform)?;
                let dn = match n {
                    Some(n) => n.clone(),
                    None => docker_archive_name(&img).unwrap_or_else(|| derived_name(path, None)),
                };
                (img, dn)
            }
            ImageRef::Registry(_) => {
                return Err(ImageError::Other("registry references are pulled with crate::registry".into()))
            }
            ImageRef::Local(_) => unreachable!("handled by import"),
        };
        progress(&format!("stored {} ({} layers)", img.manifest_descriptor.digest, img.manifest.layers.len()));
        Ok((img, default_name))
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

    fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Where the snapshot of chain id `c` lives.
    pub fn snapshot_path(&self, c: &Digest) -> PathBuf {
        self.snapshots_dir().join(c.hex())
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
        let tmp = self.snapshots_dir().join(format!("{TMP_PREFIX}{}-{}", std::process::id(), chain.hex()));
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

    /// Removes unreferenced blobs and snapshots, leftovers of interrupted
    /// work, and containers that are not running. Returns (blobs, snapshots,
    /// containers) removed.
    pub fn prune(&self) -> Result<(usize, usize, usize), ImageError> {
        self.prune_with(true)
    }

    /// Removes unreferenced blobs and snapshots only: every container, running or not,
    /// keeps the snapshots it uses (a CRI `RemoveImage`: kubelet owns its containers'
    /// lifetime). Returns (blobs, snapshots) removed.
    pub fn prune_images(&self) -> Result<(usize, usize), ImageError> {
        self.prune_with(false).map(|(b, s, _)| (b, s))
    }

    fn prune_with(&self, remove_containers: bool) -> Result<(usize, usize, usize), ImageError> {
        let _l = self.lock()?;
        // Containers not running (their lock is free) are removed first, so
        // their snapshots are freed too.
        let cdir = self.root.join("containers");
        let mut used_chains: BTreeSet<Digest> = BTreeSet::new();
        let mut containers = 0;
        for e in fs::read_dir(&cdir).map_err(io_err("list", &cdir))? {
            let e = e.map_err(io_err("list", &cdir))?;
            let p = e.path();
            match Lock::try_acquire(&p.join("lock")) {
                Ok(Some(lock)) if remove_containers => {
                    let _ = unmount(&p.join("rootfs"));
                    self.remove_tree(&p).map_err(io_err("remove container", &p))?;
                    drop(lock);
                    containers += 1;
                }
                _ => {
                    if let Ok(s) = fs::read_to_string(p.join("layers")) {
                        used_chains.extend(s.lines().filter_map(|l| Digest::from_hex(l).ok()));
                    }
                }
            }
        }
        let mut used_blobs: BTreeSet<Digest> = BTreeSet::new();
        for r in self.list()? {
            used_blobs.insert(r.digest.clone());
            if let Ok((m, c)) = self.load(&r.digest) {
                used_blobs.insert(m.config.digest.clone());
                used_blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
                used_chains.extend(chain_ids(&c.rootfs.diff_ids));
            }
        }
        let mut blobs = 0;
        for d in self.blobs.list()? {
            if !used_blobs.contains(&d) && self.blobs.remove(&d)? {
                blobs += 1;
            }
        }
        let mut snaps = 0;
        let sdir = self.snapshots_dir();
        for e in fs::read_dir(&sdir).map_err(io_err("list", &sdir))? {
            let e = e.map_err(io_err("list", &sdir))?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            let keep = Digest::from_hex(&name).is_ok_and(|d| used_chains.contains(&d));
            if !keep {
                let p = e.path();
                self.remove_tree(&p).map_err(io_err("remove snapshot", &p))?;
                if !name.starts_with(TMP_PREFIX) {
                    snaps += 1;
                }
            }
        }
        Ok((blobs, snaps, containers))
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

/// Removes a directory tree (or file) without following symlinks;
/// missing is fine. Snapshots contain device nodes and odd modes: a root
/// process removes them all; a directory without write permission is
/// chmodded first.
pub fn remove_tree(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => return fs::remove_file(p),
        Ok(_) => {}
    }
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            // Make every directory writable, then retry.
            fn fix(p: &Path) {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(m) = fs::symlink_metadata(p) {
                    if m.is_dir() {
                        let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
                        if let Ok(rd) = fs::read_dir(p) {
                            for e in rd.flatten() {
                                fix(&e.path());
                            }
                        }
                    }
                }
            }
            fix(p);
            fs::remove_dir_all(p)
        }
    }
}

/// Detaches a mount (lazy); `Ok` if it was not mounted.
pub fn unmount(p: &Path) -> io::Result<()> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) } != 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
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

    #[test]
    fn names() {
        assert_eq!(derived_name(Path::new("/tmp/busybox"), Some("latest")), "busybox:latest");
        assert_eq!(derived_name(Path::new("/tmp/My Img.tar"), None), "my-img:latest");
        assert_eq!(derived_name(Path::new("/x/y"), Some("docker.io/library/busybox:1")), "docker.io/library/busybox:1");
    }

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
