//! Process security setup for the container init: capabilities, rlimits,
//! seccomp and LSM labels.
//!
//! Everything in here is meant to run in the container's init process after
//! fork (single-threaded, shortly before exec). Each failing kernel request
//! reports what was asked and the errno.

pub mod caps;
pub mod exe;
pub mod lsm;
pub mod rlimits;
pub mod seccomp;
pub mod seccomp_bpf;
pub mod seccomp_cache;

use std::io;

/// Errors from applying the security settings of an OCI spec.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A syscall or prctl failed; `op` describes exactly what the kernel was asked.
    #[error("{op}: {err}")]
    Syscall { op: String, err: io::Error },

    /// A capability name that is neither known nor plausibly a newer kernel's.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),

    /// setrlimit/prlimit failed.
    #[error(
        "setrlimit {name} soft={} hard={}: {err}{hint}",
        fmt_limit(*.soft),
        fmt_limit(*.hard)
    )]
    Rlimit { name: String, soft: u64, hard: u64, err: io::Error, hint: String },

    /// An rlimit entry that cannot be applied (unknown type, soft > hard, duplicate).
    #[error("rlimit: {0}")]
    InvalidRlimit(String),

    /// Invalid seccomp profile, or libseccomp refused it.
    #[error("seccomp: {0}")]
    Seccomp(String),

    /// A seccomp feature this runtime deliberately does not implement.
    #[error("seccomp: {0} is unsupported in this version of capsa")]
    SeccompUnsupported(String),
}

impl SecurityError {
    /// The errno behind this error, when it came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SecurityError::Syscall { err, .. } | SecurityError::Rlimit { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }

    /// Builds a [`SecurityError::Syscall`] from the current `errno`.
    pub(crate) fn last_os(op: impl Into<String>) -> Self {
        SecurityError::Syscall { op: op.into(), err: io::Error::last_os_error() }
    }
}

fn fmt_limit(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".to_string()
    } else {
        v.to_string()
    }
}

/// Fork-based helpers for tests that must change process-wide state
/// (capabilities, seccomp, rlimits) without touching the test runner.
#[cfg(test)]
pub(crate) mod testutil {
    use std::io::Read;
    use std::os::fd::FromRawFd;

    /// How a forked child ended.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Outcome {
        Exited(i32),
        Signaled(i32),
    }

    /// What a child's test body returns: its exit code, or the error to report.
    pub type ChildResult = Result<i32, Box<dyn std::error::Error>>;

    /// Runs `f` in a forked child. `Ok(code)` exits with `code`; `Err(e)`
    /// sends `e`'s text back over a pipe and exits 100; a panic exits 101.
    /// Returns the child's outcome and any message it sent.
    pub fn in_child<F: FnOnce() -> ChildResult>(f: F) -> (Outcome, String) {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid, writable array of two c_ints.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: the child only runs `f` and then _exit()s; glibc keeps malloc
        // usable after fork, and the test does not rely on other threads' state.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: closing our copy of the read end, which we own.
            unsafe { libc::close(fds[0]) };
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let code = match res {
                Ok(Ok(code)) => code,
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    // SAFETY: writing an in-bounds byte buffer to our pipe fd.
                    unsafe { libc::write(fds[1], msg.as_ptr().cast(), msg.len()) };
                    100
                }
                Err(_) => 101,
            };
            // SAFETY: terminate the child immediately without running the
            // parent's atexit handlers or test-harness destructors.
            unsafe { libc::_exit(code) };
        }
        // SAFETY: closing the parent's copy of the write end, which we own.
        unsafe { libc::close(fds[1]) };
        // SAFETY: fds[0] is an open fd owned solely by this File from now on.
        let mut reader = unsafe { std::fs::File::from_raw_fd(fds[0]) };
        let mut msg = String::new();
        let _ = reader.read_to_string(&mut msg);
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child with a valid status pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r == pid {
                break;
            }
            assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EINTR));
        }
        let outcome = if libc::WIFEXITED(status) {
            Outcome::Exited(libc::WEXITSTATUS(status))
        } else {
            Outcome::Signaled(libc::WTERMSIG(status))
        };
        (outcome, msg)
    }

    /// Asserts the child exited 0, showing its message otherwise.
    pub fn assert_child_ok<F: FnOnce() -> ChildResult>(f: F) {
        let (outcome, msg) = in_child(f);
        assert_eq!(outcome, Outcome::Exited(0), "child failed: {msg}");
    }
}
