//! Root filesystems from images: a container's overlay mount over the layer
//! snapshots (nothing copied, whatever the number of containers), a
//! flattened copy where overlayfs is unavailable, and `unpack` (a flattened
//! tree, like `umoci raw unpack`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::apply::{apply_layer_verified, WhiteoutMode};
use crate::images::{io_error, remove_tree, unmount, ImageError, ImageStore, LocalImage, Lock, Progress};

/// How a container's rootfs was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootfsKind {
    /// overlayfs: lowerdir = the layer snapshots, upper/work per container.
    Overlay,
    /// A flattened copy of every layer (overlayfs unavailable).
    Copy,
    /// overlayfs, mounted by the runtime inside the container's own user and mount
    /// namespaces (a rootless store: see [`ImageStore::deferred_overlay`]).
    InContainer,
}

/// A container's directory in the store: its bundle and root filesystem.
/// Held (locked) while the value lives; [`ContainerRootfs::remove`] unmounts
/// and deletes it.
pub struct ContainerRootfs {
    /// `<store>/containers/<id>`: the bundle directory.
    pub dir: PathBuf,
    /// `<dir>/rootfs`.
    pub rootfs: PathBuf,
    /// Overlay or copy.
    pub kind: RootfsKind,
    _lock: Lock,
    /// The store's owner, when rootless (removal runs in their namespace).
    rootless: Option<crate::rootless::Rootless>,
}

impl ContainerRootfs {
    /// Unmounts the rootfs (keeping the directory and its upper dir).
    pub fn unmount(&self) -> io::Result<()> {
        // A rootless store never mounts on the host.
        if self.kind == RootfsKind::Overlay && self.rootless.is_none() {
            unmount(&self.rootfs)?;
        }
        Ok(())
    }

    /// The container's lock (held while the value lives).
    pub fn lock(&self) -> &Lock {
        &self._lock
    }

    /// Unmounts and removes everything of this container.
    pub fn remove(self) -> io::Result<()> {
        self.unmount()?;
        match &self.rootless {
            Some(r) if r.has_ranges() => r
                .run_mapped(&format!("remove {}", self.dir.display()), || {
                    remove_tree(&self.dir).map_err(|e| e.to_string())
                })
                .or_else(|e| remove_tree(&self.dir).map_err(|_| io::Error::other(e))),
            _ => remove_tree(&self.dir),
        }
    }
}

/// Checks a container id: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128.
pub fn check_id(id: &str) -> Result<(), ImageError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ImageError::Other(format!("invalid container name {id:?} (letters, digits, _ . -; at most 128)")))
    }
}

impl ImageStore {
    /// Creates `containers/<id>` with a root filesystem for `img`: an overlay
    /// mount of the layer snapshots (unpacked once each, then shared), or a
    /// flattened copy when overlayfs cannot be mounted (or `copy` is set).
    pub fn create_container(
        &self,
        id: &str,
        img: &LocalImage,
        copy: bool,
        progress: Progress<'_>,
    ) -> Result<ContainerRootfs, ImageError> {
        check_id(id)?;
        let dir = self.root().join("containers").join(id);
        let lock = {
            let _l = self.lock()?;
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Its lock is held while it runs (by its monitor or its foreground run).
                    let running = !matches!(Lock::try_acquire(&dir.join("lock")), Ok(Some(_)));
                    return Err(ImageError::NameInUse { name: id.to_owned(), running });
                }
                Err(e) => return Err(io_error("create directory", &dir, e)),
            }
            let lock = Lock::acquire(&dir.join("lock"))?;
            // Written before the snapshots are made: prune keeps what a container
            // names here (a CRI RemoveImage asks stopped ones too), so it must
            // survive a power loss.
            let chains: String = img.chain_ids().iter().map(|c| format!("{}\n", c.hex())).collect();
            capsa_fsutil::write_atomic(
                &dir.join("layers"),
                chains.as_bytes(),
                crate::images::META_MODE,
                capsa_fsutil::Durability::Durable,
            )
            .map_err(crate::images::fs_error)?;
            lock
        };
        let mut c = ContainerRootfs {
            rootfs: dir.join("rootfs"),
            dir,
            kind: RootfsKind::Overlay,
            _lock: lock,
            rootless: self.rootless().cloned(),
        };
        match self.fill_container(&mut c, img, copy, progress) {
            Ok(()) => Ok(c),
            Err(e) => {
                let _ = c.remove();
                Err(e)
            }
        }
    }

    fn fill_container(
        &self,
        c: &mut ContainerRootfs,
        img: &LocalImage,
        copy: bool,
        progress: Progress<'_>,
    ) -> Result<(), ImageError> {
        fs::create_dir(&c.rootfs).map_err(|e| io_error("create directory", &c.rootfs, e))?;
        if let Some(r) = self.rootless() {
            if let Some(note) = r.note() {
                progress(&format!("note: {note}"));
            }
            if !copy && crate::rootless::userns_overlay_supported() {
                let lowers = self.ensure_snapshots(img, progress)?;
                overlay_dirs(&c.dir, &lowers).map_err(|e| io_error("prepare the overlay", &c.dir, e))?;
                c.kind = RootfsKind::InContainer;
                return Ok(());
            }
            if !copy {
                progress("overlayfs cannot be mounted in a user namespace before Linux 5.11: copying the layers");
            }
        }
        if !copy {
            let lowers = self.ensure_snapshots(img, progress)?;
            match mount_overlay(&c.dir, &lowers) {
                Ok(()) => return Ok(()),
                Err(e) => progress(&format!("overlayfs unavailable ({e}): copying the layers instead")),
            }
        }
        c.kind = RootfsKind::Copy;
        unpack_layers(self, img, &c.rootfs, progress)
    }

    /// Unpacks `img` flattened into `dest` (created; must be absent or empty).
    pub fn unpack(&self, img: &LocalImage, dest: &Path, progress: Progress<'_>) -> Result<(), ImageError> {
        match fs::read_dir(dest) {
            Ok(mut rd) => {
                if rd.next().is_some() {
                    return Err(ImageError::Other(format!("{}: exists and is not empty", dest.display())));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dest).map_err(|e| io_error("create directory", dest, e))?
            }
            Err(e) => return Err(io_error("read directory", dest, e)),
        }
        unpack_layers(self, img, dest, progress)
    }

    /// For a container of a rootless store: the overlay mount its runtime makes
    /// over "/" inside the container's namespaces, as an OCI mount (`userxattr`:
    /// the snapshots' opaque markers are `user.overlay.*`). `None` when the
    /// container's rootfs is not of that kind.
    pub fn deferred_overlay(&self, id: &str) -> Result<Option<serde_json::Value>, ImageError> {
        let dir = self.root().join("containers").join(id);
        if self.rootless().is_none() || !dir.join("work").is_dir() {
            return Ok(None);
        }
        let p = dir.join("layers");
        let chains = fs::read_to_string(&p).map_err(|e| io_error("read", &p, e))?;
        let lowers: Vec<PathBuf> = chains
            .lines()
            .filter(|l| !l.is_empty())
            .map(|h| crate::digest::Digest::from_hex(h).map(|d| self.snapshot_path(&d)))
            .collect::<Result<_, _>>()
            .map_err(|e| ImageError::Other(format!("{}: {e}", p.display())))?;
        let data = overlay_data(&dir, &lowers).map_err(|e| io_error("prepare the overlay", &dir, e))?;
        let mut options: Vec<String> = data.split(',').map(str::to_owned).collect();
        options.push("userxattr".into());
        Ok(Some(serde_json::json!({"destination": "/", "type": "overlay", "source": "overlay", "options": options})))
    }

    /// The layer directories of a container, top first (for reading image files
    /// before its rootfs is mounted; see [`ImageStore::deferred_overlay`]).
    pub fn container_layers(&self, id: &str) -> Vec<PathBuf> {
        let p = self.root().join("containers").join(id).join("layers");
        let chains = fs::read_to_string(p).unwrap_or_default();
        let mut v: Vec<PathBuf> = chains
            .lines()
            .filter_map(|h| crate::digest::Digest::from_hex(h).ok())
            .map(|d| self.snapshot_path(&d))
            .collect();
        v.reverse();
        v
    }
}

/// Applies every layer of `img` onto `dest`, whiteouts applied (flattened).
fn unpack_layers(store: &ImageStore, img: &LocalImage, dest: &Path, progress: Progress<'_>) -> Result<(), ImageError> {
    let opts = store.apply_options(WhiteoutMode::Apply);
    let n = img.manifest.layers.len();
    for (i, layer) in img.manifest.layers.iter().enumerate() {
        progress(&format!("unpacking layer {}/{n} {} ({} bytes)", i + 1, layer.digest, layer.size));
    }
    store.as_owner("unpack the image's layers", || {
        for (i, (layer, diff_id)) in img.manifest.layers.iter().zip(&img.config.rootfs.diff_ids).enumerate() {
            let bar = crate::progress::layer("unpack", i + 1, n, &layer.digest, layer.size);
            let mut f = crate::progress::Counting::new(store.blobs().open(&layer.digest)?, bar);
            let r = apply_layer_verified(&mut f, dest, &opts, diff_id);
            f.finish(r.is_ok());
            r.map_err(|source| ImageError::Apply { layer: layer.digest.clone(), source })?;
        }
        Ok(())
    })
}

/// Makes `<dir>/upper` and `<dir>/work` (and `<dir>/empty` for an image without
/// layers: overlayfs needs a lower one).
fn overlay_dirs(dir: &Path, lowers: &[PathBuf]) -> io::Result<()> {
    fs::create_dir(dir.join("upper"))?;
    fs::create_dir(dir.join("work"))?;
    if lowers.is_empty() {
        fs::create_dir(dir.join("empty"))?;
    }
    Ok(())
}

/// The overlay mount data of container directory `dir`: lowerdir = `lowers`
/// (base first, so reversed: overlayfs lists the top layer first), `<dir>/upper`,
/// `<dir>/work`. Refuses paths that cannot be options and more than a page.
fn overlay_data(dir: &Path, lowers: &[PathBuf]) -> io::Result<String> {
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    let lower: Vec<String> = if lowers.is_empty() {
        vec![dir.join("empty").display().to_string()]
    } else {
        lowers.iter().rev().map(|p| p.display().to_string()).collect()
    };
    for p in lower.iter().chain([upper.display().to_string(), work.display().to_string()].iter()) {
        if p.contains([',', ':', '\\']) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("path {p:?} cannot be an overlay option")));
        }
    }
    let data = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
    // The kernel takes at most a page of mount data.
    if data.len() >= 4096 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many layers for one overlay mount"));
    }
    Ok(data)
}

/// Mounts `<dir>/rootfs` as overlay (see [`overlay_data`]).
fn mount_overlay(dir: &Path, lowers: &[PathBuf]) -> io::Result<()> {
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    overlay_dirs(dir, lowers)?;
    let data = match overlay_data(dir, lowers) {
        Ok(d) => d,
        Err(e) => {
            let _ = (fs::remove_dir(&upper), fs::remove_dir(&work), fs::remove_dir(dir.join("empty")));
            return Err(e);
        }
    };
    let nlower = lowers.len().max(1);
    let target = dir.join("rootfs");
    let c = |s: &str| std::ffi::CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let (src, tgt, fstype, data) = (c("overlay")?, c(&target.display().to_string())?, c("overlay")?, c(&data)?);
    // SAFETY: NUL-terminated strings that outlive the call.
    let r = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fstype.as_ptr(), 0, data.as_ptr().cast()) };
    if r != 0 {
        let e = io::Error::last_os_error();
        let _ = (fs::remove_dir(&upper), fs::remove_dir(&work), fs::remove_dir(dir.join("empty")));
        return Err(e);
    }
    capsa_explain::step(capsa_explain::Kind::Mount, || {
        capsa_explain::Step::new(
            format!(
                "the container's root: an overlay of the image's {} read-only layer(s) under a writable upper dir \
                 (writes land in {}, the layers stay untouched)",
                nlower,
                upper.display()
            ),
            format!(
                "mount(\"overlay\", {:?}, \"overlay\", 0, {:?})",
                target.display().to_string(),
                data.to_string_lossy()
            ),
        )
        .field("source", "overlay")
        .field("target", target.display().to_string())
        .field("fstype", "overlay")
        .field("data", data.to_string_lossy().into_owned())
    });
    Ok(())
}

/// Whether `p` is an overlay mount point (from its filesystem magic).
pub fn is_overlay_mount(p: &Path) -> bool {
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: a zeroed statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == OVERLAYFS_SUPER_MAGIC }
}
