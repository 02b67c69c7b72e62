//! Docker-like verbs over managed containers (capsa-pod): `run -d`, `ps`,
//! `logs`, `attach`, `stop`, `rm`, `inspect`, `stats`. Linked into the
//! `capsa-image` binary only; `capsa` execs it for them.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

use capsa_image::images::{default_root, ImageStore};
use capsa_pod::containers::{self, Info, State};
use capsa_pod::filter::Filters;
use capsa_pod::runtime_cli::Tools;
use capsa_shim::proto::{self, AttachClient};

use super::args::{flag, Flag, Parsed};

/// The managed containers' verbs (capsa-image parses them with clap: `cli/human`).
pub const VERBS: &[&str] = &["ps", "logs", "attach", "stop", "rm", "inspect", "stats"];

/// The flags of the managed `ps`, for routing only: `ps` without a container id is
/// the managed one (`cli::is_managed_ps`), so which flags take a value must be known
/// in the runtime binary too. capsa-image parses it with clap (`cli/human`), whose
/// definition a unit test there keeps equal to this table.
pub const PS: &[Flag] = &[
    flag("all", Some('a'), false, "also stopped containers"),
    flag("format", Some('f'), true, "table or json"),
    flag("quiet", Some('q'), false, "print only the names"),
    flag(
        "filter",
        None,
        true,
        "label=KEY, label=KEY=VALUE (all must match), name=SUBSTR or status=STATE (any matches); repeatable",
    ),
    flag("store", None, true, "image and container store (default /var/lib/capsa; rootless: $XDG_DATA_HOME/capsa)"),
    flag("help", Some('h'), false, "print help"),
];

/// The store and tools for these verbs.
pub fn env(p: &Parsed, g: &Parsed) -> Result<(ImageStore, Tools)> {
    let root = p.get("store").map_or_else(|| default_root().to_string_lossy().into_owned(), str::to_owned);
    let store = super::image::open_store(&root)?;
    let exe = std::fs::read_link("/proc/self/exe").context("find this binary (/proc/self/exe)")?;
    Ok((store, Tools::beside(&exe, super::state_root(g))))
}

fn status_text(i: &Info) -> String {
    match i.state {
        State::Running if i.restart_count > 0 => format!("Up (restarted {}x)", i.restart_count),
        State::Running => "Up".into(),
        State::Restarting => format!("Restarting ({})", i.exit_code().unwrap_or(-1)),
        State::Exited => match i.exit_code() {
            Some(c) if i.exit.as_ref().is_some_and(|e| e["oom"] == true) => format!("Exited ({c}, OOM)"),
            Some(c) => format!("Exited ({c})"),
            None => "Exited".into(),
        },
        State::Lost => "Stopped (monitor lost)".into(),
        State::Created => "Created".into(),
    }
}

/// `capsa ps [-a] [--format json] [-q] [--filter F]...` (managed containers; with an ID
/// it is runc's `ps`). A status filter selects among stopped containers too, as docker's.
pub fn ps(store: &ImageStore, tools: &Tools, p: &Parsed) -> Result<i32> {
    let filters = Filters::parse(&p.all("filter"), &["label", "name", "status"], "ps")?;
    let all = containers::list(store, tools)?;
    let shown: Vec<&Info> = all
        .iter()
        .filter(|i| p.on("all") || i.is_active() || filters.has_status())
        .filter(|i| filters.matches(&i.meta.name, &i.meta.labels, Some(i.state.as_str())))
        .collect();
    if p.on("quiet") {
        for i in shown {
            println!("{}", i.meta.name);
        }
        return Ok(0);
    }
    match p.get("format").unwrap_or("table") {
        "json" => {
            let v: Vec<_> = shown.iter().map(|i| summary(i)).collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "table" => {
            let w = shown.iter().map(|i| i.meta.name.len()).max().unwrap_or(0).max(4);
            let iw = shown.iter().map(|i| i.meta.image.len()).max().unwrap_or(0).clamp(5, 30);
            println!("{:<w$}  {:<iw$}  {:<24}  {:<8}  {:<10}  COMMAND", "NAME", "IMAGE", "STATUS", "PID", "POD");
            for i in shown {
                let cmd = i.meta.command.join(" ");
                let cut = (0..=37).rev().find(|&i| cmd.is_char_boundary(i)).unwrap_or(0);
                let cmd = if cmd.len() > 40 { format!("{}...", &cmd[..cut]) } else { cmd };
                println!(
                    "{:<w$}  {:<iw$}  {:<24}  {:<8}  {:<10}  {cmd}",
                    i.meta.name,
                    i.meta.image,
                    status_text(i),
                    i.pid.map_or("-".into(), |p| p.to_string()),
                    i.meta.pod.as_deref().unwrap_or("-"),
                );
            }
        }
        f => bail!("--format {f:?}: table or json"),
    }
    Ok(0)
}

fn summary(i: &Info) -> serde_json::Value {
    json!({
        "name": i.meta.name, "image": i.meta.image, "command": i.meta.command, "created": i.meta.created,
        "state": i.state, "status": status_text(i), "pid": i.pid, "exitCode": i.exit_code(),
        "restartCount": i.restart_count, "pod": i.meta.pod, "restart": i.meta.restart, "labels": i.meta.labels,
    })
}

fn one(p: &Parsed, verb: &str) -> Result<String> {
    match p.pos.as_slice() {
        [n] => Ok(n.clone()),
        _ => bail!("{verb}: expected one container name (usage: capsa {verb} [OPTIONS] NAME)"),
    }
}

/// `capsa logs [-f] [--tail N] [-t] NAME`.
pub fn logs(store: &ImageStore, tools: &Tools, p: &Parsed) -> Result<i32> {
    let name = one(p, "logs")?;
    containers::load_meta(store, &name)?;
    let tail = p
        .get("tail")
        .filter(|t| *t != "all")
        .map(|t| t.parse::<usize>())
        .transpose()
        .context("--tail takes a number")?;
    let opts = capsa_pod::logs::Options { follow: p.on("follow"), tail, timestamps: p.on("timestamps") };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let mut running = || containers::inspect_state(store, tools, &name).is_ok_and(|i| i.is_active());
    match capsa_pod::logs::print(&containers::log_path(store, &name), opts, &mut out, &mut err, &mut running) {
        // `logs NAME | head`: the reader is gone; end quietly, as docker does.
        Err(capsa_pod::PodError::Io { what: "write", source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            super::out::closed_pipe()
        }
        r => r?,
    }
    Ok(0)
}

/// `capsa attach NAME`: the container's live output on our stdout/stderr, our
/// stdin to its stdin (when it was started with -i); returns its exit code.
pub fn attach(store: &ImageStore, tools: &Tools, p: &Parsed) -> Result<i32> {
    let name = one(p, "attach")?;
    let info = containers::inspect_state(store, tools, &name)?;
    if !info.is_active() {
        bail!("attach {name}: the container is {}", info.state.as_str());
    }
    let c = AttachClient::connect(&containers::shim_dir(store, &name))
        .with_context(|| format!("attach {name}: connect to its monitor"))?;
    let stdin = info.meta.stdin && !p.on("no-stdin");
    attach_loop(&c, stdin, info.meta.tty)
}

/// Copies between the terminal and an attach socket until the exit record.
fn attach_loop(c: &AttachClient, stdin: bool, tty: bool) -> Result<i32> {
    use std::os::fd::AsRawFd;
    let raw = if tty && stdin { RawTerminal::enable() } else { None };
    if tty {
        if let Some((rows, cols)) = term_size() {
            let _ = c.resize(rows, cols);
        }
    }
    let mut buf = [0u8; proto::MAX_PACKET];
    let mut fds = [
        libc::pollfd { fd: c.fd, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: if stdin { std::io::stdin().as_raw_fd() } else { -1 }, events: libc::POLLIN, revents: 0 },
    ];
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let code = loop {
        // SAFETY: poll on two pollfds we own (a negative fd is ignored).
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            bail!("poll: {}", std::io::Error::last_os_error());
        }
        if fds[1].revents != 0 {
            let mut ib = [0u8; 4096];
            // SAFETY: read into a local buffer.
            let n = unsafe { libc::read(fds[1].fd, ib.as_mut_ptr().cast(), ib.len()) };
            if n <= 0 {
                let _ = c.close_stdin();
                fds[1].fd = -1;
            } else {
                let _ = c.stdin(&ib[..n as usize]);
            }
        }
        if fds[0].revents != 0 {
            match c.recv(&mut buf, 0) {
                Ok(Some((proto::T_STDOUT, n))) => {
                    out.write_all(&buf[..n])?;
                    out.flush()?;
                }
                Ok(Some((proto::T_STDERR, n))) => {
                    err.write_all(&buf[..n])?;
                }
                Ok(Some((proto::T_EXIT, n))) => {
                    let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap_or_default();
                    break v["exit_code"].as_i64().unwrap_or(0) as i32;
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    bail!("attach: the monitor closed the connection (too slow a reader?); the container may still run")
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return Err(e).context("attach: read from the monitor"),
            }
        }
    };
    drop(raw);
    Ok(code)
}

fn term_size() -> Option<(u16, u16)> {
    // SAFETY: winsize is plain integers: all-zero is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills a winsize we own.
    (unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Puts stdin in raw mode; restores it on drop.
struct RawTerminal(libc::termios);

impl RawTerminal {
    fn enable() -> Option<RawTerminal> {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with termios structs we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
            Some(RawTerminal(saved))
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: restores the saved attributes of fd 0.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.0) };
    }
}

/// `capsa stop [-t SECONDS] NAME...`.
pub fn stop(store: &ImageStore, tools: &Tools, p: &Parsed) -> Result<i32> {
    if p.pos.is_empty() {
        bail!("stop: expected container names");
    }
    let secs: u64 = p.get("time").map(|t| t.parse()).transpose().context("--time takes seconds")?.unwrap_or(10);
    for n in &p.pos {
        let i = containers::stop(store, tools, n, Duration::from_secs(secs))?;
        println!("{n}");
        tracing::debug!("{n}: {}", status_text(&i));
    }
    Ok(0)
}

/// `capsa rm [-f] NAME...`.
pub fn rm(store: &ImageStore, tools: &Tools, p: &Parsed) -> Result<i32> {
    if p.pos.is_empty() {
        bail!("rm: expected container names");
    }
    for n in &p.pos {
        containers::remove(store, tools, n, p.on("force"))?;
        println!("{n}");
    }
    Ok(0)
}

/// `capsa inspect NAME`: state, pid, exit, namespaces, cgroup, mounts, IP.
pub fn inspect(store: &ImageStore, tools: &Tools, p: &Parsed) -> Result<i32> {
    if let Some(f) = p.get("format").filter(|f| *f != "json") {
        bail!("inspect --format {f:?}: inspect prints json (text is for --namespaces)");
    }
    let mut out = Vec::new();
    for n in &p.pos {
        let i = containers::inspect_state(store, tools, n)?;
        let cfg = containers::config(store, n)?;
        let namespaces: serde_json::Map<String, serde_json::Value> = match i.pid {
            Some(pid) => ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"]
                .iter()
                .filter_map(|k| {
                    let l = std::fs::read_link(format!("/proc/{pid}/ns/{k}")).ok()?;
                    Some((k.to_string(), json!(l.to_string_lossy())))
                })
                .collect(),
            None => Default::default(),
        };
        let pod = i.meta.pod.as_ref().and_then(|pn| capsa_pod::pods::load(store, pn).ok());
        let mut v = summary(&i);
        let o = v.as_object_mut().expect("an object");
        o.insert("exit".into(), i.exit.clone().unwrap_or_default());
        o.insert("oom".into(), json!(i.exit.as_ref().is_some_and(|e| e["oom"] == true)));
        o.insert("monitorPid".into(), json!(i.shim_pid));
        o.insert("namespaces".into(), json!(namespaces));
        o.insert("configNamespaces".into(), cfg["linux"]["namespaces"].clone());
        o.insert("cgroupsPath".into(), cfg["linux"]["cgroupsPath"].clone());
        o.insert("mounts".into(), cfg["mounts"].clone());
        o.insert("ip".into(), json!(pod.as_ref().and_then(|p| p.ip.clone())));
        o.insert("logPath".into(), json!(containers::log_path(store, n)));
        o.insert("bundle".into(), json!(containers::container_dir(store, n)));
        out.push(v);
    }
    if out.is_empty() {
        bail!("inspect: expected container names");
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 60 => "unlimited".into(),
        n if n >= 1 << 30 => format!("{:.2}GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.2}MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1}KiB", n as f64 / 1024.0),
        n => format!("{n}B"),
    }
}

/// `capsa stats [NAME...]`: one sample of cpu, memory and pids from the cgroups.
pub fn stats(store: &ImageStore, tools: &Tools, p: &Parsed) -> Result<i32> {
    let names: Vec<String> = if p.pos.is_empty() {
        containers::list(store, tools)?.into_iter().filter(|i| i.state == State::Running).map(|i| i.meta.name).collect()
    } else {
        p.pos.clone()
    };
    let samples = capsa_pod::containers::stats(tools, &names, Duration::from_millis(500))?;
    match p.get("format").unwrap_or("table") {
        "json" => println!("{}", serde_json::to_string_pretty(&samples)?),
        "table" => {
            let w = names.iter().map(|n| n.len()).max().unwrap_or(0).max(4);
            println!("{:<w$}  {:>7}  {:>10}  {:>24}  PIDS", "NAME", "CPU %", "CPU TIME", "MEM USAGE / LIMIT");
            for s in samples {
                let mem = format!("{} / {}", human(s.memory_bytes), human(s.memory_limit));
                let pids = if s.pids_limit == 0 || s.pids_limit == u64::MAX {
                    s.pids.to_string()
                } else {
                    format!("{} / {}", s.pids, s.pids_limit)
                };
                println!("{:<w$}  {:>6.2}%  {:>9.2}s  {mem:>24}  {pids}", s.name, s.cpu_percent, s.cpu_ns as f64 / 1e9);
            }
        }
        f => bail!("--format {f:?}: table or json"),
    }
    Ok(0)
}

/// Runs a managed verb on its parsed arguments (`p`; `g`: the global flags).
pub fn main(verb: &str, p: &Parsed, g: &Parsed) -> Result<i32> {
    if verb == "inspect" && p.on("namespaces") {
        return super::both_sides::main(p, g);
    }
    let (store, tools) = env(p, g)?;
    match verb {
        "ps" => ps(&store, &tools, p),
        "logs" => logs(&store, &tools, p),
        "attach" => attach(&store, &tools, p),
        "stop" => stop(&store, &tools, p),
        "rm" => rm(&store, &tools, p),
        "inspect" => inspect(&store, &tools, p),
        "stats" => stats(&store, &tools, p),
        v => bail!("{v}: not a managed verb"),
    }
}
