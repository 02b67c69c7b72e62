//! `/etc/capsa/cri.toml`: the daemon's configuration. Every key has a default;
//! `cri/cri.toml` (printed by `capsa-cri --print-config`) documents each one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML, or has unknown keys or wrong types.
    #[error("{origin}: {source}")]
    Parse {
        /// The file (or other origin) the text came from.
        origin: String,
        /// The parser's error.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The values parse but cannot work ([`Config::check`]).
    #[error("{origin}: {msg}")]
    Invalid {
        /// The file the values came from.
        origin: String,
        /// What is wrong.
        msg: String,
    },
}

/// The documented default configuration file.
pub const DEFAULT_TOML: &str = include_str!("../cri.toml");

/// Where the configuration is read from when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/capsa/cri.toml";

/// The daemon's configuration (see `cri.toml` for each key).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub socket_group: String,
    pub state_dir: PathBuf,
    pub store_dir: PathBuf,
    pub runtime_root: PathBuf,
    pub runtime_path: String,
    pub shim_path: String,
    pub cgroup_driver: String,
    pub default_seccomp_profile: String,
    pub restrict_oom_score_adj: bool,
    pub explain: String,
    pub cni: CniConfig,
    pub registry: RegistryConfig,
    pub stream: StreamConfig,
    pub log: LogConfig,
}

/// `[cni]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CniConfig {
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
    pub cache_dir: PathBuf,
}

/// `[registry]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    pub insecure: Vec<String>,
    pub mirrors: BTreeMap<String, Vec<String>>,
}

/// `[stream]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    pub address: String,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "/run/capsa/cri.sock".into(),
            socket_group: String::new(),
            state_dir: "/var/lib/capsa/cri".into(),
            store_dir: "/var/lib/capsa".into(),
            runtime_root: "/run/capsa".into(),
            runtime_path: String::new(),
            shim_path: String::new(),
            cgroup_driver: "cgroupfs".into(),
            default_seccomp_profile: "unconfined".into(),
            restrict_oom_score_adj: false,
            explain: String::new(),
            cni: CniConfig::default(),
            registry: RegistryConfig::default(),
            stream: StreamConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            conf_dir: "/etc/cni/net.d".into(),
            bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            cache_dir: "/var/lib/cni".into(),
        }
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig { address: "127.0.0.1:0".into() }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: "text".into() }
    }
}

impl Config {
    /// Parses a configuration file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let c: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { origin: origin.to_owned(), source: Box::new(e) })?;
        c.check().map_err(|msg| ConfigError::Invalid { origin: origin.to_owned(), msg })?;
        Ok(c)
    }

    /// Reads `path`; a missing file at the default path means the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (p, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        match std::fs::read_to_string(&p) {
            Ok(t) => Config::parse(&t, &p.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read { path: p, source }),
        }
    }

    /// Values that parse but cannot work.
    pub fn check(&self) -> Result<(), String> {
        match self.cgroup_driver.as_str() {
            "cgroupfs" => {}
            "systemd" => {
                return Err("cgroup_driver = \"systemd\" is not implemented: run kubelet with \
                            --cgroup-driver=cgroupfs and set cgroup_driver = \"cgroupfs\""
                    .into())
            }
            o => return Err(format!("cgroup_driver = {o:?}: expected \"cgroupfs\"")),
        }
        match self.log.format.as_str() {
            "text" | "json" => {}
            o => return Err(format!("log.format = {o:?}: expected \"text\" or \"json\"")),
        }
        parse_level(&self.log.level)?;
        if !self.explain.is_empty() {
            let (mode, path) = self.explain.split_once(':').unwrap_or(("", ""));
            if !matches!(mode, "text" | "json") || !path.starts_with('/') {
                return Err(format!(
                    "explain = {:?}: expected \"text:/ABSOLUTE/PATH\" or \"json:/ABSOLUTE/PATH\"",
                    self.explain
                ));
            }
        }
        if self.listen_path().as_os_str().is_empty() {
            return Err("listen is empty".into());
        }
        for (k, v) in
            [("state_dir", &self.state_dir), ("store_dir", &self.store_dir), ("runtime_root", &self.runtime_root)]
        {
            if !v.is_absolute() {
                return Err(format!("{k} = {:?}: must be an absolute path", v.display()));
            }
        }
        if self.stream.address.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "stream.address = {:?}: expected IP:PORT (port 0: any free port)",
                self.stream.address
            ));
        }
        crate::seccomp::check_default(&self.default_seccomp_profile)?;
        Ok(())
    }

    /// The socket path of `listen` (without `unix://`).
    pub fn listen_path(&self) -> PathBuf {
        PathBuf::from(self.listen.strip_prefix("unix://").unwrap_or(&self.listen))
    }
}

/// The tracing level of a `log.level` value.
pub fn parse_level(s: &str) -> Result<tracing::Level, String> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Ok(tracing::Level::ERROR),
        "warn" | "warning" => Ok(tracing::Level::WARN),
        "info" => Ok(tracing::Level::INFO),
        "debug" => Ok(tracing::Level::DEBUG),
        "trace" => Ok(tracing::Level::TRACE),
        o => Err(format!("log.level = {o:?}: expected error, warn, info, debug or trace")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_file_is_the_defaults() {
        assert_eq!(Config::parse(DEFAULT_TOML, "cri.toml").unwrap(), Config::default());
        assert_eq!(Config::parse("", "empty").unwrap(), Config::default());
    }

    #[test]
    fn values_and_errors() {
        let c = Config::parse(
            "listen = \"unix:///tmp/x.sock\"\n[registry.mirrors]\n\"docker.io\" = [\"http://127.0.0.1:5000\"]\n[log]\nformat = \"json\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.listen_path(), PathBuf::from("/tmp/x.sock"));
        assert_eq!(c.registry.mirrors["docker.io"], vec!["http://127.0.0.1:5000".to_string()]);
        assert_eq!(c.log.format, "json");
        let e = Config::parse("cgroup_driver = \"systemd\"", "t").unwrap_err();
        assert!(matches!(&e, ConfigError::Invalid { msg, .. } if msg.contains("not implemented")), "{e}");
        assert!(e.to_string().starts_with("t: cgroup_driver"), "{e}");
        let e = Config::parse("bogus = 1", "t").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }) && e.to_string().contains("bogus"), "{e}");
        assert!(Config::parse("[log]\nlevel = \"loud\"", "t").is_err());
        assert!(Config::parse("state_dir = \"rel\"", "t").is_err());
        assert!(Config::parse("[stream]\naddress = \"nowhere\"", "t").is_err());
        assert!(Config::parse("default_seccomp_profile = \"weird\"", "t").is_err());
    }
}
