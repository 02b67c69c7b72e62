//! Signal names and numbers, as `kill` accepts them (`KILL`, `SIGKILL`, `9`).

/// Every signal with its name, in number order.
pub const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parse `KILL`, `SIGKILL`, `sigkill`, `9`, `RTMIN+3`, and `0` (no signal: only
/// checks that the process exists, as kill(1) and runc accept).
pub fn parse(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (0..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(&(_, n)) = SIGNALS.iter().find(|(nm, _)| *nm == name) {
        return Some(n);
    }
    let rt = |base: i32, rest: &str| -> Option<i32> {
        let off: i32 = if rest.is_empty() { 0 } else { rest.parse().ok()? };
        Some(base + off)
    };
    if let Some(r) = name.strip_prefix("RTMIN") {
        return rt(libc::SIGRTMIN(), r.trim_start_matches('+')).filter(|n| *n <= libc::SIGRTMAX());
    }
    if let Some(r) = name.strip_prefix("RTMAX") {
        return rt(libc::SIGRTMAX(), r).filter(|n| *n >= libc::SIGRTMIN());
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::parse("KILL"), Some(9));
        assert_eq!(super::parse("SIGTERM"), Some(15));
        assert_eq!(super::parse("sigusr1"), Some(10));
        assert_eq!(super::parse("9"), Some(9));
        assert_eq!(super::parse("0"), Some(0));
        assert_eq!(super::parse("65"), None);
        assert_eq!(super::parse("SIG0"), None);
        assert_eq!(super::parse("SIGFOO"), None);
        assert_eq!(super::parse("RTMIN+2"), Some(libc::SIGRTMIN() + 2));
    }
}
