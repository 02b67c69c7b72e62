//! Command-line parsing (runc's verbs, flags and output shapes) and dispatch.

pub(crate) mod args;
mod both_sides;
mod exec;
pub(crate) mod image;
mod info;
mod lab;
mod lifecycle;
mod logging;
pub(crate) mod managed;
mod out;
mod pod;
mod sealing;
mod update;

use std::path::PathBuf;

use anyhow::{bail, Context};

use args::{flag, Flag, Parsed};
use capsa_runtime::container::Store;

/// The global flags (before the verb).
pub(crate) const GLOBAL: &[Flag] = &[
    flag("root", None, true, "directory for container state (default /run/capsa; rootless: $XDG_RUNTIME_DIR/capsa)"),
    flag("log", None, true, "write log records to this file (default: stderr)"),
    flag("log-format", None, true, "log record format: text or json"),
    flag("debug", None, false, "log every step (namespaces, mounts, cgroup files) as debug records"),
    flag("explain", None, false, "narrate every kernel request, numbered, on stderr (--explain=json: JSON lines)"),
    flag("systemd-cgroup", None, false, "use systemd for cgroups (needs a running systemd)"),
    flag("rootless", None, true, "true, false or auto (default: rootless when not root): no cgroups unless delegated"),
    flag("criu", None, true, "accepted for runc compatibility; ignored"),
    flag("version", Some('v'), false, "print the version"),
    flag("help", Some('h'), false, "print help"),
];

/// Flags of `create` and runc-mode `run`.
pub(crate) const CREATE: &[Flag] = &[
    flag("bundle", Some('b'), true, "path to the bundle (the directory holding config.json), default ."),
    flag("pid-file", None, true, "write the container's init pid to this file"),
    flag("console-socket", None, true, "unix socket that receives the pty master (process.terminal)"),
    flag("no-pivot", None, false, "do not pivot_root (rootfs on ramfs): move the mount and chroot"),
    flag("no-new-keyring", None, false, "do not create a new session keyring"),
    flag("preserve-fds", None, true, "pass N extra fds (3 .. 3+N-1) to the container's process"),
    flag("detach", Some('d'), false, "run: do not wait for the container"),
    flag("keep", None, false, "run: keep the stopped container (state, cgroup) until `delete`"),
    flag("help", Some('h'), false, "print help"),
];

const EXEC: &[Flag] = &[
    flag("process", Some('p'), true, "a JSON process (runtime-spec `process`) to run"),
    flag("detach", Some('d'), false, "do not wait for the process"),
    flag("tty", Some('t'), false, "allocate a terminal"),
    flag("interactive", Some('i'), false, "accepted for docker compatibility (stdin is always passed)"),
    flag("console-socket", None, true, "unix socket that receives the pty master"),
    flag("pid-file", None, true, "write the new process's pid to this file"),
    flag("cwd", None, true, "working directory inside the container"),
    flag("env", Some('e'), true, "set an environment variable KEY=VALUE (repeatable)"),
    flag("user", Some('u'), true, "uid[:gid] to run as"),
    flag("additional-gids", Some('g'), true, "extra group id (repeatable)"),
    flag("cap", Some('c'), true, "add a capability (repeatable)"),
    flag("no-new-privs", None, false, "set no_new_privs for the process"),
    flag("preserve-fds", None, true, "pass N extra fds to the process"),
    flag("process-label", None, true, "SELinux label of the process (refused on a host without SELinux)"),
    flag("apparmor", None, true, "AppArmor profile of the process (refused on a host without AppArmor)"),
    flag("ignore-paused", None, false, "exec into a paused container too (the process runs once it is resumed)"),
    flag(
        "cgroup",
        None,
        true,
        "run in an existing sub-cgroup: PATH, or CTRL[,CTRL]:PATH per v1 controller (repeatable)",
    ),
    flag("help", Some('h'), false, "print help"),
];

const KILL: &[Flag] = &[
    flag("all", Some('a'), false, "signal every process of the container (its cgroup)"),
    flag("help", Some('h'), false, "print help"),
];
const DELETE: &[Flag] =
    &[flag("force", Some('f'), false, "kill a running container first"), flag("help", Some('h'), false, "print help")];
const LIST: &[Flag] = &[
    flag("format", Some('f'), true, "table or json"),
    flag("quiet", Some('q'), false, "print only the ids"),
    flag("help", Some('h'), false, "print help"),
];
const PS: &[Flag] = &[flag("format", Some('f'), true, "table or json"), flag("help", Some('h'), false, "print help")];
const SPEC: &[Flag] = &[
    flag("bundle", Some('b'), true, "bundle directory to write config.json into"),
    flag("rootless", None, false, "a spec an unprivileged user can run"),
    flag("help", Some('h'), false, "print help"),
];
const UPDATE: &[Flag] = &[
    flag("resources", Some('r'), true, "a JSON file (or - for stdin) of linux.resources to apply"),
    flag("memory", None, true, "memory limit (bytes, or with k/m/g)"),
    flag("memory-reservation", None, true, "memory soft limit"),
    flag("memory-swap", None, true, "memory + swap limit"),
    flag("kernel-memory", None, true, "ignored by modern kernels (kept for runc compatibility)"),
    flag("cpu-quota", None, true, "CPU quota per period, microseconds (-1: unlimited)"),
    flag("cpu-period", None, true, "CPU CFS period, microseconds"),
    flag("cpu-shares", None, true, "CPU shares (relative weight)"),
    flag("cpu-share", None, true, "alias of --cpu-shares (runc's spelling)"),
    flag("cpu-rt-period", None, true, "realtime period, microseconds"),
    flag("cpu-rt-runtime", None, true, "realtime runtime, microseconds"),
    flag("cpuset-cpus", None, true, "CPUs to run on (0-2,4)"),
    flag("cpuset-mems", None, true, "memory nodes to use"),
    flag("pids-limit", None, true, "maximum number of processes"),
    flag("blkio-weight", None, true, "block IO weight (10-1000)"),
    flag("l3-cache-schema", None, true, "accepted for runc compatibility; ignored"),
    flag("mem-bw-schema", None, true, "accepted for runc compatibility; ignored"),
    flag("help", Some('h'), false, "print help"),
];
const EVENTS: &[Flag] = &[
    flag("stats", None, false, "print the resource usage once and exit"),
    flag("interval", None, true, "how often to print stats (default 5s)"),
    flag("help", Some('h'), false, "print help"),
];
const ID_ONLY: &[Flag] = &[flag("help", Some('h'), false, "print help")];

/// Every verb: (name, usage, about, flags, flags stop at the first positional). The
/// human-facing verbs (managed containers, `pod`, `lab`, `image`, `completion`, `man`)
/// have no flag table here: capsa-image parses them with clap (`cli/human`).
pub(crate) const COMMANDS: &[(&str, &str, &str, &[Flag], bool)] = &[
    (
        "create",
        "capsa create [OPTIONS] ID",
        "Create a container: set everything up, leave its process waiting for `start`.",
        CREATE,
        false,
    ),
    ("start", "capsa start ID", "Start a created container's process.", ID_ONLY, false),
    (
        "run",
        "capsa run [OPTIONS] ID   |   capsa run [IMAGE OPTIONS] IMAGE [CMD...]",
        "Create and start a container; in the foreground, exit with its status. Runc mode with --bundle, \
         or one ID and ./config.json present; image mode otherwise (both listed below).",
        CREATE,
        false,
    ),
    ("state", "capsa state ID", "Print the OCI state of a container as JSON.", ID_ONLY, false),
    ("kill", "capsa kill [--all] ID [SIGNAL]", "Send a signal (default SIGTERM) to the container's init.", KILL, false),
    ("delete", "capsa delete [--force] ID", "Delete a stopped container (--force kills it first).", DELETE, false),
    ("list", "capsa list [--format table|json] [-q]", "List containers.", LIST, false),
    (
        "ps",
        "capsa ps [--format table|json] ID [PS-ARGS...]   |   capsa ps [-a] [--format table|json]",
        "Show the processes of a container; without an ID, list managed containers.",
        PS,
        true,
    ),
    ("exec", "capsa exec [OPTIONS] ID [COMMAND [ARG...]]", "Run a new process inside a running container.", EXEC, true),
    ("pause", "capsa pause ID", "Freeze every process of a container (cgroup freezer).", ID_ONLY, false),
    ("resume", "capsa resume ID", "Thaw a paused container.", ID_ONLY, false),
    ("update", "capsa update [OPTIONS] ID", "Change a running container's resource limits.", UPDATE, false),
    (
        "events",
        "capsa events [--stats] [--interval 5s] ID",
        "Print resource usage and OOM events as JSON lines.",
        EVENTS,
        false,
    ),
    (
        "spec",
        "capsa spec [--bundle DIR] [--rootless]",
        "Write a default config.json into the bundle directory.",
        SPEC,
        false,
    ),
    ("features", "capsa features", "Print the features this runtime supports, as JSON.", ID_ONLY, false),
    ("logs", "capsa logs [-f] [--tail N] [-t] NAME", "Print a managed container's log.", &[], false),
    ("attach", "capsa attach NAME", "Attach to a managed container's stdio.", &[], false),
    ("stop", "capsa stop [-t SECONDS] NAME...", "Stop managed containers (stop signal, then SIGKILL).", &[], false),
    ("rm", "capsa rm [-f] NAME...", "Remove managed containers.", &[], false),
    (
        "inspect",
        "capsa inspect [--namespaces] NAME...",
        "Print managed containers' state as JSON; --namespaces: a container from both sides.",
        &[],
        false,
    ),
    ("stats", "capsa stats [NAME...]", "CPU, memory and pids of running managed containers.", &[], false),
    (
        "pod",
        "capsa pod create|ls|inspect|logs|stop|rm|apply|delete ...",
        "Pods: containers sharing network, ipc and uts (see 'capsa pod --help').",
        &[],
        true,
    ),
    (
        "lab",
        "capsa lab list|show|start|check|solve|reset [N]",
        "Exercises on namespaces, cgroups and pods that check themselves (see 'capsa lab --help').",
        &[],
        true,
    ),
    (
        "image",
        "capsa image [--store DIR] import|pull|ls|inspect|rm|prune|unpack|bundle ...",
        "Manage images: the local store, unpack, bundles (see 'capsa image VERB --help').",
        &[],
        true,
    ),
    (
        "completion",
        "capsa completion bash|zsh|fish",
        "Print the shell completion script for bash, zsh or fish.",
        &[],
        true,
    ),
    ("man", "capsa man [VERB [SUBVERB]]", "Print the man page (roff) of capsa, or of one verb.", &[], true),
];

/// What capsa-image's clap parser (`cli/human`) made of a human-facing verb's
/// arguments: the verb's path below `capsa` (`["pod", "create"]`) and its flags and
/// operands, to run; or `Err(code)` when nothing is left to run (help, a completion
/// script or a man page was printed), with the exit code.
pub type HumanArgs = Result<(Vec<String>, Parsed), i32>;

/// The parser of the human-facing verbs: `(verb, its arguments)`. capsa-image has
/// one (`crate::HUMAN`); the runtime binary has none, and execs capsa-image for them.
pub type HumanParser = fn(&str, &[String]) -> anyhow::Result<HumanArgs>;

/// Options shared by `create` and `run`.
pub struct CreateArgs {
    bundle: PathBuf,
    pid_file: Option<PathBuf>,
    console_socket: Option<PathBuf>,
    no_pivot: bool,
    no_new_keyring: bool,
    preserve_fds: i32,
    id: String,
}

fn one_id(p: &Parsed, cmd: &str) -> anyhow::Result<String> {
    match p.pos.as_slice() {
        [id] => Ok(id.clone()),
        [] => bail!("{cmd}: missing the container id"),
        _ => bail!("{cmd}: expected one container id, got {:?}", p.pos),
    }
}

fn create_args(p: &Parsed) -> anyhow::Result<CreateArgs> {
    Ok(CreateArgs {
        bundle: PathBuf::from(p.get("bundle").unwrap_or(".")),
        pid_file: p.get("pid-file").map(PathBuf::from),
        console_socket: p.get("console-socket").map(PathBuf::from),
        no_pivot: p.on("no-pivot"),
        no_new_keyring: p.on("no-new-keyring"),
        preserve_fds: p
            .get("preserve-fds")
            .map(|v| v.parse())
            .transpose()
            .context("--preserve-fds takes a number")?
            .unwrap_or(0),
        id: one_id(p, "create")?,
    })
}

fn usage() -> String {
    let mut s = args::help(
        "capsa [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]",
        "capsa: a lightweight OCI container runtime (runc-compatible CLI).",
        GLOBAL,
    );
    s.push_str("\nCommands:\n");
    for (name, _, about, _, _) in COMMANDS {
        s.push_str(&format!("  {name:<10} {about}\n"));
    }
    s.push_str("\nRun 'capsa COMMAND --help' for a command's options.\n");
    s
}

/// Parse, run, and return the process exit code.
pub fn main() -> i32 {
    out::quiet_on_closed_stdout();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // Global flags come before the command name.
    let split = argv.iter().position(|a| COMMANDS.iter().any(|c| c.0 == a) && !a.starts_with('-'));
    let (gargs, rest) = match split {
        Some(i) => (&argv[..i], &argv[i..]),
        None => (&argv[..], &argv[argv.len()..]),
    };
    // `--explain[=text|json]`: the only global flag with an optional value.
    let mut explain = None;
    let gargs: Vec<String> = gargs
        .iter()
        .filter(|a| match a.strip_prefix("--explain") {
            Some(rest) if rest.is_empty() || rest.starts_with('=') => {
                explain = Some(rest.trim_start_matches('=').to_string());
                false
            }
            _ => true,
        })
        .cloned()
        .collect();
    if let Some(m) = explain.as_deref() {
        if capsa_runtime::explain::Mode::parse(m).is_none() {
            return fail(&format!("--explain={m}: the format is text or json"));
        }
    }
    let g = match args::parse(&gargs, GLOBAL, false) {
        Ok(g) if g.pos.is_empty() => g,
        Ok(g) => return fail(&format!("unknown command {:?} (see capsa --help)", g.pos[0])),
        Err(e) => return fail(&e),
    };
    let json = match g.get("log-format").unwrap_or("text") {
        "text" => false,
        "json" => true,
        other => return fail(&format!("--log-format: {other:?} is not text or json")),
    };
    logging::Logger::install(g.on("debug"), json, g.get("log").map(std::path::Path::new));
    if let Err(e) = capsa_runtime::rootless::set(g.get("rootless").unwrap_or("auto")) {
        return fail(&e);
    }
    if let Some((name, cargs)) = rest.split_first() {
        if let Err(code) = sealing::protect(name, cargs) {
            return code;
        }
    }
    // After the re-exec from the sealed copy (if any): an fd path handed on before it
    // would name an fd the exec closed.
    if let Err(e) = explain_setup(explain.as_deref()) {
        return fail(&e);
    }
    match run(&g, rest) {
        Ok(code) => code,
        Err(e) => {
            logging::error(&error_text(&e));
            1
        }
    }
}

/// `--root`, else the default: /run/capsa, or rootless `$XDG_RUNTIME_DIR/capsa`.
pub fn state_root(g: &Parsed) -> String {
    match g.get("root") {
        Some(r) => r.to_string(),
        None => capsa_runtime::rootless::default_root().display().to_string(),
    }
}

/// `--explain[=MODE]`: narrate on stderr, and have every capsa this one spawns (the
/// runtime under capsa-image, the shim's runtime calls) narrate there too. Without
/// the flag, a caller may ask through the environment (`CAPSA_EXPLAIN`).
fn explain_setup(flag: Option<&str>) -> Result<(), String> {
    use capsa_runtime::explain;
    let Some(m) = flag else {
        match explain::enable_from_env() {
            // Passed on as a path to our own fd (a bare `text` would reach the
            // children's stderr, which for the shim's runtime is the container's log).
            Ok(()) => {
                if let Some(v) = explain::env_for_children() {
                    std::env::set_var(explain::ENV, v);
                }
            }
            // A stale request (its file gone) must not fail the runtime: it is dropped.
            Err(_) => std::env::remove_var(explain::ENV),
        }
        return Ok(());
    };
    let mode = explain::Mode::parse(m).ok_or_else(|| format!("--explain={m}: the format is text or json"))?;
    explain::enable(mode, 2).map_err(|e| format!("--explain: {e}"))?;
    if let Some(v) = explain::env_for_children() {
        // Single-threaded here: nothing reads the environment concurrently.
        std::env::set_var(explain::ENV, v);
    }
    Ok(())
}

fn fail(msg: &str) -> i32 {
    eprintln!("capsa: {msg}");
    2
}

fn run(g: &Parsed, rest: &[String]) -> anyhow::Result<i32> {
    let Some((name, cargs)) = rest.split_first() else {
        if g.on("version") {
            println!("capsa version {}\nspec: {}", env!("CARGO_PKG_VERSION"), capsa_runtime::spec::OCI_VERSION_MAX);
        } else {
            print!("{}", usage());
        }
        return Ok(0);
    };
    let &(_, use_, about, defs, stop) = COMMANDS.iter().find(|c| c.0 == name).expect("split on a known command");
    let managed_verb = managed::VERBS.contains(&name.as_str()) && (name != "ps" || is_managed_ps(cargs));
    let image_mode = ["image", "pod", "lab", "completion", "man"].contains(&name.as_str())
        || managed_verb
        || (name == "run" && image::is_image_mode(cargs));
    if image_mode && !crate::IMAGE_BUILTIN {
        // Image code lives in the capsa-image binary, so the runtime path
        // (this binary) does not carry it: ~0.2 MB RSS per call measured.
        return image::exec_image_binary(name == "run" && !image::runs_detached(cargs));
    }
    if crate::IMAGE_BUILTIN && image_mode {
        if name == "run" {
            return image::run(&Store::new(state_root(g)), cargs);
        }
        let parse = crate::HUMAN.context("no parser for the human-facing verbs in this binary")?;
        let (path, p) = match parse(name, cargs)? {
            Ok(verb) => verb,
            Err(code) => return Ok(code),
        };
        let sub = path.get(1).map_or("", String::as_str);
        return match name.as_str() {
            "image" => image::image(sub, &p),
            "pod" => pod::main(sub, &p, g),
            "lab" => lab::main(sub, &p),
            n => managed::main(n, &p, g),
        };
    }
    let p = args::parse(cargs, defs, stop).map_err(|e| anyhow::anyhow!("{name}: {e} (see 'capsa {name} --help')"))?;
    if p.on("help") && (!stop || p.pos.is_empty()) {
        print!("{}", args::help(use_, about, defs));
        if name == "run" {
            print!("\n{}", image::run_help());
        }
        return Ok(0);
    }
    if g.on("systemd-cgroup") && !std::path::Path::new("/run/systemd/system").exists() {
        bail!("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use cgroupfs paths instead");
    }
    let store = Store::new(state_root(g));
    match name.as_str() {
        "create" => lifecycle::create(&store, &create_args(&p)?),
        "run" => lifecycle::run(&store, &create_args(&p)?, p.on("detach"), p.on("keep")),
        "start" => lifecycle::start(&store, &one_id(&p, name)?),
        "state" => lifecycle::state(&store, &one_id(&p, name)?),
        "kill" => match p.pos.as_slice() {
            [id] => lifecycle::kill(&store, id, "SIGTERM", p.on("all")),
            [id, sig] => lifecycle::kill(&store, id, sig, p.on("all")),
            _ => bail!("usage: capsa kill [--all] ID [SIGNAL]"),
        },
        "delete" => lifecycle::delete(&store, &one_id(&p, name)?, p.on("force")),
        "list" => info::list(&store, p.get("format").unwrap_or("table"), p.on("quiet")),
        "ps" => {
            let (id, ps_args) = p.pos.split_first().context("ps: missing the container id")?;
            info::ps(&store, id, p.get("format").unwrap_or("table"), ps_args)
        }
        "exec" => exec::exec(&store, &p),
        "pause" => info::pause(&store, &one_id(&p, name)?),
        "resume" => info::resume(&store, &one_id(&p, name)?),
        "spec" => info::spec(
            std::path::Path::new(p.get("bundle").unwrap_or(".")),
            p.on("rootless") || g.get("rootless").is_some(),
        ),
        "features" => info::features(),
        "update" => update::update(&store, &p),
        "events" => update::events(&store, &p),
        _ => unreachable!(),
    }
}

/// `ps` without a container id lists managed containers (docker's `ps`);
/// with one it is runc's `ps ID`.
fn is_managed_ps(cargs: &[String]) -> bool {
    args::parse(cargs, managed::PS, false).is_ok_and(|p| p.pos.is_empty())
}

/// The error and its causes as one line, `a: b: c`. A cause whose text the
/// previous message already ends with (errors that both print and expose
/// their source) is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
