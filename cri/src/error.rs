//! The daemon's error: a gRPC status code and a message that says what was asked.
//!
//! Codes follow containerd's CRI plugin (its `errdefs.ToGRPC`): unknown ids are
//! `NotFound`, a taken name `AlreadyExists`, missing or malformed input
//! `InvalidArgument`, an ExecSync past its timeout `DeadlineExceeded`, and whatever
//! else went wrong (a failed mount, a CNI plugin's error, a container in the wrong
//! state) `Unknown`, with the cause in the message.

use tonic::{Code, Status};

/// An error of a CRI call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub msg: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl Error {
    pub fn new(code: Code, msg: impl Into<String>) -> Error {
        Error { code, msg: msg.into() }
    }
    pub fn not_found(msg: impl Into<String>) -> Error {
        Error::new(Code::NotFound, msg)
    }
    pub fn already_exists(msg: impl Into<String>) -> Error {
        Error::new(Code::AlreadyExists, msg)
    }
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::new(Code::InvalidArgument, msg)
    }
    pub fn unknown(msg: impl Into<String>) -> Error {
        Error::new(Code::Unknown, msg)
    }
    pub fn unavailable(msg: impl Into<String>) -> Error {
        Error::new(Code::Unavailable, msg)
    }
    pub fn unimplemented(msg: impl Into<String>) -> Error {
        Error::new(Code::Unimplemented, msg)
    }

    /// The same error with `ctx: ` in front of its message.
    pub fn context(mut self, ctx: impl std::fmt::Display) -> Error {
        self.msg = format!("{ctx}: {}", self.msg);
        self
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        Status::new(e.code, e.msg)
    }
}

impl From<capsa_pod::PodError> for Error {
    fn from(e: capsa_pod::PodError) -> Error {
        Error::new(pod_code(&e), e.to_string())
    }
}

impl From<capsa_image::images::ImageError> for Error {
    fn from(e: capsa_image::images::ImageError) -> Error {
        Error::new(image_code(&e), e.to_string())
    }
}

/// The gRPC code of a pod error, read from its variant (never from its text).
pub fn pod_code(e: &capsa_pod::PodError) -> Code {
    use capsa_pod::seccomp::ProfileError;
    use capsa_pod::PodError;
    match e {
        PodError::NotFound { .. } => Code::NotFound,
        PodError::AlreadyExists { .. } => Code::AlreadyExists,
        // A profile that does not convert may also be one that does not read: Unknown.
        PodError::Invalid(_)
        | PodError::Manifest(_)
        | PodError::Seccomp(ProfileError::Decode(_) | ProfileError::Invalid(_)) => Code::InvalidArgument,
        PodError::Image(e) => image_code(e),
        PodError::Resolve { source, .. } | PodError::Member { source, .. } => pod_code(source),
        PodError::Runtime { source, .. } => runtime_code(source),
        _ => Code::Unknown,
    }
}

/// The gRPC code of an image error: a name that is not there (locally or in the
/// registry: HTTP 404) is `NotFound`, a malformed reference `InvalidArgument`.
pub fn image_code(e: &capsa_image::images::ImageError) -> Code {
    use capsa_image::images::ImageError;
    use capsa_image::registry::RegistryError;
    match e {
        ImageError::NotFound(_) | ImageError::Registry(RegistryError::Status { status: 404, .. }) => Code::NotFound,
        ImageError::Reference(_) => Code::InvalidArgument,
        _ => Code::Unknown,
    }
}

/// The gRPC code of a runtime error: unknown or taken container ids, and values
/// the runtime refuses before it touches the kernel.
pub fn runtime_code(e: &capsa_runtime::Error) -> Code {
    use capsa_runtime::container::StoreError;
    use capsa_runtime::spec::SpecError;
    use capsa_runtime::Error as E;
    match e {
        E::Store(StoreError::NotFound(_)) => Code::NotFound,
        E::Store(StoreError::Exists(_)) => Code::AlreadyExists,
        // A config.json that does not read or parse is the daemon's fault: Unknown.
        E::Store(StoreError::BadId(_))
        | E::Spec(SpecError::Invalid { .. })
        | E::InvalidResource { .. }
        | E::InvalidProcess { .. } => Code::InvalidArgument,
        _ => Code::Unknown,
    }
}

/// Result of a CRI call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use capsa_pod::PodError;

    #[test]
    fn codes_come_from_the_variant() {
        let taken = PodError::AlreadyExists { kind: "pod", name: "web".into() };
        assert_eq!(Error::from(taken).code, Code::AlreadyExists);
        assert_eq!(Error::from(PodError::Invalid("no image".into())).code, Code::InvalidArgument);
        let gone = capsa_runtime::Error::Store(capsa_runtime::container::StoreError::NotFound("c1".into()));
        let wrapped = PodError::Runtime { op: "start", id: "c1".into(), source: Box::new(gone) };
        assert_eq!(Error::from(wrapped).code, Code::NotFound);
        let bad =
            capsa_runtime::Error::InvalidResource { field: "cpu.period", value: "5".into(), why: "too small".into() };
        assert_eq!(runtime_code(&bad), Code::InvalidArgument);
        // Boxed causes are followed: a member whose image is missing is NotFound.
        let missing = PodError::NotFound { kind: "image", name: "busybox".into() };
        let resolve = PodError::Resolve { image: "busybox".into(), source: Box::new(missing) };
        assert_eq!(Error::from(resolve).code, Code::NotFound);
        // Text alone never decides: a message that says "not found" stays Unknown.
        assert_eq!(Error::from(PodError::Msg("layer not found".into())).code, Code::Unknown);
    }
}
