//! The runtime's error type: every variant says what was asked and of what.

use crate::cgroups::sub::SubCgroupError;
use crate::cgroups::CgroupError;
use crate::container::StoreError;
use crate::process::IdMapError;
use crate::security::SecurityError;
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
    /// A security setting of the spec that cannot be applied (checked in the runtime,
    /// before the container's init runs).
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// `exec --cgroup`: a bad argument or a sub-cgroup that cannot be joined.
    #[error(transparent)]
    SubCgroup(#[from] SubCgroupError),
    /// Writing a rootless container's id maps with newuidmap/newgidmap.
    #[error(transparent)]
    IdMap(#[from] IdMapError),
    /// The container's init reported a failed setup step over the sync channel
    /// (the step, errno and hint it sent).
    #[error("container init: {0}")]
    Init(#[source] SysError),
    /// The container's init exited (or closed the sync channel) before it reported
    /// `Ready`: `how` it ended, and a note when its memory cgroup saw an OOM kill.
    #[error("container init (pid {pid}) {how} before it finished setting up{}", oom_suffix(.oom))]
    InitDied { pid: i32, how: String, oom: Option<String> },
    /// An `exec`'d process reported a failed step before it could exec.
    #[error("exec in container {id}: {error}")]
    Exec {
        id: String,
        #[source]
        error: SysError,
    },
    /// A field of an `exec`'d process that cannot work on this host.
    #[error("{field}: {msg}")]
    InvalidProcess { field: &'static str, msg: String },
    #[error("container {id:?} is {status}: cannot {op}")]
    BadState { id: String, status: &'static str, op: &'static str },
    /// runc's refusals of `exec`: a `paused` container (without `--ignore-paused`) or
    /// a `stopped` one.
    #[error(
        "container {id:?}: cannot exec in a {status} container{}",
        if *.status == "paused" { " (use --ignore-paused to override)" } else { "" }
    )]
    CannotExec { id: String, status: &'static str },
    /// A resource limit that can never work (checked before anything is written).
    #[error("linux.resources.{field} = {value}: {why}")]
    InvalidResource { field: &'static str, value: String, why: String },
    #[error("{0}")]
    Msg(String),
}

fn oom_suffix(oom: &Option<String>) -> String {
    oom.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
}

impl Error {
    /// A plain message error.
    pub fn msg(s: impl Into<String>) -> Self {
        Error::Msg(s.into())
    }

    /// The error the container's init (or an `exec`'d process) reported before its
    /// execve, as it sent it over the sync channel: its step and errno (e.g. ENOENT
    /// or EACCES for a program that is missing or not executable).
    pub fn child_error(&self) -> Option<&SysError> {
        match self {
            Error::Init(e) | Error::Exec { error: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// Result alias of the runtime crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed variants print what the pre-formatted messages printed.
    #[test]
    fn texts_unchanged() {
        let died = |oom: Option<&str>| Error::InitDied {
            pid: 7,
            how: "was killed by signal 9".into(),
            oom: oom.map(Into::into),
        };
        assert_eq!(
            died(None).to_string(),
            "container init (pid 7) was killed by signal 9 before it finished setting up"
        );
        assert_eq!(
            died(Some("the limit was hit")).to_string(),
            "container init (pid 7) was killed by signal 9 before it finished setting up: the limit was hit"
        );
        let refused = |status| Error::CannotExec { id: "c1".into(), status }.to_string();
        assert_eq!(
            refused("paused"),
            "container \"c1\": cannot exec in a paused container (use --ignore-paused to override)"
        );
        assert_eq!(refused("stopped"), "container \"c1\": cannot exec in a stopped container");
        let bad = Error::InvalidResource { field: "cpu.period", value: "5".into(), why: "too small".into() };
        assert_eq!(bad.to_string(), "linux.resources.cpu.period = 5: too small");
        let lsm = Error::InvalidProcess { field: "process.selinuxLabel", msg: "unsupported".into() };
        assert_eq!(lsm.to_string(), "process.selinuxLabel: unsupported");
    }

    /// What a child sent keeps its errno, and prints as the prefixed step did.
    #[test]
    fn child_errors_keep_errno() {
        let sent = SysError::from_errno("exec \"nope\" in the container", libc::ENOENT);
        let init = Error::Init(sent.clone());
        let prefixed = SysError { step: format!("container init: {}", sent.step), ..sent.clone() };
        assert_eq!(init.to_string(), prefixed.to_string());
        assert_eq!(init.child_error().map(|e| e.errno), Some(libc::ENOENT));
        let exec = Error::Exec { id: "c1".into(), error: sent.clone() };
        let prefixed = SysError { step: format!("exec in container c1: {}", sent.step), ..sent };
        assert_eq!(exec.to_string(), prefixed.to_string());
        assert!(std::error::Error::source(&exec).is_some());
        assert!(Error::msg("x").child_error().is_none());
    }
}
