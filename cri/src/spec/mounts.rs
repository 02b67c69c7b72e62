//! kubelet's mounts (`ContainerConfig.mounts`) into the spec: binds with their
//! propagation and read-only flags, the rootfs propagation they need, the pod's
//! `/dev/shm`, and a privileged container's writable /sys.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::proto::{ContainerConfig, MountPropagation};

/// kubelet's mounts into the spec.
pub(super) fn mounts(spec: &mut Value, c: &ContainerConfig, privileged: bool, shm: Option<&Path>) -> Result<()> {
    let mut added = Vec::new();
    for m in &c.mounts {
        if m.image.is_some() {
            return Err(Error::unimplemented(format!("mount {}: image volumes are not supported", m.container_path)));
        }
        if !m.container_path.starts_with('/') {
            return Err(Error::invalid(format!("mount {:?}: the container path must be absolute", m.container_path)));
        }
        if m.host_path.is_empty() {
            return Err(Error::invalid(format!("mount {}: no host path", m.container_path)));
        }
        let src = PathBuf::from(&m.host_path);
        // As containerd (and docker before it): a missing host directory is made.
        if std::fs::symlink_metadata(&src).is_err() {
            std::fs::create_dir_all(&src).map_err(|e| {
                Error::unknown(format!("mount {}: create host path {}: {e}", m.container_path, src.display()))
            })?;
        }
        let src = std::fs::canonicalize(&src).map_err(|e| {
            Error::unknown(format!("mount {}: resolve host path {}: {e}", m.container_path, src.display()))
        })?;
        let prop = match MountPropagation::try_from(m.propagation) {
            Ok(MountPropagation::PropagationPrivate) => "rprivate",
            Ok(MountPropagation::PropagationHostToContainer) => "rslave",
            Ok(MountPropagation::PropagationBidirectional) => "rshared",
            Err(_) => {
                return Err(Error::invalid(format!(
                    "mount {}: unknown propagation {}",
                    m.container_path, m.propagation
                )))
            }
        };
        let mut opts = vec!["rbind", prop];
        if m.readonly {
            opts.push("ro");
        }
        if m.recursive_read_only {
            if !m.readonly || prop != "rprivate" {
                return Err(Error::invalid(format!(
                    "mount {}: recursive read-only needs readonly and private propagation",
                    m.container_path
                )));
            }
            opts.push("rro");
        }
        added.push(json!({"destination": m.container_path, "type": "bind", "source": src, "options": opts}));
    }
    // As containerd: a bidirectional mount needs the container's root shared (so its
    // mounts reach the bind's peers), a host-to-container one needs it a slave at least.
    let props: Vec<i32> = c.mounts.iter().map(|m| m.propagation).collect();
    if props.contains(&(MountPropagation::PropagationBidirectional as i32)) {
        spec["linux"]["rootfsPropagation"] = json!("rshared");
    } else if props.contains(&(MountPropagation::PropagationHostToContainer as i32))
        && spec["linux"]["rootfsPropagation"] != "rshared"
    {
        spec["linux"]["rootfsPropagation"] = json!("rslave");
    }
    let dests: Vec<&str> = c.mounts.iter().map(|m| m.container_path.trim_end_matches('/')).collect();
    let Some(list) = spec["mounts"].as_array_mut() else {
        return Err(Error::unknown("the generated spec has no mounts"));
    };
    list.retain(|m| !m["destination"].as_str().is_some_and(|d| dests.contains(&d.trim_end_matches('/'))));
    // The host's /dev/shm with host IPC, else the pod's (shared by its containers).
    if let Some(shm) = shm.filter(|_| !dests.contains(&"/dev/shm")) {
        list.retain(|m| m["destination"] != "/dev/shm");
        list.push(json!({"destination": "/dev/shm", "type": "bind", "source": shm, "options": ["rbind", "rprivate"]}));
    }
    if privileged {
        // As containerd: /sys and the cgroup tree writable.
        for m in list.iter_mut() {
            if m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup" {
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|x| x != "ro");
                }
            }
        }
    }
    list.extend(added);
    Ok(())
}
