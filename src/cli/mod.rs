//! Command-line parsing (runc's verbs, flags and output shapes) and dispatch.

mod exec;
mod info;
mod lifecycle;
mod logging;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use capsa_runtime::container::Store;

/// capsa: a lightweight OCI container runtime (runc-compatible CLI).
#[derive(Parser, Debug)]
#[command(
    name = "capsa",
    about,
    disable_help_subcommand = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// Directory for container state.
    #[arg(long, global = true, default_value = "/run/capsa")]
    root: PathBuf,
    /// Write log records to this file (default: stderr).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log record format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Explain every step (namespaces, mounts, cgroup files) as it happens.
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd for cgroups (needs a running systemd).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility (`spec --rootless` writes the same spec).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true", hide = true)]
    rootless: Option<String>,
    /// Accepted for runc compatibility; ignored.
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    /// Print the version and the runtime-spec version.
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

/// Options shared by `create` and `run`.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Path to the bundle (the directory holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Write the container's init pid to this file.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (when process.terminal is true).
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Do not use pivot_root (for a rootfs on ramfs): move the mount and chroot.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a new session keyring for the container.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass N extra fds (3 .. 3+N-1) to the container's process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    /// Container id.
    id: String,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a container: set everything up, leave its process waiting for `start`.
    Create(CreateArgs),
    /// Start a created container's process.
    Start { id: String },
    /// Create and start a container; in the foreground, exit with its status.
    Run {
        #[command(flatten)]
        c: CreateArgs,
        /// Do not wait: leave the container running and exit.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Accepted for runc compatibility.
        #[arg(long, hide = true)]
        keep: bool,
    },
    /// Print the OCI state of a container as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init, or with --all to every process.
    Kill {
        /// Signal every process in the container (its cgroup).
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a stopped container (--force kills it first).
    Delete {
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Print only the ids.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Show the processes of a container.
    Ps {
        #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        id: String,
        /// Options passed to ps(1).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run a new process inside a running container.
    Exec(exec::ExecArgs),
    /// Freeze every process of a container (cgroup freezer).
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Write a default config.json into the bundle directory.
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print the features this runtime supports, as JSON.
    Features,
}

/// Parse, run, and return the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    logging::Logger::install(cli.debug, cli.log_format == "json", cli.log.as_deref());
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            logging::error(&format!("{e:#}"));
            1
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    if cli.systemd_cgroup && !std::path::Path::new("/run/systemd/system").exists() {
        anyhow::bail!("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use cgroupfs paths instead");
    }
    let store = Store::new(&cli.root);
    let Some(cmd) = cli.cmd else {
        if cli.version {
            println!(
                "capsa version {}\nspec: {}",
                env!("CARGO_PKG_VERSION"),
                capsa_runtime::spec::OCI_VERSION_MAX
            );
            return Ok(0);
        }
        anyhow::bail!("no command given (see capsa --help)");
    };
    match cmd {
        Cmd::Create(c) => lifecycle::create(&store, &c),
        Cmd::Start { id } => lifecycle::start(&store, &id),
        Cmd::Run { c, detach, .. } => lifecycle::run(&store, &c, detach),
        Cmd::State { id } => lifecycle::state(&store, &id),
        Cmd::Kill { all, id, signal } => lifecycle::kill(&store, &id, &signal, all),
        Cmd::Delete { force, id } => lifecycle::delete(&store, &id, force),
        Cmd::List { format, quiet } => info::list(&store, &format, quiet),
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => info::ps(&store, &id, &format, &ps_args),
        Cmd::Exec(a) => exec::exec(&store, a),
        Cmd::Pause { id } => info::pause(&store, &id),
        Cmd::Resume { id } => info::resume(&store, &id),
        Cmd::Spec { bundle } => info::spec(&bundle, cli.rootless.is_some()),
        Cmd::Features => info::features(),
    }
}
