//! `pod apply -f` / `pod delete -f`: a Kubernetes `v1/Pod` manifest made real.
//!
//! Order, as the kubelet does it: every image is resolved first (a missing one
//! fails before anything is made), then the pod (namespaces, network, ports),
//! its volumes, the init containers one by one to completion, and the
//! containers. Any failure removes the whole pod again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use capsa_image::bundle::{RunOptions, Seccomp};
use capsa_image::images::{ImageStore, LocalImage};
use serde_json::{json, Value};

use crate::cni::PortMapping;
use crate::containers::{self, PodJoin, Request, State};
use crate::error::{io, PodError, Result};
use crate::manifest::{ContainerSpec, PodManifest, RestartPolicy, VolumeSource};
use crate::pods::{self, NetConfig, PodCreate, PodRecord};
use crate::runtime_cli::Tools;

/// `pod delete -f`: how long containers get between the stop signal and SIGKILL.
pub const DELETE_GRACE: Duration = Duration::from_secs(10);

/// How long an init container may run before `apply` gives up on it.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(300);

/// The managed-container name of a pod member.
pub fn member_name(pod: &str, container: &str) -> String {
    format!("{pod}-{container}")
}

fn restart_of(p: RestartPolicy) -> &'static str {
    match p {
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Never => "no",
    }
}

/// Applies one parsed pod. `resolve` finds (or imports) an image by the name
/// the manifest gives; `progress` reports steps.
pub fn apply(
    store: &ImageStore,
    tools: &Tools,
    net: &NetConfig,
    pod: &PodManifest,
    origin: &str,
    resolve: &mut dyn FnMut(&str) -> Result<LocalImage>,
    progress: &mut dyn FnMut(&str),
) -> Result<PodRecord> {
    if pods::load(store, &pod.name).is_ok() {
        return Err(PodError::msg(format!(
            "{origin}: pod {} already exists (capsa pod delete -f {origin}, or capsa pod rm -f {})",
            pod.name, pod.name
        )));
    }
    tracing::debug!("apply pod {}: resolving images", pod.name);
    // 1. Images, before anything is made.
    let all: Vec<(&ContainerSpec, bool)> =
        pod.init_containers.iter().map(|c| (c, true)).chain(pod.containers.iter().map(|c| (c, false))).collect();
    let mut images = Vec::new();
    for (c, init) in &all {
        let what = if *init { "initContainers" } else { "containers" };
        let img = resolve(&c.image).map_err(|e| PodError::Member {
            origin: origin.to_owned(),
            what,
            container: c.name.clone(),
            source: Box::new(PodError::Resolve { image: c.image.clone(), source: Box::new(e) }),
        })?;
        images.push(img);
    }
    // Seccomp profiles (Localhost files read and checked), before anything is made.
    let mut seccomp = std::collections::BTreeMap::new();
    for (c, init) in &all {
        let what = if *init { "initContainers" } else { "containers" };
        let s = crate::seccomp::for_manifest(store, c.seccomp.as_ref().or(pod.seccomp.as_ref())).map_err(|e| {
            PodError::Member { origin: origin.to_owned(), what, container: c.name.clone(), source: Box::new(e.into()) }
        })?;
        seccomp.insert(c.name.clone(), s);
    }
    for (c, _) in &all {
        let n = member_name(&pod.name, &c.name);
        if containers::container_dir(store, &n).exists() {
            return Err(PodError::msg(format!("{origin}: a container named {n} already exists (capsa rm -f {n})")));
        }
    }
    // 2. The pod.
    let ports: Vec<PortMapping> = pod
        .containers
        .iter()
        .flat_map(|c| c.ports.iter())
        .filter_map(|p| {
            p.host_port.map(|h| PortMapping {
                host_port: h,
                container_port: p.container_port,
                protocol: p.protocol.clone(),
                host_ip: p.host_ip.clone(),
            })
        })
        .collect();
    let create = PodCreate {
        name: pod.name.clone(),
        network: if pod.host_network { "host".into() } else { "bridge".into() },
        ports,
        hostname: pod.hostname.clone(),
        labels: pod.labels.clone(),
        manifest: Some(origin.to_owned()),
    };
    let mut made: Vec<String> = Vec::new();
    let rec = if pod.init_containers.is_empty() {
        // No init containers: the containers are created while CNI attaches the
        // network, and started once it is up (their processes see eth0 configured).
        let r = pods::create_with(store, net, &create, &mut |rec| {
            let vols = make_volumes(store, pod)?;
            let join = pods::join(store, rec)?;
            let mut reqs = Vec::new();
            for (c, img) in pod.containers.iter().zip(&images) {
                let mut req = request(pod, c, false, img, &join, &vols, &seccomp[&c.name])?;
                req.created_only = true;
                reqs.push(req);
            }
            // One after the other: the CNI plugins run meanwhile on the other CPU, and
            // they, not these creates, are the pod's critical path (measured on 2 CPUs).
            let results: Vec<Result<i32>> =
                reqs.iter().map(|r| containers::run_detached(store, tools, r, &mut |_| {})).collect();
            let mut first_err = None;
            for (r, req) in results.into_iter().zip(&reqs) {
                match r {
                    Ok(_) => made.push(req.opts.id.clone()),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            first_err.map_or(Ok(()), Err)
        });
        tracing::debug!("apply pod {}: starting containers", pod.name);
        let created = r.is_ok();
        let started = r.and_then(|rec| {
            // `capsa start` of each, together.
            std::thread::scope(|s| {
                let hs: Vec<_> = made.iter().map(|n| s.spawn(move || containers::start(tools, n))).collect();
                hs.into_iter()
                    .try_for_each(|h| h.join().unwrap_or_else(|_| Err(PodError::msg("start: thread panicked"))))
            })?;
            for n in &made {
                progress(&format!("container {n} started"));
            }
            Ok(rec)
        });
        match started {
            Ok(rec) => rec,
            Err(e) => {
                for n in made.iter().rev() {
                    if let Err(ce) = containers::remove(store, tools, n, true) {
                        tracing::warn!("clean up container {n}: {ce}");
                    }
                }
                // Only a pod this call made (a failed create_with undid its own work; a
                // pod of the same name made by someone else meanwhile is theirs).
                if created {
                    if let Err(ce) = pods::remove(store, tools, net, &pod.name, true) {
                        tracing::warn!("clean up pod {}: {ce}", pod.name);
                    }
                }
                return Err(e);
            }
        }
    } else {
        pods::create(store, net, &create)?
    };
    progress(&format!("pod {} created{}", rec.name, rec.ip.as_ref().map(|i| format!(", IP {i}")).unwrap_or_default()));
    if pod.init_containers.is_empty() {
        return Ok(rec);
    }
    // Init containers first, one by one to completion, then the containers.
    let r = (|| -> Result<()> {
        let vols = make_volumes(store, pod)?;
        let join = pods::join(store, &rec)?;
        for ((c, init), img) in all.iter().zip(&images) {
            let req = request(pod, c, *init, img, &join, &vols, &seccomp[&c.name])?;
            let name = req.opts.id.clone();
            let pid = containers::run_detached(store, tools, &req, progress)?;
            if *init {
                let code = wait_exit(store, tools, &name, INIT_TIMEOUT)?;
                if code != 0 {
                    return Err(PodError::msg(format!(
                        "{origin}: init container {} exited with {code} (see capsa logs {name})",
                        c.name
                    )));
                }
                progress(&format!("init container {} completed", c.name));
            } else {
                progress(&format!("container {} started (pid {pid})", c.name));
            }
        }
        Ok(())
    })();
    match r {
        Ok(()) => Ok(pods::load(store, &pod.name)?),
        Err(e) => {
            if let Err(ce) = pods::remove(store, tools, net, &pod.name, true) {
                tracing::warn!("clean up pod {}: {ce}", pod.name);
            }
            Err(e)
        }
    }
}

/// The managed-container request of one manifest container.
fn request<'a>(
    pod: &PodManifest,
    c: &ContainerSpec,
    init: bool,
    img: &'a LocalImage,
    join: &PodJoin,
    vols: &[(String, PathBuf)],
    seccomp: &Seccomp,
) -> Result<Request<'a>> {
    let name = member_name(&pod.name, &c.name);
    Ok(Request {
        image_name: c.image.clone(),
        image: img,
        opts: RunOptions { seccomp: seccomp.clone(), ..run_options(&name, c) },
        copy: false,
        restart: if init { "no".into() } else { restart_of(pod.restart_policy).into() },
        stdin: false,
        pod: Some(join.clone()),
        extra_mounts: mounts(c, vols)?,
        labels: pod.labels.clone(),
        pod_container: Some(c.name.clone()),
        init,
        created_only: false,
    })
}

/// Waits until container `name` has exited; returns its exit code.
fn wait_exit(store: &ImageStore, tools: &Tools, name: &str, timeout: Duration) -> Result<i64> {
    let deadline = Instant::now() + timeout;
    loop {
        let i = containers::inspect_state(store, tools, name)?;
        match i.state {
            State::Exited => return Ok(i.exit_code().unwrap_or(-1)),
            State::Lost => return Err(PodError::msg(format!("init container {name}: its monitor died"))),
            _ if Instant::now() >= deadline => {
                return Err(PodError::msg(format!("init container {name}: still running after {timeout:?}")))
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Kubernetes' command/args over the image's Entrypoint/Cmd: `command`
/// replaces the Entrypoint (and drops Cmd), `args` replaces Cmd.
fn run_options(name: &str, c: &ContainerSpec) -> RunOptions {
    let (entrypoint, cmd) = if c.command.is_empty() {
        (None, c.args.clone())
    } else {
        (Some(String::new()), c.command.iter().chain(&c.args).cloned().collect())
    };
    RunOptions {
        id: name.to_owned(),
        cmd,
        entrypoint,
        env: c.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        workdir: c.working_dir.clone(),
        user: None,
        terminal: false,
        memory: c.memory_limit,
        cpus: c.cpu_limit,
        pids_limit: None,
        volumes: Vec::new(),
        seccomp: Seccomp::Default,
        no_new_privileges: false,
    }
}

/// Makes the pod's volumes; returns (name, host path).
fn make_volumes(store: &ImageStore, pod: &PodManifest) -> Result<Vec<(String, PathBuf)>> {
    let base = pods::pod_dir(store, &pod.name).join("volumes");
    let mut out = Vec::new();
    for v in &pod.volumes {
        let path = match &v.source {
            VolumeSource::EmptyDir { memory, size_limit } => {
                let p = base.join(&v.name);
                std::fs::create_dir_all(&p).map_err(io("create", &p))?;
                // World-writable as Kubernetes makes it: images that run as non-root write there.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).map_err(io("chmod", &p))?;
                if *memory {
                    let size = size_limit.map(|s| format!("size={s}")).unwrap_or_default();
                    tmpfs(&p, &size)?;
                }
                p
            }
            VolumeSource::HostPath { path, kind } => {
                let p = PathBuf::from(path);
                host_path(&p, kind.as_deref().unwrap_or(""), &v.name)?;
                p
            }
        };
        out.push((v.name.clone(), path));
    }
    Ok(out)
}

fn tmpfs(p: &Path, opts: &str) -> Result<()> {
    let c = |s: &[u8]| std::ffi::CString::new(s).unwrap_or_default();
    let (src, dst, ty, data) = (c(b"tmpfs"), c(p.as_os_str().as_encoded_bytes()), c(b"tmpfs"), c(opts.as_bytes()));
    // SAFETY: valid NUL-terminated strings; a fresh tmpfs on a directory we made.
    if unsafe {
        libc::mount(src.as_ptr(), dst.as_ptr(), ty.as_ptr(), libc::MS_NOSUID | libc::MS_NODEV, data.as_ptr().cast())
    } != 0
    {
        return Err(PodError::last_os_error(format_args!("mount tmpfs ({opts}) on {}", p.display())));
    }
    Ok(())
}

/// Kubernetes' hostPath `type` checks.
fn host_path(p: &Path, kind: &str, vol: &str) -> Result<()> {
    let md = std::fs::metadata(p);
    let fail = |want: &str| Err(PodError::msg(format!("volume {vol}: hostPath {} is not {want}", p.display())));
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => std::fs::create_dir_all(p).map_err(io("create", p)),
        "Directory" if md.as_ref().is_ok_and(|m| m.is_dir()) => Ok(()),
        "Directory" => fail("an existing directory"),
        "FileOrCreate" if md.is_ok() => Ok(()),
        "FileOrCreate" => std::fs::write(p, b"").map_err(io("create", p)),
        "File" if md.as_ref().is_ok_and(|m| m.is_file()) => Ok(()),
        "File" => fail("an existing file"),
        "Socket" | "CharDevice" | "BlockDevice" => {
            use std::os::unix::fs::FileTypeExt;
            let ok = md.as_ref().is_ok_and(|m| {
                let t = m.file_type();
                (kind == "Socket" && t.is_socket())
                    || (kind == "CharDevice" && t.is_char_device())
                    || (kind == "BlockDevice" && t.is_block_device())
            });
            if ok {
                Ok(())
            } else {
                fail(kind)
            }
        }
        other => Err(PodError::msg(format!("volume {vol}: unknown hostPath type {other:?}"))),
    }
}

/// The OCI mounts of a container's volumeMounts.
fn mounts(c: &ContainerSpec, vols: &[(String, PathBuf)]) -> Result<Vec<Value>> {
    c.volume_mounts
        .iter()
        .map(|m| {
            let (_, base) = vols
                .iter()
                .find(|(n, _)| *n == m.name)
                .ok_or_else(|| PodError::msg(format!("container {}: volume {:?} is not declared", c.name, m.name)))?;
            let src = match &m.sub_path {
                Some(s) => sub_path(base, s, &c.name)?,
                None => base.clone(),
            };
            let mut opts = vec!["rbind", "rprivate"];
            if m.read_only {
                opts.push("ro");
            }
            Ok(json!({"destination": m.mount_path, "type": "bind", "source": src, "options": opts}))
        })
        .collect()
}

/// `base/sub`, made as directories where missing, refusing symlinks on the way: a
/// container that shares the volume (an init container before, a sibling) could
/// otherwise point a subPath anywhere on the host. (The check is at apply time; a
/// container swapping a checked directory for a symlink before a *restart* is not
/// covered: Kubernetes' own answer is to bind the resolved fd; capsa does not yet.)
fn sub_path(base: &Path, sub: &str, container: &str) -> Result<PathBuf> {
    let mut p = base.to_path_buf();
    for comp in Path::new(sub).components() {
        let std::path::Component::Normal(name) = comp else {
            return Err(PodError::msg(format!("container {container}: subPath {sub:?} must be relative, without ..")));
        };
        p.push(name);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(PodError::msg(format!(
                "container {container}: subPath {sub:?}: {} is a symlink (refused: it could lead out of the volume)",
                p.display()
            )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&p).map_err(io("create", &p))?;
            }
            Err(e) => return Err(io("inspect", &p)(e)),
        }
    }
    Ok(p)
}

/// `pod delete -f`: removes every pod the manifest names (those that exist).
pub fn delete(store: &ImageStore, tools: &Tools, net: &NetConfig, pods_in: &[PodManifest]) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for p in pods_in {
        match pods::load(store, &p.name) {
            Ok(_) => {
                // As kubectl delete: the stop signal and a grace period first, except for
                // a container whose init never learns of the signal (the kernel discards
                // it): waiting would only delay its SIGKILL.
                pods::stop_with(store, tools, &p.name, containers::Grace::UnlessDiscarded(DELETE_GRACE))?;
                pods::remove(store, tools, net, &p.name, true)?;
                removed.push(p.name.clone());
            }
            Err(PodError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_path_is_made_inside_and_refuses_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("vol");
        std::fs::create_dir(&base).unwrap();
        let p = sub_path(&base, "a/b", "c").unwrap();
        assert_eq!(p, base.join("a/b"));
        assert!(p.is_dir());
        // What a container sharing the volume could plant: a link to the host's root.
        std::os::unix::fs::symlink("/", base.join("escape")).unwrap();
        let e = sub_path(&base, "escape/etc", "c").unwrap_err().to_string();
        assert!(e.contains("is a symlink"), "{e}");
        std::os::unix::fs::symlink("/", base.join("a/link")).unwrap();
        assert!(sub_path(&base, "a/link", "c").is_err());
        assert!(sub_path(&base, "../x", "c").is_err());
        assert!(sub_path(&base, "/abs", "c").is_err());
        assert!(!d.path().join("x").exists());
    }
}
