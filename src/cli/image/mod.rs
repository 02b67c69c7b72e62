//! `capsa image ...` and `capsa run IMAGE [CMD...]` (image mode).
//!
//! Nothing here runs on the runc path: `capsa run` calls [`is_image_mode`]
//! (one flag parse and at most one stat). The image code is only linked into
//! the `capsa-image` binary (`IMAGE_BUILTIN`); `capsa` execs it, from its
//! own directory, for `capsa image ...` and image-mode `capsa run`, so the
//! runtime binary stays as small as before (linking the image crate in cost
//! ~0.2 MB of RSS on every call, measured with `capsa --version`).
//!
//! Mode of `capsa run`: runc mode when `--bundle/-b` is given, or when there
//! is exactly one positional and `./config.json` exists (runc's own default
//! bundle); image mode otherwise, and always when a flag only image mode
//! knows (`--rm`, `-e`, `--entrypoint`, `-v`, `-t`...) is present.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::json;

use capsa_image::bundle::{self, RunOptions, Volume};
use capsa_image::images::{default_root, ImageStore, LocalImage};
use capsa_image::oci::Platform;
use capsa_image::reference::ImageRef;
use capsa_image::registry::PullOptions;

use super::args::{self, flag, Flag, Parsed};
use super::CreateArgs;

mod ls;
use ls::ls;

const STORE: Flag =
    flag("store", None, true, "image store directory (default /var/lib/capsa; rootless: $XDG_DATA_HOME/capsa)");
const PLATFORM: Flag = flag("platform", None, true, "os/arch[/variant] to pick from an index (default: the host's)");
const QUIET: Flag = flag("quiet", Some('q'), false, "no progress lines");
const INSECURE: Flag = flag("insecure", None, false, "registry over plain http (loopback hosts always are)");
const CREDS: Flag = flag("creds", None, true, "registry credentials USER:PASSWORD");
const AUTHFILE: Flag =
    flag("authfile", None, true, "docker-style auth file (default: REGISTRY_AUTH_FILE, ~/.docker/config.json)");
const HELP: Flag = flag("help", Some('h'), false, "print help");
const SECURITY_OPT: Flag = flag(
    "security-opt",
    None,
    true,
    "seccomp=unconfined, seccomp=FILE (docker's profile format) or no-new-privileges; repeatable \
     (default: the RuntimeDefault seccomp profile)",
);

/// Flags of image-mode `run` (hand-parsed: the runtime binary reads them to route
/// `run`, see [`is_image_mode`] and [`runs_detached`]).
pub(crate) const RUN: &[Flag] = &[
    flag("rm", None, false, "remove the container (its upper dir and bundle) when it exits"),
    flag("name", None, true, "container name (default: capsa-<random>)"),
    flag("env", Some('e'), true, "set KEY=VALUE (or KEY: from this environment); repeatable"),
    flag("entrypoint", None, true, "replace the image's Entrypoint (\"\" clears it)"),
    flag("workdir", Some('w'), true, "working directory in the container"),
    flag("user", Some('u'), true, "user[:group], names or numbers (resolved in the image)"),
    flag("memory", Some('m'), true, "memory limit (bytes, or with k/m/g)"),
    flag("cpus", None, true, "CPU limit (1.5 = one and a half CPUs)"),
    flag("pids-limit", None, true, "maximum number of processes"),
    flag("volume", Some('v'), true, "bind mount SRC:DST[:ro]; repeatable"),
    SECURITY_OPT,
    flag("tty", Some('t'), false, "allocate a terminal"),
    flag("interactive", Some('i'), false, "keep stdin attached (default: /dev/null)"),
    flag("copy", None, false, "copy the layers instead of an overlay mount"),
    flag("detach", Some('d'), false, "run in the background under a monitor (capsa-shim); print the name"),
    flag("restart", None, true, "with -d: no (default), on-failure[:N] or always (restarts with backoff)"),
    flag("pod", None, true, "join this pod's network, ipc and uts namespaces"),
    flag("label", Some('l'), true, "set a label KEY=VALUE on the container (capsa ps --filter label=KEY); repeatable"),
    STORE,
    PLATFORM,
    QUIET,
    INSECURE,
    CREDS,
    AUTHFILE,
    HELP,
];

const RUN_USAGE: &str = "capsa run [OPTIONS] IMAGE [COMMAND [ARG...]]   (runc mode: capsa run [--bundle B] ID)";
const RUN_ABOUT: &str = "Run a container from an image in the foreground (image mode of `capsa run`).\n\
IMAGE is a local name or id, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME]\n\
or docker://HOST[:PORT]/NAME[:TAG|@DIGEST] (imported or pulled into the store first).";

/// Replaces this process by `capsa-image` (next to this binary) with the
/// same arguments.
///
/// `protect`: the verb forks container processes (a foreground `run`): exec
/// capsa-image from its protected copy at once, rather than letting it re-execute
/// itself (saves one exec of a 5 MB binary).
#[cold]
#[inline(never)]
pub fn exec_image_binary(protect: bool) -> Result<i32> {
    use std::os::unix::process::CommandExt;
    let exe = std::fs::read_link("/proc/self/exe").context("find this binary (/proc/self/exe)")?;
    let helper = exe.with_file_name("capsa-image");
    if protect {
        let e = capsa_runtime::security::exe::exec_beside(&helper, std::env::args_os().skip(1));
        tracing::debug!("{e}; exec {} plainly (it protects itself)", helper.display());
    }
    let err = std::process::Command::new(&helper).args(std::env::args_os().skip(1)).exec();
    Err(err).with_context(|| format!("exec {} (image commands live there; install it next to capsa)", helper.display()))
}

/// Whether an image-mode `run` is detached (`-d`): the container is then made
/// by capsa-shim through `capsa create`, not in this process.
pub fn runs_detached(cargs: &[String]) -> bool {
    args::parse(cargs, RUN, true).is_ok_and(|p| p.on("detach"))
}

/// Help for image mode (printed after runc mode's by `capsa run --help`).
#[cold]
#[inline(never)]
pub fn run_help() -> String {
    args::help(RUN_USAGE, RUN_ABOUT, RUN)
}

/// Whether `capsa run ARGS` is image mode (see the module doc).
#[inline(never)]
pub fn is_image_mode(cargs: &[String]) -> bool {
    match args::parse(cargs, super::CREATE, false) {
        Ok(p) => {
            !(p.get("bundle").is_some() || p.on("help") || (p.pos.len() == 1 && Path::new("config.json").exists()))
        }
        Err(_) => true,
    }
}

fn store_at(p: &Parsed) -> Result<ImageStore> {
    match p.get("store") {
        Some(r) => open_store(r),
        None => open_store(&default_root().to_string_lossy()),
    }
}

/// Opens (creating) the store at `root`, by its canonical path: paths into the store
/// end up in config.json (read by the runtime from another directory) and are matched
/// against /proc/self/mountinfo, so they must be absolute and free of symlinks.
pub fn open_store(root: &str) -> Result<ImageStore> {
    if capsa_image::rootless::Rootless::detect().is_some() {
        // Never another user's (or root's) store, not even to narrow its mode.
        capsa_image::rootless::check_owner(Path::new(root))?;
        if let Some(parent) = Path::new(root).parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
    }
    // 0700 from the start (ImageStore::open narrows an older, wider one).
    capsa_fsutil::ensure_dir(Path::new(root), 0o700).with_context(|| format!("create image store {root}"))?;
    let canonical = std::fs::canonicalize(root).with_context(|| format!("resolve store path {root}"))?;
    ImageStore::open(&canonical).with_context(|| format!("open image store {}", canonical.display()))
}

fn platform(p: &Parsed) -> Result<Platform> {
    let Some(s) = p.get("platform") else { return Ok(Platform::host()) };
    let parts: Vec<&str> = s.split('/').collect();
    let mut pl = match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Platform::linux(arch),
        _ => bail!("--platform {s:?}: expected os/arch[/variant], e.g. linux/amd64"),
    };
    pl.os = parts[0].to_owned();
    pl.variant = parts.get(2).map(|v| v.to_string());
    Ok(pl)
}

fn pull_options(p: &Parsed) -> Result<PullOptions> {
    Ok(PullOptions {
        insecure: p.on("insecure"),
        creds: p.get("creds").map(str::to_owned),
        auth_file: p.get("authfile").map(PathBuf::from),
        platform: Some(platform(p)?),
        ..Default::default()
    })
}

/// Progress on stderr: per-layer bars on a terminal (lines above them),
/// plain lines otherwise; nothing with --quiet.
fn progress(quiet: bool) -> impl FnMut(&str) {
    use std::io::IsTerminal;
    if !quiet && std::io::stderr().is_terminal() {
        capsa_image::progress::enable();
    }
    move |s: &str| {
        if !quiet && !capsa_image::progress::println(&format!("capsa: {s}")) {
            eprintln!("capsa: {s}");
        }
    }
}

/// Finds `r` in the store, importing it first when it names a transport.
fn obtain(store: &ImageStore, r: &str, p: &Parsed, quiet: bool) -> Result<LocalImage> {
    let iref = ImageRef::parse(r)?;
    let name = match &iref {
        ImageRef::Local(n) => n.clone(),
        ImageRef::Registry(n) => store.pull(n, &pull_options(p)?, None, &mut progress(quiet))?.name,
        other => {
            let rec = store.import(other, None, &platform(p)?, &mut progress(quiet))?;
            rec.name
        }
    };
    Ok(store.get(&name)?)
}

/// Finds or imports the image a pod manifest names (default pull options).
pub fn obtain_for_pod(store: &ImageStore, r: &str, quiet: bool) -> Result<LocalImage> {
    let iref = ImageRef::parse(r)?;
    let name = match &iref {
        ImageRef::Local(n) => {
            return store.get(n).context(
                "not in the local store (capsa image import/pull it first, or name a transport like docker://)",
            )
        }
        ImageRef::Registry(n) => {
            let o = PullOptions { platform: Some(Platform::host()), ..Default::default() };
            store.pull(n, &o, None, &mut progress(quiet))?.name
        }
        other => store.import(other, None, &Platform::host(), &mut progress(quiet))?.name,
    };
    Ok(store.get(&name)?)
}

/// `capsa image VERB ...`: runs `verb` on its arguments, as capsa-image's clap parser
/// (`cli/human/image.rs`) made them (a `--store` given before the verb included).
#[cold]
#[inline(never)]
pub fn image(verb: &str, p: &Parsed) -> Result<i32> {
    let store = store_at(p)?;
    let quiet = p.on("quiet");
    match (verb, p.pos.as_slice()) {
        ("import" | "pull", [r]) | ("import" | "pull", [r, _]) => {
            let iref = ImageRef::parse(r)?;
            let name = p.pos.get(1).map(String::as_str);
            let rec = match &iref {
                ImageRef::Registry(n) => store.pull(n, &pull_options(p)?, name, &mut progress(quiet))?,
                _ => store.import(&iref, name, &platform(p)?, &mut progress(quiet))?,
            };
            println!("{}", rec.name);
            Ok(0)
        }
        ("ls", []) => ls(&store, p),
        ("inspect", [n]) => {
            let img = store.get(n)?;
            let snaps: Vec<_> = img
                .chain_ids()
                .iter()
                .zip(&img.manifest.layers)
                .zip(&img.config.rootfs.diff_ids)
                .map(|((c, l), d)| {
                    json!({"digest": l.digest, "size": l.size, "mediaType": l.media_type, "diffId": d,
                           "chainId": c, "unpacked": store.snapshot_path(c).is_dir()})
                })
                .collect();
            let v = json!({"name": img.record.name, "id": img.record.config, "digest": img.record.digest,
                           "source": img.record.source, "layers": snaps, "config": img.config});
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        ("rm", names) if !names.is_empty() => {
            for n in names {
                let rec = store.remove(n)?;
                println!("untagged {} ({})", rec.name, rec.digest);
            }
            Ok(0)
        }
        ("prune", []) => {
            let (b, s, c) = store.prune()?;
            println!("removed {b} blobs, {s} snapshots, {c} stopped containers");
            Ok(0)
        }
        ("unpack", [r, dest]) => {
            let img = obtain(&store, r, p, quiet)?;
            let t = std::time::Instant::now();
            store.unpack(&img, Path::new(dest), &mut progress(quiet))?;
            progress(quiet)(&format!("unpacked {} into {dest} in {:.2}s", img.record.name, t.elapsed().as_secs_f64()));
            Ok(0)
        }
        ("bundle", [r, dir, cmd @ ..]) => {
            let dir = PathBuf::from(dir);
            let id = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let id: String =
                id.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' }).collect();
            // Options first: a bad one fails before anything is unpacked.
            let mut o = run_options(p, &id, cmd)?;
            o.id = if id.is_empty() { "capsa".into() } else { id };
            let img = obtain(&store, r, p, quiet)?;
            let rootfs = dir.join("rootfs");
            store.unpack(&img, &rootfs, &mut progress(quiet))?;
            let spec = bundle::make_spec(capsa_runtime::spec::default_spec(), &img.config, &o, &[rootfs.as_path()])?;
            let cfg = dir.join("config.json");
            std::fs::write(&cfg, serde_json::to_vec_pretty(&spec)?)
                .with_context(|| format!("write {}", cfg.display()))?;
            println!("{}", dir.display());
            Ok(0)
        }
        _ => bail!("image {verb}: unexpected arguments {:?} (see 'capsa image {verb} --help')", p.pos),
    }
}

fn run_options(p: &Parsed, id: &str, cmd: &[String]) -> Result<RunOptions> {
    let num = |f: &str| -> Result<Option<i64>> {
        p.get(f).map(|v| v.parse::<i64>().with_context(|| format!("--{f} {v:?}: expected a number"))).transpose()
    };
    let mut o = RunOptions {
        id: id.to_owned(),
        cmd: cmd.to_vec(),
        entrypoint: p.get("entrypoint").map(str::to_owned),
        env: p.all("env"),
        workdir: p.get("workdir").map(str::to_owned),
        user: p.get("user").map(str::to_owned),
        terminal: p.on("tty"),
        memory: p.get("memory").map(bundle::parse_memory).transpose()?,
        cpus: p.get("cpus").map(|v| v.parse::<f64>().with_context(|| format!("--cpus {v:?}"))).transpose()?,
        pids_limit: num("pids-limit")?,
        volumes: p.all("volume").iter().map(|v| Volume::parse(v)).collect::<Result<_, _>>()?,
        seccomp: Default::default(),
        no_new_privileges: false,
    };
    for s in p.all("security-opt") {
        bundle::apply_security_opt(&mut o, &s)?;
    }
    capsa_pod::seccomp::check(&o.seccomp).context("--security-opt seccomp")?;
    Ok(o)
}

/// A fresh container name: `capsa-` and 12 random hex digits.
fn random_name() -> String {
    let mut b = [0u8; 6];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        b.copy_from_slice(&((t as u64) ^ u64::from(std::process::id())).to_le_bytes()[..6]);
    }
    format!("capsa-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

/// `capsa run [OPTIONS] IMAGE [CMD...]` in the foreground.
#[cold]
#[inline(never)]
pub fn run(runtime: &capsa_runtime::container::Store, cargs: &[String]) -> Result<i32> {
    run_image(runtime, cargs).or_else(|e| {
        let text = super::error_text(&e);
        match command_failure_code(&text) {
            Some(code) => {
                super::logging::error(&text);
                Ok(code)
            }
            None => Err(e),
        }
    })
}

/// docker's exit codes for a command the container cannot run: 127 when it does not
/// exist, 126 when it exists but cannot be executed; `None` for any other failure.
/// The runtime reports both from the init's lookup, before `create` returns.
fn command_failure_code(error: &str) -> Option<i32> {
    let lookup = error.split("container init: exec ").nth(1)?;
    if lookup.contains("executable file not found") || lookup.contains("ENOENT") {
        Some(127)
    } else if lookup.contains("EACCES") || lookup.contains("ENOEXEC") {
        Some(126)
    } else {
        None
    }
}

fn run_image(runtime: &capsa_runtime::container::Store, cargs: &[String]) -> Result<i32> {
    let p = args::parse(cargs, RUN, true).map_err(|e| anyhow::anyhow!("run: {e} (see 'capsa run --help')"))?;
    if p.on("help") {
        print!("{}", run_help());
        return Ok(0);
    }
    let Some((image, cmd)) = p.pos.split_first() else { bail!("run: missing the image (usage: {RUN_USAGE})") };
    let restart = p.get("restart").unwrap_or("no");
    if restart != "no" && !p.on("detach") {
        bail!("run: --restart needs -d (the monitor restarts the container)");
    }
    if p.on("detach") && p.on("rm") {
        bail!("run: --rm with -d is not supported yet: use capsa rm NAME after it exits");
    }
    let quiet = p.on("quiet");
    let store = store_at(&p)?;
    let id = p.get("name").map_or_else(random_name, str::to_owned);
    let opts = run_options(&p, &id, cmd)?;
    let labels = capsa_pod::filter::parse_labels(&p.all("label"))?;
    let img = obtain(&store, image, &p, quiet)?;
    // Joining a pod holds the pods lock until the container exists (detached), so a
    // concurrent `pod rm` sees it among the members, or removes the pod before the join.
    let mut pod_lock = if p.get("pod").is_some() { Some(capsa_pod::pods::lock(&store)?) } else { None };
    let pod = match p.get("pod") {
        Some(name) => Some(capsa_pod::pods::join(&store, &capsa_pod::pods::load(&store, name)?)?),
        None => None,
    };
    if !p.on("detach") {
        // A foreground run would hold it for its whole life.
        pod_lock = None;
    }
    let req = capsa_pod::containers::Request {
        image_name: image.clone(),
        image: &img,
        opts,
        copy: p.on("copy"),
        restart: restart.to_owned(),
        stdin: p.on("interactive"),
        pod,
        extra_mounts: Vec::new(),
        labels,
        pod_container: None,
        init: false,
        created_only: false,
    };
    if p.on("detach") {
        let tools = capsa_pod::runtime_cli::Tools::beside(
            &std::fs::read_link("/proc/self/exe").context("find this binary (/proc/self/exe)")?,
            runtime.root(),
        );
        capsa_pod::containers::run_detached(&store, &tools, &req, &mut progress(quiet))?;
        drop(pod_lock);
        println!("{id}");
        return Ok(0);
    }
    let container = store.create_container(&id, &img, p.on("copy"), &mut progress(quiet))?;
    let result = (|| -> Result<i32> {
        capsa_pod::containers::write_bundle(&store, &req, &container.rootfs, !p.on("rm"))?;
        if !p.on("interactive") && !p.on("tty") {
            stdin_from_dev_null();
        }
        let c = CreateArgs {
            bundle: container.dir.clone(),
            pid_file: None,
            console_socket: None,
            no_pivot: false,
            no_new_keyring: false,
            preserve_fds: 0,
            id: id.clone(),
        };
        let code = super::lifecycle::run(runtime, &c, false, false)?;
        // The exit, for `capsa ps -a` and `inspect` (no monitor recorded it).
        let exit = json!({"exit_code": code, "finished_at": capsa_runtime::time::now_rfc3339()});
        let _ = capsa_fsutil::write_atomic(
            &container.dir.join("exit"),
            exit.to_string().as_bytes(),
            0o600,
            capsa_fsutil::Durability::Volatile,
        );
        Ok(code)
    })();
    let cleanup = if p.on("rm") || result.is_err() { container.remove() } else { container.unmount() };
    let code = result?;
    cleanup.with_context(|| format!("clean up container {id}"))?;
    Ok(code)
}

/// Replaces fd 0 by /dev/null (docker runs without -i with a closed stdin).
fn stdin_from_dev_null() {
    if let Ok(f) = std::fs::File::open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto fd 0 of two valid fds.
        unsafe { libc::dup2(f.as_raw_fd(), 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn command_failures_map_to_docker_codes() {
        let c = |s: &str| command_failure_code(s);
        assert_eq!(
            c("create container x: container init: exec \"/etc/passwd\" in the container: EACCES (Permission denied)"),
            Some(126)
        );
        assert_eq!(
            c("create container x: container init: exec \"nosuch\": executable file not found in $PATH (/bin)"),
            Some(127)
        );
        assert_eq!(c("start container t1: runtime create t1: exit status: 1: create container t1: container init: exec \"/x\" in the container: ENOENT (No such file or directory)"), Some(127));
        assert_eq!(c("create container x: container init: mount proc on /proc: EACCES (Permission denied)"), None);
        assert_eq!(c("no such image"), None);
    }

    #[test]
    fn run_mode() {
        // runc mode: a bundle, or help.
        assert!(!is_image_mode(&v(&["--bundle", "/b", "id"])));
        assert!(!is_image_mode(&v(&["-b", "/b", "-d", "id"])));
        assert!(!is_image_mode(&v(&["--help"])));
        // image mode: image-only flags, a command, or no ./config.json here.
        assert!(is_image_mode(&v(&["--rm", "busybox"])));
        assert!(is_image_mode(&v(&["-e", "A=1", "busybox"])));
        assert!(is_image_mode(&v(&["busybox", "echo", "hi"])));
        if !Path::new("config.json").exists() {
            assert!(is_image_mode(&v(&["busybox"])));
        }
    }
}
