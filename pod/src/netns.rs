//! The pod's infra: its net, ipc and uts namespaces, pinned by bind mounts.
//!
//! capsa pins namespaces rather than keeping a holder ("pause") process: a pin
//! costs no memory, cannot be killed, survives every container and monitor of
//! the pod, and is a path that both the runtime (`linux.namespaces[].path`) and
//! the CNI plugins (`CNI_NETNS`) take directly. The pod's pid namespace is not
//! shared, so nothing needs a reaper at pid 1.
//!
//! How: a short-lived thread `unshare`s new net/ipc/uts namespaces (namespaces
//! belong to the thread, not the process), sets the hostname, brings `lo` up,
//! and bind-mounts `/proc/thread-self/ns/{net,ipc,uts}` onto files in the pod's
//! `ns/` directory. As `ip netns` does for /run/netns, `ns/` is first made a
//! shared mount of itself, so that removing a pin also removes it from mount
//! namespaces that copied it meanwhile.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{PodError, Result};

/// The namespace kinds a pod owns, as named in config.json and /proc/PID/ns.
pub const KINDS: [&str; 3] = ["net", "ipc", "uts"];

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

fn errno_err(what: std::fmt::Arguments<'_>) -> PodError {
    PodError::last_os_error(what)
}

/// Bind-mounts `src` (a `/proc/PID/ns/*` file) on `dst` (an existing empty file).
pub(crate) fn bind(src: &Path, dst: &Path) -> Result<()> {
    mount(src, dst, libc::MS_BIND)
}

fn mount(src: &Path, dst: &Path, flags: libc::c_ulong) -> Result<()> {
    let (s, d) = (cstr(src), cstr(dst));
    // SAFETY: both strings are valid NUL-terminated paths; no fstype/data.
    if unsafe { libc::mount(s.as_ptr(), d.as_ptr(), std::ptr::null(), flags, std::ptr::null()) } != 0 {
        return Err(errno_err(format_args!("mount {} on {} (flags {flags:#x})", src.display(), dst.display())));
    }
    capsa_runtime::explain::step(capsa_runtime::explain::Kind::Mount, || {
        let what = if src.starts_with("/proc/thread-self/ns") {
            "pin the pod's namespace: while this bind mount exists, the namespace lives on with no process in it"
                .to_string()
        } else {
            format!("bind {} onto itself (so it can be made a shared mount)", dst.display())
        };
        capsa_runtime::explain::Step::new(
            what,
            format!(
                "mount({:?}, {:?}, NULL, {}, NULL)",
                src.display().to_string(),
                dst.display().to_string(),
                capsa_runtime::explain::mount_flags(flags)
            ),
        )
        .field("source", src.display().to_string())
        .field("target", dst.display().to_string())
    });
    Ok(())
}

/// Whether `p` is a mount point (`/proc/self/mountinfo` lists it: a bind mount on
/// the same device counts too).
pub fn is_mount_point(p: &Path) -> bool {
    let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let target = p.to_string_lossy();
    mi.lines().any(|l| l.split(' ').nth(4) == Some(target.as_ref()))
}

/// Creates the pins in `dir` (made if missing): `dir/net`, `dir/ipc`, `dir/uts`
/// for the kinds in `kinds`. `hostname` is set in the new uts namespace, and
/// `lo` is brought up in the new net namespace. On error nothing is left pinned.
pub fn pin(dir: &Path, kinds: &[&str], hostname: &str) -> Result<()> {
    pin_with(dir, kinds, hostname, &[])
}

/// [`pin`], also writing `sysctls` (`net.ipv4.ip_unprivileged_port_start`, `kernel.shm_rmid_forced`,
/// ... as (name, value)) in the new namespaces before they are pinned: a namespaced sysctl
/// written from the pinning thread applies to that thread's namespaces.
pub fn pin_with(dir: &Path, kinds: &[&str], hostname: &str, sysctls: &[(String, String)]) -> Result<()> {
    for (k, _) in sysctls {
        check_sysctl(k, kinds)?;
    }
    std::fs::create_dir_all(dir).map_err(crate::error::io("create", dir))?;
    if !is_mount_point(dir) {
        mount(dir, dir, libc::MS_BIND)?;
    }
    let d = cstr(dir);
    // SAFETY: a propagation change on our own bind mount; `d` is a NUL-terminated path, no fstype/data.
    if unsafe { libc::mount(std::ptr::null(), d.as_ptr(), std::ptr::null(), libc::MS_SHARED, std::ptr::null()) } != 0 {
        let e = errno_err(format_args!("make {} a shared mount", dir.display()));
        unpin(dir);
        return Err(e);
    }
    let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
    let (dir2, host, sysctls) = (dir.to_path_buf(), hostname.to_owned(), sysctls.to_vec());
    let r = std::thread::spawn(move || pin_in_thread(&dir2, &kinds, &host, &sysctls))
        .join()
        .unwrap_or_else(|_| Err(PodError::msg("pin namespaces: the thread panicked")));
    if r.is_err() {
        unpin(dir);
    }
    r
}

/// A sysctl a pod may set: one that belongs to a namespace the pod pins (the host's
/// own settings are not the pod's to change).
fn check_sysctl(name: &str, kinds: &[&str]) -> Result<()> {
    let ok_chars = !name.is_empty()
        && name.split(['.', '/']).all(|p| !p.is_empty() && p != "..")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
    let ns = if name.starts_with("net.") {
        "net"
    } else if ["kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue."].iter().any(|p| name.starts_with(p)) {
        "ipc"
    } else if name == "kernel.hostname" || name == "kernel.domainname" {
        "uts"
    } else {
        ""
    };
    if !ok_chars || ns.is_empty() {
        return Err(PodError::invalid(format!(
            "sysctl {name:?} is not namespaced (only net.*, kernel.shm*/msg*/sem, fs.mqueue.*, kernel.hostname/domainname)"
        )));
    }
    if !kinds.contains(&ns) {
        return Err(PodError::invalid(format!(
            "sysctl {name:?} belongs to the {ns} namespace, which this pod shares with the host"
        )));
    }
    Ok(())
}

/// Writes `value` to `/proc/sys/<name>` (dots become slashes), in this thread's namespaces.
fn write_sysctl(name: &str, value: &str) -> Result<()> {
    let p = PathBuf::from("/proc/sys").join(name.replace('.', "/"));
    std::fs::write(&p, value.as_bytes()).map_err(crate::error::io("write sysctl", &p))
}

fn pin_in_thread(dir: &Path, kinds: &[String], hostname: &str, sysctls: &[(String, String)]) -> Result<()> {
    let mut flags = 0;
    for k in kinds {
        flags |= match k.as_str() {
            "net" => libc::CLONE_NEWNET,
            "ipc" => libc::CLONE_NEWIPC,
            "uts" => libc::CLONE_NEWUTS,
            other => return Err(PodError::msg(format!("pin namespaces: unknown kind {other:?}"))),
        };
    }
    tracing::debug!("unshare(net/ipc/uts flags {flags:#x}) in a pinning thread for {}", dir.display());
    // SAFETY: unshare of net/ipc/uts changes only this thread's namespaces; the
    // thread ends right after pinning them.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(errno_err(format_args!("unshare the pod's namespaces")));
    }
    capsa_runtime::explain::step(capsa_runtime::explain::Kind::Namespace, || {
        let (call, names) = capsa_runtime::explain::clone_flags(flags);
        capsa_runtime::explain::Step::new(
            format!(
                "the pod's own namespaces, made by a short-lived thread: {}; every container of the pod joins them",
                names
                    .iter()
                    .map(|n| format!("{n}: {}", capsa_runtime::explain::ns_meaning(n)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            format!("unshare({call})"),
        )
        .field("created", names)
    });
    if kinds.iter().any(|k| k == "uts") {
        // SAFETY: pointer/length of a live byte slice.
        if unsafe { libc::sethostname(hostname.as_ptr().cast(), hostname.len()) } != 0 {
            return Err(errno_err(format_args!("sethostname {hostname:?} in the pod's uts namespace")));
        }
        capsa_runtime::explain::step(capsa_runtime::explain::Kind::Name, || {
            capsa_runtime::explain::Step::new(
                format!("the pod's hostname {hostname:?}, shared by its containers"),
                format!("sethostname({hostname:?}, {})", hostname.len()),
            )
        });
    }
    if kinds.iter().any(|k| k == "net") {
        loopback_up()?;
    }
    for (k, v) in sysctls {
        tracing::debug!("sysctl {k}={v} in the pod's namespaces");
        write_sysctl(k, v)?;
    }
    for k in kinds {
        let pin = dir.join(k);
        std::fs::write(&pin, b"").map_err(crate::error::io("create", &pin))?;
        tracing::debug!("pin /proc/thread-self/ns/{k} on {}", pin.display());
        mount(&PathBuf::from(format!("/proc/thread-self/ns/{k}")), &pin, libc::MS_BIND)?;
    }
    Ok(())
}

/// `ip link set lo up` in the calling thread's network namespace.
fn loopback_up() -> Result<()> {
    // SAFETY: plain socket creation; the fd is closed below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(errno_err(format_args!("socket for SIOCSIFFLAGS")));
    }
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        ifr.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    let r = unsafe {
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            -1
        } else {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr)
        }
    };
    let err = (r != 0).then(|| errno_err(format_args!("bring lo up (SIOCSIFFLAGS) in the pod's network namespace")));
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(s) };
    err.map_or(Ok(()), Err)
}

/// Removes the pins in `dir` and the shared bind mount of `dir` itself; missing is fine.
pub fn unpin(dir: &Path) {
    for k in KINDS.iter().chain(&["pid"]) {
        let p = dir.join(k);
        let c = cstr(&p);
        // SAFETY: umount2 of a path string we own.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_file(&p);
    }
    if is_mount_point(dir) {
        let c = cstr(dir);
        // SAFETY: as above.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Whether `dir/kind` is a live pin (an nsfs bind mount).
pub fn is_pinned(dir: &Path, kind: &str) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    let c = cstr(&dir.join(kind));
    // SAFETY: statfs is plain C data: all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a live struct we own for statfs to fill.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == NSFS_MAGIC }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_must_be_the_pods() {
        let all = ["net", "ipc", "uts"];
        assert!(check_sysctl("net.ipv4.ip_forward", &all).is_ok());
        assert!(check_sysctl("kernel.shm_rmid_forced", &all).is_ok());
        assert!(check_sysctl("fs.mqueue.msg_max", &all).is_ok());
        assert!(check_sysctl("net.ipv4.ip_forward", &["ipc", "uts"]).is_err());
        for bad in ["vm.swappiness", "kernel.panic", "net/../../x", "", "net..x"] {
            assert!(check_sysctl(bad, &all).is_err(), "{bad}");
        }
    }
}
