//! capsa-explain: `--explain`, a numbered narration of every request capsa makes of
//! the kernel to set a container up (namespaces, id maps, cgroup files, mounts, pivot_root, devices,
//! capabilities, seccomp, rlimits, hooks, the final execve), in plain words plus the
//! exact call, on stderr (`text`) or as JSON lines (`json`) for tools.
//!
//! It only observes: no call is made, skipped or reordered because of it. Off (the
//! default), each narration point costs one relaxed atomic load: the text is built
//! only when it is on. The steps of the runtime and of the container's init (a
//! cloned child, which keeps this module's statics) share one counter in a
//! `MAP_SHARED` page, so the numbers follow the order in which the calls were made
//! across both processes. Each step is one write(2) of the whole record (atomic on a
//! pipe up to PIPE_BUF), to an fd that is close-on-exec: the container's program
//! never inherits it.

use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{
    AtomicI32, AtomicPtr, AtomicU32, AtomicU8,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// How the narration is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Numbered lines for people.
    Text,
    /// One JSON object per step.
    Json,
}

impl Mode {
    /// `text` or `json` (an empty value means text).
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "" | "text" => Some(Mode::Text),
            "json" => Some(Mode::Json),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Text => "text",
            Mode::Json => "json",
        }
    }
}

/// What a step is about (the `kind` of a JSON record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Namespace,
    IdMap,
    Cgroup,
    Mount,
    Root,
    Device,
    Name,
    Sysctl,
    Rlimit,
    Capabilities,
    Seccomp,
    Credentials,
    Hook,
    Process,
    Network,
}

impl Kind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::IdMap => "idmap",
            Kind::Cgroup => "cgroup",
            Kind::Mount => "mount",
            Kind::Root => "root",
            Kind::Device => "device",
            Kind::Name => "hostname",
            Kind::Sysctl => "sysctl",
            Kind::Rlimit => "rlimit",
            Kind::Capabilities => "capabilities",
            Kind::Seccomp => "seccomp",
            Kind::Credentials => "credentials",
            Kind::Hook => "hook",
            Kind::Process => "process",
            Kind::Network => "network",
        }
    }
}

/// One narrated request: what it means, the exact call, and fields for tools.
pub struct Step {
    what: String,
    call: String,
    fields: Map<String, Value>,
}

impl Step {
    /// A step: `what` in plain words, `call` as the kernel sees it.
    pub fn new(what: impl Into<String>, call: impl Into<String>) -> Step {
        Step { what: what.into(), call: call.into(), fields: Map::new() }
    }

    /// A field of the JSON record (for tools and tests).
    pub fn field(mut self, key: &str, v: impl Into<Value>) -> Step {
        self.fields.insert(key.to_string(), v.into());
        self
    }
}

static MODE: AtomicU8 = AtomicU8::new(0);
static FD: AtomicI32 = AtomicI32::new(-1);
static COUNTER: AtomicPtr<AtomicU32> = AtomicPtr::new(std::ptr::null_mut());
static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
static CONTAINER: OnceLock<String> = OnceLock::new();

/// The environment variable through which a caller (capsa-image for `run -d` and
/// pods, the shim, the CRI daemon) asks the runtime it spawns to explain:
/// `text`, `json`, or `MODE:PATH` to append to the file PATH instead of stderr.
pub const ENV: &str = "CAPSA_EXPLAIN";

/// Is the narration on? (One relaxed load: the cost of `--explain` when off.)
#[inline]
pub fn on() -> bool {
    MODE.load(Relaxed) != 0
}

/// The mode, when on.
pub fn mode() -> Option<Mode> {
    match MODE.load(Relaxed) {
        1 => Some(Mode::Text),
        2 => Some(Mode::Json),
        _ => None,
    }
}

/// Turn the narration on, writing to a close-on-exec duplicate of `fd`.
pub fn enable(mode: Mode, fd: RawFd) -> std::io::Result<()> {
    // High, out of the way of `--preserve-fds` ranges (which must be open already:
    // a low duplicate could fill a gap in one); 3 up where RLIMIT_NOFILE is lower.
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on an fd number; the result is checked.
    let mut dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 512) };
    if dup < 0 {
        // SAFETY: as above.
        dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    }
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if COUNTER.load(Relaxed).is_null() {
        // SAFETY: an anonymous shared mapping of one page; checked for MAP_FAILED. It
        // is never unmapped (it lives as long as the process, and its clones share it).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            COUNTER.store(p.cast::<AtomicU32>(), Relaxed);
        }
    }
    let old = FD.swap(dup, Relaxed);
    if old >= 0 {
        // SAFETY: closing the duplicate we made earlier.
        unsafe { libc::close(old) };
    }
    MODE.store(if mode == Mode::Json { 2 } else { 1 }, Relaxed);
    Ok(())
}

/// Turn the narration on from [`ENV`] (`text`, `json`, `MODE:PATH`). Returns an
/// error naming the value when it cannot be honoured.
pub fn enable_from_env() -> Result<(), String> {
    let Ok(v) = std::env::var(ENV) else { return Ok(()) };
    if v.is_empty() {
        return Ok(());
    }
    let (m, path) = v.split_once(':').map_or((v.as_str(), None), |(m, p)| (m, Some(p)));
    let mode = Mode::parse(m).ok_or_else(|| format!("{ENV}={v:?}: the mode is not text or json"))?;
    match path {
        None => enable(mode, 2).map_err(|e| format!("{ENV}: {e}")),
        Some(p) => {
            // `PATH@DEV:INO`: the file the caller meant (its own fd, reopened through
            // /proc/PID/fd/N); anything else there (the caller gone and its pid reused)
            // is refused.
            let (p, want) = match p.rsplit_once('@') {
                Some((p, id)) => (p, id.split_once(':').and_then(|(d, i)| Some((d.parse().ok()?, i.parse().ok()?)))),
                None => (p, None),
            };
            use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
            let f = std::fs::OpenOptions::new()
                .append(true)
                .create(want.is_none())
                .mode(0o600)
                .custom_flags(libc::O_NOCTTY)
                .open(p)
                .map_err(|e| format!("{ENV}: open {p}: {e}"))?;
            if let Some((dev, ino)) = want {
                let m = f.metadata().map_err(|e| format!("{ENV}: {p}: {e}"))?;
                if (m.dev(), m.ino()) != (dev, ino) {
                    return Err(format!("{ENV}: {p} is no longer the caller's narration (it is gone)"));
                }
            }
            use std::os::fd::AsRawFd;
            enable(mode, f.as_raw_fd()).map_err(|e| format!("{ENV}: {e}"))
        }
    }
}

/// The value of [`ENV`] that makes a spawned capsa narrate where this one does: the
/// mode and, as a path, this process's own narration fd (`/proc/PID/fd/N`, which
/// reopens the same terminal, pipe or file), valid while this process lives.
pub fn env_for_children() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mode = mode()?;
    let fd = FD.load(Relaxed);
    let path = format!("/proc/{}/fd/{fd}", std::process::id());
    let m = std::fs::metadata(&path).ok()?;
    Some(format!("{}:{path}@{}:{}", mode.name(), m.dev(), m.ino()))
}

/// The narration's fd, or -1 (so `--preserve-fds` never hands it to a container).
pub fn fd() -> RawFd {
    if on() {
        FD.load(Relaxed)
    } else {
        -1
    }
}

/// Stop narrating in this process (the init, before it loads its seccomp filter:
/// from there a write could be refused, logged or sent to a notify agent as if the
/// container made it). The steps still to come are narrated before that.
pub fn seal() {
    MODE.store(0, Relaxed);
}

/// The container the steps are about (a `container` field of every JSON record:
/// records of several runtimes may share one file, e.g. capsa-cri's).
pub fn set_container(id: &str) {
    let _ = CONTAINER.set(id.to_string());
}

/// The container's rootfs (host path), so mount targets can also be named as the
/// container will see them.
pub fn set_rootfs(p: &Path) {
    let _ = ROOTFS.set(p.to_path_buf());
}

/// Narrate a step. `f` runs only when the narration is on.
#[inline]
pub fn step(kind: Kind, f: impl FnOnce() -> Step) {
    if on() {
        emit(kind, f());
    }
}

fn next_number() -> u32 {
    let p = COUNTER.load(Relaxed);
    if p.is_null() {
        return 0;
    }
    // SAFETY: p points into our shared page (see `enable`), aligned and live.
    unsafe { (*p).fetch_add(1, Relaxed) + 1 }
}

/// Text for one line of a terminal or log: control characters (a container's cwd,
/// sysctl or device path could hold a newline or an escape sequence) are escaped.
fn clean(t: &str) -> String {
    if !t.chars().any(char::is_control) {
        return t.to_string();
    }
    t.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cold]
fn emit(kind: Kind, s: Step) {
    let shared = COUNTER.load(Relaxed);
    let _lock = Lock::take(shared);
    let n = next_number();
    let line = match mode() {
        Some(Mode::Json) => {
            let mut o = Map::new();
            o.insert("step".into(), n.into());
            o.insert("kind".into(), kind.name().into());
            o.insert("what".into(), s.what.into());
            o.insert("call".into(), s.call.into());
            if let Some(c) = CONTAINER.get() {
                o.insert("container".into(), c.as_str().into());
            }
            o.extend(s.fields);
            let mut l = Value::Object(o).to_string();
            l.push('\n');
            l
        }
        _ => {
            let mut l = format!("{n:>3}. [{}] {}\n", kind.name(), clean(&s.what));
            if !s.call.is_empty() {
                let _ = writeln!(l, "       {}", clean(&s.call));
            }
            l
        }
    };
    write_all_quietly(FD.load(Relaxed), line.as_bytes());
}

/// Write the whole record, retrying short writes and EINTR, with SIGPIPE and SIGXFSZ
/// blocked (the init runs with default handlers: a closed pipe or a narration file
/// over the container's RLIMIT_FSIZE must not kill it) and any such signal the write
/// raised consumed before they are unblocked. Failures are ignored: the narration
/// never changes what capsa does.
fn write_all_quietly(fd: RawFd, mut b: &[u8]) {
    // SAFETY: sigset operations on local sets; sigprocmask/sigtimedwait with valid
    // pointers; write(2) of a live buffer to our own fd.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::sigaddset(&mut set, libc::SIGXFSZ);
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
        while !b.is_empty() {
            let r = libc::write(fd, b.as_ptr().cast(), b.len());
            if r > 0 {
                b = &b[r as usize..];
            } else if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            } else {
                break;
            }
        }
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        while libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) > 0 {}
        libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

/// A spin lock in the shared page (its second word): the runtime and its init number
/// and write their steps one at a time, so the numbers come out in order.
struct Lock(*const AtomicU32);

impl Lock {
    fn take(shared: *mut AtomicU32) -> Option<Lock> {
        if shared.is_null() {
            return None;
        }
        // SAFETY: the page holds at least two aligned u32 words (see `enable`).
        let word = unsafe { &*shared.add(1) };
        let mut spins = 0u32;
        while word.compare_exchange(0, 1, Acquire, Relaxed).is_err() {
            spins += 1;
            if spins > 100_000 {
                // A narrator died holding it (killed mid-write): go on unlocked.
                return None;
            }
            std::thread::yield_now();
        }
        Some(Lock(word))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: the word we locked, in the live shared page.
        unsafe { (*self.0).store(0, Release) };
    }
}

/// The path a `/proc/self/fd/N` target stands for, and the container's view of
/// it (the part under the rootfs), for mount narration.
pub fn target_paths(target: &str) -> (String, Option<String>) {
    let host = match target.strip_prefix("/proc/self/fd/") {
        Some(_) => std::fs::read_link(target).map(|p| p.display().to_string()).unwrap_or_else(|_| target.into()),
        None => target.to_string(),
    };
    let inside = match ROOTFS.get() {
        Some(r) => Path::new(&host).strip_prefix(r).ok().map(|rest| format!("/{}", rest.display())),
        // After pivot_root the host path *is* the container's.
        None => None,
    };
    (host, inside)
}

/// `MS_BIND|MS_REC|...` for mount(2) flags.
pub fn mount_flags(flags: libc::c_ulong) -> String {
    const NAMES: &[(libc::c_ulong, &str)] = &[
        (libc::MS_RDONLY, "MS_RDONLY"),
        (libc::MS_NOSUID, "MS_NOSUID"),
        (libc::MS_NODEV, "MS_NODEV"),
        (libc::MS_NOEXEC, "MS_NOEXEC"),
        (libc::MS_SYNCHRONOUS, "MS_SYNCHRONOUS"),
        (libc::MS_REMOUNT, "MS_REMOUNT"),
        (libc::MS_MANDLOCK, "MS_MANDLOCK"),
        (libc::MS_DIRSYNC, "MS_DIRSYNC"),
        (libc::MS_NOATIME, "MS_NOATIME"),
        (libc::MS_NODIRATIME, "MS_NODIRATIME"),
        (libc::MS_BIND, "MS_BIND"),
        (libc::MS_MOVE, "MS_MOVE"),
        (libc::MS_REC, "MS_REC"),
        (libc::MS_SILENT, "MS_SILENT"),
        (libc::MS_UNBINDABLE, "MS_UNBINDABLE"),
        (libc::MS_PRIVATE, "MS_PRIVATE"),
        (libc::MS_SLAVE, "MS_SLAVE"),
        (libc::MS_SHARED, "MS_SHARED"),
        (libc::MS_RELATIME, "MS_RELATIME"),
        (libc::MS_STRICTATIME, "MS_STRICTATIME"),
    ];
    let names: Vec<&str> = NAMES.iter().filter(|(f, _)| flags & f != 0).map(|(_, n)| *n).collect();
    if names.is_empty() {
        "0".into()
    } else {
        names.join("|")
    }
}

/// `CLONE_NEWNS|CLONE_NEWUTS|...` and the `/proc/PID/ns` names of a set of flags.
pub fn clone_flags(flags: libc::c_int) -> (String, Vec<&'static str>) {
    const NAMES: &[(libc::c_int, &str, &str)] = &[
        (libc::CLONE_NEWUSER, "CLONE_NEWUSER", "user"),
        (libc::CLONE_NEWPID, "CLONE_NEWPID", "pid"),
        (libc::CLONE_NEWNS, "CLONE_NEWNS", "mnt"),
        (libc::CLONE_NEWNET, "CLONE_NEWNET", "net"),
        (libc::CLONE_NEWIPC, "CLONE_NEWIPC", "ipc"),
        (libc::CLONE_NEWUTS, "CLONE_NEWUTS", "uts"),
        (libc::CLONE_NEWCGROUP, "CLONE_NEWCGROUP", "cgroup"),
        (0x80, "CLONE_NEWTIME", "time"),
    ];
    let hit: Vec<_> = NAMES.iter().filter(|(f, _, _)| flags & f != 0).collect();
    (hit.iter().map(|(_, c, _)| *c).collect::<Vec<_>>().join("|"), hit.iter().map(|(_, _, n)| *n).collect())
}

/// What a namespace kind isolates, in plain words.
pub fn ns_meaning(ns: &str) -> &'static str {
    match ns {
        "user" => "its own uids and gids (root inside need not be root outside)",
        "pid" => "its own process numbers (the first process is PID 1)",
        "mnt" => "its own mount table (what it mounts, the host does not see)",
        "net" => "its own network stack (interfaces, routes, ports; only lo)",
        "ipc" => "its own System V IPC and POSIX message queues",
        "uts" => "its own hostname and domain name",
        "cgroup" => "its own view of the cgroup tree (its cgroup looks like the root)",
        "time" => "its own boot and monotonic clocks",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(mount_flags(libc::MS_BIND | libc::MS_REC), "MS_BIND|MS_REC");
        assert_eq!(mount_flags(0), "0");
        let (c, n) = clone_flags(libc::CLONE_NEWNS | libc::CLONE_NEWUTS);
        assert_eq!(c, "CLONE_NEWNS|CLONE_NEWUTS");
        assert_eq!(n, ["mnt", "uts"]);
        assert_eq!(Mode::parse("json"), Some(Mode::Json));
        assert_eq!(Mode::parse("yaml"), None);
    }
}
