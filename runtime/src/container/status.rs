//! Container status, derived from the kernel each time it is asked.

use super::{Phase, State};

/// The OCI statuses (plus `paused`, as runc reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    /// The lowercase name used in state JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }

    /// Derive the status: the init must be alive (same start time: pids get reused,
    /// and a zombie counts as stopped), then the freezer and the exec fifo decide.
    pub fn of(state: &State, fifo_exists: bool) -> Status {
        if state.pid <= 0 {
            return if state.phase == Phase::Creating { Status::Creating } else { Status::Stopped };
        }
        match proc_start_time(state.pid) {
            Some((start, zombie)) if start == state.pid_start && !zombie => {}
            _ => return Status::Stopped,
        }
        if state.phase == Phase::Creating {
            return Status::Creating;
        }
        if let Some(cg) = &state.cgroup {
            if cg.is_frozen().unwrap_or(false) {
                return Status::Paused;
            }
        }
        if fifo_exists {
            Status::Created
        } else {
            Status::Running
        }
    }
}

/// Start time (clock ticks since boot) of a pid and whether it is a zombie/dead,
/// from `/proc/<pid>/stat`. `None` if the process does not exist.
pub fn proc_start_time(pid: i32) -> Option<(u64, bool)> {
    capsa_fsutil::sys::ProcStat::read(pid).map(|s| (s.start_time, s.exited()))
}
