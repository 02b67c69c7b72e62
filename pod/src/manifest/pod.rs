//! The document's root (`apiVersion`, `kind`, `metadata`, `spec`) and its `metadata`: the pod's name and
//! labels.

use std::collections::BTreeMap;

use serde_norway::Value;

use super::names::{check_dns_label, label_key_ok, label_name_ok};
use super::spec::parse_spec;
use super::walk::{as_mapping, as_string, expect_value, fields, join, present, Ctx};
use super::PodManifest;

const ROOT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const ROOT_IGNORED: &[&str] = &["status"];

const METADATA_FIELDS: &[&str] = &["name", "labels", "annotations", "namespace"];
const METADATA_IGNORED: &[&str] = &[
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
];

pub(super) fn parse_pod(ctx: &mut Ctx, doc: &Value) -> Option<PodManifest> {
    let root = match doc {
        Value::Mapping(m) => m,
        other => {
            ctx.type_error("", "a mapping (a Pod object) at the top level", other);
            return None;
        }
    };
    let (mut api_version, mut kind, mut metadata, mut spec) = (None, None, None, None);
    for (key, v) in fields(ctx, "", root) {
        match key {
            "apiVersion" => api_version = Some(v),
            "kind" => kind = Some(v),
            "metadata" => metadata = Some(v),
            "spec" => spec = Some(v),
            k if ROOT_IGNORED.contains(&k) => ctx.ignored(k),
            k => ctx.unknown(k, k, &[ROOT_FIELDS, ROOT_IGNORED]),
        }
    }

    let version_ok =
        expect_value(ctx, "apiVersion", api_version, "v1", "unsupported apiVersion {} (capsa reads only v1 Pods)");
    let kind_ok =
        expect_value(ctx, "kind", kind, "Pod", "unsupported kind {} (capsa reads only kind Pod)") && version_ok;
    if !kind_ok {
        return None;
    }

    let (name, labels) = match metadata {
        Some(v) if !v.is_null() => parse_metadata(ctx, v),
        _ => {
            ctx.error("metadata", "missing (every pod needs metadata.name)");
            (None, BTreeMap::new())
        }
    };
    let spec = match spec {
        Some(v) if !v.is_null() => parse_spec(ctx, v),
        _ => {
            ctx.error("spec", "missing (every pod needs spec.containers)");
            None
        }
    };
    let (name, spec) = (name?, spec?);
    Some(PodManifest {
        name,
        labels,
        containers: spec.containers,
        init_containers: spec.init_containers,
        volumes: spec.volumes,
        restart_policy: spec.restart_policy,
        host_network: spec.host_network,
        hostname: spec.hostname,
        seccomp: spec.seccomp,
    })
}

fn parse_metadata(ctx: &mut Ctx, v: &Value) -> (Option<String>, BTreeMap<String, String>) {
    let mut name = None;
    let mut labels = BTreeMap::new();
    let Some(m) = as_mapping(ctx, "metadata", v) else {
        return (None, labels);
    };
    for (key, v) in fields(ctx, "metadata", m) {
        let p = join("metadata", key);
        match key {
            "name" => name = as_string(ctx, &p, v).filter(|n| check_dns_label(ctx, &p, "pod name", n)),
            "labels" => labels = parse_labels(ctx, &p, v),
            "annotations" => {}
            "namespace" => ctx.warn(&p, "capsa has no namespaces, ignored"),
            k if METADATA_IGNORED.contains(&k) => ctx.ignored(&p),
            k => ctx.unknown(&p, k, &[METADATA_FIELDS, METADATA_IGNORED]),
        }
    }
    if !present(m, "name") {
        ctx.error("metadata.name", "missing (every pod needs a name)");
    }
    (name, labels)
}

fn parse_labels(ctx: &mut Ctx, path: &str, v: &Value) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let Some(m) = as_mapping(ctx, path, v) else {
        return labels;
    };
    for (key, v) in fields(ctx, path, m) {
        let p = join(path, key);
        if !label_key_ok(key) {
            ctx.error(
                &p,
                format!(
                    "invalid label key {key:?}: must be a name of at most 63 letters, digits, '-', '_' or '.', \
                     starting and ending with a letter or digit, optionally prefixed by a DNS subdomain and '/'"
                ),
            );
        }
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => {
                ctx.type_error(&p, "a string", other);
                continue;
            }
        };
        if !value.is_empty() && !label_name_ok(&value) {
            ctx.error(
                &p,
                format!(
                    "invalid label value {value:?}: must be empty or at most 63 letters, digits, '-', '_' or '.', \
                     starting and ending with a letter or digit"
                ),
            );
        }
        labels.insert(key.to_string(), value);
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_error, assert_has, errors, ok};

    #[test]
    fn api_version_and_kind() {
        let spec = "spec: {containers: [{name: c, image: i}]}\n";
        assert_error(
            &format!("apiVersion: apps/v1\nkind: Pod\nmetadata: {{name: p}}\n{spec}"),
            "pod.yaml: apiVersion: unsupported apiVersion \"apps/v1\"",
        );
        assert_error(
            &format!("apiVersion: v1\nkind: Deployment\nmetadata: {{name: p}}\n{spec}"),
            "pod.yaml: kind: unsupported kind \"Deployment\"",
        );
        let msg = errors(&format!("metadata: {{name: p}}\n{spec}"));
        assert_has(&msg, "pod.yaml: apiVersion: missing (expected v1)");
        assert_has(&msg, "pod.yaml: kind: missing (expected Pod)");
        assert_error("- a\n- b\n", "pod.yaml: expected a mapping (a Pod object) at the top level, found a list");
    }

    #[test]
    fn metadata_rules() {
        let spec = "spec: {containers: [{name: c, image: i}]}\n";
        let doc = |meta: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {meta}\n{spec}");
        assert_error(&doc("{labels: {a: b}}"), "pod.yaml: metadata.name: missing");
        assert_error(&format!("apiVersion: v1\nkind: Pod\n{spec}"), "pod.yaml: metadata: missing");
        for bad in ["Web", "web_1", "-web", "web-", "\"\""] {
            assert_error(&doc(&format!("{{name: {bad}}}")), "pod.yaml: metadata.name: invalid pod name");
        }
        let long = "a".repeat(64);
        assert_error(&doc(&format!("{{name: {long}}}")), "metadata.name: invalid pod name");
        assert_eq!(ok(&doc(&format!("{{name: {}}}", &long[1..]))).pod.name.len(), 63);
        assert_error(
            &doc("{name: 42}"),
            "pod.yaml: metadata.name: expected a string, found number 42 (quote it: \"42\")",
        );

        assert_error(
            &doc("{name: p, labels: {tier: 3}}"),
            "pod.yaml: metadata.labels.tier: expected a string, found number 3",
        );
        assert_error(
            &doc("{name: p, labels: {on: true}}"),
            "metadata.labels.on: expected a string, found boolean true",
        );
        assert_error(&doc("{name: p, labels: {\"bad key!\": x}}"), "metadata.labels.bad key!: invalid label key");
        assert_error(&doc("{name: p, labels: {k: \"-x\"}}"), "metadata.labels.k: invalid label value \"-x\"");
        assert_error(&doc("{name: p, labels: [a]}"), "metadata.labels: expected a mapping, found a list");

        let parsed = ok(&doc("{name: p, namespace: prod, annotations: {a: b}, uid: x}"));
        assert_eq!(
            parsed.warnings,
            [
                "pod.yaml: metadata.namespace: capsa has no namespaces, ignored",
                "pod.yaml: metadata.uid: not supported by capsa, ignored",
            ]
        );
    }
}
