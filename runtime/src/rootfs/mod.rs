//! The container's filesystem view: mounts, /dev, pivot_root, masked and read-only
//! paths, /dev/console, sysctls. Runs in the container's init, inside its new mount
//! namespace (or, for a config without one, in the runtime's, as runc does).

mod cgroupfs;
mod console;
mod copy;
mod devices;
mod fdmount;
mod host_mounts;
mod masks;
mod mounts;
pub mod options;
pub mod paths;
mod root;
pub mod sources;

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::path::Path;

pub use console::mount_console;
pub use host_mounts::HostMounts;
pub use options::propagation_flag;
pub use paths::check_kernel;

use crate::spec::Spec;
use crate::sys::{cstr, mount, SysResult};

/// Points where rootfs setup hands control back to the init (to sync with the parent).
pub enum Stage {
    /// Before the first cgroup mount: the init must be in its cgroup (and cgroup ns).
    BeforeCgroupMount,
    /// All mounts are done, pivot_root is next: time for createRuntime/createContainer hooks.
    BeforePivot,
    /// No mount namespace: a mount with this id now sits at the rootfs path in the
    /// runtime's namespace (the rootfs bind, or a mount over "/"); `delete` removes it.
    HostMount(u64),
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
    /// Bind-mount sources opened before the init entered its user namespace.
    pub sources: Option<sources::Sources>,
}

/// Build the container's root and switch into it.
pub fn setup(cfg: RootfsConfig, cb: &mut dyn FnMut(Stage) -> SysResult<()>) -> SysResult<()> {
    let linux = cfg.spec.linux();
    let prop = linux.rootfs_propagation.as_deref().and_then(propagation_flag);
    // Without a mount namespace of its own the container shares the runtime's: the
    // mounts below go there (runc does the same), but the host's own propagation is
    // left alone (runc would make the host's / rslave).
    let own_ns = cfg.spec.namespace("mount").is_some();
    if own_ns {
        let root_prop = match prop {
            None => libc::MS_SLAVE | libc::MS_REC,
            // Unbindable is private plus "cannot be bound": the host mounts still to be
            // bound below (volumes, v1 cgroups) must stay bindable, so only the new
            // root gets it, after the switch.
            Some(p) if p & libc::MS_UNBINDABLE != 0 => (p & !libc::MS_UNBINDABLE) | libc::MS_PRIVATE,
            Some(p) => p,
        };
        mount(None, c"/", None, root_prop, None, || {
            format!("set propagation {root_prop:#x} on / (so nothing we mount leaks to the host)")
        })?;
        root::prepare_parent(cfg.rootfs, root_prop)?;
    }
    let croot = cstr(cfg.rootfs)?;
    mount(Some(&croot), &croot, None, libc::MS_BIND | libc::MS_REC, None, || {
        format!("bind mount the rootfs {} onto itself", cfg.rootfs.display())
    })?;
    let mut root = crate::sys::open(cfg.rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)?;
    if !own_ns {
        cb(Stage::HostMount(paths::mount_id(root.as_raw_fd())?))?;
    }
    let mut devpts = false;
    let mut dev_bound = false;
    let mut dev_ro = false;
    for (i, m) in cfg.spec.mounts.iter().enumerate() {
        let typ = m.typ.as_deref().unwrap_or("");
        if typ == "cgroup" {
            cb(Stage::BeforeCgroupMount)?;
            cgroupfs::mount_cgroups(root.as_raw_fd(), m, cfg.cgroupns)?;
            continue;
        }
        let opened = cfg.sources.as_ref().and_then(|s| s.get(i));
        let deferred = mounts::mount_entry(root.as_raw_fd(), m, cfg.bundle, opened)?;
        let dest = paths::rel(&m.destination);
        if dest.as_os_str().is_empty() {
            // A mount over "/" (a rootless image container's overlay) is the root now:
            // what follows goes on it, not on the bind it hides.
            root = crate::sys::open(cfg.rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)?;
            if !own_ns {
                cb(Stage::HostMount(paths::mount_id(root.as_raw_fd())?))?;
            }
        }
        if dest == Path::new("dev") {
            dev_ro = deferred;
            dev_bound = mounts::is_bind(m);
        }
        if dest == Path::new("dev/pts") && typ == "devpts" {
            devpts = true;
        }
    }
    // The pre-opened sources are host files: close them before anything else runs.
    drop(cfg.sources);
    if !dev_bound {
        devices::setup(root.as_raw_fd(), &linux.devices, cfg.userns, devpts)?;
    }
    paths::mkdir_all_in_root(root.as_raw_fd(), &paths::rel(cfg.cwd))?;
    drop(root);
    cb(Stage::BeforePivot)?;
    if !own_ns {
        if cfg.no_pivot {
            tracing::debug!("--no-pivot has no effect without a mount namespace: chroot");
        }
        root::chroot_into(cfg.rootfs)?;
    } else if cfg.no_pivot {
        root::move_root(cfg.rootfs)?;
    } else {
        root::pivot_root(cfg.rootfs)?;
    }
    let root = crate::sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    if cfg.spec.process.as_ref().is_some_and(|p| p.terminal) {
        console::prepare(root.as_raw_fd())?;
    }
    if dev_ro {
        fdmount::set_readonly(&paths::open_in_root(root.as_raw_fd(), Path::new("dev"), libc::O_PATH)?, "/dev")?;
    }
    masks::apply(root.as_raw_fd(), &linux.readonly_paths, &linux.masked_paths)?;
    if cfg.spec.root.as_ref().is_some_and(|r| r.readonly) {
        fdmount::set_readonly(&root, "/ (root.readonly)")?;
    }
    // On the new / (runc does it after the switch too); private and slave were set up
    // front already. Last, as nothing can be bound from an unbindable mount.
    if let Some(p) = prop.filter(|p| p & (libc::MS_PRIVATE | libc::MS_SLAVE) == 0) {
        mount(None, c"/", None, p, None, || format!("set rootfsPropagation {p:#x} on /"))?;
    }
    Ok(())
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
        crate::explain::step(crate::explain::Kind::Sysctl, || {
            crate::explain::Step::new(
                format!("sysctl {k} = {v} (in the container's namespace)"),
                format!("write({path}, {v:?})"),
            )
        });
    }
    Ok(())
}
