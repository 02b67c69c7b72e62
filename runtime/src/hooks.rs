//! OCI hooks: run a program with the container state on stdin, with a timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::spec::Hook;
use crate::sys::SysError;

/// Run `hooks` (of kind `kind`) in order, in `cwd` (else the caller's); the first
/// failure stops the list.
pub fn run(kind: &str, hooks: &[Hook], state: &serde_json::Value, cwd: Option<&Path>) -> Result<(), SysError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(state).expect("state serializes");
    for (i, h) in hooks.iter().enumerate() {
        run_one(kind, i, h, &input, cwd)?;
    }
    Ok(())
}

fn run_one(kind: &str, i: usize, h: &Hook, input: &[u8], cwd: Option<&Path>) -> Result<(), SysError> {
    let what = format!("{kind} hook #{i} {}", h.path);
    tracing::debug!("running {what} with the container state on stdin");
    let mut cmd = Command::new(&h.path);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    if let Some((argv0, rest)) = h.args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for e in &h.env {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::inherit()).stderr(Stdio::piped());
    // SAFETY: getpid has no preconditions.
    let runtime = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and only makes syscalls, without
    // allocating (cloexec_from is written for this).
    unsafe { cmd.pre_exec(move || hook_child_setup(runtime)) };
    let mut child = cmd.spawn().map_err(|e| SysError::io(format!("start {what}"), &e))?;
    crate::explain::step(crate::explain::Kind::Hook, || {
        crate::explain::Step::new(
            format!("{what}: a program of the bundle's config, given the container's state on stdin"),
            format!("fork + execve({:?}, {:?}) = pid {}", h.path, h.args, child.id()),
        )
        .field("hook", kind)
        .field("path", h.path.as_str())
    });
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(input);
    }
    let deadline = h.timeout.map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if status.success() {
                    return Ok(());
                }
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                let err = err.trim();
                return Err(SysError::msg(what, format!("{status}{}{err}", if err.is_empty() { "" } else { ": " })));
            }
            Ok(None) => {}
            Err(e) => return Err(SysError::io(format!("wait for {what}"), &e)),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SysError::msg(what, format!("timed out after {}s and was killed", h.timeout.unwrap_or(0))));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// In the hook's child, before exec: only stdio reaches the hook (runc's hooks get
/// nothing else; the caller's fds would otherwise leak through the runtime), and the
/// hook dies with the runtime (SIGKILL when the thread that forked it exits), rather
/// than run on unsupervised after a killed `create`. runc sets no death signal.
fn hook_child_setup(runtime: libc::pid_t) -> std::io::Result<()> {
    // Best effort, as at the container's exec: a startContainer hook starts under the
    // container's seccomp filter, which may deny close_range, with no /proc to walk
    // (the init's own fds are close-on-exec already by then).
    let _ = crate::sys::cloexec_from(3);
    // SAFETY: prctl and getppid with integer arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The runtime may have died before the death signal was armed.
        if libc::getppid() != runtime {
            libc::_exit(1);
        }
    }
    Ok(())
}
