//! `securityContext` of a pod and of its containers: `seccompProfile` is honoured;
//! the other fields are known and ignored (a warning each).

use serde_norway::Value;

use super::names::has_dotdot;
use super::walk::{as_mapping, as_string, fields, join, Ctx};

/// `securityContext.seccompProfile.type` (and `localhostProfile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompProfile {
    /// The runtime's default profile (capsa's default when nothing is said, like
    /// the kubelet with `--seccomp-default`).
    RuntimeDefault,
    /// No seccomp filter.
    Unconfined,
    /// A profile file, relative to capsa's profile directory (`<store>/seccomp/`).
    Localhost(String),
}

/// Fields of a pod's or a container's securityContext capsa knows but does not apply.
const IGNORED: &[&str] = &[
    "allowPrivilegeEscalation",
    "appArmorProfile",
    "capabilities",
    "fsGroup",
    "fsGroupChangePolicy",
    "privileged",
    "procMount",
    "readOnlyRootFilesystem",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "seLinuxChangePolicy",
    "seLinuxOptions",
    "supplementalGroups",
    "supplementalGroupsPolicy",
    "sysctls",
    "windowsOptions",
];

/// Parses a `securityContext` at `path`; returns its seccomp profile, if any.
pub(super) fn parse(ctx: &mut Ctx, path: &str, v: &Value) -> Option<SeccompProfile> {
    let m = as_mapping(ctx, path, v)?;
    let mut out = None;
    for (key, v) in fields(ctx, path, m) {
        let p = join(path, key);
        match key {
            "seccompProfile" => out = parse_seccomp(ctx, &p, v),
            k if IGNORED.contains(&k) => ctx.ignored(&p),
            k => ctx.unknown(&p, k, &[&["seccompProfile"], IGNORED]),
        }
    }
    out
}

fn parse_seccomp(ctx: &mut Ctx, path: &str, v: &Value) -> Option<SeccompProfile> {
    let m = as_mapping(ctx, path, v)?;
    let (mut ty, mut local) = (None, None);
    for (key, v) in fields(ctx, path, m) {
        let p = join(path, key);
        match key {
            "type" => ty = as_string(ctx, &p, v),
            "localhostProfile" => local = as_string(ctx, &p, v),
            k => ctx.unknown(&p, k, &[&["type", "localhostProfile"]]),
        }
    }
    let local_path = join(path, "localhostProfile");
    if local.is_some() && ty.as_deref() != Some("Localhost") {
        ctx.error(&local_path, "may only be set when type is Localhost");
        return None;
    }
    match ty.as_deref() {
        Some("RuntimeDefault") => Some(SeccompProfile::RuntimeDefault),
        Some("Unconfined") => Some(SeccompProfile::Unconfined),
        Some("Localhost") => match local {
            Some(l) if l.is_empty() || l.starts_with('/') || has_dotdot(&l) => {
                ctx.error(&local_path, format!("{l:?} must be a relative path without '..' (under <store>/seccomp/)"));
                None
            }
            Some(l) => Some(SeccompProfile::Localhost(l)),
            None => {
                ctx.error(&local_path, "missing (required when type is Localhost)");
                None
            }
        },
        Some(other) => {
            let msg = format!("unsupported value {other:?} (expected RuntimeDefault, Unconfined or Localhost)");
            ctx.error(&join(path, "type"), msg);
            None
        }
        None => {
            ctx.error(&join(path, "type"), "missing (RuntimeDefault, Unconfined or Localhost)");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_all;
    use super::SeccompProfile::{self, *};

    const HEAD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n";

    /// The pod's profile, the container's, and the warnings.
    type Parsed = (Option<SeccompProfile>, Option<SeccompProfile>, Vec<String>);

    fn parse(pod_sc: &str, container_sc: &str) -> Result<Parsed, String> {
        let yaml = format!(
            "{HEAD}spec:\n  securityContext: {pod_sc}\n  containers:\n  - name: c\n    image: i\n    securityContext: {container_sc}\n"
        );
        match parse_all(&yaml, "pod.yaml") {
            Ok(mut v) => {
                let p = v.remove(0);
                Ok((p.pod.seccomp.clone(), p.pod.containers[0].seccomp.clone(), p.warnings))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn seccomp_profiles() {
        assert_eq!(parse("{}", "{}").unwrap(), (None, None, vec![]));
        assert_eq!(
            parse("{seccompProfile: {type: Unconfined}}", "{seccompProfile: {type: RuntimeDefault}}").unwrap(),
            (Some(Unconfined), Some(RuntimeDefault), vec![])
        );
        let (pod, c, _) =
            parse("null", "{seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}}").unwrap();
        assert_eq!((pod, c), (None, Some(Localhost("profiles/audit.json".into()))));
        // Other fields: known ones are ignored with a warning, unknown ones suggested.
        let (_, _, w) = parse("{runAsUser: 1000}", "{privileged: true, seccompProfil: {}}").unwrap();
        assert_eq!(
            w,
            [
                "pod.yaml: spec.securityContext.runAsUser: not supported by capsa, ignored",
                "pod.yaml: spec.containers[0].securityContext.privileged: not supported by capsa, ignored",
                "pod.yaml: spec.containers[0].securityContext.seccompProfil: unknown field, ignored \
                 (did you mean \"seccompProfile\"?)",
            ]
        );
    }

    #[test]
    fn bad_seccomp_profiles() {
        let cases = [
            (
                "{seccompProfile: {type: Bogus}}",
                "spec.securityContext.seccompProfile.type: unsupported value \"Bogus\"",
            ),
            ("{seccompProfile: {}}", "spec.securityContext.seccompProfile.type: missing"),
            (
                "{seccompProfile: {type: Localhost}}",
                "seccompProfile.localhostProfile: missing (required when type is Localhost)",
            ),
            (
                "{seccompProfile: {type: Localhost, localhostProfile: ../x.json}}",
                "seccompProfile.localhostProfile: \"../x.json\" must be a relative path without '..'",
            ),
            (
                "{seccompProfile: {type: Localhost, localhostProfile: /etc/x.json}}",
                "\"/etc/x.json\" must be a relative path",
            ),
            (
                "{seccompProfile: {type: RuntimeDefault, localhostProfile: x.json}}",
                "seccompProfile.localhostProfile: may only be set when type is Localhost",
            ),
            ("{seccompProfile: Unconfined}", "spec.securityContext.seccompProfile: expected a mapping"),
        ];
        for (sc, want) in cases {
            let e = parse(sc, "{}").unwrap_err();
            assert!(e.contains(want), "{sc}: expected {want:?} in:\n{e}");
        }
    }
}
