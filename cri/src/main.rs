//! `capsa-cri`: the CRI v1 daemon (see `capsa_cri`).

use std::path::PathBuf;
use std::sync::Arc;

use capsa_cri::config::{self, Config};
use capsa_cri::start_error::{self, StartError};

const USAGE: &str = "\
usage: capsa-cri [--config FILE] [--listen ADDR] [--log-level LEVEL]
       capsa-cri --version | --print-config | --help

The Kubernetes CRI v1 runtime service of capsa, on a unix socket.

  --config FILE       configuration (default /etc/capsa/cri.toml; missing: defaults)
  --listen ADDR       socket path or unix:///PATH (overrides `listen`)
  --log-level LEVEL   error, warn, info, debug, trace (overrides log.level)
  --print-config      print the documented default configuration and exit
  --version           print the version and exit
";

/// What the command line asks: (--config, --listen, --log-level).
type Args = (Option<PathBuf>, Option<String>, Option<String>);

fn parse() -> Result<Option<Args>, String> {
    let (mut config, mut listen, mut level) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (k, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        let mut value = |k: &str| inline.clone().or_else(|| it.next()).ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "-v" | "--version" => {
                println!("capsa-cri {} (CRI runtime.v1)", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--print-config" => {
                print!("{}", config::DEFAULT_TOML);
                return Ok(None);
            }
            "--config" | "-c" => config = Some(PathBuf::from(value(&k)?)),
            "--listen" | "-l" => listen = Some(value(&k)?),
            "--log-level" => level = Some(value(&k)?),
            _ => return Err(format!("unknown argument {a:?}\n{USAGE}")),
        }
    }
    Ok(Some((config, listen, level)))
}

fn init_logs(cfg: &Config) {
    let level = config::parse_level(&cfg.log.level).unwrap_or(tracing::Level::INFO);
    let b = tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr);
    if cfg.log.format == "json" {
        b.json().init();
    } else {
        use std::io::IsTerminal;
        b.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// What `run` fails with: a [`capsa_cri::start_error::StartError`], or a message.
type BoxError = Box<dyn std::error::Error>;

fn run() -> Result<(), BoxError> {
    let Some((path, listen, level)) = parse()? else { return Ok(()) };
    let mut cfg = Config::load(path.as_deref())?;
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if let Some(l) = level {
        cfg.log.level = l;
    }
    cfg.check()?;
    init_logs(&cfg);
    if !cfg.explain.is_empty() {
        if let Some(dir) = cfg.explain.split_once(':').map(|(_, p)| std::path::Path::new(p)).and_then(|p| p.parent()) {
            std::fs::create_dir_all(dir).map_err(start_error::io("explain: create", dir))?;
        }
        // Before any thread: the runtime and shim processes the daemon spawns inherit
        // it, and the daemon narrates its own steps (namespace pins, CNI) too.
        std::env::set_var(capsa_runtime::explain::ENV, &cfg.explain);
        capsa_runtime::explain::enable_from_env()?;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("capsa-cri must run as root (it creates namespaces, mounts and cgroups)".into());
    }
    // One thread for the async work; filesystem, process and CNI work on a small
    // blocking pool whose idle threads exit after a while (a lean idle daemon).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(64)
        .thread_keep_alive(std::time::Duration::from_secs(10))
        .build()
        .map_err(StartError::AsyncRuntime)?;
    rt.block_on(async move {
        let listener = capsa_cri::server::bind(&cfg.listen_path(), &cfg.socket_group)?;
        let cri = Arc::new(capsa_cri::daemon::Cri::open(cfg)?);
        capsa_cri::server::serve(cri, listener).await
    })?;
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("capsa-cri: {e}");
        std::process::exit(1);
    }
}
