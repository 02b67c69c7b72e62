//! Writing a container's bundle: `config.json` from the image and the [`Request`]
//! (joined to its pod, if any) and its `capsa.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use capsa_image::bundle::{self, RunOptions};
use capsa_image::images::{ImageStore, LocalImage};
use serde_json::{json, Value};

use super::meta::write_json;
use super::{container_dir, Meta};
use crate::error::{PodError, Result};

/// What a container needs of its pod: the namespaces to join and files to mount.
#[derive(Debug, Clone, Default)]
pub struct PodJoin {
    pub pod: String,
    /// (namespace type as in config.json, path to join; an empty path: share the caller's).
    pub namespaces: Vec<(String, PathBuf)>,
    /// (host file, destination in the container): /etc/hosts, /etc/resolv.conf, /etc/hostname.
    pub files: Vec<(PathBuf, String)>,
}

/// Everything `run` needs.
pub struct Request<'a> {
    pub image_name: String,
    pub image: &'a LocalImage,
    /// `opts.id` is the container name.
    pub opts: RunOptions,
    /// Copy the layers instead of an overlay mount.
    pub copy: bool,
    pub restart: String,
    /// Keep stdin open for attach (`-i`).
    pub stdin: bool,
    pub pod: Option<PodJoin>,
    /// More OCI mounts (pod volumes).
    pub extra_mounts: Vec<Value>,
    pub labels: BTreeMap<String, String>,
    pub pod_container: Option<String>,
    pub init: bool,
    /// Only create the container (its process waits); [`start`](super::start) runs it.
    pub created_only: bool,
}

/// Environment variable: the cgroup under which managed containers are placed
/// (`<parent>/<name>`; default `/capsa/<name>`). Tests use their own parent.
pub const CGROUP_PARENT_ENV: &str = "CAPSA_CGROUP_PARENT";

/// Writes `config.json` and `capsa.json` for a foreground run of `req` into the
/// container directory. `keep`: the container stays after it exits (no `--rm`), so
/// its records must survive a power loss (fsync'd); a `--rm` run's live no longer
/// than the run: written atomically, no fsync (8 fsyncs were most of `run --rm`'s
/// time on a busy disk).
pub fn write_bundle(store: &ImageStore, req: &Request<'_>, rootfs: &Path, keep: bool) -> Result<Value> {
    let durability = if keep { capsa_fsutil::Durability::Durable } else { capsa_fsutil::Durability::Volatile };
    write_bundle_with(store, req, rootfs, false, durability, &mut |_, _| Ok(()))
}

/// Changes made to a container's `config.json` after capsa built it from the image and
/// the request, and before it is written: (the spec, the container's rootfs).
pub type Customize<'a> = dyn FnMut(&mut Value, &Path) -> Result<()> + 'a;

/// [`write_bundle`], with `customize` applied to the spec last (a CRI container's
/// security context, mounts, devices, resources, cgroup).
pub fn write_bundle_with(
    store: &ImageStore,
    req: &Request<'_>,
    rootfs: &Path,
    detached: bool,
    durability: capsa_fsutil::Durability,
    customize: &mut Customize<'_>,
) -> Result<Value> {
    let name = &req.opts.id;
    let dir = container_dir(store, name);
    let overlay = store.deferred_overlay(name)?;
    // A rootless rootfs is mounted by the runtime: read the image's files from its layers.
    let layers = if overlay.is_some() { store.container_layers(name) } else { Vec::new() };
    let files: Vec<&Path> =
        if overlay.is_some() { layers.iter().map(PathBuf::as_path).collect() } else { vec![rootfs] };
    let mut spec = bundle::make_spec(capsa_runtime::spec::default_spec(), &req.image.config, &req.opts, &files)
        .map_err(|source| PodError::Bundle { id: name.clone(), source })?;
    if let Some(pj) = &req.pod {
        join_pod(&mut spec, pj);
    }
    if let Some(parent) = std::env::var_os(CGROUP_PARENT_ENV) {
        let parent = parent.to_string_lossy();
        spec["linux"]["cgroupsPath"] = json!(format!("{}/{name}", parent.trim_end_matches('/')));
    }
    if !req.extra_mounts.is_empty() {
        if let Some(m) = spec["mounts"].as_array_mut() {
            m.extend(req.extra_mounts.iter().cloned());
        }
    }
    if let Some(r) = store.rootless() {
        crate::rootless::adapt_spec(&mut spec, r, overlay)
            .map_err(|e| PodError::msg(format!("container {name}: {e}")))?;
    }
    customize(&mut spec, rootfs)?;
    write_json(&dir.join("config.json"), &spec, durability)?;
    let stop_signal =
        spec["annotations"]["org.opencontainers.image.stopSignal"].as_str().unwrap_or("SIGTERM").to_owned();
    let command = spec["process"]["args"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let meta = Meta {
        name: name.clone(),
        image: req.image_name.clone(),
        image_id: req.image.record.config.to_string(),
        created: capsa_runtime::time::now_rfc3339(),
        command,
        restart: req.restart.clone(),
        detached,
        tty: req.opts.terminal,
        stdin: req.stdin,
        stop_signal,
        pod: req.pod.as_ref().map(|p| p.pod.clone()),
        pod_container: req.pod_container.clone(),
        init: req.init,
        labels: req.labels.clone(),
    };
    write_json(&dir.join("capsa.json"), &meta, durability)?;
    Ok(spec)
}

/// Points the spec's namespaces at the pod's and mounts its files; the pod
/// owns the hostname (a joined UTS namespace already has it).
fn join_pod(spec: &mut Value, pj: &PodJoin) {
    if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
        for (ty, path) in &pj.namespaces {
            nss.retain(|n| n["type"] != ty.as_str());
            if !path.as_os_str().is_empty() {
                nss.push(json!({"type": ty, "path": path}));
            }
        }
    }
    if pj.namespaces.iter().any(|(t, _)| t == "uts") {
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
        }
    }
    if let Some(m) = spec["mounts"].as_array_mut() {
        for (src, dst) in &pj.files {
            m.push(json!({"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
        }
    }
}
