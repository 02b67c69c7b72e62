//! Managed containers: the docker-like layer over images, the runtime and the shim.
//!
//! A managed container `NAME` is a directory `<store>/containers/NAME/` (made by
//! the image store: `config.json`, `rootfs/`, the overlay upper dir, `lock`)
//! plus what this module adds:
//!
//! | path            | content |
//! |-----------------|---------|
//! | `capsa.json`    | [`Meta`]: image, command, restart policy, pod, stop signal |
//! | `shim/`         | the shim's state dir: `shim.json`, `exit`, `attach`, `container.log` (see `capsa_shim::proto`) |
//! | `lost`          | written when the shim was found dead (the container was then killed and deleted) |
//!
//! The runtime container id is the name, under the runtime root the CLI was
//! given (`capsa --root`, default /run/capsa), so `capsa exec NAME ...`,
//! `capsa kill NAME` and `capsa list` work on managed containers as on any other.
//!
//! The store's per-container lock (`lock`, a flock) is handed to the shim, which
//! holds it for as long as the container may run: `capsa image prune` never
//! removes a live container, and `rm` knows when the shim is gone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use capsa_image::bundle::{self, RunOptions};
use capsa_image::images::{ImageStore, LocalImage, Lock};
use capsa_shim::proto::{self, ShimStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{io, write_state, PodError, Result};
use crate::runtime_cli::Tools;

/// The record of a managed container (`capsa.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    pub name: String,
    /// The image name as the user gave it, and its config digest.
    pub image: String,
    pub image_id: String,
    /// RFC 3339.
    pub created: String,
    /// The process args.
    pub command: Vec<String>,
    /// `no`, `on-failure[:N]` or `always`.
    pub restart: String,
    /// Started under a shim (`run -d`, pods); false for a foreground `run`.
    pub detached: bool,
    pub tty: bool,
    pub stdin: bool,
    /// The image's StopSignal, or SIGTERM.
    pub stop_signal: String,
    /// The pod this container belongs to.
    #[serde(default)]
    pub pod: Option<String>,
    /// For pod members: the name in the manifest (`NAME` is `<pod>-<name>`).
    #[serde(default)]
    pub pod_container: Option<String>,
    /// Init containers run to completion before the pod's containers start.
    #[serde(default)]
    pub init: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// What a container needs of its pod: the namespaces to join and files to mount.
#[derive(Debug, Clone, Default)]
pub struct PodJoin {
    pub pod: String,
    /// (namespace type as in config.json, path to join; an empty path: share the caller's).
    pub namespaces: Vec<(String, PathBuf)>,
    /// (host file, destination in the container): /etc/hosts, /etc/resolv.conf, /etc/hostname.
    pub files: Vec<(PathBuf, String)>,
}

/// Everything `run` needs.
pub struct Request<'a> {
    pub image_name: String,
    pub image: &'a LocalImage,
    /// `opts.id` is the container name.
    pub opts: RunOptions,
    /// Copy the layers instead of an overlay mount.
    pub copy: bool,
    pub restart: String,
    /// Keep stdin open for attach (`-i`).
    pub stdin: bool,
    pub pod: Option<PodJoin>,
    /// More OCI mounts (pod volumes).
    pub extra_mounts: Vec<Value>,
    pub labels: BTreeMap<String, String>,
    pub pod_container: Option<String>,
    pub init: bool,
    /// Only create the container (its process waits); [`start`] runs it.
    pub created_only: bool,
}

/// Environment variable: the cgroup under which managed containers are placed
/// (`<parent>/<name>`; default `/capsa/<name>`). Tests use their own parent.
pub const CGROUP_PARENT_ENV: &str = "CAPSA_CGROUP_PARENT";

/// `<store>/containers/NAME`.
pub fn container_dir(store: &ImageStore, name: &str) -> PathBuf {
    store.root().join("containers").join(name)
}

/// The shim's state directory of a container.
pub fn shim_dir(store: &ImageStore, name: &str) -> PathBuf {
    container_dir(store, name).join("shim")
}

/// The CRI-format log of a container.
pub fn log_path(store: &ImageStore, name: &str) -> PathBuf {
    shim_dir(store, name).join("container.log")
}

/// Rotate the container log past this size (one rotated file is kept).
pub const LOG_MAX_SIZE: u64 = 10 << 20;

fn write_json(path: &Path, v: &impl Serialize, durability: capsa_fsutil::Durability) -> Result<()> {
    let data = serde_json::to_vec_pretty(v).map_err(|e| PodError::msg(format!("encode {}: {e}", path.display())))?;
    Ok(capsa_fsutil::write_atomic(path, &data, crate::error::STATE_MODE, durability)?)
}

/// Reads a container's `capsa.json`.
pub fn load_meta(store: &ImageStore, name: &str) -> Result<Meta> {
    let p = container_dir(store, name).join("capsa.json");
    let data = std::fs::read(&p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PodError::NotFound { kind: "container", name: name.to_owned() }
        } else {
            PodError::Io { what: "read", path: p.clone(), source: e }
        }
    })?;
    serde_json::from_slice(&data).map_err(|e| PodError::msg(format!("{}: {e}", p.display())))
}

/// Writes `config.json` and `capsa.json` for a foreground run of `req` into the
/// container directory. `keep`: the container stays after it exits (no `--rm`), so
/// its records must survive a power loss (fsync'd); a `--rm` run's live no longer
/// than the run: written atomically, no fsync (8 fsyncs were most of `run --rm`'s
/// time on a busy disk).
pub fn write_bundle(store: &ImageStore, req: &Request<'_>, rootfs: &Path, keep: bool) -> Result<Value> {
    let durability = if keep { capsa_fsutil::Durability::Durable } else { capsa_fsutil::Durability::Volatile };
    write_bundle_with(store, req, rootfs, false, durability, &mut |_, _| Ok(()))
}

/// Changes made to a container's `config.json` after capsa built it from the image and
/// the request, and before it is written: (the spec, the container's rootfs).
pub type Customize<'a> = dyn FnMut(&mut Value, &Path) -> Result<()> + 'a;

/// [`write_bundle`], with `customize` applied to the spec last (a CRI container's
/// security context, mounts, devices, resources, cgroup).
pub fn write_bundle_with(
    store: &ImageStore,
    req: &Request<'_>,
    rootfs: &Path,
    detached: bool,
    durability: capsa_fsutil::Durability,
    customize: &mut Customize<'_>,
) -> Result<Value> {
    let name = &req.opts.id;
    let dir = container_dir(store, name);
    let overlay = store.deferred_overlay(name)?;
    // A rootless rootfs is mounted by the runtime: read the image's files from its layers.
    let layers = if overlay.is_some() { store.container_layers(name) } else { Vec::new() };
    let files: Vec<&Path> =
        if overlay.is_some() { layers.iter().map(PathBuf::as_path).collect() } else { vec![rootfs] };
    let mut spec = bundle::make_spec(capsa_runtime::spec::default_spec(), &req.image.config, &req.opts, &files)
        .map_err(|e| PodError::msg(format!("container {name}: {e}")))?;
    if let Some(pj) = &req.pod {
        join_pod(&mut spec, pj);
    }
    if let Some(parent) = std::env::var_os(CGROUP_PARENT_ENV) {
        let parent = parent.to_string_lossy();
        spec["linux"]["cgroupsPath"] = json!(format!("{}/{name}", parent.trim_end_matches('/')));
    }
    if !req.extra_mounts.is_empty() {
        if let Some(m) = spec["mounts"].as_array_mut() {
            m.extend(req.extra_mounts.iter().cloned());
        }
    }
    if let Some(r) = store.rootless() {
        crate::rootless::adapt_spec(&mut spec, r, overlay)
            .map_err(|e| PodError::msg(format!("container {name}: {e}")))?;
    }
    customize(&mut spec, rootfs)?;
    write_json(&dir.join("config.json"), &spec, durability)?;
    let stop_signal =
        spec["annotations"]["org.opencontainers.image.stopSignal"].as_str().unwrap_or("SIGTERM").to_owned();
    let command = spec["process"]["args"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let meta = Meta {
        name: name.clone(),
        image: req.image_name.clone(),
        image_id: req.image.record.config.to_string(),
        created: capsa_runtime::time::now_rfc3339(),
        command,
        restart: req.restart.clone(),
        detached,
        tty: req.opts.terminal,
        stdin: req.stdin,
        stop_signal,
        pod: req.pod.as_ref().map(|p| p.pod.clone()),
        pod_container: req.pod_container.clone(),
        init: req.init,
        labels: req.labels.clone(),
    };
    write_json(&dir.join("capsa.json"), &meta, durability)?;
    Ok(spec)
}

/// Points the spec's namespaces at the pod's and mounts its files; the pod
/// owns the hostname (a joined UTS namespace already has it).
fn join_pod(spec: &mut Value, pj: &PodJoin) {
    if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
        for (ty, path) in &pj.namespaces {
            nss.retain(|n| n["type"] != ty.as_str());
            if !path.as_os_str().is_empty() {
                nss.push(json!({"type": ty, "path": path}));
            }
        }
    }
    if pj.namespaces.iter().any(|(t, _)| t == "uts") {
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
        }
    }
    if let Some(m) = spec["mounts"].as_array_mut() {
        for (src, dst) in &pj.files {
            m.push(json!({"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
        }
    }
}

/// Creates the container (rootfs, bundle) and starts it under a shim; returns
/// the container's pid once it runs. On any error nothing is left: no
/// container directory, no runtime state, no shim.
pub fn run_detached(
    store: &ImageStore,
    tools: &Tools,
    req: &Request<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<i32> {
    run_detached_with(store, tools, req, &ShimOptions::default(), &mut |_, _| Ok(()), progress)
}

/// Where and how the shim of a container keeps its log.
#[derive(Debug, Clone, Default)]
pub struct ShimOptions {
    /// The CRI-format log (default [`log_path`]); its directory must exist.
    pub log_path: Option<PathBuf>,
    /// Rotate past this size (default [`LOG_MAX_SIZE`]; 0: never, the caller rotates
    /// and asks the shim to reopen the file, see [`reopen_log`]).
    pub log_max_size: Option<u64>,
}

/// [`run_detached`] with the shim's log where `shim` says, and `customize` applied to
/// config.json (see [`write_bundle_with`]). With [`Request::created_only`], the
/// container is left created: [`start`] runs it.
pub fn run_detached_with(
    store: &ImageStore,
    tools: &Tools,
    req: &Request<'_>,
    shim: &ShimOptions,
    customize: &mut Customize<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<i32> {
    let name = req.opts.id.clone();
    if req.restart != "no" {
        // Same check as the shim's, before anything is created.
        capsa_shim::config::Restart::parse(&req.restart).map_err(PodError::msg)?;
    }
    let rootfs = store.create_container(&name, req.image, req.copy, progress)?;
    let started = (|| -> Result<i32> {
        write_bundle_with(store, req, &rootfs.rootfs, true, capsa_fsutil::Durability::Durable, customize)?;
        spawn_shim(store, tools, &name, req, shim, rootfs.lock().fd())
    })();
    match started {
        Ok(pid) => Ok(pid),
        Err(e) => {
            tools.force_remove(&name);
            let dir = rootfs.dir.clone();
            if let Err(re) = rootfs.remove() {
                tracing::warn!("clean up {}: {re}", dir.display());
            }
            Err(e)
        }
    }
}

/// Starts `capsa-shim` for the bundle of `name`; waits until the container runs.
fn spawn_shim(
    store: &ImageStore,
    tools: &Tools,
    name: &str,
    req: &Request<'_>,
    shim: &ShimOptions,
    lock_fd: i32,
) -> Result<i32> {
    let (tty, stdin, restart) = (req.opts.terminal, req.stdin, req.restart.as_str());
    let dir = container_dir(store, name);
    let sd = shim_dir(store, name);
    let mut c = std::process::Command::new(&tools.shim);
    c.arg("--id").arg(name);
    c.arg("--bundle").arg(&dir);
    c.arg("--state-dir").arg(&sd);
    c.arg("--runtime").arg(&tools.runtime);
    c.arg("--root").arg(&tools.root);
    c.arg("--log-path").arg(shim.log_path.clone().unwrap_or_else(|| sd.join("container.log")));
    c.arg("--log-max-size").arg(shim.log_max_size.unwrap_or(LOG_MAX_SIZE).to_string());
    if tty {
        c.arg("--terminal");
    }
    if stdin {
        c.arg("--stdin");
    }
    c.arg("--restart").arg(restart);
    if req.created_only {
        c.arg("--no-start");
    }
    // The shim inherits the container's store lock, and only it: the fd stays
    // close-on-exec here (other children, other threads' shims must not get it).
    // SAFETY: fcntl is async-signal-safe; it only clears FD_CLOEXEC on an fd this
    // process owns, in the forked child before exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        c.pre_exec(move || {
            if libc::fcntl(lock_fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    tracing::debug!("start the monitor: {c:?}");
    let out = c.stdin(Stdio::null()).output().map_err(|e| PodError::Command {
        cmd: format!("{} (the container monitor; install it next to capsa)", tools.shim.display()),
        msg: e.to_string(),
    })?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let msg = msg.trim().trim_start_matches("capsa-shim: ");
        return Err(PodError::msg(format!("start container {name}: {msg}")));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| PodError::msg(format!("start container {name}: the monitor printed no pid")))
}

/// Starts a container made with [`Request::created_only`]: what `capsa start NAME`
/// does (the runtime library's `start`, under its per-container lock), in this
/// process: a pod saves one process spawn per container on its start path.
pub fn start(tools: &Tools, name: &str) -> Result<()> {
    let rt = capsa_runtime::container::Store::new(&tools.root);
    capsa_runtime::lifecycle::start(&rt, name).map_err(|e| PodError::msg(format!("start container {name}: {e}")))
}

/// Asks the shim of a running container to reopen its log file at its path (after the
/// caller renamed it away: kubelet's log rotation, CRI `ReopenContainerLog`).
pub fn reopen_log(store: &ImageStore, name: &str) -> Result<()> {
    let sd = shim_dir(store, name);
    let what = |e: std::io::Error| {
        PodError::msg(format!("container {name}: reopen its log through {}: {e}", sd.join("attach").display()))
    };
    let c = proto::AttachClient::connect(&sd).map_err(what)?;
    c.reopen_log(10_000).map_err(what)
}

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

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
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
                let _ = write_state(&dir.join("lost"), format!("{}\n", capsa_runtime::time::now_rfc3339()).as_bytes());
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

/// Waits until the shim of `name` has exited (true) or `deadline` passes (false).
fn wait_shim_gone(sd: &Path, deadline: Instant) -> bool {
    let mut sleep = Duration::from_millis(2);
    loop {
        if !matches!(proto::shim_status(sd), ShimStatus::Alive { .. }) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(50));
    }
}

/// How long [`stop_with`] waits between the stop signal and SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grace {
    /// The whole period, as `docker stop` and the kubelet give it: the process may
    /// also use it to finish on its own.
    Full(Duration),
    /// The period only when the container's init can learn of the stop signal; an
    /// init of a pid namespace leaving it at the default action never does (the kernel
    /// discards it: [`crate::signals`]) and gets SIGKILL at once. For `pod delete`.
    UnlessDiscarded(Duration),
}

/// `stop`: no more restarts; the stop signal (the image's StopSignal, else
/// SIGTERM), and SIGKILL to every process of the container after `grace`.
/// Returns the container's state afterwards.
pub fn stop(store: &ImageStore, tools: &Tools, name: &str, grace: Duration) -> Result<Info> {
    stop_with(store, tools, name, Grace::Full(grace))
}

/// [`stop`] with a choice of [`Grace`].
pub fn stop_with(store: &ImageStore, tools: &Tools, name: &str, how: Grace) -> Result<Info> {
    let (mut grace, unless_discarded) = match how {
        Grace::Full(g) => (g, false),
        Grace::UnlessDiscarded(g) => (g, true),
    };
    let info = inspect_state(store, tools, name)?;
    if !info.is_active() {
        return Ok(info);
    }
    let sd = shim_dir(store, name);
    write_state(&sd.join("stop"), b"")?;
    let shim_pid = info.shim_pid.unwrap_or(0);
    if info.state == State::Restarting || !tools.exists(name) {
        // Between runs: the shim ends the restart loop on SIGTERM.
        // Rechecked right before the signal: a shim that exited meanwhile may have had its pid reused.
        if let ShimStatus::Alive { pid } = proto::shim_status(&sd) {
            // SAFETY: kill(2) on the shim pid that shim_status just found alive (pid + start time).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    } else if !grace.is_zero() {
        tracing::debug!("stop {name}: {} (then SIGKILL after {:?})", info.meta.stop_signal, grace);
        // Checked before and after the signal: a handler installed in between gets it.
        let sig = capsa_runtime::process::signal::parse(&info.meta.stop_signal).unwrap_or(libc::SIGTERM);
        let unreachable = || unless_discarded && info.pid.is_some_and(|p| crate::signals::discarded_by_init(p, sig));
        let before = unreachable();
        if let Err(e) = tools.runtime(&["kill", name, &info.meta.stop_signal]) {
            tracing::debug!("stop {name}: {e}");
        }
        if before && unreachable() {
            tracing::debug!(
                "stop {name}: its init (pid {}) leaves {} at the default action; the kernel discards it: SIGKILL now",
                info.pid.unwrap_or(0),
                info.meta.stop_signal
            );
            grace = Duration::ZERO;
        }
    }
    if !wait_shim_gone(&sd, Instant::now() + grace) {
        tracing::debug!("stop {name}: still running after {grace:?}: SIGKILL");
        if let Err(e) = tools.runtime(&["kill", "--all", name, "KILL"]) {
            tracing::debug!("stop {name}: {e}");
        }
        if !wait_shim_gone(&sd, Instant::now() + Duration::from_secs(10)) {
            return Err(PodError::msg(format!(
                "stop {name}: still running 10 s after SIGKILL (monitor pid {shim_pid})"
            )));
        }
    }
    inspect_state(store, tools, name)
}

/// `rm`: removes a container that is not running (with `force`, stops it
/// first, without grace): runtime state, rootfs mount, directory.
pub fn remove(store: &ImageStore, tools: &Tools, name: &str, force: bool) -> Result<()> {
    let info = inspect_state(store, tools, name)?;
    if info.is_active() {
        if !force {
            return Err(PodError::msg(format!(
                "container {name} is {}: stop it first, or use rm -f",
                info.state.as_str()
            )));
        }
        if info.shim_pid.is_none() {
            // A foreground run: its CLI holds the container; kill it, the CLI cleans up.
            tools.force_remove(name);
        } else {
            stop(store, tools, name, Duration::ZERO)?;
        }
    }
    let dir = container_dir(store, name);
    let Some(lock) = Lock::try_acquire(&dir.join("lock"))? else {
        return Err(PodError::msg(format!(
            "container {name} is still in use (its lock {} is held by its monitor or its foreground capsa run)",
            dir.join("lock").display()
        )));
    };
    tools.force_remove(name);
    if store.rootless().is_none() {
        // A rootless container's overlay lived in its own mount namespace, gone with it.
        capsa_image::images::unmount(&dir.join("rootfs")).map_err(io("unmount", &dir.join("rootfs")))?;
    }
    store.remove_tree(&dir).map_err(io("remove", &dir))?;
    drop(lock);
    Ok(())
}

/// The runtime's view of a running container: its config and cgroup.
pub fn config(store: &ImageStore, name: &str) -> Result<Value> {
    let p = container_dir(store, name).join("config.json");
    let data = std::fs::read(&p).map_err(io("read", &p))?;
    serde_json::from_slice(&data).map_err(|e| PodError::msg(format!("{}: {e}", p.display())))
}

/// One sample of a container's cgroup counters.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub name: String,
    /// CPU time used, nanoseconds.
    pub cpu_ns: u64,
    /// CPU use over the sampling interval, percent of one CPU.
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    /// The memory limit (u64::MAX: none).
    pub memory_limit: u64,
    pub pids: u64,
    pub pids_limit: u64,
}

/// cgroup counters of running containers, sampled twice `interval` apart for the CPU rate.
pub fn stats(tools: &Tools, names: &[String], interval: Duration) -> Result<Vec<Sample>> {
    let rt = capsa_runtime::container::Store::new(&tools.root);
    let mut mgrs = Vec::new();
    for n in names {
        let st = rt.load(n).map_err(|e| PodError::msg(format!("stats {n}: {e}")))?;
        let cg = st.cgroup.ok_or_else(|| PodError::msg(format!("stats {n}: the container has no cgroup")))?;
        mgrs.push((n.clone(), cg));
    }
    let first: Vec<(u64, Instant)> = mgrs.iter().map(|(_, m)| (m.stats().cpu.usage.total, Instant::now())).collect();
    std::thread::sleep(interval);
    Ok(mgrs
        .iter()
        .zip(first)
        .map(|((n, m), (c0, t0))| {
            let s = m.stats();
            let dt = t0.elapsed().as_nanos().max(1) as f64;
            Sample {
                name: n.clone(),
                cpu_ns: s.cpu.usage.total,
                cpu_percent: (s.cpu.usage.total.saturating_sub(c0)) as f64 * 100.0 / dt,
                memory_bytes: s.memory.usage.usage,
                memory_limit: s.memory.usage.limit,
                pids: s.pids.current,
                pids_limit: s.pids.limit,
            }
        })
        .collect())
}
