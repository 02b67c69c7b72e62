//! `stop` (the stop signal, then SIGKILL after a grace period) and `rm` of a
//! managed container.

use std::path::Path;
use std::time::{Duration, Instant};

use capsa_image::images::{ImageStore, Lock};
use capsa_shim::proto::{self, ShimStatus};

use super::{container_dir, inspect_state, shim_dir, Info, State};
use crate::error::{io, PodError, Result, STATE_MODE};
use crate::runtime_cli::Tools;
use capsa_fsutil::{write_atomic, Durability};

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
    // Durable, as the container's other records (the monitor reads it: no restart).
    write_atomic(&sd.join("stop"), b"", STATE_MODE, Durability::Durable)?;
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
