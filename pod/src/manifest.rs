//! Parsing of Kubernetes `v1/Pod` manifests (the subset capsa supports) for `capsa pod apply -f`.
//!
//! The YAML is read into a [`serde_norway::Value`] and walked by hand, so that every problem names the
//! file, the document (when the file has several) and the field path. Fields capsa knows but does not
//! implement give an "ignored" warning, fields it does not know give an "unknown field" warning, and
//! anything capsa could not honour without changing the pod's meaning is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::net::IpAddr;

use serde::Deserialize;
use serde_norway::{Mapping, Value};

mod security;
pub use security::SeccompProfile;

/// A validated pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodManifest {
    /// `metadata.name`, a DNS-1123 label.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.containers`, in manifest order (never empty).
    pub containers: Vec<ContainerSpec>,
    /// `spec.initContainers`, run in order before the containers.
    pub init_containers: Vec<ContainerSpec>,
    /// `spec.volumes`.
    pub volumes: Vec<Volume>,
    /// `spec.restartPolicy`.
    pub restart_policy: RestartPolicy,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// `spec.hostname`; `None` means the pod name.
    pub hostname: Option<String>,
    /// `spec.securityContext.seccompProfile` (containers may override it).
    pub seccomp: Option<SeccompProfile>,
}

/// `spec.restartPolicy`; Kubernetes' default is `Always`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Restart containers whenever they exit.
    #[default]
    Always,
    /// Restart containers that exit with a non-zero status.
    OnFailure,
    /// Never restart containers.
    Never,
}

/// One entry of `spec.containers` or `spec.initContainers`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// Container name, a DNS-1123 label unique within the pod.
    pub name: String,
    /// Image reference, as written.
    pub image: String,
    /// `command` (replaces the image entrypoint when non-empty).
    pub command: Vec<String>,
    /// `args` (replaces the image cmd when non-empty).
    pub args: Vec<String>,
    /// `env` as (name, value) pairs in manifest order.
    pub env: Vec<(String, String)>,
    /// `workingDir`, an absolute path.
    pub working_dir: Option<String>,
    /// `ports` (always empty for init containers).
    pub ports: Vec<ContainerPort>,
    /// `resources.limits.cpu` in cores.
    pub cpu_limit: Option<f64>,
    /// `resources.limits.memory` in bytes.
    pub memory_limit: Option<i64>,
    /// `volumeMounts`.
    pub volume_mounts: Vec<VolumeMount>,
    /// `securityContext.seccompProfile` (overrides the pod's).
    pub seccomp: Option<SeccompProfile>,
}

/// One entry of a container's `ports`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerPort {
    /// Optional port name.
    pub name: Option<String>,
    /// Port inside the pod, 1..=65535.
    pub container_port: u16,
    /// Port published on the host, 1..=65535 (`hostPort: 0` counts as absent).
    pub host_port: Option<u16>,
    /// `"tcp"` or `"udp"`.
    pub protocol: String,
    /// Host address to bind the host port to.
    pub host_ip: Option<String>,
}

/// One entry of a container's `volumeMounts`.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeMount {
    /// Name of a volume declared in `spec.volumes`.
    pub name: String,
    /// Absolute path inside the container.
    pub mount_path: String,
    /// Mount read-only.
    pub read_only: bool,
    /// Relative path inside the volume to mount instead of its root.
    pub sub_path: Option<String>,
}

/// One entry of `spec.volumes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// Volume name, a DNS-1123 label unique within the pod.
    pub name: String,
    /// Where the volume's data comes from.
    pub source: VolumeSource,
}

/// The volume types capsa supports.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeSource {
    /// A fresh directory for the pod's lifetime; `memory` means `medium: Memory` (tmpfs).
    EmptyDir {
        /// `medium: Memory`.
        memory: bool,
        /// `sizeLimit` in bytes.
        size_limit: Option<i64>,
    },
    /// A path on the host.
    HostPath {
        /// Absolute host path.
        path: String,
        /// `type` as written (`""`, `DirectoryOrCreate`, `Directory`, `FileOrCreate`, `File`, `Socket`,
        /// `CharDevice`, `BlockDevice`); `None` when absent.
        kind: Option<String>,
    },
}

/// A parsed pod with the warnings found while reading it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The pod.
    pub pod: PodManifest,
    /// Full warning lines (`origin: path: message`) for this pod's document.
    pub warnings: Vec<String>,
}

/// Why a manifest file was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not valid YAML.
    #[error("{origin}: invalid YAML: {message}")]
    Yaml {
        /// File name the text came from.
        origin: String,
        /// The YAML parser's message (with line and column).
        message: String,
    },
    /// The file holds no document with content.
    #[error("{origin}: no pod found (the file is empty)")]
    NoPods {
        /// File name the text came from.
        origin: String,
    },
    /// One or more documents break the rules. Each line is complete (`origin: path: message`); the
    /// warnings are kept because an "unknown field" warning often explains an error (a misspelt key).
    #[error("{}", render_invalid(.errors, .warnings))]
    Invalid {
        /// Error lines, in manifest order.
        errors: Vec<String>,
        /// Warning lines from all documents.
        warnings: Vec<String>,
    },
}

fn render_invalid(errors: &[String], warnings: &[String]) -> String {
    let mut lines: Vec<String> = errors.to_vec();
    lines.extend(warnings.iter().map(|w| format!("warning: {w}")));
    lines.join("\n")
}

/// Parses every pod in a (possibly multi-document) YAML text.
///
/// `origin` names the source in messages (usually the file name). Empty documents are skipped; a text with
/// no pod at all is an error, and so is any error in any document (nothing is returned partially).
pub fn parse_all(yaml: &str, origin: &str) -> Result<Vec<Parsed>, ManifestError> {
    let yaml_error =
        |e: serde_norway::Error| ManifestError::Yaml { origin: origin.to_string(), message: e.to_string() };
    let mut docs = Vec::new();
    for de in serde_norway::Deserializer::from_str(yaml) {
        let mut doc = Value::deserialize(de).map_err(yaml_error)?;
        doc.apply_merge().map_err(yaml_error)?;
        docs.push(doc);
    }
    let non_empty = docs.iter().filter(|d| !d.is_null()).count();
    if non_empty == 0 {
        return Err(ManifestError::NoPods { origin: origin.to_string() });
    }

    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut pod_names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, doc) in docs.iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let prefix = if non_empty > 1 { format!("{origin} (document {})", i + 1) } else { origin.to_string() };
        let mut ctx = Ctx { prefix, errors: Vec::new(), warnings: Vec::new() };
        let pod = parse_pod(&mut ctx, doc);
        if let Some(pod) = &pod {
            match pod_names.get(&pod.name) {
                Some(first) => {
                    ctx.error("metadata.name", format!("duplicate pod name {:?} (also in document {first})", pod.name))
                }
                None => {
                    pod_names.insert(pod.name.clone(), i + 1);
                }
            }
        }
        if let (Some(pod), true) = (pod, ctx.errors.is_empty()) {
            parsed.push(Parsed { pod, warnings: ctx.warnings.clone() });
        }
        errors.extend(ctx.errors);
        warnings.extend(ctx.warnings);
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(ManifestError::Invalid { errors, warnings })
    }
}

/// Parses a Kubernetes memory quantity into bytes, rounding a fractional byte count up as Kubernetes does.
///
/// Accepts a plain number (`1024`, `0.5`, `1e3`) with an optional suffix: binary `Ki Mi Gi Ti Pi Ei`, decimal
/// `n u m k M G T P E`, or an exponent `e<N>`/`E<N>`. Negative values and values beyond `i64` are errors.
pub fn parse_quantity_memory(s: &str) -> Result<i64, String> {
    let q = parse_quantity(s)?;
    let too_large = || format!("invalid quantity {s:?}: too large");
    let mut v = q.digits.checked_mul(1u128 << q.exp2).ok_or_else(too_large)?;
    if q.exp10 >= 0 {
        for _ in 0..q.exp10 {
            v = v.checked_mul(10).ok_or_else(too_large)?;
        }
    } else {
        // ceil(ceil(a / b) / c) == ceil(a / (b * c)) for positive integers, so one digit at a time is exact.
        for _ in 0..-q.exp10 {
            v = v.div_ceil(10);
        }
    }
    i64::try_from(v).map_err(|_| too_large())
}

/// Parses a Kubernetes CPU quantity into cores: `500m` → 0.5, `2` → 2.0, `1.5` → 1.5.
///
/// Same grammar as [`parse_quantity_memory`]; negative values are errors.
pub fn parse_quantity_cpu(s: &str) -> Result<f64, String> {
    let q = parse_quantity(s)?;
    let base = q.digits as f64 * 2f64.powi(q.exp2 as i32);
    let v = if q.exp10 >= 0 { base * 10f64.powi(q.exp10) } else { base / 10f64.powi(-q.exp10) };
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("invalid quantity {s:?}: too large"))
    }
}

/// A quantity as `digits × 10^exp10 × 2^exp2`.
struct Quantity {
    digits: u128,
    exp10: i32,
    exp2: u32,
}

const QUANTITY_SUFFIXES: &str = "Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E or an exponent such as e3";

fn parse_quantity(s: &str) -> Result<Quantity, String> {
    let bad = |why: &str| format!("invalid quantity {s:?}: {why}");
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(split);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if frac.contains('.') {
        return Err(bad("malformed number"));
    }
    if int.is_empty() && frac.is_empty() {
        return Err(bad("expected a number, optionally followed by a unit suffix"));
    }
    let all: String = int.chars().chain(frac.chars()).skip_while(|&c| c == '0').collect();
    if all.len() > 38 {
        return Err(bad("too many digits"));
    }
    let digits: u128 = if all.is_empty() { 0 } else { all.parse().map_err(|_| bad("malformed number"))? };
    let mut exp10 = -i32::try_from(frac.len()).map_err(|_| bad("too many digits"))?;
    let mut exp2 = 0;
    match suffix {
        "" => {}
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        _ if suffix.starts_with(['e', 'E']) => {
            let e = &suffix[1..];
            let valid = !e.is_empty() && e.trim_start_matches(['+', '-']).bytes().all(|b| b.is_ascii_digit());
            match e.parse::<i32>() {
                Ok(n) if valid && (-100..=100).contains(&n) => exp10 += n,
                Ok(_) if valid => return Err(bad("exponent out of range")),
                _ => {
                    return Err(bad(&format!("unknown suffix {suffix:?} (expected {QUANTITY_SUFFIXES})")));
                }
            }
        }
        _ => {
            return Err(bad(&format!("unknown suffix {suffix:?} (expected {QUANTITY_SUFFIXES})")));
        }
    }
    if negative && digits != 0 {
        return Err(bad("must not be negative"));
    }
    Ok(Quantity { digits, exp10, exp2 })
}

// ---------------------------------------------------------------------------------------------------------
// Walking the document.

/// Collects located errors and warnings for one document.
struct Ctx {
    prefix: String,
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Ctx {
    fn line(&self, path: &str, msg: impl Display) -> String {
        if path.is_empty() {
            format!("{}: {msg}", self.prefix)
        } else {
            format!("{}: {path}: {msg}", self.prefix)
        }
    }

    fn error(&mut self, path: &str, msg: impl Display) {
        let line = self.line(path, msg);
        self.errors.push(line);
    }

    fn warn(&mut self, path: &str, msg: impl Display) {
        let line = self.line(path, msg);
        self.warnings.push(line);
    }

    fn ignored(&mut self, path: &str) {
        self.warn(path, "not supported by capsa, ignored");
    }

    fn unsupported(&mut self, path: &str) {
        self.error(path, "not supported by capsa");
    }

    fn unknown(&mut self, path: &str, key: &str, known: &[&[&str]]) {
        match suggest(key, known) {
            Some(s) => self.warn(path, format!("unknown field, ignored (did you mean {s:?}?)")),
            None => self.warn(path, "unknown field, ignored"),
        }
    }

    fn type_error(&mut self, path: &str, expected: &str, found: &Value) {
        let hint = match found {
            Value::Number(_) | Value::Bool(_) if expected == "a string" => {
                format!(" (quote it: \"{}\")", scalar_text(found))
            }
            Value::String(s)
                if (expected.contains("integer") && s.parse::<i64>().is_ok())
                    || (expected.contains("boolean") && (s == "true" || s == "false")) =>
            {
                " (remove the quotes)".to_string()
            }
            _ => String::new(),
        };
        self.error(path, format!("expected {expected}, found {}{hint}", describe(found)));
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn suggest<'a>(key: &str, known: &[&[&'a str]]) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    let limit = if key.chars().count() < 5 { 1 } else { 2 };
    known
        .iter()
        .flat_map(|list| list.iter())
        .map(|k| (edit_distance(&key, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The mapping, or `None` (with an error unless the value is null, which counts as absent).
fn as_mapping<'v>(ctx: &mut Ctx, path: &str, v: &'v Value) -> Option<&'v Mapping> {
    match v {
        Value::Mapping(m) => Some(m),
        Value::Null => None,
        other => {
            ctx.type_error(path, "a mapping", other);
            None
        }
    }
}

/// The mapping's entries with string keys; other keys are errors.
fn fields<'v>(ctx: &mut Ctx, path: &str, m: &'v Mapping) -> Vec<(&'v str, &'v Value)> {
    let mut out = Vec::new();
    for (k, v) in m {
        match k {
            Value::String(s) => out.push((s.as_str(), v)),
            other => ctx.error(path, format!("field names must be strings, found {}", describe(other))),
        }
    }
    out
}

/// A list item that must be a mapping (null included in the error).
fn as_item<'v>(ctx: &mut Ctx, path: &str, v: &'v Value, what: &str) -> Option<&'v Mapping> {
    match v {
        Value::Mapping(m) => Some(m),
        other => {
            ctx.type_error(path, what, other);
            None
        }
    }
}

/// The items of the list at `path` that are mappings, each with its own path
/// (`path[i]`); any other item is a type error naming `what` was expected.
fn mappings<'v>(ctx: &mut Ctx, path: &str, v: &'v Value, what: &str) -> Vec<(String, &'v Mapping)> {
    let mut out = Vec::new();
    for (i, item) in as_list(ctx, path, v).unwrap_or_default().iter().enumerate() {
        let ip = format!("{path}[{i}]");
        if let Some(m) = as_item(ctx, &ip, item, what) {
            out.push((ip, m));
        }
    }
    out
}

/// Whether the mapping has `key` with a non-null value.
fn present(m: &Mapping, key: &str) -> bool {
    m.get(key).is_some_and(|v| !v.is_null())
}

/// `pick(v)` for a value of the expected type; null is "absent"; any other type is an error.
fn typed<'v, T>(
    ctx: &mut Ctx,
    path: &str,
    v: &'v Value,
    expected: &str,
    pick: impl FnOnce(&'v Value) -> Option<T>,
) -> Option<T> {
    if v.is_null() {
        return None;
    }
    let r = pick(v);
    if r.is_none() {
        ctx.type_error(path, expected, v);
    }
    r
}

/// A top-level field that must hold exactly `want`; `wrong` names what was found (`{}`).
fn expect_value(ctx: &mut Ctx, field: &str, v: Option<&Value>, want: &str, wrong: &str) -> bool {
    let errors_before = ctx.errors.len();
    match v.and_then(|v| as_string(ctx, field, v)) {
        Some(found) if found == want => true,
        Some(found) => {
            ctx.error(field, wrong.replace("{}", &format!("{found:?}")));
            false
        }
        None => {
            if ctx.errors.len() == errors_before {
                ctx.error(field, format!("missing (expected {want})"));
            }
            false
        }
    }
}

fn as_list<'v>(ctx: &mut Ctx, path: &str, v: &'v Value) -> Option<&'v [Value]> {
    typed(ctx, path, v, "a list", |v| v.as_sequence().map(Vec::as_slice))
}

fn as_string(ctx: &mut Ctx, path: &str, v: &Value) -> Option<String> {
    typed(ctx, path, v, "a string", |v| v.as_str().map(str::to_owned))
}

fn as_bool(ctx: &mut Ctx, path: &str, v: &Value) -> Option<bool> {
    typed(ctx, path, v, "a boolean (true or false)", Value::as_bool)
}

/// A port number; `allow_zero` makes 0 mean "absent" (as `hostPort: 0` does in Kubernetes).
fn as_port(ctx: &mut Ctx, path: &str, v: &Value, allow_zero: bool) -> Option<u16> {
    match v {
        Value::Null => None,
        Value::Number(n) if n.is_i64() || n.is_u64() => match n.as_i64() {
            Some(0) if allow_zero => None,
            Some(p) if (1..=65535).contains(&p) => u16::try_from(p).ok(),
            _ => {
                ctx.error(path, format!("port must be between 1 and 65535, found {n}"));
                None
            }
        },
        other => {
            ctx.type_error(path, "an integer port number", other);
            None
        }
    }
}

/// The text of a quantity given as a string or a bare YAML number.
fn as_quantity(ctx: &mut Ctx, path: &str, v: &Value) -> Option<String> {
    typed(ctx, path, v, "a quantity (a string such as \"64Mi\" or a number)", |v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn string_list(ctx: &mut Ctx, path: &str, v: &Value) -> Vec<String> {
    let Some(items) = as_list(ctx, path, v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match item {
            Value::String(s) => out.push(s.clone()),
            other => ctx.type_error(&p, "a string", other),
        }
    }
    out
}

fn dns_label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let end = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && b.len() <= 63 && b.iter().all(inner) && end(&b[0]) && end(&b[b.len() - 1])
}

/// Checks a DNS-1123 label, reporting a problem at `path`.
fn check_dns_label(ctx: &mut Ctx, path: &str, what: &str, s: &str) -> bool {
    let ok = dns_label_ok(s);
    if !ok {
        ctx.error(
            path,
            format!(
                "invalid {what} {s:?}: must be a DNS-1123 label (lowercase letters, digits and '-', starting and \
                 ending with a letter or digit, at most 63 characters)"
            ),
        );
    }
    ok
}

fn label_name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(inner)
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn label_key_ok(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => prefix.len() <= 253 && prefix.split('.').all(dns_label_ok) && label_name_ok(name),
        None => label_name_ok(key),
    }
}

fn absolute(s: &str) -> bool {
    s.starts_with('/')
}

fn has_dotdot(s: &str) -> bool {
    s.split('/').any(|c| c == "..")
}

// ---------------------------------------------------------------------------------------------------------
// The schema.

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

const CONTAINER_FIELDS: &[&str] =
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
const PORT_FIELDS: &[&str] = &["name", "containerPort", "hostPort", "protocol", "hostIP"];
const RESOURCES_FIELDS: &[&str] = &["limits", "requests", "claims"];
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

/// Facts gathered while walking the spec, checked once the whole spec has been read.
#[derive(Default)]
struct PodRefs {
    /// (container name, path of its `name` field).
    container_names: Vec<(String, String)>,
    /// (volume name, path of the mount's `name` field).
    mounts: Vec<(String, String)>,
    /// Names of declared volumes, including ones rejected for their type (so mounts of them are not reported too).
    volume_names: BTreeSet<String>,
    ports: Vec<PortRef>,
}

struct PortRef {
    container_port: u16,
    host_port: Option<u16>,
    protocol: String,
    path: String,
}

fn parse_pod(ctx: &mut Ctx, doc: &Value) -> Option<PodManifest> {
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

struct SpecParts {
    containers: Vec<ContainerSpec>,
    init_containers: Vec<ContainerSpec>,
    volumes: Vec<Volume>,
    restart_policy: RestartPolicy,
    host_network: bool,
    hostname: Option<String>,
    seccomp: Option<SeccompProfile>,
}

fn parse_spec(ctx: &mut Ctx, v: &Value) -> Option<SpecParts> {
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

fn parse_containers(ctx: &mut Ctx, path: &str, v: &Value, init: bool, refs: &mut PodRefs) -> Vec<ContainerSpec> {
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

fn parse_ports(ctx: &mut Ctx, path: &str, v: &Value, refs: &mut PodRefs) -> Vec<ContainerPort> {
    let mut out = Vec::new();
    for (ip, m) in mappings(ctx, path, v, "a port (a mapping)") {
        let mut port = ContainerPort {
            name: None,
            container_port: 0,
            host_port: None,
            protocol: "tcp".to_string(),
            host_ip: None,
        };
        let mut container_port = None;
        for (key, v) in fields(ctx, &ip, m) {
            let p = join(&ip, key);
            match key {
                "name" => match as_string(ctx, &p, v) {
                    Some(n) if !port_name_ok(&n) => ctx.error(
                        &p,
                        format!(
                            "invalid port name {n:?}: at most 15 lowercase letters, digits and '-', with at least \
                             one letter, not starting or ending with '-' nor containing \"--\""
                        ),
                    ),
                    n => port.name = n,
                },
                "containerPort" => container_port = as_port(ctx, &p, v, false),
                "hostPort" => port.host_port = as_port(ctx, &p, v, true),
                "protocol" => match as_string(ctx, &p, v).as_deref() {
                    None | Some("TCP") => {}
                    Some("UDP") => port.protocol = "udp".to_string(),
                    Some("SCTP") => ctx.error(&p, "SCTP is not supported by capsa (TCP or UDP)"),
                    Some(other) => ctx.error(&p, format!("unsupported protocol {other:?} (expected TCP or UDP)")),
                },
                "hostIP" => match as_string(ctx, &p, v) {
                    Some(ip) if ip.is_empty() => {}
                    Some(ip) if ip.parse::<IpAddr>().is_err() => ctx.error(&p, format!("invalid IP address {ip:?}")),
                    ip => port.host_ip = ip,
                },
                k => ctx.unknown(&p, k, &[PORT_FIELDS]),
            }
        }
        match container_port {
            Some(cp) => {
                port.container_port = cp;
                refs.ports.push(PortRef {
                    container_port: cp,
                    host_port: port.host_port,
                    protocol: port.protocol.clone(),
                    path: ip,
                });
                out.push(port);
            }
            None if !present(m, "containerPort") => {
                ctx.error(&join(&ip, "containerPort"), "missing (every port needs a containerPort)")
            }
            None => {}
        }
    }
    out
}

/// IANA service name, as Kubernetes checks port names.
fn port_name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(|c| c.is_ascii_lowercase())
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
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

fn positive_cpu(ctx: &mut Ctx, path: &str, q: &str) -> Option<f64> {
    match parse_quantity_cpu(q) {
        Ok(v) if v > 0.0 => Some(v),
        Ok(_) => {
            ctx.error(path, format!("must be greater than 0, found {q:?}"));
            None
        }
        Err(e) => {
            ctx.error(path, e);
            None
        }
    }
}

fn positive_memory(ctx: &mut Ctx, path: &str, q: &str) -> Option<i64> {
    match parse_quantity_memory(q) {
        Ok(v) if v > 0 => Some(v),
        Ok(_) => {
            ctx.error(path, format!("must be greater than 0, found {q:?}"));
            None
        }
        Err(e) => {
            ctx.error(path, e);
            None
        }
    }
}

fn parse_mounts(ctx: &mut Ctx, path: &str, v: &Value, refs: &mut PodRefs) -> Vec<VolumeMount> {
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

fn parse_volumes(ctx: &mut Ctx, path: &str, v: &Value, refs: &mut PodRefs) -> Vec<Volume> {
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
    use super::*;

    const HEAD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n";

    /// A pod with one container `c` (image `i`) carrying the extra flow-style `fields`.
    fn with_container(fields: &str) -> String {
        format!("{HEAD}spec: {{containers: [{{name: c, image: i, {fields}}}]}}\n")
    }

    /// A pod whose spec holds one container `c` plus the extra flow-style spec `fields`.
    fn with_spec(fields: &str) -> String {
        format!("{HEAD}spec: {{containers: [{{name: c, image: i}}], {fields}}}\n")
    }

    fn ok(yaml: &str) -> Parsed {
        let mut all = parse_all(yaml, "pod.yaml").unwrap_or_else(|e| panic!("unexpected error:\n{e}"));
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    fn errors(yaml: &str) -> String {
        match parse_all(yaml, "pod.yaml") {
            Err(ManifestError::Invalid { errors, .. }) => errors.join("\n"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[track_caller]
    fn assert_has(text: &str, needle: &str) {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }

    #[track_caller]
    fn assert_error(yaml: &str, needle: &str) {
        assert_has(&errors(yaml), needle);
    }

    #[track_caller]
    fn assert_warning(yaml: &str, needle: &str) {
        assert_has(&ok(yaml).warnings.join("\n"), needle);
    }

    #[test]
    fn full_pod_round_trip() {
        let yaml = r#"
apiVersion: v1
kind: Pod
metadata:
  name: full
  labels: {app: web, example.com/tier: "", version: "1.0"}
  annotations: {note: 12}
spec:
  restartPolicy: OnFailure
  hostname: box
  securityContext: {seccompProfile: {type: RuntimeDefault}}
  volumes:
    - name: scratch
      emptyDir: {medium: Memory, sizeLimit: 1Gi}
    - name: host
      hostPath: {path: /srv/data, type: Directory}
    - name: plain
      emptyDir:
  initContainers:
    - name: setup
      image: alpine:3
      args: [echo, hi]
  containers:
    - name: app
      image: registry.example/app@sha256:abc
      command: [/bin/app]
      args: ["--port", "8080"]
      env:
        - {name: A, value: one}
        - {name: EMPTY}
      workingDir: /work
      ports:
        - {name: http, containerPort: 8080, hostPort: 18080, hostIP: 127.0.0.1}
        - {containerPort: 53, protocol: UDP}
      resources:
        limits: {cpu: 1.5, memory: 536870912}
      volumeMounts:
        - {name: scratch, mountPath: /tmp}
        - {name: host, mountPath: /data, readOnly: true, subPath: sub/dir}
      securityContext: {seccompProfile: {type: Unconfined}}
"#;
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
    fn defaults() {
        let pod = ok(&with_spec("hostNetwork: true")).pod;
        assert_eq!(pod.restart_policy, RestartPolicy::Always);
        assert!(pod.host_network);
        assert_eq!(pod.hostname, None);
        assert!(pod.labels.is_empty() && pod.init_containers.is_empty() && pod.volumes.is_empty());
        assert_eq!(ok(&with_spec("restartPolicy: Never")).pod.restart_policy, RestartPolicy::Never);
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
        assert_eq!(
            all[0].warnings,
            ["pods.yaml (document 2): spec.containers[0].tty: not supported by capsa, ignored"]
        );
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
    fn port_rules() {
        let p = "spec.containers[0].ports[0]";
        assert_error(&with_container("ports: [{hostPort: 80}]"), &format!("pod.yaml: {p}.containerPort: missing"));
        assert_error(
            &with_container("ports: [{containerPort: 0}]"),
            &format!("{p}.containerPort: port must be between 1 and 65535, found 0"),
        );
        assert_error(
            &with_container("ports: [{containerPort: 70000}]"),
            &format!("{p}.containerPort: port must be between 1 and 65535, found 70000"),
        );
        assert_error(
            &with_container("ports: [{containerPort: -1}]"),
            &format!("{p}.containerPort: port must be between"),
        );
        assert_error(
            &with_container("ports: [{containerPort: \"80\"}]"),
            &format!("{p}.containerPort: expected an integer port number, found string \"80\" (remove the quotes)"),
        );
        assert_error(
            &with_container("ports: [{containerPort: 80.5}]"),
            &format!("{p}.containerPort: expected an integer port number, found number 80.5"),
        );
        assert_error(
            &with_container("ports: [{containerPort: 80, hostPort: 65536}]"),
            &format!("{p}.hostPort: port must be between 1 and 65535"),
        );
        assert_error(
            &with_container("ports: [{containerPort: 80, protocol: SCTP}]"),
            &format!("{p}.protocol: SCTP is not supported"),
        );
        assert_error(
            &with_container("ports: [{containerPort: 80, protocol: tcp}]"),
            &format!("{p}.protocol: unsupported protocol \"tcp\""),
        );
        assert_error(
            &with_container("ports: [{containerPort: 80, hostIP: localhost}]"),
            &format!("{p}.hostIP: invalid IP address"),
        );
        assert_error(
            &with_container("ports: [{containerPort: 80, name: HTTP}]"),
            &format!("{p}.name: invalid port name"),
        );

        let port = &ok(&with_container("ports: [{containerPort: 80, hostPort: 0}]")).pod.containers[0].ports[0];
        assert_eq!((port.host_port, port.protocol.as_str()), (None, "tcp"));
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

    #[test]
    fn memory_quantities() {
        let table: &[(&str, i64)] = &[
            ("1024", 1024),
            ("128Mi", 128 << 20),
            ("1Gi", 1 << 30),
            ("0.5Gi", 1 << 29),
            ("1.5Ki", 1536),
            ("500M", 500_000_000),
            ("1e3", 1000),
            ("1E3", 1000),
            ("2e+2", 200),
            ("1k", 1000),
            ("1G", 1_000_000_000),
            ("1T", 1_000_000_000_000),
            ("1P", 10i64.pow(15)),
            ("1E", 10i64.pow(18)),
            ("1Ti", 1 << 40),
            ("1Pi", 1 << 50),
            ("1Ei", 1 << 60),
            ("500m", 1),
            ("1500m", 2),
            ("0.1", 1),
            ("0", 0),
            ("+5", 5),
            (".5Ki", 512),
            ("12345678901e-3", 12_345_679),
        ];
        for (text, want) in table {
            assert_eq!(parse_quantity_memory(text), Ok(*want), "{text}");
        }
        for (text, why) in [
            ("", "expected a number"),
            ("Mi", "expected a number"),
            ("1MB", "unknown suffix \"MB\""),
            ("1K", "unknown suffix \"K\""),
            ("1 Gi", "unknown suffix \" Gi\""),
            ("1e", "unknown suffix \"e\""),
            ("1.2.3", "malformed number"),
            ("-1", "must not be negative"),
            ("8Ei", "too large"),
            ("1e200", "exponent out of range"),
        ] {
            let e = parse_quantity_memory(text).unwrap_err();
            assert!(e.starts_with(&format!("invalid quantity {text:?}: ")) && e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn cpu_quantities() {
        let table: &[(&str, f64)] =
            &[("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("100m", 0.1), ("0.25", 0.25), ("1k", 1000.0), ("2e-1", 0.2)];
        for (text, want) in table {
            assert_eq!(parse_quantity_cpu(text), Ok(*want), "{text}");
        }
        assert!(parse_quantity_cpu("-500m").unwrap_err().contains("must not be negative"));
        assert!(parse_quantity_cpu("half").unwrap_err().contains("invalid quantity \"half\""));
    }

    #[test]
    fn edit_distance_and_suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(suggest("comand", &[CONTAINER_FIELDS]), Some("command"));
        assert_eq!(suggest("xyz", &[CONTAINER_FIELDS]), None);
    }
}
