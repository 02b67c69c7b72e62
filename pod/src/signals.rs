//! Whether a stop signal can reach a container's init at all.
//!
//! The init of a pid namespace gets a signal sent from an ancestor namespace only if it
//! has a handler for it (pid_namespaces(7)); SIGKILL and SIGSTOP excepted. A container
//! whose init leaves its stop signal at the default action (busybox `httpd` or `sh` as
//! pid 1 with SIGTERM, for instance) never learns it was asked to stop: for `pod
//! delete`, waiting the grace period for it only delayed the SIGKILL that follows (the
//! example pod's delete took 10 s where `pod rm -f` took 0.4 s).

/// Whether `sig`, sent to `pid` from outside its pid namespace, is discarded by the
/// kernel without the process knowing: `pid` is the init of a pid namespace of its own
/// and leaves `sig` at its default action, unblocked (a blocked signal stays pending,
/// and a handler may come before it is unblocked). An ignored signal (SIG_IGN) is not
/// counted: ignoring the stop signal is a choice to keep running until SIGKILL, and
/// the grace period is that time. False whenever in doubt (no such process...).
pub fn discarded_by_init(pid: i32, sig: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| discarded(&s, sig))
}

/// [`discarded_by_init`] on the text of `/proc/PID/status`.
fn discarded(status: &str, sig: i32) -> bool {
    if !(1..=64).contains(&sig) || sig == libc::SIGKILL || sig == libc::SIGSTOP {
        return false;
    }
    let field = |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
    // "NSpid: <host pid> ... 1": the last pid is the one in its own namespace.
    let ns_init = field("NSpid:").is_some_and(|v| {
        let pids: Vec<&str> = v.split_whitespace().collect();
        pids.len() > 1 && pids.last() == Some(&"1")
    });
    let has = |key: &str| {
        field(key).and_then(|h| u64::from_str_radix(h, 16).ok()).map(|mask| mask & (1u64 << (sig - 1)) != 0)
    };
    ns_init && has("SigCgt:") == Some(false) && has("SigBlk:") == Some(false) && has("SigIgn:") == Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(nspid: &str, blk: &str, cgt: &str) -> String {
        with_ign(nspid, blk, "0000000000000000", cgt)
    }

    fn with_ign(nspid: &str, blk: &str, ign: &str, cgt: &str) -> String {
        format!("Name:\thttpd\nNSpid:\t{nspid}\nSigQ:\t0/63\nSigPnd:\t0000000000000000\nSigBlk:\t{blk}\nSigIgn:\t{ign}\nSigCgt:\t{cgt}\n")
    }

    #[test]
    fn only_an_init_without_handler_discards() {
        let none = "0000000000000000";
        let term = "0000000000004000"; // bit 14: SIGTERM (15)
        assert!(discarded(&status("4242\t1", none, none), libc::SIGTERM));
        assert!(discarded(&status("4242\t17\t1", none, "0000000000000002"), libc::SIGTERM), "INT caught only");
        assert!(!discarded(&status("4242\t1", none, term), libc::SIGTERM), "a handler: delivered");
        assert!(!discarded(&status("4242\t1", term, none), libc::SIGTERM), "blocked: stays pending");
        assert!(!discarded(&with_ign("4242\t1", none, term, none), libc::SIGTERM), "ignored: by choice");
        assert!(!discarded(&status("4242", none, none), libc::SIGTERM), "not a namespace init: default action kills");
        assert!(!discarded(&status("4242\t7", none, none), libc::SIGTERM), "not the init of its namespace");
        assert!(!discarded(&status("4242\t1", none, none), libc::SIGKILL));
        assert!(!discarded("Name:\tx\n", libc::SIGTERM), "no fields: in doubt");
        assert!(!discarded_by_init(-1, libc::SIGTERM));
    }
}
