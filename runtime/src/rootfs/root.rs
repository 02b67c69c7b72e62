//! Switching into the container's root: pivot_root, `--no-pivot` (move + chroot), or a
//! plain chroot when the container shares the runtime's mount namespace; and the
//! propagation of the rootfs's parent mount, which pivot_root and the rootfs bind
//! depend on.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

use crate::sys::{check, cstr, mount, SysError, SysResult};

/// Make the mount holding `rootfs` (the rootfs itself if it is a mount point, else the
/// nearest mount above it) private, or a slave when `root_prop` asks for slave, before
/// the rootfs is bound onto itself, as runc does: pivot_root fails with EINVAL when the
/// new root or its parent is shared (`rootfsPropagation: "shared"`), a bind below an
/// unbindable mount fails (`"unbindable"`), and a bind below a shared mount would
/// propagate to the host.
pub fn prepare_parent(rootfs: &Path, root_prop: libc::c_ulong) -> SysResult<()> {
    let flag = if root_prop & libc::MS_SLAVE != 0 { libc::MS_SLAVE } else { libc::MS_PRIVATE };
    let mut p: &Path = rootfs;
    loop {
        let c = cstr(p)?;
        match mount(None, &c, None, flag, None, || {
            format!("set propagation {flag:#x} on {} (the mount holding the rootfs)", p.display())
        }) {
            Ok(()) => return Ok(()),
            // EINVAL: not a mount point; try the directory above.
            Err(e) if e.errno == libc::EINVAL && p.parent().is_some() => p = p.parent().expect("checked"),
            Err(e) => return Err(e),
        }
    }
}

/// pivot_root(2) into the rootfs and detach the old root, the way runc does it
/// (pivot_root(".", ".") needs no put_old directory inside the container).
pub fn pivot_root(rootfs: &Path) -> SysResult<()> {
    let old = crate::sys::open(Path::new("/"), libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
    let new = crate::sys::open(rootfs, libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
    // SAFETY: fchdir/pivot_root/umount2/chdir take fds and static C strings only.
    unsafe {
        check(libc::fchdir(new.as_raw_fd()), || format!("chdir {}", rootfs.display()))?;
        check(libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as i32, || {
            format!("pivot_root to {}", rootfs.display())
        })
        .map_err(|e| e.hint("pivot_root fails on a rootfs in a ramfs/initramfs; use --no-pivot there"))?;
        crate::explain::step(crate::explain::Kind::Root, || {
            crate::explain::Step::new(
                format!(
                    "pivot_root: {} becomes / of this mount namespace; the old root is stacked under it",
                    rootfs.display()
                ),
                format!("chdir({:?}); pivot_root(\".\", \".\")", rootfs.display().to_string()),
            )
            .field("new_root", rootfs.display().to_string())
        });
        check(libc::fchdir(old.as_raw_fd()), || "chdir to the old root".into())?;
        mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None, || {
            "make the old root a slave (so unmounting it does not reach the host)".into()
        })?;
        check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH), || "unmount the old root".into())?;
        crate::explain::step(crate::explain::Kind::Root, || {
            crate::explain::Step::new(
                "detach the old root: from here no path leads to the host's files",
                "umount2(\".\", MNT_DETACH); chdir(\"/\")",
            )
        });
        check(libc::chdir(c"/".as_ptr()), || "chdir / in the new root".into())?;
    }
    Ok(())
}

/// `--no-pivot`: move the rootfs mount over / and chroot (for ramfs roots). The old
/// root stays in the mount namespace, out of reach of paths but not of the kernel's
/// "is a full procfs/sysfs already visible?" check, which would let a nested user
/// namespace mount a fresh /proc or /sys. So, as runc does, every full proc and sysfs
/// mount outside the rootfs is detached first (or covered by a tmpfs if it cannot be).
pub fn move_root(rootfs: &Path) -> SysResult<()> {
    hide_host_proc_sys(rootfs)?;
    let c = cstr(rootfs)?;
    // SAFETY: plain syscalls on valid C strings.
    unsafe {
        check(libc::chdir(c.as_ptr()), || format!("chdir {}", rootfs.display()))?;
        mount(Some(&c), c"/", None, libc::MS_MOVE, None, || format!("move mount {} to /", rootfs.display()))?;
    }
    chroot_here()
}

/// A container without a mount namespace of its own: chroot into the rootfs (runc).
pub fn chroot_into(rootfs: &Path) -> SysResult<()> {
    let c = cstr(rootfs)?;
    // SAFETY: chdir on a valid C string.
    check(unsafe { libc::chdir(c.as_ptr()) }, || format!("chdir {}", rootfs.display()))?;
    chroot_here()
}

fn chroot_here() -> SysResult<()> {
    // SAFETY: chroot/chdir on static C strings.
    unsafe {
        check(libc::chroot(c".".as_ptr()), || "chroot .".into())?;
        check(libc::chdir(c"/".as_ptr()), || "chdir /".into())?;
        crate::explain::step(crate::explain::Kind::Root, || {
            crate::explain::Step::new(
                "chroot into the rootfs (no pivot_root: the old root stays in the mount namespace)",
                "chroot(\".\"); chdir(\"/\")",
            )
        });
    }
    Ok(())
}

fn hide_host_proc_sys(rootfs: &Path) -> SysResult<()> {
    // Read through a handle taken now: /proc itself is among the mounts detached.
    let proc_self = crate::sys::open(Path::new("/proc/self"), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let mountinfo = || {
        // SAFETY: openat of a static name relative to our directory fd.
        let fd =
            unsafe { libc::openat(proc_self.as_raw_fd(), c"mountinfo".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        let fd = check(fd, || "open /proc/self/mountinfo".into())?;
        // SAFETY: a fresh fd from the kernel, owned by the File from now on.
        let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
        let mut text = String::new();
        f.read_to_string(&mut text).map_err(|e| SysError::io("read /proc/self/mountinfo", &e))?;
        Ok(text)
    };
    for (id, p) in full_proc_sys_mounts(&mountinfo()?, rootfs) {
        hide(id, &p, &mountinfo)?;
    }
    Ok(())
}

/// Detach mount `id` at `p`. Another mount may cover it at the same mount point, and
/// a path only reaches the top one: detach from the top until `id` is gone (each made
/// a slave first, so the unmount does not reach the host's copy), or cover the path
/// with a tmpfs where a mount cannot be detached.
fn hide(id: u64, p: &Path, mountinfo: &dyn Fn() -> SysResult<String>) -> SysResult<()> {
    let c = cstr(p)?;
    let shown = p.display();
    for _ in 0..16 {
        // A parent detached earlier may have taken it along.
        if !crate::mountinfo::parse(&mountinfo()?).any(|m| m.id == id) {
            return Ok(());
        }
        match mount(None, &c, None, libc::MS_SLAVE | libc::MS_REC, None, || {
            format!("make {shown} a slave before detaching it (--no-pivot)")
        }) {
            Err(e) if e.errno == libc::ENOENT => return Ok(()),
            r => r?,
        }
        // SAFETY: umount2 on a valid C string.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            tracing::debug!("--no-pivot: detached the top mount at {shown} from the container's mount namespace");
            continue;
        }
        let e = SysError::last(format!("detach {shown} (--no-pivot)"));
        if e.errno != libc::EINVAL && e.errno != libc::EPERM {
            return Err(e);
        }
        return mount(Some(c"tmpfs"), &c, Some(c"tmpfs"), 0, None, || {
            format!("cover {shown} with a tmpfs (--no-pivot)")
        });
    }
    Err(SysError::from_errno(
        format!("detach mount {id} at {shown} (--no-pivot): still there after 16 unmounts"),
        libc::EBUSY,
    ))
}

/// Ids and mount points of whole (root "/") proc and sysfs mounts that are not inside
/// `rootfs`, from the text of /proc/self/mountinfo.
fn full_proc_sys_mounts(mountinfo: &str, rootfs: &Path) -> Vec<(u64, PathBuf)> {
    crate::mountinfo::parse(mountinfo)
        .filter(|m| {
            m.root == Path::new("/") && matches!(m.fstype, "proc" | "sysfs") && !m.mount_point.starts_with(rootfs)
        })
        .map(|m| (m.id, m.mount_point))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_full_proc_and_sysfs_outside_the_rootfs() {
        let mi = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                  23 27 0:22 / /sys rw,relatime - sysfs sysfs rw\n\
                  24 27 0:6 / /dev rw - devtmpfs devtmpfs rw\n\
                  90 23 0:22 /kernel /mnt/k rw - sysfs sysfs rw\n\
                  91 27 0:50 / /b/rootfs/proc rw - proc proc rw\n\
                  92 27 0:51 / /b/rootfs2/proc rw - proc proc rw\n\
                  93 27 0:52 / /my\\040proc rw shared:1 - proc proc rw\n";
        let got = full_proc_sys_mounts(mi, Path::new("/b/rootfs"));
        let want: Vec<(u64, PathBuf)> =
            [(22, "/proc"), (23, "/sys"), (92, "/b/rootfs2/proc"), (93, "/my proc")].map(|(i, p)| (i, p.into())).into();
        assert_eq!(got, want);
    }
}
