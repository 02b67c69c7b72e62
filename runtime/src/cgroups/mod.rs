//! cgroup manager for capsa: one interface, two backends.
//!
//! * `v1` — legacy and hybrid hosts (cgroupfs driver like runc's `fs`); on a
//!   hybrid host the container also joins the cgroup2 mount at the same
//!   relative path, as runc does.
//! * `v2` — unified hosts (like runc's `fs2`, without the device BPF program).
//!
//! Usage: `detect()` once, `resolve_path()`, `Manager::new()`, `create()`,
//! `apply()`, `add_pid()`. The `Manager` is serializable so later CLI calls
//! (kill --all, pause, delete) reopen it from state.json without re-detecting.

pub mod detect;
pub mod devfilter;
pub mod devices;
mod fsutil;
mod limits;
pub mod meaning;
pub mod path;
pub mod resources;
pub mod stats;
pub mod sub;
#[cfg(test)]
mod tests;
mod v1;
mod v2;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use detect::{detect, Hierarchy, Host};
pub use limits::{IoThrottle, Limits};
pub use path::{resolve_path, CgroupPath};
pub use resources::{
    default_allowed_devices, default_device_rules, LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit,
    LinuxInterfacePriority, LinuxMemory, LinuxNetwork, LinuxPids, LinuxRdma, LinuxResources, LinuxThrottleDevice,
    LinuxWeightDevice,
};

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostMode {
    /// cgroup v1 hierarchies only.
    Legacy,
    /// cgroup v1 hierarchies plus a cgroup2 mount (usually /sys/fs/cgroup/unified).
    Hybrid,
    /// cgroup2 only.
    Unified,
}

/// Every error names the file (or directory) involved, and for writes the
/// value written, followed by the kernel's errno text.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("write {value:?} to {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mkdir {}: {source}", .path.display())]
    Mkdir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rmdir {}: {source}", .path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "systemd cgroup paths (slice:prefix:name) need --systemd-cgroup and a running systemd; use an absolute cgroupsPath (got {0:?})"
    )]
    SystemdPath(String),
    #[error("invalid cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("no cgroup filesystem is mounted (no \"cgroup\" or \"cgroup2\" line in /proc/self/mountinfo)")]
    NoCgroupMounts,
    #[error("invalid resource setting: {0}")]
    InvalidResource(String),
    #[error("{what} is not supported on this host: {why}")]
    Unsupported { what: String, why: String },
    #[error(
        "write \"{limit}\" to {}/{}: the cgroup already uses {usage} bytes (peak {peak}); the kernel refuses a memory limit below current usage",
        .dir.display(), if .dir.join("memory.max").exists() { "memory.max" } else { "memory.limit_in_bytes" }
    )]
    MemoryLimitBelowUsage { dir: PathBuf, limit: i64, usage: u64, peak: u64 },
    #[error(
        "controller {controller:?} is not enabled for {} ({file} is missing): enable it in the parent's cgroup.subtree_control",
        .dir.display()
    )]
    ControllerMissing { controller: String, dir: PathBuf, file: String },
    #[error("freeze {}: {state} after {waited_ms} ms (processes keep forking or exiting?); thawed it back", .path.display())]
    FreezeTimeout { path: PathBuf, state: String, waited_ms: u128 },
    #[error("unexpected {} content {state:?}", .path.display())]
    BadState { path: PathBuf, state: String },
    #[error(
        "container's cgroup is frozen ({}: {state}): its processes would stop on joining; thaw it first, or use another cgroupsPath",
        .path.display()
    )]
    Frozen { path: PathBuf, state: String },
}

impl CgroupError {
    /// The errno behind this error, if it came from a system call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            CgroupError::Write { source, .. }
            | CgroupError::Read { source, .. }
            | CgroupError::Mkdir { source, .. }
            | CgroupError::Remove { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// One v1 hierarchy's directory for this container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct V1Dir {
    /// e.g. ["cpu","cpuacct"] or ["name=systemd"]
    controllers: Vec<String>,
    mount: PathBuf,
    dir: PathBuf,
}

/// The container's directory in the cgroup2 mount.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct V2Dir {
    mount: PathBuf,
    dir: PathBuf,
}

/// A container's cgroup in every hierarchy. Serializable (state.json).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Manager {
    mode: HostMode,
    /// v1 hierarchies (legacy/hybrid), including named ones (name=systemd).
    #[serde(default)]
    v1: Vec<V1Dir>,
    /// cgroup2: the unified hierarchy (unified hosts) or the hybrid cgroup2 mount.
    #[serde(default)]
    v2: Option<V2Dir>,
    /// Directories `create()` made, top-down in creation order. `destroy()`
    /// removes exactly these, in reverse.
    #[serde(default)]
    created: Vec<PathBuf>,
}

/// How long `destroy()` keeps retrying rmdir on EBUSY.
const RMDIR_TIMEOUT: Duration = Duration::from_secs(1);
/// How long freeze waits for the kernel to report the cgroup frozen.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

impl Manager {
    /// Compute the container's directory in every hierarchy of `host`.
    pub fn new(host: &Host, path: &CgroupPath) -> Manager {
        let v1 = host
            .hierarchies
            .iter()
            .map(|h| V1Dir {
                controllers: h.controllers.clone(),
                mount: h.mount_point.clone(),
                dir: path.dir_in(h, false),
            })
            .collect();
        let v2 = host.unified.as_ref().map(|h| V2Dir { mount: h.mount_point.clone(), dir: path.dir_in(h, true) });
        Manager { mode: host.mode, v1, v2, created: Vec::new() }
    }

    /// The host mode this manager was made for.
    pub fn mode(&self) -> HostMode {
        self.mode
    }

    /// Directories `create()` made (top-down); `destroy()` removes these only.
    pub fn created(&self) -> &[PathBuf] {
        &self.created
    }

    /// All (mount, dir) pairs: v1 hierarchies first, then cgroup2.
    fn all_dirs(&self) -> impl Iterator<Item = (&PathBuf, &PathBuf)> {
        self.v1.iter().map(|d| (&d.mount, &d.dir)).chain(self.v2.iter().map(|d| (&d.mount, &d.dir)))
    }

    /// The v1 directory of controller `c` ("memory", "name=systemd", ...).
    fn v1_dir(&self, c: &str) -> Option<&PathBuf> {
        self.v1.iter().find(|d| d.controllers.iter().any(|x| x == c)).map(|d| &d.dir)
    }

    /// mkdir -p the container cgroup in every hierarchy (v1: all mounted
    /// hierarchies incl. name=systemd; hybrid also the cgroup2 mount), recording
    /// exactly which directories it created. v1 cpuset: every still-empty
    /// directory on the path gets cpuset.cpus/mems from the nearest non-empty
    /// ancestor, top-down (a concurrent create may own an unfilled parent).
    pub fn create(&mut self) -> Result<(), CgroupError> {
        match self.mode {
            HostMode::Unified => v2::create(self),
            HostMode::Legacy | HostMode::Hybrid => v1::create(self),
        }
    }

    /// Write resource limits (see `v1::apply` / `v2::apply` for the files).
    pub fn apply(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        match self.mode {
            HostMode::Unified => v2::apply(self, res),
            HostMode::Legacy | HostMode::Hybrid => v1::apply(self, res),
        }
    }

    /// Move process `pid` (all its threads) into the cgroup in every
    /// hierarchy: all files are opened first, then written back to back.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        let value = pid.to_string();
        let mut files = Vec::with_capacity(self.v1.len() + 1);
        for (_, dir) in self.all_dirs() {
            let p = dir.join("cgroup.procs");
            let f = fsutil::open_w(&p, &value)?;
            files.push((p, f));
        }
        for (p, f) in files.iter_mut() {
            fsutil::write_once(f, p, &value)?;
        }
        Ok(())
    }

    /// Freeze every process (v1 freezer.state, or cgroup.freeze on cgroup2).
    pub fn freeze(&self) -> Result<(), CgroupError> {
        if self.mode != HostMode::Unified {
            if let Some(d) = self.v1_dir("freezer") {
                return v1::freeze(d, FREEZE_TIMEOUT);
            }
        }
        match &self.v2 {
            Some(d) => v2::freeze(&d.dir, FREEZE_TIMEOUT),
            None => Err(no_freezer()),
        }
    }

    /// Undo `freeze()`.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        if self.mode != HostMode::Unified {
            if let Some(d) = self.v1_dir("freezer") {
                return fsutil::write_file(d, "freezer.state", "THAWED");
            }
        }
        match &self.v2 {
            Some(d) => fsutil::write_file(&d.dir, "cgroup.freeze", "0"),
            None => Err(no_freezer()),
        }
    }

    /// Whether this cgroup itself is frozen (not merely via an ancestor).
    /// A missing cgroup reads as not frozen.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        let v1_freezer = match self.mode {
            HostMode::Unified => None,
            _ => self.v1_dir("freezer"),
        };
        let r = match (v1_freezer, &self.v2) {
            (Some(d), _) => v1::is_frozen(d),
            (None, Some(d)) => v2::is_frozen(&d.dir),
            (None, None) => return Err(no_freezer()),
        };
        match r {
            Err(e) if fsutil::is_enoent(&e) => Ok(false),
            r => r,
        }
    }

    /// Before the container's first process joins (after `create`): refuse a frozen
    /// cgroup (by itself or by an ancestor; the joining process would stop there, and
    /// capsa with it), and warn, as runc does, when the cgroup already holds processes.
    pub fn check_joinable(&self) -> Result<(), CgroupError> {
        let ignore_enoent = |r: Result<String, CgroupError>| match r {
            Err(e) if fsutil::is_enoent(&e) => Ok(String::new()),
            r => r,
        };
        if self.mode != HostMode::Unified {
            if let Some(d) = self.v1_dir("freezer") {
                let state = ignore_enoent(fsutil::read_trim(d, "freezer.state"))?;
                if state == "FROZEN" || state == "FREEZING" {
                    return Err(CgroupError::Frozen { path: d.join("freezer.state"), state });
                }
            }
        }
        if let Some(d) = &self.v2 {
            let own = ignore_enoent(fsutil::read_trim(&d.dir, "cgroup.freeze"))?;
            let events = ignore_enoent(fsutil::read_file(&d.dir, "cgroup.events"))?;
            if own == "1" {
                return Err(CgroupError::Frozen { path: d.dir.join("cgroup.freeze"), state: "1".into() });
            }
            if events.lines().any(|l| l.trim() == "frozen 1") {
                return Err(CgroupError::Frozen { path: d.dir.join("cgroup.events"), state: "frozen 1".into() });
            }
        }
        let n = self.pids()?.len();
        if n > 0 {
            tracing::warn!(
                "container's cgroup is not empty: {n} process(es) found ({}); they share the container's limits",
                self.all_dirs().next().map(|(_, d)| d.display().to_string()).unwrap_or_default()
            );
        }
        Ok(())
    }

    /// PIDs in the cgroup and its sub-cgroups (sorted, no duplicates).
    /// v1 reads the pids, memory or freezer hierarchy (first that exists).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = match self.mode {
            HostMode::Unified => self.v2.as_ref().map(|d| &d.dir),
            _ => ["pids", "memory", "freezer"].iter().find_map(|c| self.v1_dir(c)).or(self.v1.first().map(|d| &d.dir)),
        };
        let mut out = Vec::new();
        if let Some(d) = dir {
            fsutil::procs_recursive(d, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Signal every process. SIGKILL uses cgroup.kill where the cgroup2 dir
    /// has it (unified, and hybrid like runc); otherwise freeze, signal each
    /// pid, thaw (runc's signalAllProcesses). Signal 0 only checks each pid, without
    /// the freeze (nothing to keep from forking, and a paused container stays
    /// paused). Freeze/thaw failures and per-pid errors other than ESRCH are
    /// logged, not returned.
    pub fn kill_all(&self, sig: i32) -> Result<(), CgroupError> {
        let freeze = sig != 0;
        if sig == libc::SIGKILL {
            if let Some(d) = &self.v2 {
                match fsutil::write_file(&d.dir, "cgroup.kill", "1") {
                    Ok(()) => return Ok(()),
                    Err(e) if fsutil::is_enoent(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if freeze {
            if let Err(e) = self.freeze() {
                tracing::warn!("kill_all: {e}; signalling without freezing");
            }
        }
        let thaw = || {
            if let Err(e) = if freeze { self.thaw() } else { Ok(()) } {
                tracing::warn!("kill_all: {e}");
            }
        };
        let pids = match self.pids() {
            Ok(p) => p,
            Err(e) => {
                thaw();
                return Err(e);
            }
        };
        for pid in pids {
            // SAFETY: kill(2) has no memory-safety preconditions.
            if unsafe { libc::kill(pid, sig) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ESRCH) {
                    tracing::warn!("kill_all: kill({pid}, {sig}): {e}");
                }
            }
        }
        thaw();
        Ok(())
    }

    /// Remove the directories this manager created, deepest first. The
    /// container's own directory (and any sub-cgroups made inside it) is
    /// retried on EBUSY for ~1 s; a created ancestor that is still busy (e.g.
    /// shared with another container) is left alone. Missing dirs are fine.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + RMDIR_TIMEOUT;
        let mut first_err = None;
        for p in self.created.iter().rev() {
            let own = self.all_dirs().any(|(_, d)| d == p);
            let r = if own {
                fsutil::rmdir_tree(p, deadline)
            } else {
                match std::fs::remove_dir(p) {
                    Ok(()) => Ok(()),
                    Err(e) => match e.raw_os_error() {
                        Some(libc::ENOENT) => Ok(()),
                        Some(libc::EBUSY) | Some(libc::ENOTEMPTY) => {
                            tracing::debug!(path = %p.display(), "cgroup ancestor still in use; left in place");
                            Ok(())
                        }
                        _ => Err(CgroupError::Remove { path: p.clone(), source: e }),
                    },
                }
            };
            if let Err(e) = r {
                tracing::warn!("destroy: {e}");
                first_err.get_or_insert(e);
            }
        }
        // `/capsa` (the parent of every default `/capsa/<id>` path) is shared by the
        // containers capsa makes: whoever leaves it empty removes it, even when
        // another container created it (rmdir only ever removes an empty cgroup).
        for (mount, dir) in self.all_dirs() {
            let parent = mount.join("capsa");
            if dir.parent() == Some(parent.as_path()) {
                let _ = std::fs::remove_dir(&parent);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// What a process needs to place *itself* in this cgroup without the cost of a
    /// migration by pid: the v1 `tasks` file of every hierarchy (writing "0" there
    /// moves the calling thread; for the current, single thread the kernel skips
    /// the global threadgroup lock, and with it the RCU grace period a `cgroup.procs`
    /// write waits for: ~16 ms on an idle v1 host) and the cgroup2 directory (for
    /// clone3's CLONE_INTO_CGROUP, which creates the child in place).
    pub fn self_join_targets(&self) -> (Vec<PathBuf>, Option<PathBuf>) {
        let tasks = if self.mode == HostMode::Unified {
            Vec::new()
        } else {
            self.v1.iter().map(|d| d.dir.join("tasks")).collect()
        };
        (tasks, self.v2.as_ref().map(|d| d.dir.clone()))
    }

    /// Absolute directory per controller name (v1: one entry per controller,
    /// e.g. "cpu" and "cpuacct" for a co-mounted hierarchy, "name=systemd";
    /// cgroup2: "unified").
    pub fn paths(&self) -> Vec<(String, PathBuf)> {
        let mut out: Vec<(String, PathBuf)> = Vec::new();
        for d in &self.v1 {
            for c in &d.controllers {
                out.push((c.clone(), d.dir.clone()));
            }
        }
        if let Some(d) = &self.v2 {
            out.push(("unified".to_string(), d.dir.clone()));
        }
        out
    }
}

fn no_freezer() -> CgroupError {
    CgroupError::Unsupported {
        what: "freezing".to_string(),
        why: "no v1 freezer hierarchy and no cgroup2 mount".to_string(),
    }
}

/// runc's cgroup v1 cpu.shares -> cgroup v2 cpu.weight conversion:
/// `weight = 1 + ((shares - 2) * 9999) / 262142` (0 = unset).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262142
}
