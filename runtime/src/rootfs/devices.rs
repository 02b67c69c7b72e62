//! /dev inside the container: the default device nodes, `linux.devices`, and the
//! standard symlinks (/dev/fd, /dev/stdin, /dev/ptmx -> pts/ptmx, ...).

use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use super::paths::{create_file_in_root, mkdir_all_in_root, rel};
use crate::spec::Device;
use crate::sys::{cstr, fd_path, mount, SysError, SysResult};

/// The devices every container gets (the OCI default set).
pub fn default_devices() -> Vec<Device> {
    let d = |path: &str, major, minor| Device {
        typ: "c".into(),
        path: path.into(),
        major,
        minor,
        file_mode: Some(0o666),
        uid: Some(0),
        gid: Some(0),
    };
    vec![
        d("/dev/null", 1, 3),
        d("/dev/zero", 1, 5),
        d("/dev/full", 1, 7),
        d("/dev/random", 1, 8),
        d("/dev/urandom", 1, 9),
        d("/dev/tty", 5, 0),
    ]
}

/// Create the default devices, `extra`, and the /dev symlinks. In a user namespace
/// mknod is not allowed: the host's nodes are bind-mounted instead (as runc does).
pub fn setup(root: RawFd, extra: &[Device], userns: bool, devpts: bool) -> SysResult<()> {
    let mut all = default_devices();
    for e in extra {
        all.retain(|d| d.path != e.path);
        all.push(e.clone());
    }
    for d in &all {
        create_device(root, d, userns)?;
    }
    let dev = mkdir_all_in_root(root, Path::new("dev"))?;
    let links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    for (target, name) in links {
        symlink_at(dev.as_raw_fd(), target, name)?;
    }
    if Path::new("/proc/kcore").exists() {
        symlink_at(dev.as_raw_fd(), "/proc/kcore", "core")?;
    }
    if devpts {
        // SAFETY: single component name relative to our dir fd.
        unsafe { libc::unlinkat(dev.as_raw_fd(), c"ptmx".as_ptr(), 0) };
        symlink_at(dev.as_raw_fd(), "pts/ptmx", "ptmx")?;
    }
    Ok(())
}

fn symlink_at(dir: RawFd, target: &str, name: &str) -> SysResult<()> {
    let (t, n) = (cstr(target)?, cstr(name)?);
    // SAFETY: valid C strings and a directory fd we own.
    if unsafe { libc::symlinkat(t.as_ptr(), dir, n.as_ptr()) } < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if e != libc::EEXIST {
            return Err(SysError::from_errno(format!("symlink /dev/{name} -> {target}"), e));
        }
    }
    Ok(())
}

fn create_device(root: RawFd, d: &Device, userns: bool) -> SysResult<()> {
    let p = rel(&d.path);
    if userns {
        let t = create_file_in_root(root, &p)?;
        let src = cstr(&d.path)?;
        return mount(Some(&src), &fd_path(t.as_raw_fd()), None, libc::MS_BIND, None, || {
            format!("bind mount host {} into the container (user namespaces cannot mknod)", d.path)
        });
    }
    let kind = match d.typ.as_str() {
        "c" | "u" => libc::S_IFCHR,
        "b" => libc::S_IFBLK,
        "p" => libc::S_IFIFO,
        t => return Err(SysError::from_errno(format!("device {}: unknown type {t:?}", d.path), libc::EINVAL)),
    };
    let parent = p.parent().unwrap_or(Path::new(""));
    let dir = mkdir_all_in_root(root, parent)?;
    let name = cstr(p.file_name().unwrap_or_default())?;
    let mode = d.file_mode.unwrap_or(0o666) & 0o7777;
    let dev = libc::makedev(d.major as u32, d.minor as u32);
    // SAFETY: name is a single component relative to our dir fd.
    unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
    // SAFETY: as above; mknodat creates a node, it never follows a symlink.
    if unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), kind | mode, dev) } < 0 {
        return Err(SysError::last(format!("mknod {} ({} {}:{})", d.path, d.typ, d.major, d.minor)));
    }
    crate::explain::step(crate::explain::Kind::Device, || {
        crate::explain::Step::new(
            format!("device node {} ({} {}:{}, mode {mode:o})", d.path, d.typ, d.major, d.minor),
            format!(
                "mknodat(fd of /dev, {:?}, {}|0{mode:o}, makedev({}, {}))",
                name.to_string_lossy(),
                if kind == libc::S_IFBLK {
                    "S_IFBLK"
                } else if kind == libc::S_IFIFO {
                    "S_IFIFO"
                } else {
                    "S_IFCHR"
                },
                d.major,
                d.minor
            ),
        )
        .field("path", d.path.as_str())
    });
    // SAFETY: as above; AT_SYMLINK_NOFOLLOW: never follow.
    unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            d.uid.unwrap_or(0),
            d.gid.unwrap_or(0),
            libc::AT_SYMLINK_NOFOLLOW,
        );
        libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode, 0);
    }
    Ok(())
}
