//! The manifest tests' shared helpers (a pod around some fields, assertions on errors and warnings), and the
//! tests of whole files: a full pod, several documents, bad YAML, warnings from all over a pod.

use super::*;

pub(super) const HEAD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n";

/// A pod with one container `c` (image `i`) carrying the extra flow-style `fields`.
pub(super) fn with_container(fields: &str) -> String {
    format!("{HEAD}spec: {{containers: [{{name: c, image: i, {fields}}}]}}\n")
}

/// A pod whose spec holds one container `c` plus the extra flow-style spec `fields`.
pub(super) fn with_spec(fields: &str) -> String {
    format!("{HEAD}spec: {{containers: [{{name: c, image: i}}], {fields}}}\n")
}

pub(super) fn ok(yaml: &str) -> Parsed {
    let mut all = parse_all(yaml, "pod.yaml").unwrap_or_else(|e| panic!("unexpected error:\n{e}"));
    assert_eq!(all.len(), 1);
    all.remove(0)
}

pub(super) fn errors(yaml: &str) -> String {
    match parse_all(yaml, "pod.yaml") {
        Err(ManifestError::Invalid { errors, .. }) => errors.join("\n"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

#[track_caller]
pub(super) fn assert_error(yaml: &str, needle: &str) {
    assert_has(&errors(yaml), needle);
}

#[track_caller]
pub(super) fn assert_warning(yaml: &str, needle: &str) {
    assert_has(&ok(yaml).warnings.join("\n"), needle);
}

#[test]
fn full_pod_round_trip() {
    let yaml = include_str!("testdata/full-pod.yaml");
    let parsed = ok(yaml);
    assert_eq!(parsed.warnings, Vec::<String>::new());
    let expected = PodManifest {
        name: "full".into(),
        labels: [("app", "web"), ("example.com/tier", ""), ("version", "1.0")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        containers: vec![ContainerSpec {
            name: "app".into(),
            image: "registry.example/app@sha256:abc".into(),
            command: vec!["/bin/app".into()],
            args: vec!["--port".into(), "8080".into()],
            env: vec![("A".into(), "one".into()), ("EMPTY".into(), String::new())],
            working_dir: Some("/work".into()),
            ports: vec![
                ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    host_port: Some(18080),
                    protocol: "tcp".into(),
                    host_ip: Some("127.0.0.1".into()),
                },
                ContainerPort {
                    name: None,
                    container_port: 53,
                    host_port: None,
                    protocol: "udp".into(),
                    host_ip: None,
                },
            ],
            cpu_limit: Some(1.5),
            memory_limit: Some(512 << 20),
            volume_mounts: vec![
                VolumeMount { name: "scratch".into(), mount_path: "/tmp".into(), read_only: false, sub_path: None },
                VolumeMount {
                    name: "host".into(),
                    mount_path: "/data".into(),
                    read_only: true,
                    sub_path: Some("sub/dir".into()),
                },
            ],
            seccomp: Some(SeccompProfile::Unconfined),
        }],
        init_containers: vec![ContainerSpec {
            name: "setup".into(),
            image: "alpine:3".into(),
            command: vec![],
            args: vec!["echo".into(), "hi".into()],
            env: vec![],
            working_dir: None,
            ports: vec![],
            cpu_limit: None,
            memory_limit: None,
            volume_mounts: vec![],
            seccomp: None,
        }],
        volumes: vec![
            Volume {
                name: "scratch".into(),
                source: VolumeSource::EmptyDir { memory: true, size_limit: Some(1 << 30) },
            },
            Volume {
                name: "host".into(),
                source: VolumeSource::HostPath { path: "/srv/data".into(), kind: Some("Directory".into()) },
            },
            Volume { name: "plain".into(), source: VolumeSource::EmptyDir { memory: false, size_limit: None } },
        ],
        restart_policy: RestartPolicy::OnFailure,
        host_network: false,
        hostname: Some("box".into()),
        seccomp: Some(SeccompProfile::RuntimeDefault),
    };
    assert_eq!(parsed.pod, expected);
}

#[test]
fn multi_document() {
    let yaml = format!(
        "---\n# only a comment\n---\n{}---\n{}---\n",
        with_container("tty: true"),
        with_container("").replace("name: p", "name: q")
    );
    let all = parse_all(&yaml, "pods.yaml").unwrap();
    assert_eq!(all.iter().map(|p| p.pod.name.as_str()).collect::<Vec<_>>(), ["p", "q"]);
    assert_eq!(all[0].warnings, ["pods.yaml (document 2): spec.containers[0].tty: not supported by capsa, ignored"]);
    assert!(all[1].warnings.is_empty());

    let second = with_container("").replace("name: p", "name: q").replace("image: i", "image: 3");
    let msg = errors(&format!("{}---\n{second}", with_container("")));
    assert_eq!(
        msg,
        "pod.yaml (document 2): spec.containers[0].image: expected a string, found number 3 (quote it: \"3\")"
    );
}

#[test]
fn duplicate_pod_names_across_documents() {
    let yaml = format!("{}---\n{}", with_container(""), with_container(""));
    assert_error(&yaml, "pod.yaml (document 2): metadata.name: duplicate pod name \"p\" (also in document 1)");
}

#[test]
fn no_pods_and_bad_yaml() {
    for empty in ["", "# nothing\n", "---\n---\n"] {
        assert_eq!(parse_all(empty, "e.yaml"), Err(ManifestError::NoPods { origin: "e.yaml".into() }));
    }
    let e = parse_all("spec: [unclosed", "bad.yaml").unwrap_err();
    assert!(matches!(e, ManifestError::Yaml { .. }), "{e:?}");
    assert_has(&e.to_string(), "bad.yaml: invalid YAML: ");
    let dup = parse_all(&format!("{HEAD}kind: Pod\nspec: {{}}\n"), "dup.yaml").unwrap_err();
    assert!(matches!(dup, ManifestError::Yaml { .. }), "{dup:?}");
}

#[test]
fn yaml_merge_keys_apply() {
    let yaml =
        format!("{HEAD}spec:\n  containers:\n  - &base {{name: a, image: busybox}}\n  - <<: *base\n    name: b\n");
    let pod = ok(&yaml).pod;
    assert_eq!(pod.containers[1].name, "b");
    assert_eq!(pod.containers[1].image, "busybox");
}

#[test]
fn ignored_fields_warn() {
    let yaml = format!(
            "{HEAD}status: {{phase: Running}}\nspec:\n  terminationGracePeriodSeconds: 5\n  nodeSelector: {{a: b}}\n  \
             tolerations: []\n  dnsPolicy: ClusterFirst\n  serviceAccountName: sa\n  securityContext: {{}}\n  \
             containers:\n  - name: c\n    image: i\n    imagePullPolicy: Always\n    livenessProbe: {{}}\n    \
             readinessProbe: {{}}\n    securityContext: {{privileged: true}}\n    \
             resources: {{requests: {{cpu: 1}}, limits: {{ephemeral-storage: 1Gi, hugepages-2Mi: 2Mi, memory: 1Mi}}}}\n"
        );
    let warnings = ok(&yaml).warnings;
    let expected = [
        "status",
        "spec.terminationGracePeriodSeconds",
        "spec.nodeSelector",
        "spec.tolerations",
        "spec.dnsPolicy",
        "spec.serviceAccountName",
        "spec.containers[0].imagePullPolicy",
        "spec.containers[0].livenessProbe",
        "spec.containers[0].readinessProbe",
        "spec.containers[0].securityContext.privileged",
        "spec.containers[0].resources.requests",
        "spec.containers[0].resources.limits.ephemeral-storage",
        "spec.containers[0].resources.limits.hugepages-2Mi",
    ]
    .map(|p| format!("pod.yaml: {p}: not supported by capsa, ignored"));
    assert_eq!(warnings, expected);
}

#[test]
fn unknown_fields_warn() {
    let yaml = format!(
        "{HEAD}extra: 1\nspec:\n  contianers: []\n  containers:\n  - name: c\n    image: i\n    foo: bar\n    \
             Image: x\n    ports: [{{containerPort: 80, hostport: 8080}}]\n"
    );
    let warnings = ok(&yaml).warnings;
    assert_eq!(
        warnings,
        [
            "pod.yaml: extra: unknown field, ignored",
            "pod.yaml: spec.contianers: unknown field, ignored (did you mean \"containers\"?)",
            "pod.yaml: spec.containers[0].foo: unknown field, ignored",
            "pod.yaml: spec.containers[0].Image: unknown field, ignored (did you mean \"image\"?)",
            "pod.yaml: spec.containers[0].ports[0].hostport: unknown field, ignored (did you mean \"hostPort\"?)",
        ]
    );
}

#[test]
fn invalid_error_display_keeps_warnings() {
    let yaml = format!("{HEAD}spec: {{contianers: [{{name: c, image: i}}]}}\n");
    let e = parse_all(&yaml, "pod.yaml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "pod.yaml: spec.containers: missing (a pod needs at least one container)\n\
             warning: pod.yaml: spec.contianers: unknown field, ignored (did you mean \"containers\"?)"
    );
}

#[test]
fn errors_are_all_collected() {
    let yaml = format!("{HEAD}spec: {{restartPolicy: Sometimes, containers: [{{name: C}}, {{image: i}}]}}\n");
    let msg = errors(&yaml);
    assert_has(&msg, "pod.yaml: spec.restartPolicy: unsupported value \"Sometimes\"");
    assert_has(&msg, "pod.yaml: spec.containers[0].name: invalid container name \"C\"");
    assert_has(&msg, "pod.yaml: spec.containers[0].image: missing (every container needs an image)");
    assert_has(&msg, "pod.yaml: spec.containers[1].name: missing (every container needs a name)");
    assert_eq!(msg.lines().count(), 4, "{msg}");
}
