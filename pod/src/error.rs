//! The crate's error type: each variant says what was asked and of what.

use std::path::PathBuf;

/// Any error of a managed-container or pod operation.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error(transparent)]
    Image(#[from] capsa_image::images::ImageError),
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `capsa` (runtime) or `capsa-shim` command failed; holds its own error text.
    #[error("{cmd}: {msg}")]
    Command { cmd: String, msg: String },
    #[error("no such {kind}: {name:?}")]
    NotFound { kind: &'static str, name: String },
    #[error(transparent)]
    Cni(#[from] crate::cni::CniError),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    /// A seccomp profile that does not convert, decode or pass the runtime's checks.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::ProfileError),
    /// Bad input of the caller (a name, a namespace kind, a sysctl, a filter): what a
    /// CRI daemon answers with `InvalidArgument`.
    #[error("{0}")]
    Invalid(String),
    /// The pod (`kind`) named `name` exists already.
    #[error("{kind} {name} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    /// A state file (`capsa.json`, `config.json`, `pod.json`) that is not valid JSON.
    #[error("{}: {source}", .path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A state value that does not encode as JSON.
    #[error("encode {}: {source}", .path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A runtime-library operation (`op`, e.g. `start container`) on container `id`
    /// (boxed: the runtime's error is large; match `&*source`).
    #[error("{op} {id}: {source}")]
    Runtime {
        op: &'static str,
        id: String,
        #[source]
        source: Box<capsa_runtime::Error>,
    },
    /// The processes of container `id` could not be listed from its cgroup.
    #[error("container {id}: list its processes: {source}")]
    Processes {
        id: String,
        #[source]
        source: capsa_runtime::cgroups::CgroupError,
    },
    /// The OCI spec of container `id` could not be made from its image and options.
    #[error("container {id}: {source}")]
    Bundle {
        id: String,
        #[source]
        source: capsa_image::bundle::BundleError,
    },
    /// The shim of container `id` could not be asked (through its socket `path`) to
    /// reopen the log.
    #[error("container {id}: reopen its log through {}: {source}", .path.display())]
    ReopenLog {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A system call (or thread start) without a path of its own: `op` says what was asked.
    #[error("{op}: {source}")]
    Sys {
        op: String,
        #[source]
        source: std::io::Error,
    },
    /// A manifest's container (`spec.{what}` entry named `container`) failed, in the
    /// manifest `origin`.
    #[error("{origin}: spec.{what} {container:?}: {source}")]
    Member {
        origin: String,
        what: &'static str,
        container: String,
        #[source]
        source: Box<PodError>,
    },
    /// The image named `image` could not be found or imported.
    #[error("image {image:?}: {source}")]
    Resolve {
        image: String,
        #[source]
        source: Box<PodError>,
    },
    #[error("{0}")]
    Msg(String),
}

impl PodError {
    /// A plain message error.
    pub fn msg(s: impl Into<String>) -> Self {
        PodError::Msg(s.into())
    }

    /// Bad input of the caller (see [`PodError::Invalid`]).
    pub fn invalid(s: impl Into<String>) -> Self {
        PodError::Invalid(s.into())
    }

    /// A failed system call, `op`, with the errno of this thread's last one.
    /// errno is read before `op` is formatted (formatting allocates, and that may
    /// set errno): pass `format_args!`, not `format!`.
    pub fn last_os_error(op: impl std::fmt::Display) -> Self {
        let source = std::io::Error::last_os_error();
        PodError::Sys { op: op.to_string(), source }
    }
}

/// `map_err` helper for io errors: `.map_err(io("read", &path))`.
pub fn io<'a>(what: &'static str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> PodError + 'a {
    move |source| PodError::Io { what, path: path.to_path_buf(), source }
}

impl From<capsa_fsutil::Error> for PodError {
    fn from(e: capsa_fsutil::Error) -> Self {
        PodError::Io { what: e.step, path: e.path, source: e.source }
    }
}

/// Mode of the state files this crate writes (`capsa.json`, `config.json` with the
/// process environment, `pod.json`, markers): root's alone.
pub const STATE_MODE: u32 = 0o600;

/// Result alias of this crate.
pub type Result<T, E = PodError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// The typed variants print what the flattened strings printed, and keep the cause.
    #[test]
    fn variants_keep_text_and_source() {
        let inner = PodError::NotFound { kind: "image", name: "busybox".into() };
        let e = PodError::Member {
            origin: "pod.yaml".into(),
            what: "containers",
            container: "web".into(),
            source: Box::new(PodError::Resolve { image: "busybox".into(), source: Box::new(inner) }),
        };
        assert_eq!(e.to_string(), "pod.yaml: spec.containers \"web\": image \"busybox\": no such image: \"busybox\"");
        // A caller matches the boxed cause; the dyn chain (what the CLI prints) goes through it.
        let PodError::Member { source, .. } = &e else { panic!("{e:?}") };
        let PodError::Resolve { source, .. } = &**source else { panic!("{e:?}") };
        assert!(matches!(**source, PodError::NotFound { kind: "image", .. }));
        let chain: Vec<String> = std::iter::successors(Some(&e as &dyn std::error::Error), |e| (*e).source())
            .map(|e| e.to_string())
            .collect();
        assert_eq!(chain.last().unwrap(), "no such image: \"busybox\"");
        assert_eq!(chain.len(), 3, "{chain:?}");

        let e = PodError::Sys { op: "pipe".into(), source: std::io::Error::from_raw_os_error(libc::EMFILE) };
        assert_eq!(e.to_string(), "pipe: Too many open files (os error 24)");
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>()).unwrap();
        assert_eq!(io.raw_os_error(), Some(libc::EMFILE));

        let e = PodError::AlreadyExists { kind: "pod", name: "p1".into() };
        assert_eq!(e.to_string(), "pod p1 already exists");
        let source = serde_json::from_slice::<serde_json::Value>(b"{").unwrap_err();
        let e = PodError::Json { path: "/s/pod.json".into(), source };
        assert_eq!(e.to_string(), "/s/pod.json: EOF while parsing an object at line 1 column 1");
    }
}
