//! One entry of `spec.containers` or `spec.initContainers`: name, image, command and args, `env`,
//! `workingDir` and `resources.limits` (ports, volume mounts and securityContext have their own modules).

use serde_norway::Value;

use super::names::{absolute, check_dns_label};
use super::ports::parse_ports;
use super::quantities::{positive_cpu, positive_memory};
use super::spec::PodRefs;
use super::volumes::parse_mounts;
use super::walk::{
    as_item, as_list, as_mapping, as_quantity, as_string, fields, join, mappings, present, string_list, Ctx,
};
use super::{security, ContainerSpec};

pub(super) const CONTAINER_FIELDS: &[&str] =
    &["name", "image", "command", "args", "env", "workingDir", "ports", "resources", "volumeMounts", "securityContext"];
const CONTAINER_IGNORED: &[&str] = &[
    "imagePullPolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "stdin",
    "stdinOnce",
    "tty",
    "resizePolicy",
];
/// Container fields whose absence of support would change what the container does.
const CONTAINER_UNSUPPORTED: &[&str] = &["envFrom", "volumeDevices", "restartPolicy"];

const ENV_FIELDS: &[&str] = &["name", "value", "valueFrom"];
const RESOURCES_FIELDS: &[&str] = &["limits", "requests", "claims"];

pub(super) fn parse_containers(
    ctx: &mut Ctx,
    path: &str,
    v: &Value,
    init: bool,
    refs: &mut PodRefs,
) -> Vec<ContainerSpec> {
    let mut out = Vec::new();
    for (i, item) in as_list(ctx, path, v).unwrap_or_default().iter().enumerate() {
        if let Some(c) = parse_container(ctx, &format!("{path}[{i}]"), item, init, refs) {
            out.push(c);
        }
    }
    out
}

fn parse_container(ctx: &mut Ctx, path: &str, v: &Value, init: bool, refs: &mut PodRefs) -> Option<ContainerSpec> {
    let m = as_item(ctx, path, v, "a container (a mapping)")?;
    let mut c = ContainerSpec {
        name: String::new(),
        image: String::new(),
        command: Vec::new(),
        args: Vec::new(),
        env: Vec::new(),
        working_dir: None,
        ports: Vec::new(),
        cpu_limit: None,
        memory_limit: None,
        volume_mounts: Vec::new(),
        seccomp: None,
    };
    let (mut has_name, mut has_image) = (false, false);
    for (key, v) in fields(ctx, path, m) {
        let p = join(path, key);
        match key {
            "name" => {
                has_name = !v.is_null();
                if let Some(name) = as_string(ctx, &p, v).filter(|n| check_dns_label(ctx, &p, "container name", n)) {
                    refs.container_names.push((name.clone(), p));
                    c.name = name;
                }
            }
            "image" => {
                has_image = !v.is_null();
                match as_string(ctx, &p, v) {
                    Some(s) if s.is_empty() => ctx.error(&p, "must not be empty (every container needs an image)"),
                    Some(s) if s.trim() != s => ctx.error(&p, format!("{s:?} has leading or trailing whitespace")),
                    Some(s) => c.image = s,
                    None => {}
                }
            }
            "command" => c.command = string_list(ctx, &p, v),
            "args" => c.args = string_list(ctx, &p, v),
            "env" => c.env = parse_env(ctx, &p, v),
            "workingDir" => match as_string(ctx, &p, v) {
                Some(d) if d.is_empty() => {}
                Some(d) if !absolute(&d) => ctx.error(&p, format!("must be an absolute path, found {d:?}")),
                d => c.working_dir = d,
            },
            "ports" if init => ctx.warn(&p, "ports of init containers are not published by capsa, ignored"),
            "ports" => c.ports = parse_ports(ctx, &p, v, refs),
            "resources" => (c.cpu_limit, c.memory_limit) = parse_resources(ctx, &p, v),
            "volumeMounts" => c.volume_mounts = parse_mounts(ctx, &p, v, refs),
            "securityContext" => c.seccomp = security::parse(ctx, &p, v),
            k if CONTAINER_IGNORED.contains(&k) => ctx.ignored(&p),
            k if CONTAINER_UNSUPPORTED.contains(&k) => ctx.unsupported(&p),
            k => ctx.unknown(&p, k, &[CONTAINER_FIELDS, CONTAINER_IGNORED, CONTAINER_UNSUPPORTED]),
        }
    }
    if !has_name {
        ctx.error(&join(path, "name"), "missing (every container needs a name)");
    }
    if !has_image {
        ctx.error(&join(path, "image"), "missing (every container needs an image)");
    }
    Some(c)
}

fn parse_env(ctx: &mut Ctx, path: &str, v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (ip, m) in mappings(ctx, path, v, "an env entry (a mapping with name and value)") {
        let (mut name, mut value) = (None, String::new());
        for (key, v) in fields(ctx, &ip, m) {
            let p = join(&ip, key);
            match key {
                "name" => match as_string(ctx, &p, v) {
                    Some(n) if n.is_empty() || n.contains('=') => {
                        ctx.error(&p, format!("invalid variable name {n:?} (must be non-empty, without '=')"))
                    }
                    n => name = n,
                },
                "value" => value = as_string(ctx, &p, v).unwrap_or_default(),
                "valueFrom" => ctx.error(&p, "not supported by capsa (only literal values)"),
                k => ctx.unknown(&p, k, &[ENV_FIELDS]),
            }
        }
        match name {
            Some(n) => out.push((n, value)),
            None if !present(m, "name") => ctx.error(&join(&ip, "name"), "missing"),
            None => {}
        }
    }
    out
}

fn parse_resources(ctx: &mut Ctx, path: &str, v: &Value) -> (Option<f64>, Option<i64>) {
    let (mut cpu, mut memory) = (None, None);
    let Some(m) = as_mapping(ctx, path, v) else {
        return (cpu, memory);
    };
    for (key, v) in fields(ctx, path, m) {
        let p = join(path, key);
        match key {
            "limits" => {
                let Some(limits) = as_mapping(ctx, &p, v) else { continue };
                for (res, v) in fields(ctx, &p, limits) {
                    let rp = join(&p, res);
                    match res {
                        "cpu" => cpu = as_quantity(ctx, &rp, v).and_then(|q| positive_cpu(ctx, &rp, &q)),
                        "memory" => memory = as_quantity(ctx, &rp, v).and_then(|q| positive_memory(ctx, &rp, &q)),
                        _ => ctx.ignored(&rp),
                    }
                }
            }
            "requests" | "claims" => ctx.ignored(&p),
            k => ctx.unknown(&p, k, &[RESOURCES_FIELDS]),
        }
    }
    (cpu, memory)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_error, ok, with_container, HEAD};

    #[test]
    fn image_rules() {
        let yaml = format!("{HEAD}spec: {{containers: [{{name: a, image: i}}, {{name: b}}]}}\n");
        assert_error(&yaml, "pod.yaml: spec.containers[1].image: missing (every container needs an image)");
        assert_error(
            &with_container("").replace("image: i", "image: \"\""),
            "spec.containers[0].image: must not be empty",
        );
        assert_error(
            &with_container("").replace("image: i", "image: [a]"),
            "spec.containers[0].image: expected a string",
        );
        assert_error(&with_container("").replace("image: i", "image: \" x\""), "leading or trailing whitespace");
    }

    #[test]
    fn command_and_args() {
        assert_error(
            &with_container("command: [nc, -l, 8080]"),
            "pod.yaml: spec.containers[0].command[2]: expected a string, found number 8080 (quote it: \"8080\")",
        );
        assert_error(
            &with_container("args: [--verbose, true]"),
            "spec.containers[0].args[1]: expected a string, found boolean true",
        );
        assert_error(&with_container("args: \"--x\""), "spec.containers[0].args: expected a list, found string");
        let c = &ok(&with_container("command: [sh, -c, \"echo 1\"], args: []")).pod.containers[0];
        assert_eq!(c.command, ["sh", "-c", "echo 1"]);
    }

    #[test]
    fn env_rules() {
        let c =
            &ok(&with_container("env: [{name: A, value: \"1\"}, {name: B}, {name: C, value: ~}]")).pod.containers[0];
        assert_eq!(c.env, [("A".into(), "1".into()), ("B".into(), String::new()), ("C".into(), String::new())]);
        assert_error(
            &with_container("env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: k}}}]"),
            "pod.yaml: spec.containers[0].env[0].valueFrom: not supported by capsa",
        );
        assert_error(
            &with_container("env: [{name: PORT, value: 8080}]"),
            "spec.containers[0].env[0].value: expected a string, found number 8080 (quote it",
        );
        assert_error(&with_container("env: [{value: x}]"), "spec.containers[0].env[0].name: missing");
        assert_error(
            &with_container("env: [{name: \"A=B\"}]"),
            "spec.containers[0].env[0].name: invalid variable name",
        );
        assert_error(&with_container("env: [A=B]"), "spec.containers[0].env[0]: expected an env entry");
        assert_error(
            &with_container("envFrom: [{configMapRef: {name: x}}]"),
            "spec.containers[0].envFrom: not supported by capsa",
        );
    }

    #[test]
    fn working_dir() {
        assert_error(
            &with_container("workingDir: app"),
            "pod.yaml: spec.containers[0].workingDir: must be an absolute path, found \"app\"",
        );
        assert_eq!(ok(&with_container("workingDir: /app")).pod.containers[0].working_dir.as_deref(), Some("/app"));
    }

    #[test]
    fn resource_limits() {
        let c = &ok(&with_container("resources: {limits: {cpu: 2, memory: 1073741824}}")).pod.containers[0];
        assert_eq!((c.cpu_limit, c.memory_limit), (Some(2.0), Some(1 << 30)));
        let c = &ok(&with_container("resources: {limits: {cpu: 250m, memory: 0.5Gi}}")).pod.containers[0];
        assert_eq!((c.cpu_limit, c.memory_limit), (Some(0.25), Some(1 << 29)));
        let p = "pod.yaml: spec.containers[0].resources.limits";
        assert_error(
            &with_container("resources: {limits: {memory: 12XB}}"),
            &format!("{p}.memory: invalid quantity \"12XB\": unknown suffix \"XB\""),
        );
        assert_error(
            &with_container("resources: {limits: {cpu: lots}}"),
            &format!("{p}.cpu: invalid quantity \"lots\""),
        );
        assert_error(&with_container("resources: {limits: {cpu: 0}}"), &format!("{p}.cpu: must be greater than 0"));
        assert_error(
            &with_container("resources: {limits: {memory: -1Gi}}"),
            &format!("{p}.memory: invalid quantity \"-1Gi\": must not be negative"),
        );
        assert_error(
            &with_container("resources: {limits: {memory: true}}"),
            &format!("{p}.memory: expected a quantity"),
        );
        assert_error(&with_container("resources: {limits: [1]}"), &format!("{p}: expected a mapping"));
    }

    #[test]
    fn init_containers() {
        let yaml = format!(
            "{HEAD}spec:\n  initContainers:\n  - {{name: init, image: i, ports: [{{containerPort: 80}}], \
             resources: {{limits: {{memory: 1Mi}}}}}}\n  containers: [{{name: c, image: i}}]\n"
        );
        let parsed = ok(&yaml);
        assert_eq!(
            parsed.warnings,
            ["pod.yaml: spec.initContainers[0].ports: ports of init containers are not published by capsa, ignored"]
        );
        assert!(parsed.pod.init_containers[0].ports.is_empty());
        assert_eq!(parsed.pod.init_containers[0].memory_limit, Some(1 << 20));
        let bad = yaml.replace("image: i, ports", "ports");
        assert_error(&bad, "pod.yaml: spec.initContainers[0].image: missing (every container needs an image)");
        let sidecar = yaml.replace("name: init,", "name: init, restartPolicy: Always,");
        assert_error(&sidecar, "spec.initContainers[0].restartPolicy: not supported by capsa");
    }
}
