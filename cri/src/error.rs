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
        use capsa_image::images::ImageError;
        use capsa_pod::PodError;
        let code = match &e {
            PodError::NotFound { .. } | PodError::Image(ImageError::NotFound(_)) => Code::NotFound,
            _ => Code::Unknown,
        };
        Error::new(code, e.to_string())
    }
}

impl From<capsa_image::images::ImageError> for Error {
    fn from(e: capsa_image::images::ImageError) -> Error {
        use capsa_image::images::ImageError;
        let code = match &e {
            ImageError::NotFound(_) => Code::NotFound,
            ImageError::Reference(_) => Code::InvalidArgument,
            _ => Code::Unknown,
        };
        Error::new(code, e.to_string())
    }
}

/// Result of a CRI call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
