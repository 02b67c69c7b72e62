//! critest's Networking and Streaming specs (pkg/validate/{networking,streaming,
//! streaming_linux}.go), ported to crictl (its SPDY client for exec, attach and
//! port-forward). The web server is the nginx stand-in image (busybox httpd).

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use super::ctx::{ensure, Ctx, R};
use crate::cricmp::{self, wait_until, Out};

fn curl(c: &Ctx, url: &str) -> Out {
    cricmp::run(&mut c.e.ns.command("curl", &["-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", url]))
}

/// critest's checkMainPage: a 200 from `url` within a minute.
fn expect_page(c: &Ctx, url: &str) -> R {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(60), || {
        last = curl(c, url).stdout;
        last == "200"
    });
    ensure!(ok, "GET {url}: {last:?}");
    Ok(())
}

pub fn dns_config(c: &mut Ctx) -> R {
    let cfg = c.pod_config(
        "dns",
        json!({"dns_config": {"servers": ["10.10.10.10"], "searches": ["google.com"], "options": ["ndots:8"]}}),
    );
    let (pod, p) = c.run_pod(&cfg)?;
    let id = c.default_container(&pod, &p)?;
    c.start(&id)?;
    let out = c.exec_ok(&id, &["cat", "/etc/resolv.conf"])?;
    for want in ["nameserver 10.10.10.10", "search google.com", "options ndots:8"] {
        ensure!(out.contains(want), "no {want:?} in {out:?}");
    }
    Ok(())
}

pub fn hostname(c: &mut Ctx) -> R {
    let cfg = c.pod_config("hostname", json!({"hostname": "test-hostname"}));
    let (pod, p) = c.run_pod(&cfg)?;
    let id = c.default_container(&pod, &p)?;
    c.start(&id)?;
    let out = c.exec_ok(&id, &["hostname"])?;
    ensure!(out.trim() == "test-hostname", "{out:?}");
    Ok(())
}

/// A pod with `mappings`, running the web server; (pod id, pod IP).
fn web_pod(c: &mut Ctx, mappings: serde_json::Value, extra: serde_json::Value, port: u16) -> R<(String, String)> {
    let mut extra_pod = json!({"port_mappings": mappings});
    super::ctx::merge(&mut extra_pod, extra);
    let cfg = c.pod_config("web", extra_pod);
    let (pod, p) = c.run_pod(&cfg)?;
    let mut wcfg = c.container_config("web", &c.image("webserver:1"), &[], json!({}));
    wcfg["envs"] = json!([{"key": "PORT", "value": port.to_string()}]);
    let id = c.create(&pod, &p, &wcfg)?;
    c.start(&id)?;
    let ip = c.json(&["inspectp", "-o", "json", &pod])?["status"]["network"]["ip"].as_str().unwrap_or("").to_owned();
    Ok((pod, ip))
}

pub fn port_container_only(c: &mut Ctx) -> R {
    let (_, ip) = web_pod(c, json!([{"container_port": 80}]), json!({}), 80)?;
    ensure!(!ip.is_empty(), "no pod IP");
    expect_page(c, &format!("http://{ip}:80/"))
}

pub fn port_host_and_container(c: &mut Ctx) -> R {
    web_pod(c, json!([{"container_port": 80, "host_port": 8000}]), json!({}), 80)?;
    expect_page(c, "http://127.0.0.1:8000/")
}

// ---- Streaming ---------------------------------------------------------------------

pub fn exec_plain(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let id = c.default_container(&pod, &p)?;
    c.start(&id)?;
    let o = c.crictl(&["exec", &id, "echo", "hello"]);
    ensure!(o.code == 0 && o.stdout == "hello\n" && o.stderr.is_empty(), "{o:?}");
    Ok(())
}

pub fn exec_tty_stdin(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let id = c.default_container(&pod, &p)?;
    c.start(&id)?;
    let cmd = c.e.crictl_command(&["exec", "-it", &id, "echo", "hello"]);
    let mut line = vec![cmd.get_program().to_string_lossy().into_owned()];
    line.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdin = child.stdin.take();
    let (code, out) = wait_output(child, Duration::from_secs(30));
    drop(stdin);
    ensure!(code == 0 && out.contains("hello\r\n"), "rc={code} out={out:?}");
    Ok(())
}

/// Waits for `child` (kills it after `timeout`); (exit code, stdout).
fn wait_output(mut child: std::process::Child, timeout: Duration) -> (i32, String) {
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let done = wait_until(timeout, || matches!(child.try_wait(), Ok(Some(_))));
    if !done {
        let _ = child.kill();
    }
    let code = child.wait().map(|s| s.code().unwrap_or(-1)).unwrap_or(-1);
    (code, reader.join().unwrap_or_default())
}

pub fn attach(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let cfg = c.container_config(
        "attach",
        &c.busybox(),
        &["/bin/sh"],
        json!({"stdin": true, "stdin_once": true, "tty": false}),
    );
    let id = c.create(&pod, &p, &cfg)?;
    c.start_running(&id)?;
    let mut child =
        c.e.crictl_command(&["attach", "-i", &id])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo hello\n").map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(3));
    drop(stdin);
    let (code, out) = wait_output(child, Duration::from_secs(30));
    ensure!(out == "hello\n", "rc={code} stdout={out:?}");
    Ok(())
}

/// crictl port-forward POD LOCAL:REMOTE in the background; a GET through it.
fn forward(c: &Ctx, pod: &str, local: u16, remote: u16) -> R {
    let mut pf =
        c.e.crictl_command(&["port-forward", pod, &format!("{local}:{remote}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
    let r = expect_page(c, &format!("http://127.0.0.1:{local}/"));
    let _ = pf.kill();
    let mut err = String::new();
    if r.is_err() {
        let _ = pf.stderr.take().unwrap().read_to_string(&mut err);
    }
    let _ = pf.wait();
    r.map_err(|e| format!("{e}; crictl port-forward: {err}"))
}

pub fn port_forward(c: &mut Ctx) -> R {
    let (pod, _) = web_pod(c, json!([{"container_port": 80}]), json!({}), 80)?;
    forward(c, &pod, 12000, 80)
}

pub fn port_forward_host_network(c: &mut Ctx) -> R {
    let (pod, _) = web_pod(
        c,
        json!([{"container_port": 12002}]),
        json!({"linux": {"security_context": {"namespace_options": {"network": 2}}}}),
        12002,
    )?;
    expect_page(c, "http://127.0.0.1:12002/")?;
    forward(c, &pod, 12003, 12002)
}
