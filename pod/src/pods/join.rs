//! Joining a pod: the namespaces and files a container takes from it, and the holder
//! of its shared pid namespace.

use std::path::PathBuf;

use capsa_image::images::ImageStore;

use super::{load, pod_dir, PodRecord};
use crate::containers::PodJoin;
use crate::error::{PodError, Result};
use crate::netns;

/// What a container must do to join the pod.
pub fn join(store: &ImageStore, rec: &PodRecord) -> Result<PodJoin> {
    let dir = pod_dir(store, &rec.name);
    let files = ["hosts", "resolv.conf", "hostname"].iter().map(|f| (dir.join(f), format!("/etc/{f}"))).collect();
    if let Some(net) = &rec.rootless {
        return Ok(PodJoin { pod: rec.name.clone(), namespaces: net.namespaces(&rec.name)?, files });
    }
    let ns = dir.join("ns");
    let mut namespaces = Vec::new();
    for k in netns::KINDS {
        if rec.network == "host" && k == "net" {
            continue;
        }
        if rec.pinned.as_ref().is_some_and(|p| !p.iter().any(|x| x == k)) {
            // Not the pod's own: the host's (an empty path drops the entry).
            let ty = if k == "net" { "network" } else { k };
            namespaces.push((ty.to_owned(), PathBuf::new()));
            continue;
        }
        if !netns::is_pinned(&ns, k) {
            return Err(PodError::msg(format!(
                "pod {}: its {k} namespace is not pinned at {} (host rebooted?): remove and re-create the pod",
                rec.name,
                ns.join(k).display()
            )));
        }
        let ty = if k == "net" { "network" } else { k };
        namespaces.push((ty.to_owned(), ns.join(k)));
    }
    if rec.network == "host" {
        // Sharing the host's network: no namespace of its own (an empty path drops the entry).
        namespaces.push(("network".to_owned(), PathBuf::new()));
    }
    Ok(PodJoin { pod: rec.name.clone(), namespaces, files })
}

/// Kills the holder of the pod's pid namespace, if it has one: every process of
/// that namespace dies with it (a CRI `StopPodSandbox`).
pub fn stop_pid_holder(store: &ImageStore, name: &str) -> Result<()> {
    if let Some(h) = load(store, name)?.pid_holder {
        h.kill();
    }
    Ok(())
}

/// The pod's shared pid namespace to join, if it has one; an error once its holder is gone.
pub fn pid_namespace(store: &ImageStore, rec: &PodRecord) -> Result<Option<PathBuf>> {
    let Some(h) = &rec.pid_holder else { return Ok(None) };
    let ns = pod_dir(store, &rec.name).join("ns");
    if !h.alive() || !netns::is_pinned(&ns, "pid") {
        return Err(PodError::msg(format!(
            "pod {}: the holder of its pid namespace (pid {}) is gone: stop and remove the pod",
            rec.name, h.pid
        )));
    }
    Ok(Some(ns.join("pid")))
}
