//! Running programs: one CNI plugin (its stdin config, PATH, error object, a timeout) and the host tools
//! `ip` and `iptables`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::config::NetworkList;
use super::error::{CniError, PluginFailure, Result};

/// Builds a plugin's stdin: its config plus `name`, `cniVersion`, `prevResult` (if any) and a `runtimeConfig`
/// holding only the capabilities the plugin declares (`"capabilities": {"portMappings": true}`).
pub(super) fn plugin_stdin(
    net: &NetworkList,
    plugin: &Value,
    prev: Option<&Value>,
    caps: &Map<String, Value>,
) -> Value {
    let mut conf = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("name".into(), Value::String(net.name.clone()));
    conf.insert("cniVersion".into(), Value::String(net.cni_version.clone()));
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    let declared = plugin.get("capabilities").and_then(Value::as_object);
    let rt: Map<String, Value> = caps
        .iter()
        .filter(|(k, _)| declared.and_then(|d| d.get(*k)).and_then(Value::as_bool) == Some(true))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !rt.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rt));
    }
    Value::Object(conf)
}

/// What a plugin process produced.
pub(super) struct PluginOutput {
    pub(super) status: ExitStatus,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
}

/// The plugin's PATH: the caller's, plus the standard sbin/bin dirs (portmap and bridge exec `iptables`).
pub(super) fn child_path() -> String {
    let mut dirs: Vec<String> =
        std::env::var("PATH").unwrap_or_default().split(':').filter(|s| !s.is_empty()).map(String::from).collect();
    for d in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        if !dirs.iter().any(|x| x == d) {
            dirs.push(d.to_string());
        }
    }
    dirs.join(":")
}

/// Runs `path` with exactly `env`, feeding `stdin`, reading stdout and stderr fully; kills it after `timeout`.
pub(super) fn run_with_timeout(
    path: &Path,
    env: &[(&str, String)],
    stdin: Vec<u8>,
    timeout: Duration,
) -> Result<PluginOutput, PluginFailure> {
    let exec_err = |source: io::Error| PluginFailure::Exec { path: path.to_path_buf(), source };
    let spawn = || {
        Command::new(path)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    // Like libcni: a plugin binary being installed right now (ETXTBSY) is retried a few times.
    let mut attempts = 0;
    let mut child = loop {
        match spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 5 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            r => break r.map_err(exec_err)?,
        }
    };
    let deadline = Instant::now() + timeout;
    let mut child_stdin = child.stdin.take().expect("stdin is piped");
    // A broken pipe just means the plugin did not read all of its config; its exit status tells the rest.
    std::thread::spawn(move || {
        let _ = child_stdin.write_all(&stdin);
    });
    let (tx, rx) = mpsc::channel::<(u8, Vec<u8>)>();
    let readers: [(u8, Box<dyn Read + Send>); 2] = [
        (1, Box::new(child.stdout.take().expect("stdout is piped"))),
        (2, Box::new(child.stderr.take().expect("stderr is piped"))),
    ];
    for (which, mut r) in readers {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send((which, buf));
        });
    }
    drop(tx);
    let mut outputs: HashMap<u8, Vec<u8>> = HashMap::new();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(exec_err)? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        // Collect what stderr the plugin wrote, without waiting for grandchildren that might hold the pipe.
        while let Ok((which, buf)) = rx.recv_timeout(Duration::from_millis(200)) {
            outputs.insert(which, buf);
        }
        let stderr = String::from_utf8_lossy(outputs.get(&2).map(Vec::as_slice).unwrap_or_default()).into_owned();
        return Err(PluginFailure::Timeout { timeout, stderr });
    };
    // The plugin has exited; its pipes close unless a process it started still holds them.
    let grace = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
    while outputs.len() < 2 {
        match rx.recv_timeout(grace) {
            Ok((which, buf)) => {
                outputs.insert(which, buf);
            }
            Err(_) => {
                return Err(exec_err(io::Error::other(
                    "the plugin exited but a process it started keeps its stdout/stderr open",
                )));
            }
        }
    }
    Ok(PluginOutput { status, stdout: outputs.remove(&1).unwrap(), stderr: outputs.remove(&2).unwrap() })
}

/// Runs `ip args...`; returns stdout, or the exit status and stderr as a [`CniError::Command`].
pub(super) fn run_ip(args: &[&str]) -> Result<String> {
    run_tool("ip", args)
}

/// Runs `tool args...`; returns stdout, or the exit status and stderr as a [`CniError::Command`]
/// ([`CniError::Spawn`] if it could not be started).
pub(super) fn run_tool(tool: &str, args: &[&str]) -> Result<String> {
    let command = format!("{tool} {}", args.join(" "));
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| CniError::Spawn { command: command.clone(), source })?;
    if !out.status.success() {
        let detail = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        return Err(CniError::Command { command, detail });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::super::attachment::{capability_args, PortMapping};
    use super::super::config::default_network;
    use super::*;
    use serde_json::json;

    #[test]
    fn runtime_config_only_for_declared_capabilities() {
        let net = default_network();
        let pms = vec![PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: None }];
        let caps = capability_args(&pms);
        let bridge = plugin_stdin(&net, &net.plugins[0], None, &caps);
        assert!(bridge.get("runtimeConfig").is_none());
        assert!(bridge.get("prevResult").is_none());
        assert_eq!((bridge["name"].as_str(), bridge["cniVersion"].as_str()), (Some("capsa"), Some("1.0.0")));
        let prev = json!({"cniVersion":"1.0.0","ips":[]});
        let pm = plugin_stdin(&net, &net.plugins[1], Some(&prev), &caps);
        assert_eq!(
            pm["runtimeConfig"],
            json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]})
        );
        assert_eq!(pm["prevResult"], prev);
        let none = plugin_stdin(&net, &net.plugins[1], Some(&prev), &capability_args(&[]));
        assert!(none.get("runtimeConfig").is_none());
        let declared_false = json!({"type":"portmap","capabilities":{"portMappings":false}});
        assert!(plugin_stdin(&net, &declared_false, None, &caps).get("runtimeConfig").is_none());
        let with_ip = PortMapping { host_ip: Some("127.0.0.1".into()), ..pms[0].clone() };
        assert_eq!(serde_json::to_value(&with_ip).unwrap()["hostIP"], "127.0.0.1");
    }
}
