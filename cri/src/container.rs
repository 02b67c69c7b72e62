//! Containers of a sandbox: a CRI container is a capsa managed container named by
//! its id, created (not started) under its own `capsa-shim`, which keeps its stdio,
//! writes its CRI log where kubelet asked and records its exit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use capsa_pod::containers::{self, Info, Request, ShimOptions, State as Live};
use capsa_pod::pods;
use serde_json::{json, Value};

use crate::daemon::Cri;
use crate::error::{Error, Result};
use crate::proto::{
    Container, ContainerConfig, ContainerFilter, ContainerResources, ContainerState, ContainerStatus,
    ContainerStatusResponse, ContainerUser, CreateContainerRequest, ImageSpec, LinuxContainerResources,
    LinuxContainerUser, NamespaceMode,
};
use crate::spec::{self, PidNs};
use crate::state::{ContainerRecord, Kind, SandboxRecord};
use crate::util::{new_id, now_ns, parse_rfc3339};

/// Exit code and reason of a container that failed to start (containerd's).
const START_ERROR_CODE: i32 = 128;

/// The name a container reserves: `<name>_<sandbox name>_<namespace>_<uid>_<attempt>`.
fn reserved_name(c: &ContainerConfig, sb: &SandboxRecord) -> Result<String> {
    let md = c.metadata.as_ref().ok_or_else(|| Error::invalid("container config must include metadata"))?;
    if md.name.is_empty() {
        return Err(Error::invalid("container metadata must include a name"));
    }
    let s = sb.config.metadata.clone().unwrap_or_default();
    Ok(format!("{}_{}_{}_{}_{}", md.name, s.name, s.namespace, s.uid, md.attempt))
}

/// CreateContainer. Returns the new container's id; on failure nothing is left.
pub fn create(cri: &Cri, req: CreateContainerRequest) -> Result<String> {
    let sb = cri.state.sandbox(&req.pod_sandbox_id)?;
    let config = req.config.ok_or_else(|| Error::invalid("CreateContainer: no container config"))?;
    let name = reserved_name(&config, &sb)?;
    let id = new_id();
    cri.state.reserve(Kind::Container, &name, &id)?;
    let r = make(cri, &id, &name, &sb, config);
    if r.is_err() {
        cri.state.release(Kind::Container, &name, &id);
    }
    r.map(|_| id)
}

fn make(cri: &Cri, id: &str, name: &str, sb: &SandboxRecord, config: ContainerConfig) -> Result<()> {
    if !crate::sandbox::is_ready(cri, sb) {
        return Err(Error::unknown(format!("sandbox {:?} is not ready (stopped, or its namespaces are gone)", sb.id)));
    }
    let image_name = config.image.as_ref().map(|i| i.image.clone()).unwrap_or_default();
    if image_name.is_empty() {
        return Err(Error::invalid("container config must name an image"));
    }
    let img = crate::image::resolve(cri, &image_name)?;
    let (repo_tag, repo_digest) = crate::image::refs(&img.record);
    // The CRI log: <log_directory>/<log_path>, both kubelet's.
    let log_path = if !sb.config.log_directory.is_empty() && !config.log_path.is_empty() {
        let p = Path::new(&sb.config.log_directory).join(&config.log_path);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::unknown(format!("create log directory {}: {e}", d.display())))?;
        }
        Some(p)
    } else {
        None
    };
    let pod = pods::load(&cri.store, &sb.id)?;
    let mut join = pods::join(&cri.store, &pod)?;
    let mounted: Vec<&str> = config.mounts.iter().map(|m| m.container_path.trim_end_matches('/')).collect();
    join.files.retain(|(_, dst)| !mounted.contains(&dst.as_str()));
    let (mode, target) = spec::pid_mode(&config);
    let pid = match mode {
        NamespaceMode::Container => PidNs::Own,
        NamespaceMode::Node => PidNs::Host,
        NamespaceMode::Pod => match pods::pid_namespace(&cri.store, &pod)? {
            Some(p) => PidNs::Join(p),
            None => PidNs::Own,
        },
        NamespaceMode::Target => {
            let t = cri.state.container(&target).map_err(|e| e.context("pid namespace TARGET"))?;
            let info = containers::inspect_state(&cri.store, &cri.tools, &t.id)?;
            match info.pid {
                Some(p) if info.state == Live::Running => PidNs::Join(PathBuf::from(format!("/proc/{p}/ns/pid"))),
                _ => return Err(Error::unknown(format!("pid namespace TARGET: container {} is not running", t.id))),
            }
        }
    };
    let host_ipc = crate::sandbox::namespace_options(&sb.config).ipc == NamespaceMode::Node as i32;
    let opts = spec::run_options(id, &config)?;
    let md = config.metadata.clone().unwrap_or_default();
    let labels: BTreeMap<String, String> = config.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let req = Request {
        image_name: repo_tag.clone(),
        image: &img,
        opts,
        copy: false,
        restart: "no".into(),
        stdin: config.stdin,
        pod: Some(join),
        extra_mounts: Vec::new(),
        labels,
        pod_container: Some(md.name.clone()),
        init: false,
        created_only: true,
    };
    let sbmd = sb.config.metadata.clone().unwrap_or_default();
    let annotations: BTreeMap<String, String> = [
        ("io.kubernetes.cri.container-type", "container".to_owned()),
        ("io.kubernetes.cri.container-name", md.name.clone()),
        ("io.kubernetes.cri.sandbox-id", sb.id.clone()),
        ("io.kubernetes.cri.sandbox-name", sbmd.name.clone()),
        ("io.kubernetes.cri.sandbox-namespace", sbmd.namespace.clone()),
        ("io.kubernetes.cri.sandbox-uid", sbmd.uid.clone()),
        ("io.kubernetes.cri.image-name", repo_tag.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let hostname = pod.hostname.clone();
    let cgroup_parent = sb.config.linux.as_ref().map(|l| l.cgroup_parent.clone()).unwrap_or_default();
    let min_oom = cri.cfg.restrict_oom_score_adj.then(own_oom_score_adj);
    // The pod's /dev/shm (mounted again if it is not: a sandbox made before capsa-cri
    // mounted one), never a fallback to the bare directory.
    let pod_shm = if host_ipc {
        None
    } else {
        let p = crate::shm::path(&cri.store, &sb.id);
        crate::shm::mount(&p)?;
        Some(p)
    };
    let cx = spec::Context {
        config: &config,
        hostname: &hostname,
        cgroup_parent: &cgroup_parent,
        id,
        pid,
        host_ipc,
        pod_shm,
        default_seccomp: &cri.cfg.default_seccomp_profile,
        min_oom_score_adj: min_oom,
        annotations,
    };
    let mut spec_err = None;
    let mut customize = |spec: &mut Value, _rootfs: &Path| -> capsa_pod::Result<()> {
        spec::customize(spec, &cx).map_err(|e| {
            let m = e.msg.clone();
            spec_err = Some(e);
            capsa_pod::PodError::msg(m)
        })
    };
    // Rotation is kubelet's (ReopenContainerLog) when it names the log file.
    let shim = ShimOptions { log_max_size: log_path.as_ref().map(|_| 0), log_path: log_path.clone() };
    tracing::debug!("container {id} ({name}): creating in sandbox {}", sb.id);
    let made = containers::run_detached_with(&cri.store, &cri.tools, &req, &shim, &mut customize, &mut |_| {});
    if let Err(e) = made {
        // The spec step's own error keeps its code (InvalidArgument, Unimplemented, ...).
        return Err(spec_err.unwrap_or_else(|| e.into()).context(format!("failed to create container {name:?}")));
    }
    let rec = ContainerRecord {
        id: id.to_owned(),
        name: name.to_owned(),
        sandbox_id: sb.id.clone(),
        config,
        image_name,
        image_ref: repo_digest,
        image_id: img.record.config.to_string(),
        created_at: now_ns(),
        started_at: 0,
        log_path: log_path.map(|p| p.display().to_string()).unwrap_or_default(),
        start_error: None,
    };
    if let Err(e) = cri.state.put_container(&rec) {
        if let Err(ce) = containers::remove(&cri.store, &cri.tools, id, true) {
            tracing::warn!("clean up container {id}: {ce}");
        }
        return Err(e);
    }
    cri.events.watch(&containers::shim_dir(&cri.store, id), id);
    cri.events.emit_for(cri, &rec, crate::proto::ContainerEventType::ContainerCreatedEvent);
    tracing::info!("container {id} ({name}) created");
    Ok(())
}

/// capsa-cri's own oom_score_adj.
fn own_oom_score_adj() -> i64 {
    std::fs::read_to_string("/proc/self/oom_score_adj").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// The live state of a container, as CRI reports it.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub state: i32,
    pub pid: Option<i32>,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
}

fn exited(code: i32, reason: &str, message: &str, started_at: i64, finished_at: i64) -> Status {
    Status {
        state: ContainerState::ContainerExited as i32,
        pid: None,
        started_at,
        finished_at,
        exit_code: code,
        reason: reason.into(),
        message: message.into(),
    }
}

/// Reads the live state from the shim's files (a dead shim is reconciled: the
/// container is killed and reported exited).
pub fn live(cri: &Cri, rec: &ContainerRecord) -> Status {
    if let Some(e) = &rec.start_error {
        return exited(START_ERROR_CODE, "StartError", e, rec.started_at, rec.started_at);
    }
    let info: Info = match containers::inspect_state(&cri.store, &cri.tools, &rec.id) {
        Ok(i) => i,
        Err(e) => {
            return exited(
                255,
                "Unknown",
                &format!("the container's files are gone: {e}"),
                rec.started_at,
                rec.started_at,
            )
        }
    };
    let finished =
        |i: &Info| i.exit.as_ref().and_then(|x| x["finished_at"].as_str()).and_then(parse_rfc3339).unwrap_or(0);
    match info.state {
        Live::Running | Live::Restarting if rec.started_at == 0 => {
            Status { state: ContainerState::ContainerCreated as i32, ..Default::default() }
        }
        Live::Running | Live::Restarting => Status {
            state: ContainerState::ContainerRunning as i32,
            pid: info.pid,
            started_at: rec.started_at,
            ..Default::default()
        },
        Live::Created => Status { state: ContainerState::ContainerCreated as i32, ..Default::default() },
        Live::Exited => {
            let code = info.exit_code().unwrap_or(255) as i32;
            let oom = info.exit.as_ref().is_some_and(|x| x["oom"] == true);
            let reason = if oom {
                "OOMKilled"
            } else if code == 0 {
                "Completed"
            } else {
                "Error"
            };
            exited(code, reason, "", rec.started_at, finished(&info))
        }
        Live::Lost => {
            let at = std::fs::read_to_string(containers::container_dir(&cri.store, &rec.id).join("lost"))
                .ok()
                .and_then(|s| parse_rfc3339(s.trim()))
                .unwrap_or(0);
            exited(
                255,
                "Unknown",
                "the container's monitor (capsa-shim) died; the container was killed",
                rec.started_at,
                at,
            )
        }
    }
}

/// The CRI status of a container.
pub fn to_status(cri: &Cri, rec: &ContainerRecord) -> ContainerStatus {
    let s = live(cri, rec);
    let runtime_spec = containers::config(&cri.store, &rec.id).ok();
    let user = runtime_spec.as_ref().map(|sp| {
        let u = &sp["process"]["user"];
        ContainerUser {
            linux: Some(LinuxContainerUser {
                uid: u["uid"].as_i64().unwrap_or(0),
                gid: u["gid"].as_i64().unwrap_or(0),
                supplemental_groups: u["additionalGids"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default(),
            }),
        }
    });
    ContainerStatus {
        id: rec.id.clone(),
        metadata: rec.config.metadata.clone(),
        state: s.state,
        created_at: rec.created_at,
        started_at: s.started_at,
        finished_at: s.finished_at,
        exit_code: s.exit_code,
        image: Some(image_spec(rec)),
        image_ref: rec.image_ref.clone(),
        reason: s.reason,
        message: s.message,
        labels: rec.config.labels.clone(),
        annotations: rec.config.annotations.clone(),
        mounts: rec.config.mounts.clone(),
        log_path: rec.log_path.clone(),
        resources: rec
            .config
            .linux
            .as_ref()
            .and_then(|l| l.resources.clone())
            .map(|r| ContainerResources { linux: Some(r), windows: None }),
        image_id: rec.image_id.clone(),
        user,
    }
}

fn image_spec(rec: &ContainerRecord) -> ImageSpec {
    let mut i = rec.config.image.clone().unwrap_or_default();
    i.image = rec.image_name.clone();
    i
}

/// ContainerStatus.
pub fn status(cri: &Cri, id: &str, verbose: bool) -> Result<ContainerStatusResponse> {
    let rec = cri.state.container(id)?;
    let status = to_status(cri, &rec);
    let mut info = HashMap::new();
    if verbose {
        let s = live(cri, &rec);
        let v = json!({
            "sandboxID": rec.sandbox_id,
            "pid": s.pid.unwrap_or(0),
            "name": rec.name,
            "containerDir": containers::container_dir(&cri.store, &rec.id),
            "logPath": rec.log_path,
            "runtimeType": "capsa",
            "config": rec.config,
            "runtimeSpec": containers::config(&cri.store, &rec.id).ok(),
        });
        info.insert("info".to_owned(), v.to_string());
    }
    Ok(ContainerStatusResponse { status: Some(status), info })
}

fn labels_match(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// ListContainers.
pub fn list(cri: &Cri, filter: Option<ContainerFilter>) -> Vec<Container> {
    let f = filter.unwrap_or_default();
    let id = (!f.id.is_empty()).then(|| cri.state.resolve(Kind::Container, &f.id).unwrap_or(f.id.clone()));
    let sb = (!f.pod_sandbox_id.is_empty())
        .then(|| cri.state.resolve(Kind::Sandbox, &f.pod_sandbox_id).unwrap_or(f.pod_sandbox_id.clone()));
    cri.state
        .containers()
        .into_iter()
        .filter(|r| id.as_ref().is_none_or(|i| *i == r.id))
        .filter(|r| sb.as_ref().is_none_or(|s| *s == r.sandbox_id))
        .filter(|r| labels_match(&r.config.labels, &f.label_selector))
        .filter_map(|r| {
            let state = live(cri, &r).state;
            if f.state.as_ref().is_some_and(|s| s.state != state) {
                return None;
            }
            Some(Container {
                id: r.id.clone(),
                pod_sandbox_id: r.sandbox_id.clone(),
                metadata: r.config.metadata.clone(),
                image: Some(image_spec(&r)),
                image_ref: r.image_ref.clone(),
                state,
                created_at: r.created_at,
                labels: r.config.labels.clone(),
                annotations: r.config.annotations.clone(),
                image_id: r.image_id.clone(),
            })
        })
        .collect()
}

/// StartContainer.
pub fn start(cri: &Cri, rec: &ContainerRecord) -> Result<()> {
    let s = live(cri, rec);
    if s.state != ContainerState::ContainerCreated as i32 {
        let name = ContainerState::try_from(s.state).map_or("UNKNOWN", |st| st.as_str_name());
        return Err(Error::unknown(format!("container {} is in {name} state", rec.id)));
    }
    let mut r = rec.clone();
    r.started_at = now_ns();
    if let Err(e) = containers::start(&cri.tools, &rec.id) {
        // As containerd: the container is reported exited with StartError, and removable.
        r.start_error = Some(e.to_string());
        if let Err(se) = containers::stop(&cri.store, &cri.tools, &rec.id, Duration::ZERO) {
            tracing::warn!("stop container {} after its failed start: {se}", rec.id);
        }
        cri.state.put_container(&r)?;
        cri.events.emit_for(cri, &r, crate::proto::ContainerEventType::ContainerStoppedEvent);
        return Err(Error::unknown(format!("failed to start container {:?}: {e}", rec.id)));
    }
    cri.state.put_container(&r)?;
    cri.events.emit_for(cri, &r, crate::proto::ContainerEventType::ContainerStartedEvent);
    tracing::info!("container {} started", rec.id);
    Ok(())
}

/// StopContainer: the stop signal (the image's StopSignal, else SIGTERM), SIGKILL after
/// `timeout` seconds (0: at once). Stopping a stopped container does nothing.
pub fn stop_now(cri: &Cri, rec: &ContainerRecord, timeout: i64) -> Result<()> {
    let s = live(cri, rec);
    if s.state == ContainerState::ContainerExited as i32 {
        return Ok(());
    }
    let grace = Duration::from_secs(timeout.max(0) as u64);
    containers::stop(&cri.store, &cri.tools, &rec.id, grace)
        .map_err(|e| Error::from(e).context(format!("failed to stop container {:?}", rec.id)))?;
    cri.events.reconcile_one(cri, rec);
    Ok(())
}

/// RemoveContainer: stops it at once if it runs, then removes its files and record.
pub fn remove_now(cri: &Cri, rec: &ContainerRecord) -> Result<()> {
    match containers::remove(&cri.store, &cri.tools, &rec.id, true) {
        Ok(()) | Err(capsa_pod::PodError::NotFound { .. }) => {}
        Err(e) => return Err(Error::from(e).context(format!("failed to remove container {:?}", rec.id))),
    }
    cri.events.unwatch(&rec.id);
    cri.state.remove(Kind::Container, &rec.id)?;
    cri.events.emit_for(cri, rec, crate::proto::ContainerEventType::ContainerDeletedEvent);
    tracing::info!("container {} removed", rec.id);
    Ok(())
}

/// UpdateContainerResources: applied to the container's cgroup, and kept in its record.
pub fn update_resources(cri: &Cri, rec: &ContainerRecord, res: &LinuxContainerResources) -> Result<()> {
    let s = live(cri, rec);
    if s.state != ContainerState::ContainerRunning as i32 && s.state != ContainerState::ContainerCreated as i32 {
        let name = ContainerState::try_from(s.state).map_or("UNKNOWN", |st| st.as_str_name());
        return Err(Error::unknown(format!("container {} is in {name} state", rec.id)));
    }
    let min_oom = cri.cfg.restrict_oom_score_adj.then(own_oom_score_adj);
    let (v, _oom) = spec::resources(res, min_oom)?;
    let parsed: capsa_runtime::spec::LinuxResources =
        serde_json::from_value(v).map_err(|e| Error::invalid(format!("resources: {e}")))?;
    let rt = capsa_runtime::container::Store::new(&cri.tools.root);
    capsa_runtime::lifecycle::update(&rt, &rec.id, &parsed).map_err(|e| {
        let code = crate::error::runtime_code(&e);
        Error::new(code, format!("failed to update resources of container {:?}: {e}", rec.id))
    })?;
    let mut r = rec.clone();
    r.config.linux.get_or_insert_with(Default::default).resources = Some(res.clone());
    cri.state.put_container(&r)
}

/// ReopenContainerLog.
pub fn reopen_log(cri: &Cri, rec: &ContainerRecord) -> Result<()> {
    if live(cri, rec).state != ContainerState::ContainerRunning as i32 {
        return Err(Error::unknown("container is not running"));
    }
    containers::reopen_log(&cri.store, &rec.id).map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ContainerMetadata, PodSandboxConfig, PodSandboxMetadata};

    #[test]
    fn container_names() {
        let sb = SandboxRecord {
            config: PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: "web".into(),
                    uid: "u".into(),
                    namespace: "ns".into(),
                    attempt: 0,
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut c = ContainerConfig::default();
        assert_eq!(reserved_name(&c, &sb).unwrap_err().code, tonic::Code::InvalidArgument);
        c.metadata = Some(ContainerMetadata { name: "app".into(), attempt: 1 });
        assert_eq!(reserved_name(&c, &sb).unwrap(), "app_web_ns_u_1");
    }
}
