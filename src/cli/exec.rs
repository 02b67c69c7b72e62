//! `exec`: build the process (from --process or the container's own process plus
//! flags, as runc does), start it, and wait for it in the foreground.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use capsa_runtime::container::Store;
use capsa_runtime::process::exec::{self as rexec, ExecOpts};
use capsa_runtime::process::wait;
use capsa_runtime::spec::Process;

/// `capsa exec` flags.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// A JSON process (runtime-spec `process`) to run instead of the arguments.
    #[arg(short = 'p', long)]
    process: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Allocate a terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// Unix socket that receives the pty master.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Write the new process's pid to this file.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Working directory inside the container.
    #[arg(long)]
    cwd: Option<String>,
    /// Set an environment variable (KEY=VALUE), repeatable.
    #[arg(short = 'e', long)]
    env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Extra group ids, repeatable.
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// Add a capability, repeatable.
    #[arg(short = 'c', long)]
    cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Pass N extra fds to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    /// Accepted for runc compatibility; ignored (no AppArmor/SELinux support).
    #[arg(long = "process-label", hide = true)]
    process_label: Option<String>,
    #[arg(long = "apparmor", hide = true)]
    apparmor: Option<String>,
    /// Container id.
    id: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn build_process(store: &Store, a: &ExecArgs) -> Result<Process> {
    if let Some(p) = &a.process {
        let data =
            std::fs::read(p).with_context(|| format!("read process file {}", p.display()))?;
        let proc: Process = serde_json::from_slice(&data)
            .with_context(|| format!("parse process file {}", p.display()))?;
        if proc.args.is_empty() {
            bail!("{}: args is empty", p.display());
        }
        return Ok(proc);
    }
    if a.command.is_empty() {
        bail!("exec needs a command (or --process FILE)");
    }
    let st = store.load(&a.id)?;
    let mut p = st.process.unwrap_or_default();
    p.args = a.command.clone();
    p.terminal = a.tty;
    p.console_size = None;
    if let Some(cwd) = &a.cwd {
        p.cwd = cwd.clone();
    }
    for e in &a.env {
        let key = e.split('=').next().unwrap_or("");
        p.env.retain(|x| x.split('=').next() != Some(key));
        p.env.push(e.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        p.user.uid = uid
            .parse()
            .with_context(|| format!("--user {u:?}: uid must be a number"))?;
        p.user.gid = gid
            .parse()
            .with_context(|| format!("--user {u:?}: gid must be a number"))?;
    }
    if !a.additional_gids.is_empty() {
        p.user.additional_gids = a.additional_gids.clone();
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities.unwrap_or_default();
        for set in [
            &mut caps.bounding,
            &mut caps.effective,
            &mut caps.permitted,
            &mut caps.ambient,
        ] {
            let v = set.get_or_insert_with(Vec::new);
            v.extend(a.cap.iter().cloned());
        }
        p.capabilities = Some(caps);
    }
    if a.no_new_privs {
        p.no_new_privileges = true;
    }
    Ok(p)
}

pub fn exec(store: &Store, a: ExecArgs) -> Result<i32> {
    let process = build_process(store, &a)?;
    if !a.detach {
        wait::block_signals();
    }
    let opts = ExecOpts {
        process,
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
    };
    let e = rexec::exec(store, &a.id, &opts)?;
    if a.detach {
        return Ok(0);
    }
    Ok(wait::forward_and_wait(e.pid, e.console_master)?)
}
