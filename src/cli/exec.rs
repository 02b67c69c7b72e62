//! `exec`: build the process (from --process or the container's own process plus
//! flags, as runc does), start it, and wait for it in the foreground.
//!
//! Exit codes, as runc's (callers depend on them): usage errors 1; the process's own
//! status once it runs; 255 when it cannot be started, whatever the reason (a missing
//! or non-executable program too: the message says which, as runc's does, and
//! podman/docker turn that message into their 127/126).

use anyhow::{bail, Context, Result};

use capsa_runtime::cgroups::sub::SubCgroups;
use capsa_runtime::container::Store;
use capsa_runtime::process::exec::{self as rexec, ExecOpts};
use capsa_runtime::process::wait;
use capsa_runtime::spec::Process;

use super::args::Parsed;

/// `capsa exec`'s exit code when the runtime fails (runc's).
pub const FAILED: i32 = 255;

fn build_process(store: &Store, id: &str, command: &[String], a: &Parsed) -> Result<Process> {
    if let Some(p) = a.get("process") {
        let data = std::fs::read(p).with_context(|| format!("read process file {p}"))?;
        let proc: Process = serde_json::from_slice(&data).with_context(|| format!("parse process file {p}"))?;
        if proc.args.is_empty() {
            bail!("{p}: args is empty");
        }
        return Ok(proc);
    }
    if command.is_empty() {
        bail!("exec needs a command (or --process FILE)");
    }
    let st = store.load(id)?;
    let mut p = st.process.unwrap_or_default();
    p.args = command.to_vec();
    p.terminal = a.on("tty");
    p.console_size = None;
    if let Some(cwd) = a.get("cwd") {
        p.cwd = cwd.to_string();
    }
    for e in &a.all("env") {
        let key = e.split('=').next().unwrap_or("");
        p.env.retain(|x| x.split('=').next() != Some(key));
        p.env.push(e.clone());
    }
    if let Some(u) = a.get("user") {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        p.user.uid = uid.parse().with_context(|| format!("--user {u:?}: uid must be a number"))?;
        p.user.gid = gid.parse().with_context(|| format!("--user {u:?}: gid must be a number"))?;
    }
    let gids = a.all("additional-gids");
    if !gids.is_empty() {
        p.user.additional_gids =
            gids.iter().map(|g| g.parse()).collect::<Result<_, _>>().context("--additional-gids takes numbers")?;
    }
    let add_caps = a.all("cap");
    if !add_caps.is_empty() {
        let mut caps = p.capabilities.unwrap_or_default();
        for set in [&mut caps.bounding, &mut caps.effective, &mut caps.permitted, &mut caps.ambient] {
            let v = set.get_or_insert_with(Vec::new);
            v.extend(add_caps.iter().cloned());
        }
        p.capabilities = Some(caps);
    }
    if a.on("no-new-privs") {
        p.no_new_privileges = true;
    }
    // As runc: a non-empty flag replaces the container's label.
    if let Some(v) = a.get("apparmor").filter(|v| !v.is_empty()) {
        p.apparmor_profile = Some(v.to_string());
    }
    if let Some(v) = a.get("process-label").filter(|v| !v.is_empty()) {
        p.selinux_label = Some(v.to_string());
    }
    Ok(p)
}

/// Parse, start, wait. Errors returned here are usage errors (exit 1); the
/// others are reported here and give 255.
pub fn exec(store: &Store, a: &Parsed) -> Result<i32> {
    let (id, command) = a.pos.split_first().context("exec: missing the container id")?;
    let preserve_fds =
        a.get("preserve-fds").map(|v| v.parse()).transpose().context("--preserve-fds takes a number")?.unwrap_or(0);
    match start_and_wait(store, id, command, a, preserve_fds) {
        Ok(code) => Ok(code),
        Err(e) => {
            super::logging::error(&super::error_text(&e));
            Ok(FAILED)
        }
    }
}

fn start_and_wait(store: &Store, id: &str, command: &[String], a: &Parsed, preserve_fds: i32) -> Result<i32> {
    let sub_cgroups = SubCgroups::parse(&a.all("cgroup"))?;
    let process = build_process(store, id, command, a)?;
    let detach = a.on("detach");
    if !detach {
        wait::block_signals();
    }
    let opts = ExecOpts {
        process,
        detach,
        pid_file: a.get("pid-file").map(Into::into),
        console_socket: a.get("console-socket").map(Into::into),
        preserve_fds,
        ignore_paused: a.on("ignore-paused"),
        sub_cgroups,
    };
    let e = rexec::exec(store, id, &opts)?;
    if detach {
        return Ok(0);
    }
    Ok(wait::forward_and_wait(e.pid, e.console_master)?)
}
