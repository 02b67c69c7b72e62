//! Running a container detached under its `capsa-shim`, starting a created one, and
//! asking the shim to reopen its log.

use std::path::PathBuf;
use std::process::Stdio;

use capsa_image::images::ImageStore;
use capsa_shim::proto;

use super::{container_dir, shim_dir, write_bundle_with, Customize, Request, LOG_MAX_SIZE};
use crate::error::{PodError, Result};
use crate::runtime_cli::Tools;

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
    /// The CRI-format log (default [`log_path`](super::log_path)); its directory must exist.
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
    capsa_runtime::lifecycle::start(&rt, name).map_err(|e| PodError::Runtime {
        op: "start container",
        id: name.to_owned(),
        source: Box::new(e),
    })
}

/// Asks the shim of a running container to reopen its log file at its path (after the
/// caller renamed it away: kubelet's log rotation, CRI `ReopenContainerLog`).
pub fn reopen_log(store: &ImageStore, name: &str) -> Result<()> {
    let sd = shim_dir(store, name);
    let what = |source| PodError::ReopenLog { id: name.to_owned(), path: sd.join("attach"), source };
    let c = proto::AttachClient::connect(&sd).map_err(what)?;
    c.reopen_log(10_000).map_err(what)
}
