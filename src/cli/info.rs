//! list, ps, pause, resume, spec, features.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use capsa_runtime::container::Store;
use capsa_runtime::lifecycle;
use serde::Serialize;

pub fn list(store: &Store, format: &str, quiet: bool) -> Result<i32> {
    let all = lifecycle::list(store);
    if quiet {
        for c in &all {
            println!("{}", c.state.id);
        }
        return Ok(0);
    }
    if format == "json" {
        let v: Vec<StateDoc> = all.iter().map(|c| StateDoc::of(c, owner(&store.dir(&c.state.id)))).collect();
        super::out::line(&serde_json::to_string(&v)?).context("write to stdout")?;
        return Ok(0);
    }
    println!("{:<20} {:<10} {:<10} {:<40} {:<30} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
    for c in &all {
        let pid = if c.status.as_str() == "stopped" { 0 } else { c.state.pid };
        println!(
            "{:<20} {:<10} {:<10} {:<40} {:<30} {}",
            c.state.id,
            pid,
            c.status.as_str(),
            c.state.bundle.display(),
            c.state.created,
            owner(&store.dir(&c.state.id))
        );
    }
    Ok(0)
}

/// One container as `list --format json` and `state` print it: runc's fields in
/// runc's order (callers compare the text); annotations only when there are some.
#[derive(Serialize)]
pub struct StateDoc<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a str,
    id: &'a str,
    pid: i32,
    status: &'a str,
    bundle: &'a Path,
    rootfs: &'a Path,
    created: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
    owner: String,
}

impl<'a> StateDoc<'a> {
    /// The document of a loaded container; a stopped one shows pid 0, as runc's.
    pub fn of(c: &'a lifecycle::Loaded, owner: String) -> StateDoc<'a> {
        let status = c.status.as_str();
        StateDoc {
            oci_version: &c.state.oci_version,
            id: &c.state.id,
            pid: if status == "stopped" { 0 } else { c.state.pid },
            status,
            bundle: &c.state.bundle,
            rootfs: &c.state.rootfs,
            created: &c.state.created,
            annotations: &c.state.annotations,
            owner,
        }
    }
}

/// The user owning the container's state directory, as runc names it: the name
/// from /etc/passwd, or `#UID`.
fn owner(dir: &Path) -> String {
    let Ok(uid) = std::fs::metadata(dir).map(|m| m.uid()) else { return "root".into() };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| if uid == 0 { "root".into() } else { format!("#{uid}") })
}

pub fn ps(store: &Store, id: &str, format: &str, ps_args: &[String]) -> Result<i32> {
    let pids = lifecycle::pids(store, id).with_context(|| format!("list the processes of {id}"))?;
    if format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let args: Vec<String> = if ps_args.is_empty() { vec!["-ef".into()] } else { ps_args.to_vec() };
    let out = std::process::Command::new("ps").args(&args).output().context("run ps(1)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header.split_whitespace().position(|h| h == "PID").context("ps output has no PID column")?;
    println!("{header}");
    for l in lines {
        if l.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok()).is_some_and(|p| pids.contains(&p)) {
            println!("{l}");
        }
    }
    Ok(0)
}

pub fn pause(store: &Store, id: &str) -> Result<i32> {
    lifecycle::pause(store, id).with_context(|| format!("pause container {id}"))?;
    Ok(0)
}

pub fn resume(store: &Store, id: &str) -> Result<i32> {
    lifecycle::resume(store, id).with_context(|| format!("resume container {id}"))?;
    Ok(0)
}

pub fn spec(bundle: &Path, rootless: bool) -> Result<i32> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let mut spec = capsa_runtime::spec::default_spec();
    if rootless {
        capsa_runtime::spec::make_rootless(&mut spec);
    }
    let data = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, data + "\n").with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}

pub fn features() -> Result<i32> {
    println!("{}", serde_json::to_string_pretty(&capsa_runtime::spec::features())?);
    Ok(0)
}
