//! [`CniError`], the errors of this module, and [`PluginFailure`], how one plugin invocation failed.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::{MAX_CNI_VERSION, MIN_CNI_VERSION};

/// Errors of this module; messages say what was asked, of which plugin, and what it answered.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// A network configuration could not be parsed or is incomplete.
    #[error("invalid CNI network config {origin}: {reason}")]
    InvalidConfig { origin: String, reason: String },
    /// A network configuration that is not JSON at all.
    #[error("invalid CNI network config {origin}: not valid JSON: {source}")]
    ConfigJson {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    /// The configuration asks for a `cniVersion` the installed plugins cannot speak.
    #[error(
        "CNI network config {origin} has cniVersion {version}, which is not supported: Debian's \
         containernetworking-plugins 1.1.1 accept at most {MAX_CNI_VERSION} (this runtime needs at least \
         {MIN_CNI_VERSION})"
    )]
    UnsupportedVersion { origin: String, version: String },
    /// No configuration file defines the requested network.
    #[error("no CNI network named \"{name}\" in {}; available: {}", conf_dir.display(), list_or_none(available))]
    NetworkNotFound { name: String, conf_dir: PathBuf, available: Vec<String> },
    /// The attachment (container id, interface name, CNI_ARGS, port mappings) is unusable.
    #[error("invalid CNI attachment: {0}")]
    InvalidAttachment(String),
    /// A plugin invocation failed.
    #[error("CNI {command} of plugin \"{plugin}\" (network \"{network}\", container \"{container}\"): {failure}")]
    Plugin { command: &'static str, plugin: String, network: String, container: String, failure: Box<PluginFailure> },
    /// CHECK needs the result cached by ADD.
    #[error(
        "CNI CHECK of network \"{network}\" (container \"{container}\", interface {ifname}): no cached ADD result"
    )]
    NoCachedResult { network: String, container: String, ifname: String },
    /// CHECK does not exist before cniVersion 0.4.0.
    #[error("CNI CHECK of network \"{network}\": cniVersion {version} does not support CHECK (needs 0.4.0 or later)")]
    CheckUnsupported { network: String, version: String },
    /// A host port is bound by some process in the current network namespace.
    #[error("host port {port}/{protocol} is already in use")]
    PortInUse { port: u16, protocol: String },
    /// A helper command (`ip ...`) failed.
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    /// A helper command could not be started (`NotFound`: it is not installed).
    #[error("`{command}` failed: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

/// How a single plugin invocation failed (the part after the plugin's name in [`CniError::Plugin`]).
#[derive(Debug, thiserror::Error)]
pub enum PluginFailure {
    /// The plugin binary is in none of the plugin directories.
    #[error("plugin binary not found in {dirs} (set CNI_PATH or install containernetworking-plugins)")]
    NotFound { dirs: String },
    /// The plugin could not be started or talked to.
    #[error("could not run {}: {source}", path.display())]
    Exec { path: PathBuf, source: io::Error },
    /// The plugin did not finish in time and was killed.
    #[error("no answer within {}s; the plugin was killed{}", timeout.as_secs(), stderr_suffix(stderr))]
    Timeout { timeout: Duration, stderr: String },
    /// The plugin exited non-zero; `msg`/`details`/`code` come from its JSON error on stdout.
    #[error("{msg}{}{}{}", details_suffix(details), code_suffix(*code), stderr_suffix(stderr))]
    Failed { code: Option<u64>, msg: String, details: String, stderr: String },
    /// The plugin exited zero but its output is not a valid result.
    #[error("invalid result ({reason}); stdout: {stdout:?}{}", stderr_suffix(stderr))]
    InvalidOutput { reason: String, stdout: String, stderr: String },
    /// The plugin's configuration inside the list is broken.
    #[error("{0}")]
    BadConfig(String),
}

impl PluginFailure {
    /// How a plugin that exited with `status` (not success) failed, from its stdout (a CNI error object,
    /// ideally: `code`, `msg`, `details`) and its stderr. Never fails: any stdout gives a [`Failed`].
    ///
    /// [`Failed`]: PluginFailure::Failed
    pub fn from_failed_output(stdout: &[u8], status: std::process::ExitStatus, stderr: String) -> PluginFailure {
        #[derive(serde::Deserialize)]
        struct ErrObj {
            code: Option<u64>,
            msg: Option<String>,
            details: Option<String>,
        }
        match serde_json::from_slice::<ErrObj>(stdout) {
            Ok(e) if e.msg.is_some() || e.code.is_some() => PluginFailure::Failed {
                code: e.code,
                msg: e.msg.filter(|m| !m.is_empty()).unwrap_or_else(|| format!("plugin failed ({status})")),
                details: e.details.unwrap_or_default(),
                stderr,
            },
            _ => {
                let text = String::from_utf8_lossy(stdout).trim().to_string();
                let msg =
                    if text.is_empty() { format!("plugin failed ({status})") } else { format!("{status}: {text}") };
                PluginFailure::Failed { code: None, msg, details: String::new(), stderr }
            }
        }
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

fn details_suffix(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(": {d}")
    }
}

fn code_suffix(code: Option<u64>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}

fn stderr_suffix(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!("; stderr: {s}")
    }
}

/// Result alias of this module.
pub type Result<T, E = CniError> = std::result::Result<T, E>;

pub(super) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> CniError {
    let context = context.into();
    move |source| CniError::Io { context, source }
}
