//! The mounts a container without a mount namespace of its own leaves in the
//! runtime's namespace (runc leaves them behind): its rootfs bind, and any mount it
//! stacked at the rootfs path (a mount with destination "/"); everything else it
//! mounted is below those, so detaching them (`MNT_DETACH`) takes it all.
//!
//! They are known by the mount ids the init reported as it made them, and `delete`
//! detaches a mount only while the one at the rootfs path is one of them: a mount
//! that appeared there since (the container's gone, someone else's in its place)
//! is left alone. The ids are the never-reused ones of Linux 6.8
//! (`STATX_MNT_ID_UNIQUE`) where the kernel has them; older kernels reuse ids, so
//! a recorded id there names the container's mount only as long as it exists. The
//! boot id makes a state file kept across a reboot (a `--root` on disk) name nothing.

use std::os::fd::AsRawFd;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sys::{fd_path, SysError};

/// What a container put at its rootfs path in the runtime's mount namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostMounts {
    /// `/proc/sys/kernel/random/boot_id` when they were made.
    pub boot: String,
    /// Mount ids, bottom first: the rootfs bind, then what was stacked over it.
    pub ids: Vec<u64>,
}

impl HostMounts {
    /// None yet, on this boot.
    pub fn new() -> Self {
        HostMounts { boot: boot_id(), ids: Vec::new() }
    }

    /// Detach them from `rootfs`, top first, stopping at the first mount there that
    /// is not one of them.
    pub fn release(&self, rootfs: &Path) {
        if self.ids.is_empty() {
            return;
        }
        if self.boot != boot_id() {
            tracing::debug!("the container's mounts at {} were made before a reboot: gone", rootfs.display());
            return;
        }
        for _ in 0..self.ids.len() {
            let Ok(fd) = crate::sys::open(rootfs, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0) else {
                return;
            };
            match super::paths::mount_id(fd.as_raw_fd()) {
                Ok(id) if self.ids.contains(&id) => {}
                Ok(id) => {
                    tracing::debug!("mount {id} at {} is not the container's: left in place", rootfs.display());
                    return;
                }
                Err(_) => return,
            }
            // Through the fd just checked: the mount it is on, whatever the path shows now.
            // SAFETY: umount2 on a valid C string.
            if unsafe { libc::umount2(fd_path(fd.as_raw_fd()).as_ptr(), libc::MNT_DETACH) } < 0 {
                let e = SysError::last(format!("detach the container's mounts at {}", rootfs.display()));
                tracing::warn!("{e}");
                return;
            }
        }
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}
