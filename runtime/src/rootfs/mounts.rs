//! Mounting one `config.json` mount entry inside the rootfs.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::options::{self, MountOptions};
use super::paths::{create_file_in_root, fstat, lstat_in_root, mkdir_all_in_root, open_in_root, rel};
use crate::spec::Mount;
use crate::sys::{fd_path, mount, SysError, SysResult};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// Whether `m` is a bind mount (`type: bind`, or a `bind`/`rbind` option).
pub fn is_bind(m: &Mount) -> bool {
    m.typ.as_deref() == Some("bind") || m.options.iter().any(|o| o == "bind" || o == "rbind")
}

/// The host path a bind mount's source names (relative sources are in the bundle).
pub fn bind_source(m: &Mount, bundle: &Path) -> PathBuf {
    let s = m.source.as_deref().unwrap_or("");
    if Path::new(s).is_absolute() {
        PathBuf::from(s)
    } else {
        bundle.join(s)
    }
}

/// Mount `m` inside the rootfs whose fd is `root`. `bundle` anchors relative bind
/// sources; `opened` is the source already opened by the runtime (user namespaces:
/// see `sources`), an fd or the errno of its open. Returns true when the mount was
/// left writable to be populated and must be made read-only at the end (a read-only
/// /dev, as runc does).
pub fn mount_entry(root: RawFd, m: &Mount, bundle: &Path, opened: Option<Result<&OwnedFd, i32>>) -> SysResult<bool> {
    let o = options::parse(&m.options);
    let typ = m.typ.as_deref().unwrap_or(if o.bind { "bind" } else { "none" });
    let bind = o.bind || typ == "bind";
    let dest = rel(&m.destination);
    let shown = Path::new("/").join(&dest);
    // /dev is filled after it is mounted (devices, symlinks, the mount points of
    // /dev/pts, /dev/shm, /dev/mqueue): mount it writable, make it read-only last. Not
    // for a bind, which would write into the host's directory.
    let defer_ro = !bind && dest == Path::new("dev") && o.flags & libc::MS_RDONLY != 0;

    // /proc and /sys must be real directories: a symlink there could redirect the
    // mount onto the host (CVE-2019-16884, CVE-2023-27561).
    if matches!(typ, "proc" | "sysfs") {
        if let Some(st) = lstat_in_root(root, &dest)? {
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(SysError::from_errno(
                    format!(
                        "mount {typ} on {}: the target in the rootfs is not a directory (symlink?)",
                        shown.display()
                    ),
                    libc::EINVAL,
                )
                .hint("refusing: a symlink here could send the mount outside the container"));
            }
        }
    }

    let source: Option<PathBuf> = bind.then(|| bind_source(m, bundle));
    let mut source_is_dir = false;
    if let Some(p) = &source {
        let step = || format!("bind mount source {} for {}", p.display(), shown.display());
        match opened {
            Some(Ok(fd)) => source_is_dir = fstat(fd.as_raw_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR,
            Some(Err(errno)) => return Err(SysError::from_errno(step(), errno)),
            None => match std::fs::metadata(p) {
                Ok(md) => source_is_dir = md.is_dir(),
                Err(e) => return Err(SysError::io(step(), &e)),
            },
        }
    }

    let target =
        if bind && !source_is_dir { create_file_in_root(root, &dest)? } else { mkdir_all_in_root(root, &dest)? };
    let tpath = fd_path(target.as_raw_fd());
    let step = |what: &str| format!("{what} {} on {} ({typ})", source_name(m, &source), shown.display());

    if bind {
        let src = match opened {
            Some(Ok(fd)) => fd_path(fd.as_raw_fd()),
            _ => crate::sys::cstr(source.as_ref().unwrap())?,
        };
        let f = libc::MS_BIND | (o.flags & libc::MS_REC);
        mount(Some(&src), &tpath, None, f, None, || step("bind mount"))?;
        let remount_flags = o.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if remount_flags != 0 {
            let t = reopen(root, &dest)?;
            // A bind remount must keep the locked flags the source mount already has.
            let keep = statvfs_flags(t.as_raw_fd());
            let fl = libc::MS_BIND | libc::MS_REMOUNT | remount_flags | keep;
            mount(None, &fd_path(t.as_raw_fd()), None, fl, None, || step("remount"))?;
        }
    } else {
        let src = CString::new(m.source.clone().unwrap_or_else(|| typ.to_string())).unwrap_or_default();
        let fstype = CString::new(typ).unwrap_or_default();
        let data = CString::new(o.data.clone()).unwrap_or_default();
        let data = if o.data.is_empty() { None } else { Some(data.as_c_str()) };
        // For tmpcopyup, keep a handle on the image's directory before covering it.
        let below = if o.copyup && typ == "tmpfs" { Some(super::paths::listable_dir(&target)?) } else { None };
        let flags = if below.is_some() || defer_ro { o.flags & !libc::MS_RDONLY } else { o.flags };
        let r = mount(Some(&src), &tpath, Some(&fstype), flags, data, || step("mount"));
        match r {
            // In a user namespace the kernel may refuse a fresh sysfs (mount_too_revealing):
            // fall back to a recursive bind of the host's /sys, as runc does.
            Err(e) if e.errno == libc::EPERM && typ == "sysfs" => {
                tracing::debug!("{e}; binding the host's /sys instead");
                mount(Some(c"/sys"), &tpath, None, libc::MS_BIND | libc::MS_REC, None, || {
                    step("bind mount /sys (sysfs fallback)")
                })?;
                let t = reopen(root, &dest)?;
                let fl = libc::MS_BIND | libc::MS_REMOUNT | (o.flags & !libc::MS_REC) | statvfs_flags(t.as_raw_fd());
                mount(None, &fd_path(t.as_raw_fd()), None, fl, None, || step("remount /sys bind"))?;
                return finish(root, &dest, &o, &shown).map(|()| false);
            }
            r => r.map_err(|e| hint_for(e, typ))?,
        }
        if let Some(below) = below {
            let above = reopen(root, &dest)?;
            super::copy::copy_tree(below.as_raw_fd(), above.as_raw_fd())
                .map_err(|e| SysError { step: format!("tmpcopyup into {}: {}", shown.display(), e.step), ..e })?;
        }
        if flags != o.flags && !defer_ro {
            let t = reopen(root, &dest)?;
            mount(None, &fd_path(t.as_raw_fd()), None, libc::MS_REMOUNT | o.flags, data, || step("remount read-only"))?;
        }
        if matches!(typ, "proc" | "sysfs") {
            let t = reopen(root, &dest)?;
            check_fs_magic(t.as_raw_fd(), typ, &shown)?;
        }
    }
    finish(root, &dest, &o, &shown)?;
    Ok(defer_ro)
}

fn hint_for(e: SysError, typ: &str) -> SysError {
    if e.errno == libc::EPERM && typ == "sysfs" {
        return e.hint("sysfs can only be mounted in a network namespace owned by the container's user namespace");
    }
    if e.errno == libc::ENODEV {
        return e.hint(format!("the kernel has no {typ:?} filesystem"));
    }
    e
}

fn source_name(m: &Mount, src: &Option<PathBuf>) -> String {
    match src {
        Some(p) => p.display().to_string(),
        None => m.source.clone().unwrap_or_default(),
    }
}

fn reopen(root: RawFd, dest: &Path) -> SysResult<std::os::fd::OwnedFd> {
    open_in_root(root, dest, libc::O_PATH)
}

/// Propagation and recursive attributes, applied to the mount now at `dest`.
fn finish(root: RawFd, dest: &Path, o: &MountOptions, shown: &Path) -> SysResult<()> {
    if o.propagation.is_empty() && o.attr_set == 0 && o.attr_clr == 0 {
        return Ok(());
    }
    let t = reopen(root, dest)?;
    for &p in &o.propagation {
        mount(None, &fd_path(t.as_raw_fd()), None, p, None, || {
            format!("set propagation {p:#x} on {}", shown.display())
        })?;
    }
    if o.attr_set != 0 || o.attr_clr != 0 {
        mount_setattr(t.as_raw_fd(), o.attr_set, o.attr_clr, true)
            .map_err(|e| SysError { step: format!("mount_setattr on {}", shown.display()), ..e })?;
    }
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)` on an fd (recursive with `AT_RECURSIVE`).
pub fn mount_setattr(fd: RawFd, set: u64, clr: u64, recursive: bool) -> SysResult<()> {
    mount_setattr_prop(fd, set, clr, 0, recursive)
}

/// `mount_setattr(2)` that also sets the propagation (`MS_PRIVATE`, ..., 0 to keep it).
pub fn mount_setattr_prop(fd: RawFd, set: u64, clr: u64, propagation: libc::c_ulong, recursive: bool) -> SysResult<()> {
    let attr = MountAttr { attr_set: set, attr_clr: clr, propagation, userns_fd: 0 };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: "" is a valid C string; attr lives across the call and its size is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        let e = SysError::last("mount_setattr");
        return Err(if e.errno == libc::ENOSYS { e.hint("mount_setattr needs Linux 5.12") } else { e });
    }
    Ok(())
}

/// The MS_* flags a mount already has (from statvfs), so a bind remount keeps them.
pub fn statvfs_flags(fd: RawFd) -> libc::c_ulong {
    // SAFETY: zeroed statvfs is a valid out-buffer.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: s is valid for writes for the duration of the call.
    if unsafe { libc::fstatvfs(fd, &mut s) } != 0 {
        return 0;
    }
    let mut f = 0;
    for (st, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if s.f_flag & st != 0 {
            f |= ms;
        }
    }
    f
}

fn check_fs_magic(fd: RawFd, typ: &str, shown: &Path) -> SysResult<()> {
    // SAFETY: zeroed statfs is a valid out-buffer.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: s is valid for writes.
    if unsafe { libc::fstatfs(fd, &mut s) } != 0 {
        return Err(SysError::last(format!("statfs {}", shown.display())));
    }
    let want = if typ == "proc" { PROC_SUPER_MAGIC } else { SYSFS_MAGIC };
    if s.f_type as i64 != want {
        return Err(SysError::from_errno(
            format!("{} is not a {typ} mount after mounting it", shown.display()),
            libc::EINVAL,
        ));
    }
    Ok(())
}
