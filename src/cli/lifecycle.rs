//! create, start, run, state, kill, delete.

use anyhow::{Context, Result};

use capsa_runtime::container::Store;
use capsa_runtime::lifecycle;
use capsa_runtime::process::create::{self, CreateOpts};
use capsa_runtime::process::{signal, wait};

use super::CreateArgs;

fn opts(c: &CreateArgs) -> CreateOpts {
    CreateOpts {
        id: c.id.clone(),
        bundle: c.bundle.clone(),
        pid_file: c.pid_file.clone(),
        console_socket: c.console_socket.clone(),
        no_pivot: c.no_pivot,
        no_new_keyring: c.no_new_keyring,
        preserve_fds: c.preserve_fds,
    }
}

pub fn create(store: &Store, c: &CreateArgs) -> Result<i32> {
    create::create(store, &opts(c), false).with_context(|| format!("create container {}", c.id))?;
    Ok(0)
}

pub fn start(store: &Store, id: &str) -> Result<i32> {
    lifecycle::start(store, id).with_context(|| format!("start container {id}"))?;
    Ok(0)
}

/// `run`: create + start; in the foreground, wait and delete the container unless
/// `keep` (runc's `--keep`: it stays `stopped`, cgroup included, until `delete`).
pub fn run(store: &Store, c: &CreateArgs, detach: bool, keep: bool) -> Result<i32> {
    if !detach {
        wait::block_signals();
    }
    let created = create::create(store, &opts(c), !detach && c.console_socket.is_none())
        .with_context(|| format!("create container {}", c.id))?;
    if let Err(e) = lifecycle::start(store, &c.id) {
        let _ = lifecycle::delete(store, &c.id, true);
        return Err(e).with_context(|| format!("start container {}", c.id));
    }
    if detach {
        return Ok(0);
    }
    let code = wait::forward_and_wait(created.pid, created.console_master)?;
    if !keep {
        lifecycle::delete(store, &c.id, true).with_context(|| format!("delete container {} after it exited", c.id))?;
    }
    Ok(code)
}

pub fn state(store: &Store, id: &str) -> Result<i32> {
    // runc prints an empty owner here (and the directory's owner in `list`).
    let c = lifecycle::load(store, id)?;
    println!("{}", serde_json::to_string_pretty(&super::info::StateDoc::of(&c, String::new()))?);
    Ok(0)
}

pub fn kill(store: &Store, id: &str, sig: &str, all: bool) -> Result<i32> {
    let n = signal::parse(sig)
        .with_context(|| format!("invalid signal {sig:?} (use a name like TERM/SIGKILL or a number)"))?;
    lifecycle::kill(store, id, n, all).with_context(|| format!("kill container {id}"))?;
    Ok(0)
}

pub fn delete(store: &Store, id: &str, force: bool) -> Result<i32> {
    lifecycle::delete(store, id, force).with_context(|| format!("delete container {id}"))?;
    Ok(0)
}
