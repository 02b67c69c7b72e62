//! `/proc/PID/stat`, the fields capsa reads from it.

/// The fields of `/proc/PID/stat` capsa reads (proc(5) numbers them from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead)...
    pub state: u8,
    /// Field 4: the parent's pid.
    pub ppid: i32,
    /// Field 22: the start time, in clock ticks since boot. With the pid, it names
    /// one process: a pid reused by another process has another start time.
    pub start_time: u64,
}

impl ProcStat {
    /// Reads `/proc/<pid>/stat`; `None` when there is no such process (or the line
    /// cannot be parsed).
    pub fn read(pid: i32) -> Option<ProcStat> {
        ProcStat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Parses the content of a `stat` file. The command name (field 2) may hold
    /// spaces and parentheses: the fields are counted after its last `)`.
    pub fn parse(stat: &str) -> Option<ProcStat> {
        let mut f = stat.get(stat.rfind(')')? + 2..)?.split(' ');
        let state = *f.next()?.as_bytes().first()?;
        let ppid = f.next()?.parse().ok()?;
        // Fields 5 to 21, then 22.
        let start_time = f.nth(17)?.parse().ok()?;
        Some(ProcStat { state, ppid, start_time })
    }

    /// Whether the process has exited: a zombie (`Z`, not yet reaped by its parent)
    /// or dead (`X`, being released).
    pub fn exited(&self) -> bool {
        matches!(self.state, b'Z' | b'X')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_after_the_last_paren() {
        let line = "4242 (a) b (c) R 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let s = ProcStat::parse(line).unwrap();
        assert_eq!(s, ProcStat { state: b'R', ppid: 17, start_time: 987654 });
        assert!(!s.exited());
        let z = ProcStat::parse(&line.replace(") R ", ") Z ")).unwrap();
        assert!(z.exited());
        assert_eq!(ProcStat::parse("1 (x) S 0"), None, "too short");
        assert_eq!(ProcStat::parse("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = ProcStat::read(std::process::id() as i32).unwrap();
        // SAFETY: getppid has no preconditions.
        assert_eq!(me.ppid, unsafe { libc::getppid() });
        assert!(me.start_time > 0 && !me.exited());
        assert_eq!(ProcStat::read(-5), None);
    }
}
