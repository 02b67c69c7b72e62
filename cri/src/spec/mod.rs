//! A CRI `ContainerConfig` made into the container's `config.json`, on top of what
//! capsa builds from the image (args, env, user, default mounts) and the pod
//! (its namespaces and /etc files): the security context, mounts, devices,
//! resources, cgroup and pid namespace, as containerd's CRI plugin does it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use capsa_image::bundle::RunOptions;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::proto::{ContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext, NamespaceMode};
use crate::seccomp;

mod devices;
mod mounts;

use devices::devices;
use mounts::mounts;

/// Docker's and containerd's default capabilities.
pub use capsa_image::bundle::DEFAULT_CAPS;

/// Every capability this daemon holds in its bounding set (privileged containers
/// and `ALL`), as containerd: a capability the node's root lacks (CAP_SYS_RESOURCE
/// where the host withholds it) cannot be granted, and asking for it fails capset.
fn all_caps() -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapBnd:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    (0..=capsa_runtime::security::caps::MAX_KNOWN_CAP)
        .filter(|n| bounding & (1u64 << n) != 0)
        .filter_map(capsa_runtime::security::caps::cap_name)
        .map(String::from)
        .collect()
}

/// The pid namespace a container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidNs {
    /// Its own (CRI CONTAINER).
    Own,
    /// The host's (NODE).
    Host,
    /// Join this one by path (POD: the pod's; TARGET: another container's).
    Join(PathBuf),
}

/// What the container needs from around it.
pub struct Context<'a> {
    pub config: &'a ContainerConfig,
    pub hostname: &'a str,
    /// The sandbox's cgroup parent (kubelet's `/kubepods/...`); empty: capsa's default.
    pub cgroup_parent: &'a str,
    pub id: &'a str,
    pub pid: PidNs,
    /// The pod shares the host's ipc namespace.
    pub host_ipc: bool,
    /// The pod's `/dev/shm` tmpfs (see [`crate::shm`]), bound in place of the
    /// container's own.
    pub pod_shm: Option<PathBuf>,
    pub default_seccomp: &'a str,
    /// Clamp oom_score_adj to at least this (`restrict_oom_score_adj`).
    pub min_oom_score_adj: Option<i64>,
    /// Annotations capsa adds for tools that look for containerd's (`io.kubernetes.cri.*`).
    pub annotations: BTreeMap<String, String>,
}

fn security(c: &ContainerConfig) -> Option<&LinuxContainerSecurityContext> {
    c.linux.as_ref().and_then(|l| l.security_context.as_ref())
}

/// The image-level options: command and args over the image's Entrypoint and Cmd (as
/// Kubernetes: `command` replaces the Entrypoint and drops Cmd, `args` replaces Cmd),
/// env, working dir, user and terminal.
pub fn run_options(id: &str, c: &ContainerConfig) -> Result<RunOptions> {
    let (entrypoint, cmd) = if c.command.is_empty() {
        (None, c.args.clone())
    } else {
        (Some(String::new()), c.command.iter().chain(&c.args).cloned().collect())
    };
    let mut env = Vec::new();
    for kv in &c.envs {
        if kv.key.is_empty() || kv.key.contains('=') {
            return Err(Error::invalid(format!("environment variable name {:?} is invalid", kv.key)));
        }
        env.push(format!("{}={}", kv.key, kv.value));
    }
    let user = match security(c) {
        Some(sc) => {
            let group = sc.run_as_group.as_ref().map(|g| g.value);
            let user = if !sc.run_as_username.is_empty() {
                Some(sc.run_as_username.clone())
            } else {
                sc.run_as_user.as_ref().map(|u| u.value.to_string())
            };
            match (user, group) {
                (Some(u), Some(g)) => Some(format!("{u}:{g}")),
                (Some(u), None) => Some(u),
                (None, Some(g)) => {
                    return Err(Error::unknown(format!("user group {g} is specified without user")));
                }
                (None, None) => None,
            }
        }
        None => None,
    };
    Ok(RunOptions {
        id: id.to_owned(),
        cmd,
        entrypoint,
        env,
        workdir: (!c.working_dir.is_empty()).then(|| c.working_dir.clone()),
        user,
        terminal: c.tty,
        ..Default::default()
    })
}

/// Applies everything else of the CRI config to `spec` (built from the image and
/// joined to the pod), as the last step before it is written.
pub fn customize(spec: &mut Value, cx: &Context<'_>) -> Result<()> {
    let c = cx.config;
    let default_sc = LinuxContainerSecurityContext::default();
    let sc = security(c).unwrap_or(&default_sc);
    let privileged = sc.privileged;
    if let Some(u) = sc.namespace_options.as_ref().and_then(|n| n.userns_options.as_ref()) {
        if u.mode == NamespaceMode::Pod as i32 {
            return Err(Error::unknown("user namespaces (userns_options mode POD) are not supported"));
        }
    }

    // Hostname: the pod's (its uts namespace, or the host's), and HOSTNAME in the environment.
    if let Some(o) = spec.as_object_mut() {
        o.remove("hostname");
    }
    if let Some(env) = spec["process"]["env"].as_array_mut() {
        env.retain(|e| !e.as_str().is_some_and(|s| s.starts_with("HOSTNAME=")));
        let explicit = c.envs.iter().any(|kv| kv.key == "HOSTNAME");
        if !explicit {
            env.insert(1.min(env.len()), json!(format!("HOSTNAME={}", cx.hostname)));
        }
    }

    // User: the primary group, the image's /etc/group memberships and the
    // supplemental groups, as containerd's WithAdditionalGIDs (`id` shows
    // `groups=0(root)` for root, not an empty list).
    let primary = spec["process"]["user"]["gid"].as_u64().unwrap_or(0);
    let mut gids: Vec<u64> = vec![primary];
    for g in spec["process"]["user"]["additionalGids"].as_array().into_iter().flatten().filter_map(Value::as_u64) {
        if !gids.contains(&g) {
            gids.push(g);
        }
    }
    for g in &sc.supplemental_groups {
        let g = u64::try_from(*g).map_err(|_| Error::invalid(format!("supplemental group {g} is negative")))?;
        if !gids.contains(&g) {
            gids.push(g);
        }
    }
    spec["process"]["user"]["additionalGids"] = json!(gids);

    // Capabilities.
    let caps = capabilities(sc)?;
    spec["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    if let Some(ambient) = sc.capabilities.as_ref().map(|c| &c.add_ambient_capabilities).filter(|a| !a.is_empty()) {
        let amb: Vec<String> = ambient.iter().map(|a| cap_name(a)).collect();
        spec["process"]["capabilities"]["inheritable"] = json!(amb);
        spec["process"]["capabilities"]["ambient"] = json!(amb);
    }
    spec["process"]["noNewPrivileges"] = json!(sc.no_new_privs);
    spec["root"]["readonly"] = json!(sc.readonly_rootfs);

    // AppArmor: this host has none; asking for a profile is an error, as in containerd.
    #[allow(deprecated)] // kubelets before 1.30 still send apparmor_profile
    let apparmor_asked = match &sc.apparmor {
        Some(p) => p.profile_type != crate::proto::security_profile::ProfileType::Unconfined as i32,
        None => !sc.apparmor_profile.is_empty() && sc.apparmor_profile != "unconfined",
    };
    if apparmor_asked && !privileged {
        return Err(Error::unknown("apparmor is not supported"));
    }

    // Masked and read-only paths: kubelet's lists replace the defaults (none when privileged).
    if privileged {
        for k in ["maskedPaths", "readonlyPaths"] {
            if let Some(l) = spec["linux"].as_object_mut() {
                l.remove(k);
            }
        }
    } else {
        if !sc.masked_paths.is_empty() {
            spec["linux"]["maskedPaths"] = json!(sc.masked_paths);
        }
        if !sc.readonly_paths.is_empty() {
            spec["linux"]["readonlyPaths"] = json!(sc.readonly_paths);
        }
    }

    // Mounts: kubelet's replace the defaults at the same destination; the pod's /etc
    // files are only mounted where kubelet does not mount its own.
    let shm = if cx.host_ipc { Some(Path::new("/dev/shm")) } else { cx.pod_shm.as_deref() };
    mounts(spec, c, privileged, shm)?;

    // Devices.
    devices(spec, c, privileged)?;

    // Namespaces: the pid namespace.
    if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
        nss.retain(|n| n["type"] != "pid");
        match &cx.pid {
            PidNs::Own => nss.push(json!({"type": "pid"})),
            PidNs::Host => {}
            PidNs::Join(p) => nss.push(json!({"type": "pid", "path": p})),
        }
    }

    // Resources and cgroup.
    let res = c.linux.as_ref().and_then(|l| l.resources.as_ref());
    if let Some(r) = res {
        let (res_json, oom) = resources(r, cx.min_oom_score_adj)?;
        let keep_devices = spec["linux"]["resources"]["devices"].clone();
        spec["linux"]["resources"] = res_json;
        spec["linux"]["resources"]["devices"] = keep_devices;
        if let Some(o) = oom {
            spec["process"]["oomScoreAdj"] = json!(o);
        }
    }
    if !cx.cgroup_parent.is_empty() {
        spec["linux"]["cgroupsPath"] = json!(format!("{}/{}", cx.cgroup_parent.trim_end_matches('/'), cx.id));
    }

    // Seccomp (after capabilities: the default profile depends on them).
    #[allow(deprecated)] // kubelets before 1.19 send seccomp_profile_path
    let choice = if privileged {
        seccomp::Choice::Unconfined
    } else {
        seccomp::choose(sc.seccomp.as_ref(), &sc.seccomp_profile_path, cx.default_seccomp)?
    };
    seccomp::apply(spec, &choice, &caps)?;

    // Annotations: kubelet's, then capsa's io.kubernetes.cri.* ones.
    let mut ann = spec.get("annotations").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    for (k, v) in c.annotations.iter().chain(cx.annotations.iter()) {
        ann[k] = json!(v);
    }
    spec["annotations"] = ann;
    Ok(())
}

fn cap_name(c: &str) -> String {
    let u = c.to_ascii_uppercase();
    if u.starts_with("CAP_") {
        u
    } else {
        format!("CAP_{u}")
    }
}

/// The capability set: all when privileged, else the defaults plus `add` minus `drop`
/// (`ALL` in either).
fn capabilities(sc: &LinuxContainerSecurityContext) -> Result<Vec<String>> {
    if sc.privileged {
        return Ok(all_caps());
    }
    let held = all_caps();
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    if let Some(cc) = &sc.capabilities {
        for (list, add) in [(&cc.add_capabilities, true), (&cc.drop_capabilities, false)] {
            for c in list {
                if c.eq_ignore_ascii_case("ALL") {
                    caps = if add { held.clone() } else { Vec::new() };
                    continue;
                }
                let n = cap_name(c);
                if !(0..=capsa_runtime::security::caps::MAX_KNOWN_CAP)
                    .any(|i| capsa_runtime::security::caps::cap_name(i) == Some(n.as_str()))
                {
                    return Err(Error::unknown(format!("unknown capability {c:?}")));
                }
                if add {
                    if !caps.contains(&n) {
                        caps.push(n);
                    }
                } else {
                    caps.retain(|x| *x != n);
                }
            }
        }
        // An explicit add wins over drop ALL given with it (kubelet's order: drop, then add).
        if cc.drop_capabilities.iter().any(|d| d.eq_ignore_ascii_case("ALL")) {
            for c in &cc.add_capabilities {
                let n = cap_name(c);
                if !c.eq_ignore_ascii_case("ALL") && !caps.contains(&n) {
                    caps.push(n);
                }
            }
        }
    }
    Ok(caps)
}

/// `linux.resources` (without devices) and the oom_score_adj of CRI resources.
pub fn resources(r: &LinuxContainerResources, min_oom: Option<i64>) -> Result<(Value, Option<i64>)> {
    let mut res = json!({});
    let mut cpu = serde_json::Map::new();
    if r.cpu_period > 0 {
        cpu.insert("period".into(), json!(r.cpu_period));
    }
    if r.cpu_quota > 0 {
        cpu.insert("quota".into(), json!(r.cpu_quota));
    }
    if r.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(r.cpu_shares));
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(r.cpuset_cpus));
    }
    if !r.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(r.cpuset_mems));
    }
    if !cpu.is_empty() {
        res["cpu"] = Value::Object(cpu);
    }
    if r.memory_limit_in_bytes > 0 {
        res["memory"] = json!({"limit": r.memory_limit_in_bytes});
        if r.memory_swap_limit_in_bytes > 0 {
            res["memory"]["swap"] = json!(r.memory_swap_limit_in_bytes);
        }
    }
    if !r.hugepage_limits.is_empty() {
        let h: Vec<Value> =
            r.hugepage_limits.iter().map(|h| json!({"pageSize": h.page_size, "limit": h.limit})).collect();
        res["hugepageLimits"] = json!(h);
    }
    if !r.unified.is_empty() {
        let u: BTreeMap<&String, &String> = r.unified.iter().collect();
        res["unified"] = json!(u);
    }
    let oom = (r.oom_score_adj != 0).then(|| match min_oom {
        Some(m) => r.oom_score_adj.max(m),
        None => r.oom_score_adj,
    });
    if let Some(o) = oom {
        if !(-1000..=1000).contains(&o) {
            return Err(Error::invalid(format!("oom_score_adj {o} is outside -1000..1000")));
        }
    }
    Ok((res, oom))
}

/// The pid namespace mode a container asks for.
pub fn pid_mode(c: &ContainerConfig) -> (NamespaceMode, String) {
    match security(c).and_then(|s| s.namespace_options.as_ref()) {
        Some(n) => (NamespaceMode::try_from(n.pid).unwrap_or(NamespaceMode::Container), n.target_id.clone()),
        // No options: POD, the proto's default (containerd reads it the same way).
        None => (NamespaceMode::Pod, String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Capability, ContainerMetadata, Int64Value, KeyValue, LinuxContainerConfig, Mount};

    fn base() -> Value {
        let mut s = capsa_runtime::spec::default_spec();
        s["hostname"] = json!("x");
        s["process"]["env"] = json!(["PATH=/bin", "HOSTNAME=c1"]);
        s
    }

    fn cx<'a>(c: &'a ContainerConfig) -> Context<'a> {
        Context {
            config: c,
            hostname: "pod-host",
            cgroup_parent: "/kubepods/podX",
            id: "cid",
            pid: PidNs::Own,
            host_ipc: false,
            pod_shm: None,
            default_seccomp: "unconfined",
            min_oom_score_adj: None,
            annotations: BTreeMap::new(),
        }
    }

    fn with_sc(sc: LinuxContainerSecurityContext) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata { name: "c".into(), attempt: 0 }),
            linux: Some(LinuxContainerConfig { security_context: Some(sc), resources: None }),
            ..Default::default()
        }
    }

    #[test]
    fn command_args_env_user() {
        let mut c = with_sc(LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: 1000 }),
            run_as_group: Some(Int64Value { value: 5 }),
            ..Default::default()
        });
        c.command = vec!["/bin/sh".into()];
        c.args = vec!["-c".into(), "true".into()];
        c.envs = vec![KeyValue { key: "A".into(), value: "1".into() }];
        let o = run_options("id", &c).unwrap();
        assert_eq!(o.entrypoint.as_deref(), Some(""));
        assert_eq!(o.cmd, vec!["/bin/sh", "-c", "true"]);
        assert_eq!(o.user.as_deref(), Some("1000:5"));
        assert_eq!(o.env, vec!["A=1"]);
        c.command.clear();
        let o = run_options("id", &c).unwrap();
        assert_eq!((o.entrypoint, o.cmd), (None, vec!["-c".to_string(), "true".to_string()]));
        let c = with_sc(LinuxContainerSecurityContext {
            run_as_group: Some(Int64Value { value: 5 }),
            ..Default::default()
        });
        assert!(run_options("id", &c).is_err());
    }

    #[test]
    fn security_context() {
        let c = with_sc(LinuxContainerSecurityContext {
            capabilities: Some(Capability {
                add_capabilities: vec!["SYS_ADMIN".into()],
                drop_capabilities: vec!["NET_RAW".into(), "CAP_KILL".into()],
                ..Default::default()
            }),
            readonly_rootfs: true,
            no_new_privs: true,
            supplemental_groups: vec![44],
            masked_paths: vec!["/proc/kcore".into()],
            ..Default::default()
        });
        let mut s = base();
        customize(&mut s, &cx(&c)).unwrap();
        let caps: Vec<&str> =
            s["process"]["capabilities"]["bounding"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(caps.contains(&"CAP_SYS_ADMIN") && !caps.contains(&"CAP_NET_RAW") && !caps.contains(&"CAP_KILL"));
        assert!(caps.contains(&"CAP_CHOWN"));
        assert_eq!(s["root"]["readonly"], true);
        assert_eq!(s["process"]["noNewPrivileges"], true);
        assert_eq!(s["process"]["user"]["additionalGids"], json!([0, 44]), "the primary group first");
        assert_eq!(s["linux"]["maskedPaths"], json!(["/proc/kcore"]));
        assert!(s["linux"]["readonlyPaths"].as_array().is_some_and(|a| !a.is_empty()));
        assert!(s.get("hostname").is_none());
        assert!(s["process"]["env"].as_array().unwrap().contains(&json!("HOSTNAME=pod-host")));
        assert_eq!(s["linux"]["cgroupsPath"], "/kubepods/podX/cid");

        let c = with_sc(LinuxContainerSecurityContext { privileged: true, ..Default::default() });
        let mut s = base();
        customize(&mut s, &cx(&c)).unwrap();
        assert!(s["linux"].get("maskedPaths").is_none());
        assert_eq!(s["linux"]["resources"]["devices"], json!([{"allow": true, "access": "rwm"}]));
        assert!(s["process"]["capabilities"]["bounding"].as_array().unwrap().len() > 30);
        let sys = s["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/sys").unwrap();
        assert!(!sys["options"].as_array().unwrap().contains(&json!("ro")));

        let c = with_sc(LinuxContainerSecurityContext {
            apparmor: Some(crate::proto::SecurityProfile { profile_type: 0, localhost_ref: String::new() }),
            ..Default::default()
        });
        assert_eq!(customize(&mut base(), &cx(&c)).unwrap_err().msg, "apparmor is not supported");
    }

    #[test]
    fn mounts_and_pid() {
        let d = tempfile::tempdir().unwrap();
        let mut c = with_sc(LinuxContainerSecurityContext::default());
        c.mounts = vec![
            Mount {
                container_path: "/data".into(),
                host_path: d.path().join("new").display().to_string(),
                readonly: true,
                propagation: 1,
                ..Default::default()
            },
            Mount {
                container_path: "/dev/shm".into(),
                host_path: d.path().display().to_string(),
                ..Default::default()
            },
        ];
        let mut s = base();
        let mut x = cx(&c);
        x.pid = PidNs::Join("/p/ns/pid".into());
        customize(&mut s, &x).unwrap();
        assert!(d.path().join("new").is_dir(), "missing host dirs are made");
        let ms = s["mounts"].as_array().unwrap();
        let data = ms.iter().find(|m| m["destination"] == "/data").unwrap();
        assert_eq!(data["options"], json!(["rbind", "rslave", "ro"]));
        assert_eq!(s["linux"]["rootfsPropagation"], "rslave", "a host-to-container mount makes the root a slave");
        assert_eq!(ms.iter().filter(|m| m["destination"] == "/dev/shm").count(), 1);
        assert_eq!(ms.iter().find(|m| m["destination"] == "/dev/shm").unwrap()["type"], "bind");
        let nss = s["linux"]["namespaces"].as_array().unwrap();
        assert!(nss.contains(&json!({"type": "pid", "path": "/p/ns/pid"})));
    }

    #[test]
    fn resources_map() {
        let r = LinuxContainerResources {
            cpu_period: 100000,
            cpu_quota: 50000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 << 20,
            oom_score_adj: -100,
            ..Default::default()
        };
        let (v, oom) = resources(&r, None).unwrap();
        assert_eq!(v["cpu"], json!({"period": 100000, "quota": 50000, "shares": 512}));
        assert_eq!(v["memory"], json!({"limit": 64 << 20}));
        assert_eq!(oom, Some(-100));
        assert_eq!(resources(&r, Some(0)).unwrap().1, Some(0));
    }
}
