//! Parsing of Kubernetes `v1/Pod` manifests (the subset capsa supports) for `capsa pod apply -f`.
//!
//! The YAML is read into a [`serde_norway::Value`] and walked by hand, so that every problem names the
//! file, the document (when the file has several) and the field path. Fields capsa knows but does not
//! implement give an "ignored" warning, fields it does not know give an "unknown field" warning, and
//! anything capsa could not honour without changing the pod's meaning is an error.
//!
//! The walk is split by part of the Pod (`pod`, `spec`, `containers`, `ports`, `volumes`, `security`) over
//! shared helpers (`walk` for the located messages and typed values, `names`, `quantities`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_norway::Value;

mod containers;
mod names;
mod pod;
mod ports;
mod quantities;
mod security;
mod spec;
#[cfg(test)]
mod tests;
mod volumes;
mod walk;

pub use quantities::{parse_quantity_cpu, parse_quantity_memory};
pub use security::SeccompProfile;

use pod::parse_pod;
use walk::Ctx;

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
