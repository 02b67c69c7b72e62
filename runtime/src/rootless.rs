//! Rootless: capsa run by an unprivileged user (runc's `--rootless true|false|auto`).
//! `auto` (the default) means rootless when the effective uid is not 0, or when capsa
//! runs in a user namespace (as root there: podman's rootless mode runs the runtime so,
//! and runc reads it the same way). A rootless
//! container gets cgroups only where the kernel lets the user have them: a cgroup2
//! subtree delegated to it (writable); on v1 and hybrid hosts, or without delegation,
//! resource limits are skipped with one warning, as runc does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use crate::cgroups::{HostMode, Manager};

static MODE: AtomicU8 = AtomicU8::new(0); // 0 auto, 1 true, 2 false

/// `--rootless VALUE`: true, false or auto.
pub fn set(value: &str) -> Result<(), String> {
    let m = match value {
        "auto" | "" => 0,
        "true" => 1,
        "false" => 2,
        v => return Err(format!("--rootless {v:?}: expected true, false or auto")),
    };
    MODE.store(m, Relaxed);
    Ok(())
}

/// Whether this capsa runs rootless.
pub fn enabled() -> bool {
    match MODE.load(Relaxed) {
        1 => true,
        2 => false,
        // SAFETY: geteuid cannot fail.
        _ => (unsafe { libc::geteuid() }) != 0 || in_user_namespace(),
    }
}

/// Whether this process runs in a user namespace other than the initial one (whose
/// uid map is the identity over every id).
pub fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(m) => m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"],
        Err(_) => false,
    })
}

/// The default state root: /run/capsa for root; `$XDG_RUNTIME_DIR/capsa` rootless
/// (runc's choice), else `/tmp/capsa-<uid>`.
pub fn default_root() -> PathBuf {
    if !enabled() {
        return PathBuf::from("/run/capsa");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => Path::new(&d).join("capsa"),
        // SAFETY: geteuid cannot fail.
        None => PathBuf::from(format!("/tmp/capsa-{}", unsafe { libc::geteuid() })),
    }
}

/// Whether the cgroup a rootless container would get is the user's to make: a cgroup2
/// host, and the deepest existing directory on the way to it writable by us.
pub fn cgroup_delegated(mgr: &Manager) -> bool {
    if mgr.mode() != HostMode::Unified {
        return false;
    }
    let Some(dir) = mgr.paths().into_iter().map(|(_, p)| p).next() else { return false };
    let mut p: &Path = &dir;
    loop {
        if p.exists() {
            let c = match std::ffi::CString::new(p.join("cgroup.procs").as_os_str().as_encoded_bytes()) {
                Ok(c) => c,
                Err(_) => return false,
            };
            // SAFETY: access(2) on a valid C string.
            return unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0;
        }
        match p.parent() {
            Some(up) => p = up,
            None => return false,
        }
    }
}

/// Why a rootless container gets no cgroup here, in one line (the warning).
pub fn why_no_cgroup(mgr: &Manager) -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    match mgr.mode() {
        HostMode::Unified => format!(
            "rootless: no cgroup2 subtree is delegated to uid {uid} for this container (its path is not writable); \
             resource limits are skipped"
        ),
        _ => format!(
            "rootless: cgroup v1 (or a v1/v2 hybrid) cannot be delegated to uid {uid}; resource limits are skipped"
        ),
    }
}
