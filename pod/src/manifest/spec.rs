//! `spec`: the pod-level fields, and the checks across containers and volumes made once the whole spec has
//! been read (unique container names, declared volumes, each host port used once).

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

use super::containers::parse_containers;
use super::names::check_dns_label;
use super::volumes::parse_volumes;
use super::walk::{as_bool, as_mapping, as_string, fields, join, Ctx};
use super::{security, ContainerSpec, RestartPolicy, SeccompProfile, Volume};

const SPEC_FIELDS: &[&str] =
    &["containers", "initContainers", "volumes", "restartPolicy", "hostNetwork", "hostname", "securityContext"];
const SPEC_IGNORED: &[&str] = &[
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "nodeSelector",
    "nodeName",
    "affinity",
    "tolerations",
    "topologySpreadConstraints",
    "schedulerName",
    "priority",
    "priorityClassName",
    "preemptionPolicy",
    "runtimeClassName",
    "overhead",
    "readinessGates",
    "schedulingGates",
    "resourceClaims",
    "resources",
    "dnsPolicy",
    "dnsConfig",
    "hostAliases",
    "subdomain",
    "setHostnameAsFQDN",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "imagePullSecrets",
    "hostPID",
    "hostIPC",
    "hostUsers",
    "shareProcessNamespace",
    "enableServiceLinks",
    "ephemeralContainers",
    "os",
];

/// Facts gathered while walking the spec, checked once the whole spec has been read.
#[derive(Default)]
pub(super) struct PodRefs {
    /// (container name, path of its `name` field).
    pub(super) container_names: Vec<(String, String)>,
    /// (volume name, path of the mount's `name` field).
    pub(super) mounts: Vec<(String, String)>,
    /// Names of declared volumes, including ones rejected for their type (so mounts of them are not reported too).
    pub(super) volume_names: BTreeSet<String>,
    pub(super) ports: Vec<PortRef>,
}

pub(super) struct PortRef {
    pub(super) container_port: u16,
    pub(super) host_port: Option<u16>,
    pub(super) protocol: String,
    pub(super) path: String,
}

pub(super) struct SpecParts {
    pub(super) containers: Vec<ContainerSpec>,
    pub(super) init_containers: Vec<ContainerSpec>,
    pub(super) volumes: Vec<Volume>,
    pub(super) restart_policy: RestartPolicy,
    pub(super) host_network: bool,
    pub(super) hostname: Option<String>,
    pub(super) seccomp: Option<SeccompProfile>,
}

pub(super) fn parse_spec(ctx: &mut Ctx, v: &Value) -> Option<SpecParts> {
    let m = as_mapping(ctx, "spec", v)?;
    let mut refs = PodRefs::default();
    let mut containers = Vec::new();
    let mut init_containers = Vec::new();
    let mut volumes = Vec::new();
    let mut restart_policy = RestartPolicy::Always;
    let mut host_network = false;
    let mut hostname = None;
    let mut seccomp = None;
    for (key, v) in fields(ctx, "spec", m) {
        let p = join("spec", key);
        match key {
            "containers" => containers = parse_containers(ctx, &p, v, false, &mut refs),
            "initContainers" => init_containers = parse_containers(ctx, &p, v, true, &mut refs),
            "volumes" => volumes = parse_volumes(ctx, &p, v, &mut refs),
            "restartPolicy" => match as_string(ctx, &p, v).as_deref() {
                None | Some("Always") => {}
                Some("OnFailure") => restart_policy = RestartPolicy::OnFailure,
                Some("Never") => restart_policy = RestartPolicy::Never,
                Some(other) => {
                    ctx.error(&p, format!("unsupported value {other:?} (expected Always, OnFailure or Never)"))
                }
            },
            "hostNetwork" => host_network = as_bool(ctx, &p, v).unwrap_or(false),
            "hostname" => hostname = as_string(ctx, &p, v).filter(|h| check_dns_label(ctx, &p, "hostname", h)),
            "securityContext" => seccomp = security::parse(ctx, &p, v),
            k if SPEC_IGNORED.contains(&k) => ctx.ignored(&p),
            k => ctx.unknown(&p, k, &[SPEC_FIELDS, SPEC_IGNORED]),
        }
    }
    match m.get("containers") {
        None | Some(Value::Null) => ctx.error("spec.containers", "missing (a pod needs at least one container)"),
        Some(Value::Sequence(s)) if s.is_empty() => {
            ctx.error("spec.containers", "empty (a pod needs at least one container)")
        }
        _ => {}
    }
    check_refs(ctx, &refs, host_network);
    Some(SpecParts { containers, init_containers, volumes, restart_policy, host_network, hostname, seccomp })
}

fn check_refs(ctx: &mut Ctx, refs: &PodRefs, host_network: bool) {
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, path) in &refs.container_names {
        match names.get(name.as_str()) {
            Some(first) => ctx.error(path, format!("duplicate container name {name:?} (also used at {first})")),
            None => {
                names.insert(name, path);
            }
        }
    }

    for (volume, path) in &refs.mounts {
        if !refs.volume_names.contains(volume) {
            ctx.error(path, format!("volume {volume:?} is not declared in spec.volumes"));
        }
    }

    let mut taken: BTreeMap<(u16, &str), &str> = BTreeMap::new();
    for port in &refs.ports {
        if let Some(_h) = port.host_port.filter(|h| host_network && *h != port.container_port) {
            ctx.error(
                &join(&port.path, "hostPort"),
                format!("must equal containerPort ({}) when hostNetwork is true", port.container_port),
            );
            continue;
        }
        let effective = if host_network { Some(port.container_port) } else { port.host_port };
        let Some(h) = effective else { continue };
        match taken.get(&(h, port.protocol.as_str())) {
            Some(first) => ctx.error(
                &port.path,
                format!("host port {h}/{} is already used at {first}", port.protocol.to_ascii_uppercase()),
            ),
            None => {
                taken.insert((h, &port.protocol), &port.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_error, assert_has, errors, ok, with_container, with_spec, HEAD};
    use super::super::RestartPolicy;

    #[test]
    fn defaults() {
        let pod = ok(&with_spec("hostNetwork: true")).pod;
        assert_eq!(pod.restart_policy, RestartPolicy::Always);
        assert!(pod.host_network);
        assert_eq!(pod.hostname, None);
        assert!(pod.labels.is_empty() && pod.init_containers.is_empty() && pod.volumes.is_empty());
        assert_eq!(ok(&with_spec("restartPolicy: Never")).pod.restart_policy, RestartPolicy::Never);
    }

    #[test]
    fn pod_level_scalars() {
        assert_error(
            &with_spec("restartPolicy: always"),
            "pod.yaml: spec.restartPolicy: unsupported value \"always\" (expected Always, OnFailure or Never)",
        );
        assert_error(
            &with_spec("hostNetwork: 1"),
            "pod.yaml: spec.hostNetwork: expected a boolean (true or false), found number 1",
        );
        assert_error(&with_spec("hostname: My.Host"), "pod.yaml: spec.hostname: invalid hostname \"My.Host\"");
        assert_eq!(ok(&with_spec("hostname: box-1")).pod.hostname.as_deref(), Some("box-1"));
    }

    #[test]
    fn containers_required() {
        assert_error(&format!("{HEAD}spec: {{}}\n"), "pod.yaml: spec.containers: missing");
        assert_error(&format!("{HEAD}spec: {{containers: []}}\n"), "pod.yaml: spec.containers: empty");
        assert_error(&format!("{HEAD}spec: {{containers: {{name: c}}}}\n"), "spec.containers: expected a list");
        assert_error(&format!("{HEAD}spec: {{containers: [~]}}\n"), "spec.containers[0]: expected a container");
        assert_error(HEAD, "pod.yaml: spec: missing");
    }

    #[test]
    fn container_names() {
        let yaml = format!(
            "{HEAD}spec:\n  initContainers: [{{name: a, image: i}}]\n  containers: [{{name: b, image: i}}, {{name: a, image: i}}]\n"
        );
        assert_error(
            &yaml,
            "pod.yaml: spec.containers[1].name: duplicate container name \"a\" (also used at spec.initContainers[0].name)",
        );
        let yaml = format!("{HEAD}spec: {{containers: [{{name: a, image: i}}, {{name: a, image: j}}]}}\n");
        assert_error(
            &yaml,
            "spec.containers[1].name: duplicate container name \"a\" (also used at spec.containers[0].name)",
        );
        assert_error(&with_container("").replace("name: c", "name: Bad_Name"), "spec.containers[0].name: invalid");
    }

    #[test]
    fn duplicate_host_ports() {
        let yaml = format!(
            "{HEAD}spec:\n  containers:\n  - {{name: a, image: i, ports: [{{containerPort: 80, hostPort: 8080}}, \
             {{containerPort: 81, hostPort: 8080, protocol: UDP}}]}}\n  \
             - {{name: b, image: i, ports: [{{containerPort: 90, hostPort: 8080}}]}}\n"
        );
        let msg = errors(&yaml);
        assert_has(
            &msg,
            "pod.yaml: spec.containers[1].ports[0]: host port 8080/TCP is already used at spec.containers[0].ports[0]",
        );
        assert_eq!(msg.lines().count(), 1, "TCP and UDP on the same port do not clash: {msg}");

        let host_net = format!(
            "{HEAD}spec:\n  hostNetwork: true\n  containers:\n  - {{name: a, image: i, ports: [{{containerPort: 80}}]}}\n  \
             - {{name: b, image: i, ports: [{{containerPort: 80}}, {{containerPort: 81, hostPort: 82}}]}}\n"
        );
        let msg = errors(&host_net);
        assert_has(
            &msg,
            "spec.containers[1].ports[0]: host port 80/TCP is already used at spec.containers[0].ports[0]",
        );
        assert_has(
            &msg,
            "spec.containers[1].ports[1].hostPort: must equal containerPort (81) when hostNetwork is true",
        );
    }
}
