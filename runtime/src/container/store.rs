//! The state store: `<root>/<id>/` per container, holding `state.json` and
//! `exec.fifo`, with an flock per container.
//!
//! Modes are runc's: the root 0700, a container's directory 0711, `state.json` 0600
//! (it holds the process environment, where secrets live), replaced atomically by
//! [`capsa_fsutil::write_atomic`] (not fsync'd, as runc and crun: what it describes
//! does not survive a reboot).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::State;

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.', not starting with '.'")]
    BadId(String),
    #[error("{step} {path}: {err}")]
    Io { step: &'static str, path: PathBuf, err: std::io::Error },
    #[error("parse {path}: {err}")]
    Parse { path: PathBuf, err: serde_json::Error },
}

/// Mode of `state.json`: only root may read it (runc's too).
pub const STATE_MODE: u32 = 0o600;

/// Check a container id (the same rule as runc: no path separators, no `..`).
pub fn validate_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadId(id.into()))
    }
}

/// The state root (`--root`, default `/run/capsa`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// An flock held on a container directory; released on drop.
pub struct Lock(#[allow(dead_code)] File);

impl Store {
    /// A store at `root` (created on first use, mode 0700).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<id>`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// `<root>/<id>/exec.fifo`.
    pub fn fifo(&self, id: &str) -> PathBuf {
        self.dir(id).join("exec.fifo")
    }

    /// Make `<root>/<id>` exclusively: fails with `Exists` if the id is taken.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        validate_id(id)?;
        fn io<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
            move |err| StoreError::Io { step, path: path.into(), err }
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(io("create state root", &self.root))?;
        // Rootless, the state root must be the caller's own: one another user made
        // (e.g. a /tmp/capsa-<uid> planted in advance) could read or swap our state.
        if crate::rootless::enabled() {
            use std::os::unix::fs::MetadataExt;
            let md = std::fs::symlink_metadata(&self.root).map_err(io("stat state root", &self.root))?;
            // SAFETY: geteuid cannot fail.
            let me = unsafe { libc::geteuid() };
            if md.uid() != me || md.mode() & 0o022 != 0 || !md.is_dir() {
                return Err(StoreError::Io {
                    step: "use state root (rootless: it must be a directory of our own, not writable by others)",
                    path: self.root.clone(),
                    err: std::io::Error::from_raw_os_error(libc::EPERM),
                });
            }
        }
        let dir = self.dir(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(StoreError::Exists(id.into())),
            Err(e) => Err(StoreError::Io { step: "create state dir", path: dir, err: e }),
        }
    }

    /// Take the per-container lock (blocking). Errors if the container does not exist.
    pub fn lock(&self, id: &str) -> Result<Lock, StoreError> {
        validate_id(id)?;
        let dir = self.dir(id);
        let f = File::open(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(id.into()),
            _ => StoreError::Io { step: "open state dir", path: dir.clone(), err: e },
        })?;
        // SAFETY: flock on an fd we own; no memory is involved.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(StoreError::Io { step: "flock", path: dir, err: std::io::Error::last_os_error() });
        }
        Ok(Lock(f))
    }

    /// Read `state.json`. A directory without one is a create that never got far:
    /// reported as `NotFound` (and `delete --force` removes the directory).
    pub fn load(&self, id: &str) -> Result<State, StoreError> {
        validate_id(id)?;
        let path = self.dir(id).join("state.json");
        let data = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(id.into()),
            _ => StoreError::Io { step: "read", path: path.clone(), err: e },
        })?;
        serde_json::from_slice(&data).map_err(|err| StoreError::Parse { path, err })
    }

    /// Write `state.json` (mode 0600) atomically.
    pub fn save(&self, st: &State) -> Result<(), StoreError> {
        let path = self.dir(&st.id).join("state.json");
        let data = serde_json::to_vec(st).expect("state serializes");
        // Volatile: the pids, cgroups and namespaces it names do not survive a reboot.
        capsa_fsutil::write_atomic(&path, &data, STATE_MODE, capsa_fsutil::Durability::Volatile)
            .map_err(|e| StoreError::Io { step: e.step, path: e.path, err: e.source })
    }

    /// Remove `<root>/<id>` and everything in it.
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        validate_id(id)?;
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io { step: "remove state dir", path: dir, err: e }),
        }
    }

    /// Ids of every container directory, sorted.
    pub fn list(&self) -> Vec<String> {
        let mut ids: Vec<String> = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| validate_id(n).is_ok())
                .collect(),
            Err(_) => Vec::new(),
        };
        ids.sort();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_json_is_private_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().join("root"));
        let dir = store.create_dir("c1").unwrap();
        let st: State = serde_json::from_value(serde_json::json!({
            "oci_version": "1.2.0", "id": "c1", "phase": "creating", "pid": 0, "pid_start": 0,
            "bundle": "/b", "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00Z",
        }))
        .unwrap();
        // An older capsa left a world-readable state.json: the next save replaces it.
        std::fs::write(dir.join("state.json"), "{}").unwrap();
        std::fs::set_permissions(dir.join("state.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
        store.save(&st).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir.join("state.json")), 0o600);
        assert_eq!(mode(store.root()), 0o700);
        assert_eq!(mode(&dir), 0o711);
        assert_eq!(store.load("c1").unwrap().id, "c1");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["state.json"], "no temp file may remain");
    }

    #[test]
    fn ids() {
        assert!(validate_id("abc-1_2+x.y").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b", ".hidden"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
