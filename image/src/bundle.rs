//! Image config → runtime `config.json`.
//!
//! capsa-image knows nothing of the runtime: the caller passes the default
//! spec (a `serde_json::Value`, `capsa_runtime::spec::default_spec()`), and
//! this module fills in what the image and the command line say:
//! - `process.args` = Entrypoint + Cmd (docker's rules for `--entrypoint` and
//!   a command given on the command line);
//! - `process.env` = the image's Env, `PATH` added when missing, `TERM` with
//!   a terminal, then `-e` overrides;
//! - `process.cwd` = WorkingDir (default `/`);
//! - `process.user` from User (`name`, `uid`, `uid:gid`, `name:group`...),
//!   names resolved against the image's `/etc/passwd` and `/etc/group` (read
//!   inside the rootfs, symlinks resolved in it), supplementary groups from
//!   `/etc/group` membership;
//! - Labels → `annotations`, StopSignal → `org.opencontainers.image.stopSignal`;
//! - `process.terminal`, `root` (`rootfs`, writable), `hostname`, an absolute
//!   `linux.cgroupsPath`, resources (`--memory`, `--cpus`, `--pids-limit`),
//!   bind mounts (`-v SRC:DST[:ro]`) and Docker's default capability set;
//! - `linux.seccomp`: the default profile ([`crate::seccomp::default_profile`]
//!   for those capabilities) unless `--security-opt seccomp=unconfined|FILE`;
//!   `--security-opt no-new-privileges` sets `process.noNewPrivileges`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::oci::ImageConfiguration;

/// Default PATH when the image sets none (Docker's).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Annotation carrying the image's StopSignal.
pub const ANNOTATION_STOP_SIGNAL: &str = "org.opencontainers.image.stopSignal";

/// Docker's default capabilities for a container.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A bad command-line override or image setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BundleError(pub String);

fn err<T>(s: impl Into<String>) -> Result<T, BundleError> {
    Err(BundleError(s.into()))
}

/// The seccomp profile of a container made from an image.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Seccomp {
    /// The default profile ([`crate::seccomp::default_profile`]).
    #[default]
    Default,
    /// No filter (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// A profile in docker's format or as OCI `linux.seccomp`, converted for the
    /// container's capabilities by [`make_spec`].
    Profile(Value),
}

/// Applies one `--security-opt` value to `opts`: `seccomp=unconfined`,
/// `seccomp=FILE` (docker's `seccomp:FILE` too), `no-new-privileges[=true|false]`.
pub fn apply_security_opt(opts: &mut RunOptions, s: &str) -> Result<(), BundleError> {
    let (key, value) = s.split_once(['=', ':']).map_or((s, None), |(k, v)| (k, Some(v)));
    match (key, value) {
        ("seccomp", Some("unconfined")) => opts.seccomp = Seccomp::Unconfined,
        ("seccomp", Some(f)) if !f.is_empty() => {
            let v = crate::seccomp::read_file(Path::new(f))
                .map_err(|e| BundleError(format!("--security-opt {s:?}: {}", e.0)))?;
            opts.seccomp = Seccomp::Profile(v);
        }
        ("no-new-privileges", None | Some("true")) => opts.no_new_privileges = true,
        ("no-new-privileges", Some("false")) => opts.no_new_privileges = false,
        _ => {
            return err(format!(
                "--security-opt {s:?}: expected seccomp=unconfined, seccomp=FILE or no-new-privileges[=true|false]"
            ))
        }
    }
    Ok(())
}

/// A `-v SRC:DST[:ro|rw]` bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Host path (absolute).
    pub source: PathBuf,
    /// Path in the container (absolute).
    pub destination: String,
    /// Mounted read-only.
    pub readonly: bool,
}

impl Volume {
    /// Parses `SRC:DST[:ro|rw]`; a relative SRC is made absolute against the
    /// current directory. Named volumes are not supported.
    pub fn parse(s: &str) -> Result<Volume, BundleError> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, None),
            [s, d, m] => (*s, *d, Some(*m)),
            _ => return err(format!("-v {s:?}: expected SRC:DST[:ro|rw]")),
        };
        let readonly = match mode {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(m) => return err(format!("-v {s:?}: unknown mode {m:?} (ro or rw)")),
        };
        if src.is_empty() || !(src.starts_with('/') || src.starts_with('.')) {
            return err(format!("-v {s:?}: SRC must be a host path (named volumes are not supported)"));
        }
        if !dst.starts_with('/') {
            return err(format!("-v {s:?}: DST must be an absolute path in the container"));
        }
        let source = std::path::absolute(src).map_err(|e| BundleError(format!("-v {s:?}: {e}")))?;
        Ok(Volume { source, destination: dst.to_owned(), readonly })
    }
}

/// Parses a memory size: bytes, or with a `b`, `k`, `m`, `g` suffix.
pub fn parse_memory(s: &str) -> Result<i64, BundleError> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (&t[..], 1),
    };
    match num.parse::<i64>() {
        Ok(n) if n > 0 => n.checked_mul(mul).ok_or_else(|| BundleError(format!("--memory {s:?}: too large"))),
        _ => err(format!("--memory {s:?}: expected a positive size such as 512m or 1g")),
    }
}

/// What the command line changes in a container made from an image.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Container id (hostname, cgroup `/capsa/<id>`).
    pub id: String,
    /// The command: replaces the image's Cmd when non-empty.
    pub cmd: Vec<String>,
    /// `--entrypoint` (an empty string clears the image's).
    pub entrypoint: Option<String>,
    /// `-e KEY=VALUE` (or `-e KEY`: from this environment).
    pub env: Vec<String>,
    /// `--workdir`.
    pub workdir: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `-t`.
    pub terminal: bool,
    /// `--memory`, bytes.
    pub memory: Option<i64>,
    /// `--cpus`.
    pub cpus: Option<f64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `-v`.
    pub volumes: Vec<Volume>,
    /// `--security-opt seccomp=...`.
    pub seccomp: Seccomp,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
}

/// Builds `config.json` from `default_spec`, the image config and `opts`.
/// `rootfs` is where the image's `/etc/passwd` and `/etc/group` are read (only
/// when a user or group name must be resolved): the container's mounted root
/// filesystem, or, before it is mounted (rootless), its layers top first.
pub fn make_spec(
    mut spec: Value,
    image: &ImageConfiguration,
    opts: &RunOptions,
    rootfs: &[&Path],
) -> Result<Value, BundleError> {
    let ic = image.config.clone().unwrap_or_default();

    // args: docker's rules.
    let entrypoint: Vec<String> = match &opts.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => ic.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = if !opts.cmd.is_empty() {
        opts.cmd.clone()
    } else if opts.entrypoint.is_some() {
        Vec::new() // --entrypoint resets the image's Cmd
    } else {
        ic.cmd.clone().unwrap_or_default()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return err("no command: the image has no Entrypoint or Cmd; give one after the image name");
    }

    // env
    let mut env: Vec<String> = ic.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_owned());
    }
    let set = |env: &mut Vec<String>, kv: String| {
        let key = kv.split('=').next().unwrap_or("").to_owned();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    };
    set(&mut env, format!("HOSTNAME={}", hostname(&opts.id)));
    if opts.terminal && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".to_owned());
    }
    for e in &opts.env {
        match e.split_once('=') {
            Some((k, _)) if !k.is_empty() => set(&mut env, e.clone()),
            Some(_) => return err(format!("-e {e:?}: empty variable name")),
            None => {
                if let Ok(v) = std::env::var(e) {
                    set(&mut env, format!("{e}={v}"));
                }
            }
        }
    }

    // cwd
    let cwd = opts.workdir.clone().or(ic.working_dir.clone()).filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into());
    let cwd = if cwd.starts_with('/') { cwd } else { format!("/{cwd}") };

    // user
    let user_spec = opts.user.clone().or(ic.user.clone()).filter(|u| !u.is_empty());
    let user = match user_spec {
        Some(u) => resolve_user(&u, rootfs)?,
        None => json!({"uid": 0, "gid": 0}),
    };

    let cap_names: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    let seccomp = match &opts.seccomp {
        Seccomp::Default => Some(crate::seccomp::default_profile(&cap_names)),
        Seccomp::Unconfined => None,
        Seccomp::Profile(v) => {
            Some(crate::seccomp::from_profile(v, &cap_names).map_err(|e| BundleError(e.to_string()))?)
        }
    };
    let caps = json!(DEFAULT_CAPS);
    let p = &mut spec["process"];
    p["args"] = json!(args);
    p["env"] = json!(env);
    p["cwd"] = json!(cwd);
    p["user"] = user;
    p["terminal"] = json!(opts.terminal);
    p["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    if opts.no_new_privileges {
        p["noNewPrivileges"] = json!(true);
    }

    spec["root"] = json!({"path": "rootfs", "readonly": false});
    spec["hostname"] = json!(hostname(&opts.id));

    // annotations
    let mut ann = spec.get("annotations").cloned().unwrap_or_else(|| json!({}));
    if let Some(labels) = &ic.labels {
        for (k, v) in labels {
            ann[k] = json!(v);
        }
    }
    if let Some(s) = &ic.stop_signal {
        ann[ANNOTATION_STOP_SIGNAL] = json!(s);
    }
    if ann.as_object().is_some_and(|o| !o.is_empty()) {
        spec["annotations"] = ann;
    }

    // mounts
    if !opts.volumes.is_empty() {
        let mounts = spec["mounts"].as_array_mut().ok_or_else(|| BundleError("default spec has no mounts".into()))?;
        for v in &opts.volumes {
            let mut options = vec!["rbind", "rprivate"];
            if v.readonly {
                options.push("ro");
            }
            mounts.push(json!({"destination": v.destination, "type": "bind",
                               "source": v.source, "options": options}));
        }
    }

    // linux
    let linux = &mut spec["linux"];
    linux["cgroupsPath"] = json!(format!("/capsa/{}", opts.id));
    match seccomp {
        Some(s) => linux["seccomp"] = s,
        None => {
            if let Some(l) = linux.as_object_mut() {
                l.remove("seccomp");
            }
        }
    }
    let res = &mut linux["resources"];
    if let Some(m) = opts.memory {
        res["memory"] = json!({"limit": m});
    }
    if let Some(c) = opts.cpus {
        if !(c > 0.0 && c <= 1024.0) {
            return err(format!("--cpus {c}: expected a positive number of CPUs"));
        }
        let period = 100_000u64;
        res["cpu"] = json!({"quota": (c * period as f64).round() as i64, "period": period});
    }
    if let Some(n) = opts.pids_limit {
        res["pids"] = json!({"limit": n});
    }
    Ok(spec)
}

/// The hostname for a container id (at most 63 bytes).
fn hostname(id: &str) -> String {
    id.chars().take(63).collect()
}

/// One `/etc/passwd` entry: name, uid, gid.
fn passwd_entries(data: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    data.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4).then(|| Some((f[0], f[2].parse().ok()?, f[3].parse().ok()?))).flatten()
    })
}

/// One `/etc/group` entry: name, gid, members.
fn group_entries(data: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    data.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3).then(|| {
            let members = f.get(3).map(|m| m.split(',').filter(|s| !s.is_empty()).collect()).unwrap_or_default();
            Some((f[0], f[2].parse().ok()?, members))
        })?
    })
}

/// Reads `name` from the image: the first of `layers` (top first; a mounted rootfs
/// is one) that has it, unless a layer above whites it out (an overlay whiteout,
/// a 0:0 character device). A symlink is followed only within its own layer.
fn read_etc(layers: &[&Path], name: &str) -> Result<String, BundleError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    for dir in layers {
        match crate::apply::read_file_in_root(dir, name, 16 << 20) {
            Ok(Some(b)) => return Ok(String::from_utf8_lossy(&b).into_owned()),
            Ok(None) => {}
            Err(e) => return err(format!("read {name} in the image: {e}")),
        }
        let p = dir.join(name.trim_start_matches('/'));
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0) {
            break;
        }
    }
    Ok(String::new())
}

/// Resolves `user[:group]` (names or numbers) to a runtime-spec `user`.
pub fn resolve_user(spec: &str, rootfs: &[&Path]) -> Result<Value, BundleError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if u.is_empty() || g == Some("") {
        return err(format!("--user {spec:?}: expected user, uid, user:group or uid:gid"));
    }
    let passwd = read_etc(rootfs, "/etc/passwd")?;
    let group = read_etc(rootfs, "/etc/group")?;
    let (uid, name, mut gid) = match u.parse::<u32>() {
        Ok(uid) => {
            let ent = passwd_entries(&passwd).find(|e| e.1 == uid);
            (uid, ent.map(|e| e.0.to_owned()), ent.map_or(0, |e| e.2))
        }
        Err(_) => match passwd_entries(&passwd).find(|e| e.0 == u) {
            Some((n, uid, gid)) => (uid, Some(n.to_owned()), gid),
            None => return err(format!("user {u:?} not found in the image's /etc/passwd")),
        },
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => match group_entries(&group).find(|e| e.0 == g) {
                Some(e) => e.1,
                None => return err(format!("group {g:?} not found in the image's /etc/group")),
            },
        };
    }
    let mut extra: Vec<u32> = match &name {
        Some(n) if g.is_none() => {
            group_entries(&group).filter(|e| e.2.contains(&n.as_str()) && e.1 != gid).map(|e| e.1).collect()
        }
        _ => Vec::new(),
    };
    extra.sort_unstable();
    extra.dedup();
    let mut v = json!({"uid": uid, "gid": gid});
    if !extra.is_empty() {
        v["additionalGids"] = json!(extra);
    }
    Ok(v)
}

#[cfg(test)]
mod tests;
