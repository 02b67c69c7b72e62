//! `capsa-shim --pause`: pid 1 of a pod's shared pid namespace (what Kubernetes'
//! pause container is to a pod with `shareProcessNamespace`).
//!
//! It reaps the orphans reparented to it and exits on SIGTERM, SIGINT or SIGHUP;
//! when it exits the kernel kills every process left in its pid namespace. One
//! thread, all signals blocked and taken with `sigwaitinfo`; no memory allocated
//! after start-up.

/// Runs the pause loop; returns the exit code.
pub fn run() -> i32 {
    // SAFETY: sigset operations on a local set; sigprocmask and sigwaitinfo only read
    // and write that set and a local siginfo; waitpid reaps our own children.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
        loop {
            let mut si: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&set, &mut si);
            match sig {
                libc::SIGTERM | libc::SIGINT | libc::SIGHUP => return 0,
                libc::SIGCHLD => while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {},
                _ => {}
            }
        }
    }
}
