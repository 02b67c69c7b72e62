//! Command line of `capsa-shim`.

use std::path::{Path, PathBuf};

pub const USAGE: &str = "\
usage: capsa-shim --id ID --bundle DIR --state-dir DIR --runtime PATH [OPTIONS]
       capsa-shim --pause    (pid 1 of a pod's shared pid namespace: reaps, exits on SIGTERM)

Starts a container through a runc-compatible runtime and stays with it: holds its stdio,
writes its log (CRI format), records its exit, serves attach, restarts it on request.
Daemonizes; prints the container's pid once it is started, or an error (exit 1).

  --id ID                 container id (passed to the runtime)
  --bundle DIR            OCI bundle
  --state-dir DIR         the shim's directory (created if missing): shim.json, exit, attach, ...
  --runtime PATH          runtime binary (capsa, runc, crun)
  --root DIR              runtime state root (runtime --root)
  --log-path FILE         container log (default STATE_DIR/container.log)
  --log-max-size BYTES    rotate the log to FILE.1 past this size (default 0: no cap)
  --terminal              the process has a terminal: receive the pty over --console-socket
  --stdin                 keep the container's stdin open for attach (default /dev/null)
  --restart POLICY        no (default) | on-failure[:N] | always
  --no-start              first run: only `runtime create`; the caller runs `runtime start ID`
                          (a pod starts its containers once its network is up). Restarts start.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    No,
    /// Restart while the exit code is non-zero, at most N times (None: unlimited).
    OnFailure(Option<u32>),
    Always,
}

impl Restart {
    pub fn parse(s: &str) -> Result<Restart, String> {
        match s {
            "no" => Ok(Restart::No),
            "always" => Ok(Restart::Always),
            "on-failure" => Ok(Restart::OnFailure(None)),
            _ => match s.strip_prefix("on-failure:") {
                Some(n) => n
                    .parse()
                    .map(|n| Restart::OnFailure(Some(n)))
                    .map_err(|_| format!("--restart {s}: the retry count must be a number")),
                None => Err(format!("--restart {s}: expected no, on-failure[:N] or always")),
            },
        }
    }

    /// Should a run that ended with `exit_code` be followed by restart number `restarts + 1`?
    pub fn wants(self, exit_code: i32, restarts: u32) -> bool {
        match self {
            Restart::No => false,
            Restart::Always => true,
            Restart::OnFailure(max) => exit_code != 0 && !matches!(max, Some(m) if restarts >= m),
        }
    }
}

/// Delay before restart number `consecutive + 1`: 100 ms doubling, capped at 10 s.
pub fn backoff_ms(consecutive: u32) -> u64 {
    (100u64 << consecutive.min(7)).min(10_000)
}

#[derive(Debug, Clone)]
pub struct Config {
    pub id: String,
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    pub runtime: PathBuf,
    pub root: Option<PathBuf>,
    pub log_path: PathBuf,
    pub log_max_size: u64,
    pub terminal: bool,
    pub stdin: bool,
    pub restart: Restart,
    /// Leave the first run created (the caller starts it).
    pub no_start: bool,
}

fn absolute(p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_else(|_| "/".into()).join(p)
    }
}

impl Config {
    /// Ok(None) for --help.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Config>, String> {
        let (mut id, mut bundle, mut state, mut runtime, mut root, mut log, mut max) =
            (None, None, None, None, None, None, 0u64);
        let (mut terminal, mut stdin, mut restart, mut no_start) = (false, false, Restart::No, false);
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let (k, inline) = match a.split_once('=') {
                Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
                _ => (a.clone(), None),
            };
            match k.as_str() {
                "-h" | "--help" => return Ok(None),
                "--terminal" | "-t" => terminal = true,
                "--stdin" | "-i" => stdin = true,
                "--no-start" => no_start = true,
                "--id" | "--bundle" | "--state-dir" | "--runtime" | "--root" | "--log-path" | "--log-max-size"
                | "--restart" => {
                    let v = match inline.or_else(|| it.next()) {
                        Some(v) => v,
                        None => return Err(format!("{k} needs a value")),
                    };
                    match k.as_str() {
                        "--id" => id = Some(v),
                        "--bundle" => bundle = Some(absolute(&v)),
                        "--state-dir" => state = Some(absolute(&v)),
                        "--runtime" => runtime = Some(if v.contains('/') { absolute(&v) } else { PathBuf::from(v) }),
                        "--root" => root = Some(absolute(&v)),
                        "--log-path" => log = Some(absolute(&v)),
                        "--log-max-size" => {
                            max = v.parse().map_err(|_| format!("--log-max-size {v}: not a number of bytes"))?
                        }
                        _ => restart = Restart::parse(&v)?,
                    }
                }
                _ => return Err(format!("unknown argument {a}")),
            }
        }
        let id: String = id.ok_or("--id is required")?;
        if id.is_empty() || id.contains('/') || id.starts_with('-') {
            return Err(format!("--id {id}: not a valid container id"));
        }
        let state_dir: PathBuf = state.ok_or("--state-dir is required")?;
        Ok(Some(Config {
            id,
            bundle: bundle.ok_or("--bundle is required")?,
            log_path: log.unwrap_or_else(|| state_dir.join("container.log")),
            state_dir,
            runtime: runtime.ok_or("--runtime is required")?,
            root,
            log_max_size: max,
            terminal,
            stdin,
            restart,
            no_start,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<Config>, String> {
        Config::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn args() {
        let c = parse("--id c1 --bundle /b --state-dir /s --runtime capsa --restart=on-failure:3 --terminal")
            .unwrap()
            .unwrap();
        assert_eq!(c.id, "c1");
        assert_eq!(c.log_path, PathBuf::from("/s/container.log"));
        assert_eq!(c.restart, Restart::OnFailure(Some(3)));
        assert!(c.terminal && !c.stdin);
        assert!(parse("--id c1 --bundle /b --runtime x").unwrap_err().contains("--state-dir"));
        assert!(parse("--bogus").is_err());
        assert!(parse("--help").unwrap().is_none());
        assert!(Restart::parse("on-failure:x").is_err());
        assert!(Restart::parse("sometimes").is_err());
    }

    #[test]
    fn policy_and_backoff() {
        assert!(!Restart::No.wants(1, 0));
        assert!(Restart::Always.wants(0, 100));
        assert!(Restart::OnFailure(None).wants(1, 1000));
        assert!(!Restart::OnFailure(None).wants(0, 0));
        assert!(Restart::OnFailure(Some(2)).wants(1, 1));
        assert!(!Restart::OnFailure(Some(2)).wants(1, 2));
        assert_eq!(backoff_ms(0), 100);
        assert_eq!(backoff_ms(1), 200);
        assert_eq!(backoff_ms(6), 6400);
        assert_eq!(backoff_ms(7), 10_000);
        assert_eq!(backoff_ms(40), 10_000);
    }
}
