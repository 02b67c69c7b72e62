//! A container's live state ([`State`], [`Info`]) worked out from its shim's records,
//! and the list of managed containers.

use capsa_image::images::ImageStore;
use capsa_shim::proto::{self, ShimStatus};
use serde::Serialize;
use serde_json::Value;

use super::meta::read_json;
use super::{container_dir, load_meta, Meta};
use crate::error::{PodError, Result, STATE_MODE};
use crate::runtime_cli::Tools;
use capsa_fsutil::{write_atomic, Durability};

/// A container's state as a user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Made but never started (or a foreground run that has not started).
    Created,
    Running,
    /// Between two runs of a restart policy.
    Restarting,
    Exited,
    /// The monitor died; the container was killed and deleted.
    Lost,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Restarting => "restarting",
            State::Exited => "exited",
            State::Lost => "lost",
        }
    }
}

/// A container's record and live state.
#[derive(Debug, Clone)]
pub struct Info {
    pub meta: Meta,
    pub state: State,
    /// The container's init pid while running.
    pub pid: Option<i32>,
    pub shim_pid: Option<i32>,
    /// The last `exit` record of the shim.
    pub exit: Option<Value>,
    pub restart_count: u64,
}

impl Info {
    /// The last exit code, if the container has exited.
    pub fn exit_code(&self) -> Option<i64> {
        self.exit.as_ref().and_then(|e| e["exit_code"].as_i64())
    }

    /// Whether a process of the container may be running.
    pub fn is_active(&self) -> bool {
        matches!(self.state, State::Running | State::Restarting)
    }
}

/// Loads a container and works out its state. A dead shim is reconciled here:
/// the container is killed and deleted in the runtime and marked `lost`, so it
/// is never left running untracked.
pub fn inspect_state(store: &ImageStore, tools: &Tools, name: &str) -> Result<Info> {
    let meta = load_meta(store, name)?;
    let dir = container_dir(store, name);
    let sd = dir.join("shim");
    let shim = read_json(&sd.join("shim.json"));
    let exit = read_json(&sd.join("exit"));
    let restart_count = shim.as_ref().and_then(|s| s["restart_count"].as_u64()).unwrap_or(0);
    let (state, pid, shim_pid) = match proto::shim_status(&sd) {
        ShimStatus::Alive { pid } => {
            let s = shim.as_ref().map_or("", |s| s["status"].as_str().unwrap_or(""));
            let cpid = shim.as_ref().and_then(|s| s["container_pid"].as_i64()).map(|p| p as i32);
            match s {
                "backoff" => (State::Restarting, None, Some(pid)),
                "exited" | "failed" => (State::Exited, None, Some(pid)),
                _ => (State::Running, cpid, Some(pid)),
            }
        }
        ShimStatus::Exited { .. } => (State::Exited, None, None),
        ShimStatus::Dead { pid } => {
            if !dir.join("lost").exists() {
                tracing::warn!("the monitor of {name} (pid {pid}) is gone: killing and deleting the container");
                tools.force_remove(name);
                let when = format!("{}\n", capsa_runtime::time::now_rfc3339());
                let _ = write_atomic(&dir.join("lost"), when.as_bytes(), STATE_MODE, Durability::Durable);
            }
            (State::Lost, None, None)
        }
        ShimStatus::Missing if meta.detached => (State::Created, None, None),
        // A foreground `run`: no monitor; the runtime's state and the exit the CLI recorded.
        ShimStatus::Missing => {
            let rt = capsa_runtime::container::Store::new(&tools.root);
            match capsa_runtime::lifecycle::load(&rt, name) {
                Ok(c) if c.status != capsa_runtime::container::Status::Stopped => {
                    (State::Running, Some(c.state.pid), None)
                }
                _ if dir.join("exit").exists() => (State::Exited, None, None),
                _ => (State::Created, None, None),
            }
        }
    };
    let exit = exit.or_else(|| read_json(&dir.join("exit")));
    Ok(Info { meta, state, pid, shim_pid, exit, restart_count })
}

/// Every managed container (sorted by creation time).
pub fn list(store: &ImageStore, tools: &Tools) -> Result<Vec<Info>> {
    let cdir = store.root().join("containers");
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&cdir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(PodError::Io { what: "list", path: cdir, source: e }),
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !e.path().join("capsa.json").exists() {
            continue;
        }
        match inspect_state(store, tools, &name) {
            Ok(i) => out.push(i),
            Err(err) => tracing::warn!("container {name}: {err}"),
        }
    }
    out.sort_by(|a, b| a.meta.created.cmp(&b.meta.created).then(a.meta.name.cmp(&b.meta.name)));
    Ok(out)
}
