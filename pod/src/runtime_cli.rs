//! The tools a managed container is driven with: the `capsa` runtime CLI (the
//! same runc-compatible verbs containerd uses) and the `capsa-shim` monitor.
//!
//! Creating, killing and deleting go through the CLI, as for every other client
//! (containerd, podman, the shim): one code path, one state-lock discipline.
//! Reads (stats, a foreground container's state) and `start` of a pod's created
//! containers call the runtime library directly: the same functions the CLI
//! runs, without a process spawn on the pod's start path.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{PodError, Result};

/// Where the binaries and state live.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The `capsa` runtime binary.
    pub runtime: PathBuf,
    /// The `capsa-shim` binary.
    pub shim: PathBuf,
    /// The runtime's state root (`capsa --root`).
    pub root: PathBuf,
}

impl Tools {
    /// `capsa` and `capsa-shim` next to `exe` (the running binary), runtime root `root`.
    pub fn beside(exe: &Path, root: impl Into<PathBuf>) -> Tools {
        Tools { runtime: exe.with_file_name("capsa"), shim: exe.with_file_name("capsa-shim"), root: root.into() }
    }

    /// A `capsa --root ROOT` command.
    pub fn runtime_cmd(&self) -> Command {
        let mut c = Command::new(&self.runtime);
        c.arg("--root").arg(&self.root);
        c
    }

    /// Runs `capsa --root ROOT ARGS...`; its stderr becomes the error text.
    pub fn runtime(&self, args: &[&str]) -> Result<String> {
        let out = self.runtime_cmd().args(args).stdin(Stdio::null()).output().map_err(|e| PodError::Command {
            cmd: format!("{} {}", self.runtime.display(), args.join(" ")),
            msg: e.to_string(),
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let msg = String::from_utf8_lossy(&out.stderr);
            Err(PodError::Command {
                cmd: format!("capsa {}", args.join(" ")),
                msg: msg.trim().trim_start_matches("capsa: ").to_owned(),
            })
        }
    }

    /// Whether the runtime knows container `id`.
    pub fn exists(&self, id: &str) -> bool {
        capsa_runtime::container::Store::new(&self.root).load(id).is_ok()
    }

    /// `kill --all ID KILL` then `delete --force ID`, for a container whose monitor
    /// is gone; errors are logged (the container may already be gone).
    pub fn force_remove(&self, id: &str) {
        if !self.exists(id) {
            return;
        }
        if let Err(e) = self.runtime(&["kill", "--all", id, "KILL"]) {
            tracing::debug!("kill {id}: {e}");
        }
        if let Err(e) = self.runtime(&["delete", "--force", id]) {
            tracing::warn!("delete {id}: {e}");
        }
    }
}
