//! `spec.volumes` (emptyDir and hostPath; other types are refused) and a container's `volumeMounts`.

use std::collections::BTreeMap;

use serde_norway::Value;

use super::names::{absolute, check_dns_label, has_dotdot};
use super::quantities::positive_memory;
use super::spec::PodRefs;
use super::walk::{as_bool, as_mapping, as_quantity, as_string, fields, join, mappings, present, Ctx};
use super::{Volume, VolumeMount, VolumeSource};

const MOUNT_FIELDS: &[&str] = &["name", "mountPath", "readOnly", "subPath", "subPathExpr"];
const MOUNT_IGNORED: &[&str] = &["mountPropagation", "recursiveReadOnly"];

const VOLUME_FIELDS: &[&str] = &["name", "emptyDir", "hostPath"];
const VOLUME_UNSUPPORTED: &[&str] = &[
    "configMap",
    "secret",
    "persistentVolumeClaim",
    "projected",
    "downwardAPI",
    "ephemeral",
    "image",
    "csi",
    "nfs",
    "iscsi",
    "fc",
    "rbd",
    "cephfs",
    "cinder",
    "glusterfs",
    "gitRepo",
    "flexVolume",
    "flocker",
    "awsElasticBlockStore",
    "gcePersistentDisk",
    "azureDisk",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "scaleIO",
    "storageos",
];
const EMPTYDIR_FIELDS: &[&str] = &["medium", "sizeLimit"];
const HOSTPATH_FIELDS: &[&str] = &["path", "type"];
const HOSTPATH_TYPES: &[&str] =
    &["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"];

pub(super) fn parse_mounts(ctx: &mut Ctx, path: &str, v: &Value, refs: &mut PodRefs) -> Vec<VolumeMount> {
    let mut out = Vec::new();
    let mut paths: BTreeMap<String, String> = BTreeMap::new();
    for (ip, m) in mappings(ctx, path, v, "a volume mount (a mapping)") {
        let (mut name, mut mount_path, mut read_only, mut sub_path) = (None, None, false, None);
        for (key, v) in fields(ctx, &ip, m) {
            let p = join(&ip, key);
            match key {
                "name" => {
                    name = as_string(ctx, &p, v);
                    if let Some(n) = &name {
                        refs.mounts.push((n.clone(), p));
                    }
                }
                "mountPath" => match as_string(ctx, &p, v) {
                    Some(mp) if !absolute(&mp) => ctx.error(&p, format!("must be an absolute path, found {mp:?}")),
                    Some(mp) => {
                        match paths.get(&mp) {
                            Some(first) => ctx.error(&p, format!("{mp:?} is already mounted at {first}")),
                            None => {
                                paths.insert(mp.clone(), p);
                            }
                        }
                        mount_path = Some(mp);
                    }
                    None => {}
                },
                "readOnly" => read_only = as_bool(ctx, &p, v).unwrap_or(false),
                "subPath" => match as_string(ctx, &p, v) {
                    Some(s) if s.is_empty() => {}
                    Some(s) if absolute(&s) || has_dotdot(&s) => {
                        ctx.error(&p, format!("must be a relative path without '..', found {s:?}"))
                    }
                    s => sub_path = s,
                },
                "subPathExpr" => ctx.unsupported(&p),
                k if MOUNT_IGNORED.contains(&k) => ctx.ignored(&p),
                k => ctx.unknown(&p, k, &[MOUNT_FIELDS, MOUNT_IGNORED]),
            }
        }
        for field in ["name", "mountPath"] {
            if !present(m, field) {
                ctx.error(&join(&ip, field), "missing");
            }
        }
        if let (Some(name), Some(mount_path)) = (name, mount_path) {
            out.push(VolumeMount { name, mount_path, read_only, sub_path });
        }
    }
    out
}

pub(super) fn parse_volumes(ctx: &mut Ctx, path: &str, v: &Value, refs: &mut PodRefs) -> Vec<Volume> {
    let mut out = Vec::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for (ip, m) in mappings(ctx, path, v, "a volume (a mapping)") {
        let mut name = None;
        let mut kinds: Vec<&str> = Vec::new();
        let mut source = None;
        for (key, v) in fields(ctx, &ip, m) {
            let p = join(&ip, key);
            match key {
                "name" => {
                    name = as_string(ctx, &p, v).filter(|n| check_dns_label(ctx, &p, "volume name", n));
                    if let Some(n) = &name {
                        refs.volume_names.insert(n.clone());
                        match names.get(n) {
                            Some(first) => ctx.error(&p, format!("duplicate volume name {n:?} (also used at {first})")),
                            None => {
                                names.insert(n.clone(), p);
                            }
                        }
                    }
                }
                "emptyDir" => {
                    kinds.push(key);
                    source = parse_empty_dir(ctx, &p, v);
                }
                "hostPath" => {
                    kinds.push(key);
                    source = parse_host_path(ctx, &p, v);
                }
                k if VOLUME_UNSUPPORTED.contains(&k) => {
                    kinds.push(k);
                    ctx.error(&p, format!("volume type {k} not supported (emptyDir, hostPath)"));
                }
                k => ctx.unknown(&p, k, &[VOLUME_FIELDS, VOLUME_UNSUPPORTED]),
            }
        }
        if !present(m, "name") {
            ctx.error(&join(&ip, "name"), "missing (every volume needs a name)");
        }
        match kinds.len() {
            0 => ctx.error(&ip, "missing volume type (emptyDir or hostPath)"),
            1 => {}
            _ => ctx.error(&ip, format!("exactly one volume type is allowed, found {}", kinds.join(", "))),
        }
        if let (Some(name), Some(source), 1) = (name, source, kinds.len()) {
            out.push(Volume { name, source });
        }
    }
    out
}

fn parse_empty_dir(ctx: &mut Ctx, path: &str, v: &Value) -> Option<VolumeSource> {
    let (mut memory, mut size_limit) = (false, None);
    // `emptyDir:` with nothing after it (null) is taken as `emptyDir: {}`.
    if let Some(m) = as_mapping(ctx, path, v) {
        for (key, v) in fields(ctx, path, m) {
            let p = join(path, key);
            match key {
                "medium" => match as_string(ctx, &p, v).as_deref() {
                    None | Some("") => {}
                    Some("Memory") => memory = true,
                    Some(other) => ctx.error(&p, format!("unsupported medium {other:?} (expected \"\" or Memory)")),
                },
                "sizeLimit" => size_limit = as_quantity(ctx, &p, v).and_then(|q| positive_memory(ctx, &p, &q)),
                k => ctx.unknown(&p, k, &[EMPTYDIR_FIELDS]),
            }
        }
    } else if !v.is_null() {
        return None;
    }
    Some(VolumeSource::EmptyDir { memory, size_limit })
}

fn parse_host_path(ctx: &mut Ctx, path: &str, v: &Value) -> Option<VolumeSource> {
    let Some(m) = as_mapping(ctx, path, v) else {
        if v.is_null() {
            ctx.error(&join(path, "path"), "missing");
        }
        return None;
    };
    let (mut host, mut kind) = (None, None);
    for (key, v) in fields(ctx, path, m) {
        let p = join(path, key);
        match key {
            "path" => match as_string(ctx, &p, v) {
                Some(s) if !absolute(&s) => ctx.error(&p, format!("must be an absolute path, found {s:?}")),
                Some(s) if has_dotdot(&s) => ctx.error(&p, format!("must not contain '..', found {s:?}")),
                s => host = s,
            },
            "type" => match as_string(ctx, &p, v) {
                Some(t) if !HOSTPATH_TYPES.contains(&t.as_str()) => {
                    ctx.error(&p, format!("unsupported type {t:?} (expected {})", HOSTPATH_TYPES[1..].join(", ")))
                }
                t => kind = t,
            },
            k => ctx.unknown(&p, k, &[HOSTPATH_FIELDS]),
        }
    }
    if !present(m, "path") {
        ctx.error(&join(path, "path"), "missing");
    }
    Some(VolumeSource::HostPath { path: host?, kind })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_error, assert_warning, errors, ok, with_spec, HEAD};
    use super::super::VolumeSource;

    #[test]
    fn volume_mounts() {
        let m = "pod.yaml: spec.containers[0].volumeMounts[0]";
        let vols = "volumes: [{name: v, emptyDir: {}}]";
        let doc = |mounts: &str| {
            format!("{HEAD}spec: {{{vols}, containers: [{{name: c, image: i, volumeMounts: [{mounts}]}}]}}\n")
        };
        assert_error(
            &doc("{name: w, mountPath: /w}"),
            &format!("{m}.name: volume \"w\" is not declared in spec.volumes"),
        );
        assert_error(
            &doc("{name: v, mountPath: data}"),
            &format!("{m}.mountPath: must be an absolute path, found \"data\""),
        );
        assert_error(&doc("{name: v}"), &format!("{m}.mountPath: missing"));
        assert_error(&doc("{mountPath: /x}"), &format!("{m}.name: missing"));
        assert_error(
            &doc("{name: v, mountPath: /x, readOnly: yes}"),
            &format!("{m}.readOnly: expected a boolean (true or false), found string \"yes\""),
        );
        assert_error(&doc("{name: v, mountPath: /x, readOnly: \"true\"}"), "(remove the quotes)");
        assert_error(
            &doc("{name: v, mountPath: /x, subPath: ../etc}"),
            &format!("{m}.subPath: must be a relative path without '..'"),
        );
        assert_error(&doc("{name: v, mountPath: /x, subPath: /etc}"), &format!("{m}.subPath: must be a relative path"));
        assert_error(
            &doc("{name: v, mountPath: /x, subPathExpr: $(P)}"),
            &format!("{m}.subPathExpr: not supported by capsa"),
        );
        assert_error(
            &doc("{name: v, mountPath: /x}, {name: v, mountPath: /x}"),
            "spec.containers[0].volumeMounts[1].mountPath: \"/x\" is already mounted at spec.containers[0].volumeMounts[0].mountPath",
        );
        assert_warning(
            &doc("{name: v, mountPath: /x, mountPropagation: None}"),
            &format!("{m}.mountPropagation: not supported by capsa, ignored"),
        );
        let mount = &ok(&doc("{name: v, mountPath: /x, subPath: \"\"}")).pod.containers[0].volume_mounts[0];
        assert_eq!(mount.sub_path, None);
    }

    #[test]
    fn volume_rules() {
        let v = "pod.yaml: spec.volumes[0]";
        assert_error(
            &with_spec("volumes: [{name: v, configMap: {name: cm}}]"),
            &format!("{v}.configMap: volume type configMap not supported (emptyDir, hostPath)"),
        );
        assert_error(
            &with_spec("volumes: [{name: v, secret: {}}]"),
            "volume type secret not supported (emptyDir, hostPath)",
        );
        let mounted = format!(
            "{HEAD}spec: {{volumes: [{{name: v, secret: {{}}}}], containers: [{{name: c, image: i, \
             volumeMounts: [{{name: v, mountPath: /s}}]}}]}}\n"
        );
        assert_eq!(errors(&mounted).lines().count(), 1, "no second error for the mount: {}", errors(&mounted));
        assert_error(
            &with_spec("volumes: [{name: v, persistentVolumeClaim: {claimName: x}}]"),
            "volume type persistentVolumeClaim not supported",
        );
        assert_error(&with_spec("volumes: [{name: v}]"), &format!("{v}: missing volume type (emptyDir or hostPath)"));
        assert_error(
            &with_spec("volumes: [{name: v, emptyDir: {}, hostPath: {path: /x}}]"),
            &format!("{v}: exactly one volume type is allowed, found emptyDir, hostPath"),
        );
        assert_error(&with_spec("volumes: [{emptyDir: {}}]"), &format!("{v}.name: missing"));
        assert_error(&with_spec("volumes: [{name: V, emptyDir: {}}]"), &format!("{v}.name: invalid volume name \"V\""));
        assert_error(
            &with_spec("volumes: [{name: v, emptyDir: {}}, {name: v, emptyDir: {}}]"),
            "spec.volumes[1].name: duplicate volume name \"v\" (also used at spec.volumes[0].name)",
        );
        assert_error(
            &with_spec("volumes: [{name: v, emptyDir: {medium: HugePages}}]"),
            &format!("{v}.emptyDir.medium: unsupported medium \"HugePages\""),
        );
        assert_error(
            &with_spec("volumes: [{name: v, emptyDir: {sizeLimit: big}}]"),
            &format!("{v}.emptyDir.sizeLimit: invalid quantity \"big\""),
        );
        assert_error(
            &with_spec("volumes: [{name: v, hostPath: {path: tmp/x}}]"),
            &format!("{v}.hostPath.path: must be an absolute path"),
        );
        assert_error(
            &with_spec("volumes: [{name: v, hostPath: {path: /a/../etc}}]"),
            &format!("{v}.hostPath.path: must not contain '..'"),
        );
        assert_error(&with_spec("volumes: [{name: v, hostPath: {}}]"), &format!("{v}.hostPath.path: missing"));
        assert_error(
            &with_spec("volumes: [{name: v, hostPath: {path: /x, type: Dir}}]"),
            &format!("{v}.hostPath.type: unsupported type \"Dir\""),
        );
        assert_warning(
            &with_spec("volumes: [{name: v, emptyDir: {}, flavour: x}]"),
            &format!("{v}.flavour: unknown field"),
        );

        let vols = ok(&with_spec(
            "volumes: [{name: a, emptyDir: {medium: \"\", sizeLimit: 100M}}, {name: b, hostPath: {path: /s, type: \"\"}}, \
             {name: c, hostPath: {path: /t}}]",
        ))
        .pod
        .volumes;
        assert_eq!(vols[0].source, VolumeSource::EmptyDir { memory: false, size_limit: Some(100_000_000) });
        assert_eq!(vols[1].source, VolumeSource::HostPath { path: "/s".into(), kind: Some(String::new()) });
        assert_eq!(vols[2].source, VolumeSource::HostPath { path: "/t".into(), kind: None });
    }
}
