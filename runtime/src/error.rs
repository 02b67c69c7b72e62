//! The runtime's error type: every variant says what was asked and of what.

use crate::cgroups::CgroupError;
use crate::container::StoreError;
use crate::spec::SpecError;
use crate::sys::SysError;

/// Any error of a runtime operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error("container {id:?} is {status}: cannot {op}")]
    BadState { id: String, status: &'static str, op: &'static str },
    #[error("{0}")]
    Msg(String),
}

impl Error {
    /// A plain message error.
    pub fn msg(s: impl Into<String>) -> Self {
        Error::Msg(s.into())
    }
}

/// Result alias of the runtime crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
