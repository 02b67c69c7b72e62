//! The pod's `/dev/shm`: one tmpfs per sandbox, bound into each of its containers,
//! so POSIX shared memory (`shm_open`) is shared by the pod as SysV IPC is through
//! the pinned ipc namespace (containerd does the same with the sandbox's shm).
//! Mounted at RunPodSandbox, unmounted at StopPodSandbox.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// containerd's size and options for the sandbox's shm.
const OPTIONS: &str = "mode=1777,size=65536k";

/// Where the sandbox's tmpfs is mounted (in its pod directory).
pub fn path(store: &capsa_image::images::ImageStore, id: &str) -> PathBuf {
    capsa_pod::pods::pod_dir(store, id).join("shm")
}

/// Mounts the sandbox's tmpfs (nosuid, nodev, noexec, 64 MiB, mode 1777).
pub fn mount(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::unknown(format!("create {}: {e}", p.display())))?;
    if capsa_pod::netns::is_mount_point(p) {
        return Ok(());
    }
    let target = CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::unknown("shm path has a NUL byte"))?;
    let data = CString::new(OPTIONS).expect("no NUL");
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
    let r = unsafe { libc::mount(c"shm".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), flags, data.as_ptr().cast()) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::unknown(format!("mount tmpfs on {} ({OPTIONS}) for the pod's /dev/shm: {e}", p.display())));
    }
    Ok(())
}

/// Unmounts it (lazily: a container still holding it keeps its view until it exits).
pub fn unmount(p: &Path) -> Result<()> {
    capsa_image::images::unmount(p)
        .map_err(|e| Error::unknown(format!("unmount the pod's /dev/shm at {}: {e}", p.display())))
}
