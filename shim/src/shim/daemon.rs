//! The binary's entry point: parse the arguments, daemonize (double fork, new session),
//! start the container and report its pid (or the error) to the launcher over a pipe.

use super::Shim;
use crate::config::Config;
use crate::sys;
use std::io;
use std::os::fd::RawFd;

/// Entry point of the binary: parse, daemonize, report to the launcher.
pub fn main() -> i32 {
    let cfg = match Config::parse(std::env::args().skip(1)) {
        Ok(Some(c)) => c,
        Ok(None) => {
            print!("{}", crate::config::USAGE);
            return 0;
        }
        Err(e) => {
            eprintln!("capsa-shim: {e}\n{}", crate::config::USAGE);
            return 2;
        }
    };
    if let Err(e) = capsa_fsutil::ensure_dir(&cfg.state_dir, 0o700) {
        eprintln!("capsa-shim: state dir: {e}");
        return 1;
    }
    let (sync_r, sync_w) = match sys::pipe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("capsa-shim: pipe: {e}");
            return 1;
        }
    };
    // SAFETY: fork takes no arguments; the process is single-threaded here (no thread has been
    // started), so the child may run ordinary code after it.
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("capsa-shim: fork: {}", io::Error::last_os_error());
            1
        }
        0 => {
            // First child: new session, then fork the shim and exit so that the shim is
            // not a session leader (never reacquires a controlling terminal).
            // SAFETY: setsid takes no arguments and touches no memory.
            unsafe { libc::setsid() };
            // SAFETY: fork in the first child, which is still single-threaded.
            match unsafe { libc::fork() } {
                0 => {
                    // SAFETY: closes this process's own copy of the pipe's read end, never used here.
                    unsafe { libc::close(sync_r) };
                    let code = run_daemon(cfg, sync_w);
                    // SAFETY: _exit takes an integer and never returns.
                    unsafe { libc::_exit(code) }
                }
                // SAFETY: _exit takes an integer and never returns; the first child must not run the parent's code.
                _ => unsafe { libc::_exit(0) },
            }
        }
        child => {
            // SAFETY: closes the parent's own copy of the pipe's write end, not used after this.
            unsafe { libc::close(sync_w) };
            let mut st = 0;
            // SAFETY: `child` is our own child and `st` a live local int for waitpid to write.
            unsafe { libc::waitpid(child, &mut st, 0) };
            let mut msg = Vec::new();
            let mut buf = [0u8; 512];
            while let Ok(n) = sys::read(sync_r, &mut buf) {
                if n == 0 {
                    break;
                }
                msg.extend_from_slice(&buf[..n]);
            }
            let msg = String::from_utf8_lossy(&msg);
            match msg.strip_prefix("ok ") {
                Some(pid) => {
                    println!("{}", pid.trim());
                    0
                }
                None => {
                    let m = msg.strip_prefix("error ").unwrap_or("the shim exited before starting the container");
                    eprintln!("capsa-shim: {}", m.trim());
                    1
                }
            }
        }
    }
}

fn run_daemon(cfg: Config, sync_w: RawFd) -> i32 {
    // stdio: stdin/stdout /dev/null, stderr the shim's own log in the state dir.
    // SAFETY: the path is a NUL-terminated literal; dup2 and close only act on fds: the one just
    // opened (-1 makes dup2 fail with EBADF) and this daemon's own stdin/stdout.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        libc::dup2(null, 0);
        libc::dup2(null, 1);
        if null > 2 {
            libc::close(null);
        }
    }
    let fail = |sync_w: RawFd, msg: String| -> i32 {
        let _ = sys::write_all(sync_w, format!("error {msg}\n").as_bytes());
        1
    };
    if let Err(e) = std::env::set_current_dir(&cfg.state_dir) {
        return fail(sync_w, format!("chdir {}: {e}", cfg.state_dir.display()));
    }
    // SAFETY: the path is a NUL-terminated literal; `fd` is the log just opened, owned here and
    // closed once it has been duplicated onto this daemon's own stderr.
    unsafe {
        let fd = libc::open(
            c"shim.log".as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
            0o640 as libc::c_uint,
        );
        if fd >= 0 {
            libc::dup2(fd, 2);
            libc::close(fd);
        }
    }
    let mut shim = match Shim::new(cfg) {
        Ok(s) => s,
        Err(e) => return fail(sync_w, e.to_string()),
    };
    match shim.start_container() {
        Ok(pid) => {
            let _ = sys::write_all(sync_w, format!("ok {pid}\n").as_bytes());
            // SAFETY: `sync_w` is our end of the sync pipe, owned here and not used after this close.
            unsafe { libc::close(sync_w) };
        }
        Err(e) => {
            let e = e.to_string();
            shim.write_shim_json("failed", Some(&e));
            shim.cleanup_sockets();
            return fail(sync_w, e);
        }
    }
    shim.run();
    0
}
