//! The container's filesystem view: mounts, /dev, pivot_root, masked and read-only
//! paths, sysctls. Runs in the container's init, inside its new mount namespace.

mod cgroupfs;
mod copy;
mod devices;
mod mounts;
pub mod options;
pub mod paths;

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::path::Path;

pub use options::propagation_flag;

use crate::spec::Spec;
use crate::sys::{check, cstr, mount, SysError, SysResult};

/// Points where rootfs setup hands control back to the init (to sync with the parent).
pub enum Stage {
    /// Before the first cgroup mount: the init must be in its cgroup (and cgroup ns).
    BeforeCgroupMount,
    /// All mounts are done, pivot_root is next: time for createRuntime/createContainer hooks.
    BeforePivot,
}

/// What rootfs setup needs to know.
pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub userns: bool,
    pub cgroupns: bool,
    pub no_pivot: bool,
    pub cwd: &'a str,
}

/// Build the container's root and switch into it.
pub fn setup(cfg: &RootfsConfig, cb: &mut dyn FnMut(Stage) -> SysResult<()>) -> SysResult<()> {
    let linux = cfg.spec.linux();
    let prop = linux.rootfs_propagation.as_deref().and_then(propagation_flag);
    let root_prop = prop.unwrap_or(libc::MS_SLAVE | libc::MS_REC);
    mount(None, c"/", None, root_prop, None, || {
        format!("set propagation {root_prop:#x} on / (so nothing we mount leaks to the host)")
    })?;
    let croot = cstr(cfg.rootfs)?;
    mount(Some(&croot), &croot, None, libc::MS_BIND | libc::MS_REC, None, || {
        format!("bind mount the rootfs {} onto itself", cfg.rootfs.display())
    })?;
    if prop.is_some_and(|p| p & libc::MS_SHARED != 0) {
        make_parent_private(cfg.rootfs)?;
    }
    let root = crate::sys::open(cfg.rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let mut devpts = false;
    let mut dev_bound = false;
    for m in &cfg.spec.mounts {
        let typ = m.typ.as_deref().unwrap_or("");
        if typ == "cgroup" {
            cb(Stage::BeforeCgroupMount)?;
            cgroupfs::mount_cgroups(root.as_raw_fd(), m, cfg.cgroupns)?;
            continue;
        }
        mounts::mount_entry(root.as_raw_fd(), m, cfg.bundle)?;
        let dest = paths::rel(&m.destination);
        if dest == Path::new("dev/pts") && typ == "devpts" {
            devpts = true;
        }
        if dest == Path::new("dev") && (typ == "bind" || m.options.iter().any(|o| o == "bind" || o == "rbind")) {
            dev_bound = true;
        }
    }
    if !dev_bound {
        devices::setup(root.as_raw_fd(), &linux.devices, cfg.userns, devpts)?;
    }
    paths::mkdir_all_in_root(root.as_raw_fd(), &paths::rel(cfg.cwd))?;
    cb(Stage::BeforePivot)?;
    if cfg.no_pivot {
        move_root(cfg.rootfs)?;
    } else {
        pivot_root(cfg.rootfs)?;
    }
    if let Some(p) = prop {
        mount(None, c"/", None, p, None, || format!("set rootfsPropagation {p:#x} on /"))?;
    }
    for p in &linux.masked_paths {
        mask_path(p)?;
    }
    for p in &linux.readonly_paths {
        readonly_path(p)?;
    }
    if cfg.spec.root.as_ref().is_some_and(|r| r.readonly) {
        let keep = root_flags();
        mount(None, c"/", None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep, None, || {
            "remount / read-only (root.readonly)".into()
        })?;
    }
    Ok(())
}

fn root_flags() -> libc::c_ulong {
    match crate::sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0) {
        Ok(fd) => mounts::statvfs_flags(fd.as_raw_fd()),
        Err(_) => 0,
    }
}

/// pivot_root(2) into the rootfs and detach the old root, the way runc does it
/// (pivot_root(".", ".") needs no put_old directory inside the container).
fn pivot_root(rootfs: &Path) -> SysResult<()> {
    let old = crate::sys::open(Path::new("/"), libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
    let new = crate::sys::open(rootfs, libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
    // SAFETY: fchdir/pivot_root/umount2/chdir take fds and static C strings only.
    unsafe {
        check(libc::fchdir(new.as_raw_fd()), || format!("chdir {}", rootfs.display()))?;
        check(libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as i32, || {
            format!("pivot_root to {}", rootfs.display())
        })
        .map_err(|e| e.hint("pivot_root fails on a rootfs in a ramfs/initramfs; use --no-pivot there"))?;
        check(libc::fchdir(old.as_raw_fd()), || "chdir to the old root".into())?;
        mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None, || {
            "make the old root a slave (so unmounting it does not reach the host)".into()
        })?;
        check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH), || "unmount the old root".into())?;
        check(libc::chdir(c"/".as_ptr()), || "chdir / in the new root".into())?;
    }
    Ok(())
}

/// `--no-pivot`: move the rootfs mount over / and chroot (for ramfs roots).
fn move_root(rootfs: &Path) -> SysResult<()> {
    let c = cstr(rootfs)?;
    // SAFETY: plain syscalls on valid C strings.
    unsafe {
        check(libc::chdir(c.as_ptr()), || format!("chdir {}", rootfs.display()))?;
        mount(Some(&c), c"/", None, libc::MS_MOVE, None, || format!("move mount {} to /", rootfs.display()))?;
        check(libc::chroot(c".".as_ptr()), || "chroot .".into())?;
        check(libc::chdir(c"/".as_ptr()), || "chdir /".into())?;
    }
    Ok(())
}

/// Hide a path: an empty read-only tmpfs over a directory, /dev/null over a file.
fn mask_path(p: &str) -> SysResult<()> {
    let c = cstr(p)?;
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    if meta.is_dir() {
        mount(Some(c"tmpfs"), &c, Some(c"tmpfs"), libc::MS_RDONLY, None, || {
            format!("mask {p} (read-only tmpfs over it)")
        })
    } else {
        mount(Some(c"/dev/null"), &c, None, libc::MS_BIND, None, || format!("mask {p} (bind /dev/null over it)"))
    }
}

/// Make a path read-only: bind it onto itself, then remount read-only.
fn readonly_path(p: &str) -> SysResult<()> {
    let c = cstr(p)?;
    if std::fs::symlink_metadata(p).is_err() {
        return Ok(());
    }
    mount(Some(&c), &c, None, libc::MS_BIND | libc::MS_REC, None, || format!("bind {p} onto itself (readonlyPaths)"))?;
    let keep =
        crate::sys::open(Path::new(p), libc::O_PATH, 0).map(|f| mounts::statvfs_flags(f.as_raw_fd())).unwrap_or(0);
    mount(None, &c, None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC | keep, None, || {
        format!("remount {p} read-only")
    })
}

/// pivot_root refuses a new root whose parent mount is shared: make it private.
fn make_parent_private(rootfs: &Path) -> SysResult<()> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| SysError::io("read /proc/self/mountinfo", &e))?;
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    let best = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| parent.starts_with(mp))
        .max_by_key(|mp| mp.len())
        .unwrap_or("/");
    let c = cstr(best)?;
    mount(None, &c, None, libc::MS_PRIVATE, None, || {
        format!("make {best} private (the rootfs's parent mount, for pivot_root)")
    })
}

/// Check that a sysctl is namespaced to one of the container's namespaces (as runc
/// does): anything else would change the host.
pub fn check_sysctl(key: &str, namespaces: &HashSet<&str>) -> Result<(), String> {
    if key.contains("..") || key.contains('/') && !key.starts_with("net.") {
        return Err(format!("{key:?} is not a valid sysctl name"));
    }
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        return if namespaces.contains("ipc") { Ok(()) } else { Err(format!("{key} needs a new ipc namespace")) };
    }
    if key.starts_with("net.") {
        return if namespaces.contains("network") {
            Ok(())
        } else {
            Err(format!("{key} needs a new network namespace"))
        };
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        return if namespaces.contains("uts") { Ok(()) } else { Err(format!("{key} needs a new uts namespace")) };
    }
    Err(format!("{key} is not namespaced: setting it would change the host"))
}

/// Write the sysctls through /proc/sys (in the container's namespaces).
pub fn apply_sysctls(spec: &Spec) -> SysResult<()> {
    for (k, v) in &spec.linux().sysctl {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        crate::sys::write_file(Path::new(&path), v)?;
    }
    Ok(())
}
