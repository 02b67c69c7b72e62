//! ExecSync: a command in a running container, through `capsa exec` run as a
//! subprocess (the daemon is multi-threaded: it never forks to run its own code in
//! a child), with its output captured and a timeout.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::daemon::Cri;
use crate::error::{Error, Result};
use crate::proto::{ContainerState, ExecSyncResponse};
use crate::state::ContainerRecord;

/// Output kept per stream; the rest is read and dropped (as a probe's output is).
pub const MAX_OUTPUT: usize = 16 << 20;

/// The exec'd process, by the pid `capsa exec --pid-file` wrote: killed when the call
/// goes away before it ended (timeout, client gone), so nothing keeps running.
pub struct ExecGuard {
    pub pid_file: PathBuf,
    pub armed: bool,
}

impl ExecGuard {
    pub fn new(cri: &Cri) -> ExecGuard {
        let dir = cri.cfg.state_dir.join("exec");
        let _ = std::fs::create_dir_all(&dir);
        ExecGuard { pid_file: dir.join(format!("{}.pid", crate::util::new_id())), armed: true }
    }

    /// Kills the exec'd process now (SIGKILL), if it was started.
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(&self.pid_file).ok().and_then(|s| s.trim().parse::<i32>().ok());
        if let Some(p) = pid.filter(|p| *p > 0) {
            // SAFETY: kill(2) of the exec'd process, which cannot have been reaped: its
            // parent, `capsa exec`, is still waiting for it (this runs before we reap capsa).
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        if self.armed {
            self.kill();
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// Checks the container runs; returns its record.
pub fn running(cri: &Cri, id: &str) -> Result<ContainerRecord> {
    let rec = cri.state.container(id)?;
    let s = crate::container::live(cri, &rec).state;
    if s != ContainerState::ContainerRunning as i32 {
        let name = ContainerState::try_from(s).map_or("UNKNOWN", |st| st.as_str_name());
        return Err(Error::unknown(format!("container {} is in {name} state", rec.id)));
    }
    Ok(rec)
}

async fn read_capped(r: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut r) = r else { return Vec::new() };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// ExecSync.
pub async fn exec_sync(cri: Arc<Cri>, id: String, cmd: Vec<String>, timeout: i64) -> Result<ExecSyncResponse> {
    if cmd.is_empty() {
        return Err(Error::invalid("ExecSync: empty command"));
    }
    let c = cri.clone();
    let rec = crate::daemon::blocking(&cri, move |cri| running(cri, &id)).await?;
    let mut guard = ExecGuard::new(&c);
    let mut child = tokio::process::Command::new(&c.tools.runtime)
        .arg("--root")
        .arg(&c.tools.root)
        .arg("exec")
        .arg("--pid-file")
        .arg(&guard.pid_file)
        .arg(&rec.id)
        .args(&cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::unknown(format!("run {}: {e}", c.tools.runtime.display())))?;
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let run = async {
        let (o, e, st) = tokio::join!(read_capped(out), read_capped(err), child.wait());
        (o, e, st)
    };
    let (stdout, stderr, status) = if timeout > 0 {
        match tokio::time::timeout(Duration::from_secs(timeout as u64), run).await {
            Ok(r) => r,
            Err(_) => {
                // SIGKILL the command, then let `capsa exec`, its parent, reap it and
                // exit: killing capsa exec first would leave the command to the
                // container's pid 1, which may never reap it (a zombie `ps` still shows).
                guard.kill();
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                    // capsa exec reaped the command: its pid may be anyone's now.
                    guard.armed = false;
                }
                return Err(Error::new(
                    tonic::Code::DeadlineExceeded,
                    format!("command {cmd:?} in container {}: timeout {timeout}s exceeded", rec.id),
                ));
            }
        }
    } else {
        run.await
    };
    guard.armed = false;
    let status = status.map_err(|e| Error::unknown(format!("wait for capsa exec: {e}")))?;
    use std::os::unix::process::ExitStatusExt;
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    // capsa's own failure (before the command ran) is an error, as for containerd.
    if !std::path::Path::new(&guard.pid_file).exists() && code != 0 {
        let msg = String::from_utf8_lossy(&stderr);
        return Err(Error::unknown(format!(
            "failed to exec in container {}: {}",
            rec.id,
            msg.trim().trim_start_matches("capsa: ")
        )));
    }
    Ok(ExecSyncResponse { stdout, stderr, exit_code: code })
}
