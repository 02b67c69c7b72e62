//! The verbs after `create`: start, state, kill, delete, pause, resume, ps, list.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::container::{State, Status, Store};
use crate::error::{Error, Result};
use crate::sys::SysError;

/// A container loaded with its live status.
pub struct Loaded {
    pub state: State,
    pub status: Status,
}

/// Load a container and derive its status.
pub fn load(store: &Store, id: &str) -> Result<Loaded> {
    let state = store.load(id)?;
    let status = Status::of(&state, store.fifo(id).exists());
    Ok(Loaded { state, status })
}

/// `start`: release the init (it is blocked reading exec.fifo), wait until it has
/// exec'd the container's program, then run poststart hooks.
pub fn start(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let c = load(store, id)?;
    if c.status != Status::Created {
        return Err(Error::BadState {
            id: id.into(),
            status: c.status.as_str(),
            op: "start (only a created container can start)",
        });
    }
    let fifo = store.fifo(id);
    release_and_wait(&fifo)?;
    if let Some(h) = &c.state.hooks {
        let bundle = Some(c.state.bundle.as_path()).filter(|b| b.is_dir());
        if let Err(e) = crate::hooks::run("poststart", &h.poststart, &c.state.oci("running"), bundle) {
            tracing::warn!("{e}");
        }
    }
    Ok(())
}

/// Write the byte the init waits for on exec.fifo, then block until the init has
/// exec'd (runc's `start` likewise reads the fifo until EOF): a signal sent once
/// `start` returns reaches the container's program, and poststart hooks run after it
/// started (runtime-spec). The init holds the fifo open O_RDWR and close-on-exec, so
/// our read end sees POLLHUP when no writer is left: after its execve, or its death.
/// The byte still in the fifo then means the init died without reading it.
fn release_and_wait(fifo: &Path) -> Result<()> {
    let w = crate::sys::open(fifo, libc::O_WRONLY | libc::O_NONBLOCK, 0).map_err(|e| {
        if e.errno == libc::ENXIO {
            e.hint("the container's init is gone")
        } else {
            e
        }
    })?;
    // Opened while a writer exists (ours, the init's): POLLHUP is armed at once.
    let r = crate::sys::open(fifo, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
    // SAFETY: a one-byte write from a static buffer to our fd.
    if unsafe { libc::write(w.as_raw_fd(), b"0".as_ptr().cast(), 1) } != 1 {
        return Err(SysError::last(format!("write {}", fifo.display())).into());
    }
    drop(w);
    // The init has its byte: from now on the container counts as started (its status
    // comes from the fifo's existence), even if this `start` is killed while it waits.
    let _ = std::fs::remove_file(fifo);
    tracing::debug!("wait on {} until the init has exec'd (POLLHUP)", fifo.display());
    let mut pfd = libc::pollfd { fd: r.as_raw_fd(), events: 0, revents: 0 };
    // SAFETY: one valid pollfd for the duration of each call.
    while unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
        let e = SysError::last(format!("poll {} for the init's exec", fifo.display()));
        if e.errno != libc::EINTR {
            return Err(e.into());
        }
    }
    let mut b = 0u8;
    // SAFETY: a one-byte read into a local.
    if unsafe { libc::read(r.as_raw_fd(), (&mut b as *mut u8).cast(), 1) } == 1 {
        return Err(Error::msg("the container's init exited before it was started (it never read exec.fifo)"));
    }
    Ok(())
}

/// `kill`: signal the init, or (`all`) every process in the container's cgroup.
pub fn kill(store: &Store, id: &str, sig: i32, all: bool) -> Result<()> {
    let c = load(store, id)?;
    if matches!(c.status, Status::Stopped | Status::Creating) && !all {
        return Err(Error::BadState { id: id.into(), status: c.status.as_str(), op: "kill (container not running)" });
    }
    if all {
        if let Some(cg) = &c.state.cgroup {
            return Ok(cg.kill_all(sig)?);
        }
    }
    if c.status == Status::Stopped {
        return Ok(());
    }
    tracing::debug!("kill({}, {sig})", c.state.pid);
    // SAFETY: kill with integer arguments; the pid was checked against its start time.
    if unsafe { libc::kill(c.state.pid, sig) } < 0 {
        return Err(SysError::last(format!("kill pid {} with signal {sig}", c.state.pid)).into());
    }
    Ok(())
}

/// `delete`: remove a stopped (or created) container; `force` kills a running one first.
pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    let lock = match store.lock(id) {
        Ok(l) => l,
        Err(crate::container::StoreError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let c = match load(store, id) {
        Ok(c) => c,
        // A directory with no state.json: a create that never got far.
        Err(Error::Store(crate::container::StoreError::NotFound(_))) => {
            store.remove(id)?;
            return if force { Ok(()) } else { Err(crate::container::StoreError::NotFound(id.into()).into()) };
        }
        // An unreadable state.json (cut short by a power loss on a disk-backed --root:
        // state is not fsync'd): nothing it described can be found any more, so
        // --force removes the directory, as for a create that never got far.
        Err(Error::Store(e @ crate::container::StoreError::Parse { .. })) if force => {
            tracing::warn!("{e}: removing the container's state directory");
            store.remove(id)?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    match c.status {
        Status::Stopped => {}
        Status::Created | Status::Creating => kill_and_wait(&c.state)?,
        Status::Running | Status::Paused if force => kill_and_wait(&c.state)?,
        s => {
            return Err(Error::BadState {
                id: id.into(),
                status: s.as_str(),
                op: "delete (stop it first, or use --force)",
            })
        }
    }
    destroy(store, &c.state)?;
    drop(lock);
    Ok(())
}

/// SIGKILL every process of the container and wait until the init is gone.
fn kill_and_wait(st: &State) -> Result<()> {
    if let Some(cg) = &st.cgroup {
        let _ = cg.kill_all(libc::SIGKILL);
        let _ = cg.thaw();
    }
    if st.pid > 0 && crate::container::proc_start_time(st.pid).is_some_and(|(s, _)| s == st.pid_start) {
        // SAFETY: kill with integer arguments; pid identity checked just above.
        unsafe { libc::kill(st.pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    // Wait until the cgroup is empty (every process gone, not just the init): only
    // then can its directories be removed.
    if let Some(cg) = &st.cgroup {
        while Instant::now() < deadline && cg.pids().map(|p| !p.is_empty()).unwrap_or(false) {
            // SAFETY: reap the init if it is our own child (`run`); harmless otherwise.
            unsafe { libc::waitpid(st.pid, std::ptr::null_mut(), libc::WNOHANG) };
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    while st.pid > 0 && Instant::now() < deadline {
        match crate::container::proc_start_time(st.pid) {
            Some((s, zombie)) if s == st.pid_start && !zombie => {
                // Our own child (e.g. `run`)? Reap it.
                // SAFETY: waitpid with WNOHANG on a pid; harmless if not our child.
                unsafe { libc::waitpid(st.pid, std::ptr::null_mut(), libc::WNOHANG) };
                std::thread::sleep(Duration::from_millis(2));
            }
            _ => break,
        }
    }
    Ok(())
}

/// Run poststop hooks, remove the cgroups and the state dir.
pub fn destroy(store: &Store, st: &State) -> Result<()> {
    if let Some(m) = &st.host_mounts {
        m.release(&st.rootfs);
    }
    if let Some(cg) = &st.cgroup {
        cg.destroy()?;
    }
    store.remove(&st.id)?;
    if let Some(h) = &st.hooks {
        if let Err(e) = crate::hooks::run("poststop", &h.poststop, &st.oci("stopped"), None) {
            tracing::warn!("{e}");
        }
    }
    Ok(())
}

/// `pause`: freeze every process of the container.
pub fn pause(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let c = load(store, id)?;
    if !matches!(c.status, Status::Running | Status::Created) {
        return Err(Error::BadState { id: id.into(), status: c.status.as_str(), op: "pause (container not running)" });
    }
    let cg = c.state.cgroup.as_ref().ok_or_else(|| Error::msg("pause needs the container's cgroup (freezer)"))?;
    Ok(cg.freeze()?)
}

/// `resume`: thaw a paused container.
pub fn resume(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let c = load(store, id)?;
    if c.status != Status::Paused {
        return Err(Error::BadState { id: id.into(), status: c.status.as_str(), op: "resume (container not paused)" });
    }
    let cg = c.state.cgroup.as_ref().ok_or_else(|| Error::msg("resume needs the container's cgroup"))?;
    Ok(cg.thaw()?)
}

/// `ps`: host pids of the container's processes.
pub fn pids(store: &Store, id: &str) -> Result<Vec<i32>> {
    let c = load(store, id)?;
    match &c.state.cgroup {
        Some(cg) => Ok(cg.pids()?),
        None => Ok(if c.status == Status::Stopped { vec![] } else { vec![c.state.pid] }),
    }
}

/// `list`: every container with its status.
pub fn list(store: &Store) -> Vec<Loaded> {
    store.list().iter().filter_map(|id| load(store, id).ok()).collect()
}

/// `update`: change a running container's resource limits. Values the kernel would
/// reject for a reason we can see are refused before anything is written, so a bad
/// update leaves the container as it was.
pub fn update(store: &Store, id: &str, res: &crate::spec::LinuxResources) -> Result<()> {
    let _lock = store.lock(id)?;
    let c = load(store, id)?;
    if c.status == Status::Stopped {
        return Err(Error::BadState { id: id.into(), status: c.status.as_str(), op: "update (container not running)" });
    }
    let cg = c.state.cgroup.as_ref().ok_or_else(|| Error::msg("update needs the container's cgroup"))?;
    check_resources(res)?;
    Ok(cg.apply(res)?)
}

/// Reject limits that can never work, naming the field and value.
pub fn check_resources(res: &crate::spec::LinuxResources) -> Result<()> {
    let bad = |field: &'static str, value: String, why: &str| {
        Err(Error::InvalidResource { field, value, why: why.to_string() })
    };
    if let Some(cpu) = &res.cpu {
        if let Some(q) = cpu.quota {
            if q < -1 || q == 0 {
                return bad("cpu.quota", q.to_string(), "must be -1 (unlimited) or a positive number of microseconds");
            }
        }
        if let Some(p) = cpu.period {
            if !(1000..=1_000_000).contains(&p) {
                return bad("cpu.period", p.to_string(), "the kernel accepts 1000..1000000 microseconds");
            }
        }
        for (f, v) in [("cpu.cpus", &cpu.cpus), ("cpu.mems", &cpu.mems)] {
            if let Some(list) = v.as_deref().filter(|s| !s.is_empty()) {
                let online =
                    if f == "cpu.cpus" { "/sys/devices/system/cpu/online" } else { "/sys/devices/system/node/online" };
                let have = std::fs::read_to_string(online).map(|s| parse_list(s.trim())).unwrap_or(Some(vec![(0, 0)]));
                match (parse_list(list), have) {
                    (None, _) => return bad(f, format!("{list:?}"), "not a list like 0-2,4"),
                    (Some(want), Some(have)) if !covered(&want, &have) => {
                        return bad(f, format!("{list:?}"), &format!("outside the host's online set ({online})"));
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(m) = &res.memory {
        for (f, v) in [("memory.limit", m.limit), ("memory.reservation", m.reservation), ("memory.swap", m.swap)] {
            if let Some(v) = v {
                if v < -1 || v == 0 {
                    return bad(f, v.to_string(), "must be -1 (unlimited) or a positive number of bytes");
                }
            }
        }
    }
    // devices: checked rule by rule (as runc reads them) by cgroups::devices, before
    // anything is written.
    Ok(())
}

/// Parse a kernel cpu list ("0-2,4") into its ranges (inclusive), without listing
/// their members: "0-4294967295" is two numbers, not 16 GiB.
fn parse_list(s: &str) -> Option<Vec<(u32, u32)>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b): (u32, u32) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let n = part.trim().parse().ok()?;
                (n, n)
            }
        };
        if a > b {
            return None;
        }
        out.push((a, b));
    }
    Some(out)
}

/// Whether every number in the ranges `want` is in the ranges `have`.
fn covered(want: &[(u32, u32)], have: &[(u32, u32)]) -> bool {
    let mut have = have.to_vec();
    have.sort_unstable();
    want.iter().all(|&(a, b)| {
        // The first number from `a` on not covered yet; sorted by start, the ranges
        // that touch it extend it in one pass.
        let mut next = u64::from(a);
        for &(x, y) in &have {
            if u64::from(x) <= next && next <= u64::from(y) {
                next = u64::from(y) + 1;
            }
        }
        next > u64::from(b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_list("0-2,4"), Some(vec![(0, 2), (4, 4)]));
        assert_eq!(parse_list(" 3 "), Some(vec![(3, 3)]));
        assert_eq!(parse_list("2-1"), None);
        assert_eq!(parse_list(""), None);
        assert_eq!(parse_list("0-"), None);
        let have = parse_list("0-3,6-7,4").unwrap();
        for ok in ["0", "0-4", "6,7", "3-4,7", "0-4,6-7"] {
            assert!(covered(&parse_list(ok).unwrap(), &have), "{ok}");
        }
        for out in ["5", "0-5", "4-6", "8", "0-7"] {
            assert!(!covered(&parse_list(out).unwrap(), &have), "{out}");
        }
        assert!(covered(&parse_list("0-4294967295").unwrap(), &parse_list("0-4294967295").unwrap()));
    }

    /// Reached by tests/fuzz_config.rs (cpu_lists_are_checked_cheaply aborted on it):
    /// `"cpus": "0-4294967295"` made check_resources list 2^32 numbers (16 GiB) before
    /// comparing them with the host's, and abort on the allocation.
    #[test]
    fn huge_cpu_range_is_refused_without_listing_it() {
        let res: crate::spec::LinuxResources =
            serde_json::from_str(r#"{"cpu": {"cpus": "0-4294967295", "mems": "0-4294967295"}}"#).unwrap();
        let e = check_resources(&res).unwrap_err().to_string();
        assert!(e.contains("linux.resources.cpu.cpus = \"0-4294967295\": outside the host's online set"), "{e}");
    }
}
