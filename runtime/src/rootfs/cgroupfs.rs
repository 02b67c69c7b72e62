//! The `cgroup` mount type: showing the container its own cgroups at /sys/fs/cgroup.
//!
//! Mirrors the host's layout (v1 hierarchies and the cgroup2 mount of a hybrid host,
//! or a single cgroup2 on a unified host). Inside a cgroup namespace each hierarchy is
//! mounted afresh (its root is the namespace root); without one, the container's own
//! cgroup directories are bind-mounted, as runc does.

use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use super::options;
use super::paths::{mkdir_all_in_root, rel};
use crate::spec::Mount;
use crate::sys::{cstr, fd_path, mount, SysError, SysResult};

struct CgMount {
    mountpoint: PathBuf,
    fstype: String,
    superopts: String,
    root: String,
}

fn host_cgroup_mounts() -> SysResult<Vec<CgMount>> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| SysError::io("read /proc/self/mountinfo", &e))?;
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        if post[0] == "cgroup" || post[0] == "cgroup2" {
            out.push(CgMount {
                mountpoint: PathBuf::from(pre[4]),
                fstype: post[0].into(),
                superopts: post[2].into(),
                root: pre[3].into(),
            });
        }
    }
    Ok(out)
}

/// Our own cgroup path in the hierarchy with these controllers (v1) or the v2 one.
fn own_path(cg_text: &str, m: &CgMount) -> Option<String> {
    for line in cg_text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        let hit = if m.fstype == "cgroup2" {
            ctrls.is_empty()
        } else {
            !ctrls.is_empty() && ctrls.split(',').all(|c| m.superopts.split(',').any(|o| o == c))
        };
        if hit {
            let p = path.strip_prefix(m.root.as_str()).unwrap_or(path);
            return Some(p.trim_start_matches('/').to_string());
        }
    }
    None
}

/// Mount the container's cgroups at `m.destination`. `cgroupns`: a new cgroup namespace.
pub fn mount_cgroups(root: RawFd, m: &Mount, cgroupns: bool) -> SysResult<()> {
    let o = options::parse(&m.options);
    let flags = o.flags & (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RELATIME);
    let dest = rel(&m.destination);
    let shown = Path::new("/").join(&dest);
    let mounts = host_cgroup_mounts()?;
    let cg_text =
        std::fs::read_to_string("/proc/self/cgroup").map_err(|e| SysError::io("read /proc/self/cgroup", &e))?;

    // Unified host: a single cgroup2 at /sys/fs/cgroup.
    let unified = mounts.iter().find(|c| c.fstype == "cgroup2" && c.mountpoint == Path::new("/sys/fs/cgroup"));
    if let Some(u) = unified {
        return mount_one(root, u, &cg_text, &dest, flags, cgroupns);
    }

    // Legacy/hybrid: a tmpfs holding one directory per hierarchy.
    let t = mkdir_all_in_root(root, &dest)?;
    mount(
        Some(c"tmpfs"),
        &fd_path(t.as_raw_fd()),
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(c"mode=755"),
        || format!("mount tmpfs on {} (to hold the cgroup hierarchies)", shown.display()),
    )?;
    let base = mkdir_all_in_root(root, &dest)?;
    let host_base = Path::new("/sys/fs/cgroup");
    for cm in mounts.iter().filter(|c| c.mountpoint.parent() == Some(host_base)) {
        let name = cm.mountpoint.file_name().unwrap();
        let sub = dest.join(name);
        mount_one(root, cm, &cg_text, &sub, flags, cgroupns)?;
    }
    // The host's symlinks (cpu -> cpu,cpuacct, ...).
    if let Ok(rd) = std::fs::read_dir(host_base) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
                if let Ok(target) = std::fs::read_link(e.path()) {
                    let (n, t) = (cstr(e.file_name())?, cstr(&target)?);
                    // SAFETY: both strings are valid; the dir fd is ours.
                    unsafe { libc::symlinkat(t.as_ptr(), base.as_raw_fd(), n.as_ptr()) };
                }
            }
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        let t = mkdir_all_in_root(root, &dest)?;
        mount(
            None,
            &fd_path(t.as_raw_fd()),
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
            || format!("remount {} read-only", shown.display()),
        )?;
    }
    Ok(())
}

fn mount_one(
    root: RawFd,
    cm: &CgMount,
    cg_text: &str,
    dest: &Path,
    flags: libc::c_ulong,
    cgroupns: bool,
) -> SysResult<()> {
    let shown = Path::new("/").join(dest);
    let t = mkdir_all_in_root(root, dest)?;
    let target = &fd_path(t.as_raw_fd());
    if cgroupns {
        let fstype = cstr(&cm.fstype)?;
        let data = if cm.fstype == "cgroup" {
            let ctrls: Vec<&str> = cm
                .superopts
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("clone_children"))
                .collect();
            Some(cstr(ctrls.join(","))?)
        } else {
            None
        };
        mount(Some(c"cgroup"), target, Some(&fstype), flags, data.as_deref(), || {
            format!("mount {} ({}) on {}", cm.fstype, cm.superopts, shown.display())
        })
    } else {
        let own = own_path(cg_text, cm).unwrap_or_default();
        let src = cm.mountpoint.join(own);
        let csrc = cstr(&src)?;
        mount(Some(&csrc), target, None, libc::MS_BIND | libc::MS_REC, None, || {
            format!("bind mount {} on {}", src.display(), shown.display())
        })?;
        if flags != 0 {
            // Re-resolve: the fd above names the directory under the new mount.
            let t = super::paths::open_in_root(root, dest, libc::O_PATH)?;
            let target = &fd_path(t.as_raw_fd());
            mount(None, target, None, libc::MS_BIND | libc::MS_REMOUNT | flags, None, || {
                format!("remount {} with flags {flags:#x}", shown.display())
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_paths() {
        let text = "12:cpu,cpuacct:/capsa/x\n1:name=systemd:/capsa/x\n0::/capsa/x\n";
        let m = CgMount {
            mountpoint: "/sys/fs/cgroup/cpu,cpuacct".into(),
            fstype: "cgroup".into(),
            superopts: "rw,cpu,cpuacct".into(),
            root: "/".into(),
        };
        assert_eq!(own_path(text, &m).as_deref(), Some("capsa/x"));
        let u = CgMount {
            mountpoint: "/sys/fs/cgroup/unified".into(),
            fstype: "cgroup2".into(),
            superopts: "rw,nsdelegate".into(),
            root: "/".into(),
        };
        assert_eq!(own_path(text, &u).as_deref(), Some("capsa/x"));
    }
}
