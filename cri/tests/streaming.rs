//! Exec, attach and port-forward through the streaming server, driven by crictl
//! v1.26.1 (SPDY) in the test's network namespace: `exec -i` with stdin, `exec -it`
//! on a pty (run under `script` so crictl has a terminal), `attach` to a container's
//! stdio, `port-forward` with an HTTP request through the forwarded port, and a client
//! that leaves in the middle of an exec (nothing keeps running).

mod common;

use common::{root_or_skip, run, wait_until, Cri};
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

fn pod_with(c: &Cri, name: &str, containers: &[serde_json::Value]) -> (String, Vec<String>) {
    let pod_json = c.file(&format!("{name}-pod.json"), &c.pod_config(name));
    let pod = c.ok(&["runp", &pod_json]).trim().to_owned();
    let mut ids = Vec::new();
    for (i, cfg) in containers.iter().enumerate() {
        let f = c.file(&format!("{name}-c{i}.json"), cfg);
        let id = c.ok(&["create", &pod, &f, &pod_json]).trim().to_owned();
        c.ok(&["start", &id]);
        ids.push(id);
    }
    (pod, ids)
}

#[test]
fn exec_attach_and_port_forward_through_crictl() {
    if !root_or_skip() {
        return;
    }
    let mut c = Cri::new(true, true);
    c.start();
    let addr = c.registry.as_ref().unwrap().addr.clone();
    c.ok(&["pull", &format!("{addr}/busybox:latest")]);
    let web = c.container_config("web", "echo hi > /tmp/index.html; exec httpd -f -p 8080 -h /tmp");
    let mut cat = c.container_config("cat", "cat");
    cat["stdin"] = serde_json::json!(true);
    cat["stdin_once"] = serde_json::json!(true);
    let (pod, ids) = pod_with(&c, "s", &[web, cat]);
    let (web_id, cat_id) = (ids[0].clone(), ids[1].clone());

    // exec -i: stdin goes in, stdout comes back, the exit code too.
    let mut ex = c.crictl_cmd(&["exec", "-i", &web_id, "sh", "-c", "tr a-z A-Z; exit 4"]);
    let mut child = ex.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"piped through\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "PIPED THROUGH\n", "{o:?}");
    // crictl 1.26 reports the code in its error (and exits 1).
    assert!(String::from_utf8_lossy(&o.stderr).contains("command terminated with exit code 4"), "{o:?}");

    // exec -it: a terminal of its own (crictl under `script` has one).
    let ep = format!("unix://{}", c.socket().display());
    let line = format!(
        "{} --timeout 120s --runtime-endpoint {ep} exec -it {web_id} sh -c 'tty; echo term=$TERM'",
        common::crictl_bin().display()
    );
    let o = run(c.ns.command(std::path::Path::new("script"), &["-qec", &line, "/dev/null"]).stdin(Stdio::null()));
    assert!(o.stdout.contains("/dev/pts/") && o.stdout.contains("term=xterm"), "{o:?}");

    // attach: what the container prints comes back; with stdin_once, closing our
    // stdin closes the container's (cat exits 0).
    let mut at = c.crictl_cmd(&["attach", "-i", &cat_id]);
    let mut child = at.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let w = stdin.write_all(b"echoed by cat\n");
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(w.is_ok(), "crictl attach ended early: {o:?}\n{}", c.daemon_log());
    assert!(String::from_utf8_lossy(&o.stdout).contains("echoed by cat"), "{o:?}");
    let ok = wait_until(Duration::from_secs(20), || {
        let v = c.json(&["inspect", "-o", "json", &cat_id]);
        v["status"]["state"] == "CONTAINER_EXITED" && v["status"]["exitCode"] == 0
    });
    assert!(ok, "cat did not exit after its stdin closed");

    // port-forward: an HTTP request through the forwarded port.
    let mut pf = c
        .crictl_cmd(&["port-forward", &pod, "18099:8080"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut body = String::new();
    let ok = wait_until(Duration::from_secs(30), || {
        body = c.ns.run("curl", &["-s", "-m", "5", "http://127.0.0.1:18099/"]).stdout;
        body.contains("hi")
    });
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(ok, "no answer through port-forward: {body:?}");

    // A client that leaves in the middle of an exec: the command does not keep running.
    let mut ex = c.crictl_cmd(&["exec", &web_id, "sh", "-c", "while true; do echo tick; sleep 0.2; done"]);
    let mut child = ex.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: kill(2) of our own child (crictl, via nsenter's exec).
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let gone = wait_until(Duration::from_secs(20), || {
        let ps = c.ok(&["exec", "-s", &web_id, "ps", "-o", "args"]);
        !ps.contains("while true")
    });
    assert!(gone, "the exec'd loop still runs: {}", c.ok(&["exec", "-s", &web_id, "ps", "-o", "args"]));
}
