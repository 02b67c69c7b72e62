//! Root filesystems from images: a container's overlay mount over the layer
//! snapshots (nothing copied, whatever the number of containers), a
//! flattened copy where overlayfs is unavailable, and `unpack` (a flattened
//! tree, like `umoci raw unpack`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::apply::{apply_layer_verified, ApplyOptions, WhiteoutMode};
use crate::images::{io_error, remove_tree, unmount, ImageError, ImageStore, LocalImage, Lock, Progress};

/// How a container's rootfs was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootfsKind {
    /// overlayfs: lowerdir = the layer snapshots, upper/work per container.
    Overlay,
    /// A flattened copy of every layer (overlayfs unavailable).
    Copy,
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
}

impl ContainerRootfs {
    /// Unmounts the rootfs (keeping the directory and its upper dir).
    pub fn unmount(&self) -> io::Result<()> {
        if self.kind == RootfsKind::Overlay {
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
        remove_tree(&self.dir)
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
        let mut c = ContainerRootfs { rootfs: dir.join("rootfs"), dir, kind: RootfsKind::Overlay, _lock: lock };
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
}

/// Applies every layer of `img` onto `dest`, whiteouts applied (flattened).
fn unpack_layers(store: &ImageStore, img: &LocalImage, dest: &Path, progress: Progress<'_>) -> Result<(), ImageError> {
    let opts = ApplyOptions { whiteouts: WhiteoutMode::Apply, ..ApplyOptions::default() };
    let n = img.manifest.layers.len();
    for (i, (layer, diff_id)) in img.manifest.layers.iter().zip(&img.config.rootfs.diff_ids).enumerate() {
        progress(&format!("unpacking layer {}/{n} {} ({} bytes)", i + 1, layer.digest, layer.size));
        let bar = crate::progress::layer("unpack", i + 1, n, &layer.digest, layer.size);
        let mut f = crate::progress::Counting::new(store.blobs().open(&layer.digest)?, bar);
        let r = apply_layer_verified(&mut f, dest, &opts, diff_id);
        f.finish(r.is_ok());
        r.map_err(|source| ImageError::Apply { layer: layer.digest.clone(), source })?;
    }
    Ok(())
}

/// Mounts `<dir>/rootfs` as overlay: lowerdir = `lowers` (base first, so
/// reversed: overlayfs lists the top layer first), `<dir>/upper`, `<dir>/work`.
fn mount_overlay(dir: &Path, lowers: &[PathBuf]) -> io::Result<()> {
    let upper = dir.join("upper");
    let work = dir.join("work");
    fs::create_dir(&upper)?;
    fs::create_dir(&work)?;
    let empty;
    let lower: Vec<String> = if lowers.is_empty() {
        // overlayfs needs a lower layer: an empty one for an image without layers.
        empty = dir.join("empty");
        fs::create_dir(&empty)?;
        vec![empty.display().to_string()]
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
    let target = dir.join("rootfs");
    let c = |s: &str| std::ffi::CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let (src, tgt, fstype, data) = (c("overlay")?, c(&target.display().to_string())?, c("overlay")?, c(&data)?);
    // SAFETY: NUL-terminated strings that outlive the call.
    let r = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fstype.as_ptr(), 0, data.as_ptr().cast()) };
    if r != 0 {
        let e = io::Error::last_os_error();
        let _ = fs::remove_dir(&upper);
        let _ = fs::remove_dir(&work);
        return Err(e);
    }
    capsa_explain::step(capsa_explain::Kind::Mount, || {
        capsa_explain::Step::new(
            format!(
                "the container's root: an overlay of the image's {} read-only layer(s) under a writable upper dir \
                 (writes land in {}, the layers stay untouched)",
                lower.len(),
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
