//! OCI image-spec types (and the Docker v2 schema 2 equivalents): descriptors,
//! manifests, indexes, image configuration; media type constants.
//!
//! Our own serde structs rather than a spec crate: they accept both the OCI and
//! the Docker media types, ignore unknown fields (forward compatible), and keep
//! only what capsa uses. Field names follow the JSON exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// OCI image index.
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const MEDIA_TYPE_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker manifest list (the Docker image index).
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config.
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (non-distributable) gzip layer.
pub const MEDIA_TYPE_DOCKER_FOREIGN_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Annotation naming a tag in an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd and Docker 25+ put on `index.json` entries: the full name.
pub const ANNOTATION_CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// Whether `mt` is an image index (OCI index or Docker manifest list).
pub fn is_index_media_type(mt: &str) -> bool {
    mt == MEDIA_TYPE_OCI_INDEX || mt == MEDIA_TYPE_DOCKER_MANIFEST_LIST
}

/// Whether `mt` is an image manifest (OCI or Docker schema 2).
pub fn is_manifest_media_type(mt: &str) -> bool {
    mt == MEDIA_TYPE_OCI_MANIFEST || mt == MEDIA_TYPE_DOCKER_MANIFEST
}

/// Whether `mt` is an image config (OCI or Docker).
pub fn is_config_media_type(mt: &str) -> bool {
    mt == MEDIA_TYPE_OCI_CONFIG || mt == MEDIA_TYPE_DOCKER_CONFIG
}

/// Whether `mt` is a layer media type capsa can unpack (OCI tar, tar+gzip,
/// tar+zstd and their non-distributable variants, Docker gzip and foreign).
/// The actual compression is detected from the bytes, not trusted from here.
pub fn is_layer_media_type(mt: &str) -> bool {
    matches!(
        mt,
        MEDIA_TYPE_OCI_LAYER
            | MEDIA_TYPE_OCI_LAYER_GZIP
            | MEDIA_TYPE_OCI_LAYER_ZSTD
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | MEDIA_TYPE_DOCKER_LAYER_GZIP
            | MEDIA_TYPE_DOCKER_FOREIGN_LAYER_GZIP
            | "application/vnd.docker.image.rootfs.diff.tar"
    )
}

/// A platform: which OS and CPU an image is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's names (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// OS version (Windows images).
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// OS features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/<arch>`.
    pub fn linux(arch: &str) -> Platform {
        Platform {
            architecture: arch.to_owned(),
            os: "linux".to_owned(),
            os_version: None,
            os_features: Vec::new(),
            variant: None,
        }
    }

    /// `linux/amd64`.
    pub fn linux_amd64() -> Platform {
        Platform::linux("amd64")
    }

    /// The host's platform, in Go's architecture names.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform::linux(arch)
    }

    /// Whether an index entry's platform `other` satisfies this wanted
    /// platform: same os and architecture, and the same variant when this one
    /// names a variant.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor: what a blob is, its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the content.
    pub digest: Digest,
    /// Size of the content in bytes.
    pub size: u64,
    /// Alternative download locations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform (in indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor with no annotations, urls or platform.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        }
    }

    /// The value of annotation `key`, if any.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// An image index (OCI) or manifest list (Docker); also `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// Media type (optional in `index.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests (or nested indexes).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// Media type (optional for OCI, required by Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The image configuration blob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfiguration {
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Creation time (RFC 3339), kept as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// What a container of this image runs by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
    /// Build history (kept opaque).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<serde_json::Value>,
}

/// `config.config`: the defaults for a container of this image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `user`, `uid`, `user:group` or `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports to expose, as `"80/tcp": {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `NAME=value` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Entrypoint argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments (or command when no entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volumes, as `"/data": {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Signal that stops the container (`SIGTERM`, `15`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// `config.rootfs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// One uncompressed-tar digest per layer, base first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_fields() {
        let j = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],
            "Cmd":["sh"],"Entrypoint":null,"WorkingDir":"/w","User":"1:2",
            "Labels":{"a":"b"},"StopSignal":"SIGINT","ExposedPorts":{"80/tcp":{}},
            "Unknown":1},"rootfs":{"type":"layers","diff_ids":[]},"extra":true}"#;
        let c: ImageConfiguration = serde_json::from_str(j).unwrap();
        let cc = c.config.unwrap();
        assert_eq!(cc.cmd.unwrap(), ["sh"]);
        assert_eq!(cc.entrypoint, None);
        assert_eq!(cc.working_dir.as_deref(), Some("/w"));
        assert_eq!(cc.user.as_deref(), Some("1:2"));
        assert_eq!(cc.stop_signal.as_deref(), Some("SIGINT"));
        assert!(cc.exposed_ports.unwrap().contains_key("80/tcp"));
    }

    #[test]
    fn platform_match() {
        let want = Platform::linux_amd64();
        assert!(want.matches(&Platform::linux("amd64")));
        assert!(!want.matches(&Platform::linux("arm64")));
        let mut v7 = Platform::linux("arm");
        v7.variant = Some("v7".into());
        assert!(Platform::linux("arm").matches(&v7));
        let mut v6 = v7.clone();
        v6.variant = Some("v6".into());
        assert!(!v7.matches(&v6));
    }
}
