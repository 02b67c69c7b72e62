//! The streaming server driven by a Go client built on moby/spdystream (the SPDY connection and
//! framer client-go uses), creating streams in client-go's order and reading the status as
//! client-go does: see tests/goclient/main.go; and over websocket with gorilla/websocket as
//! client-go's v5 executor does (tests/goclient/ws.go). Needs `go` and Debian's
//! golang-github-docker-spdystream-dev and golang-github-gorilla-websocket-dev; without them the
//! tests skip, except under CI=true, where they fail.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;

use capsa_stream::{AttachRequest, TermSize};
use common::*;
use tokio::io::AsyncWriteExt;

/// Builds the Go client once; `None` (skip) when Go or its packages are missing outside CI.
fn goclient() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        go_build(
            "goclient",
            &[
                ("github.com/docker/spdystream/spdy", "golang-github-docker-spdystream-dev"),
                ("github.com/gorilla/websocket", "golang-github-gorilla-websocket-dev"),
            ],
        )
    })
    .clone()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(args: &[&str], stdin: &[u8]) -> Run {
    let bin = goclient().expect("checked by the caller");
    let mut child = tokio::process::Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    tokio::spawn(async move {
        let _ = input.write_all(&data).await;
    });
    let out = child.wait_with_output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

macro_rules! need_go {
    () => {
        if goclient().is_none() {
            return;
        }
    };
}

#[tokio::test]
async fn exec_v4_streams_output_and_reports_the_exit_code() {
    need_go!();
    let (server, stats) = start().await;
    let url = server.exec_url(exec_req(&["sh", "-c", "echo out; echo err >&2; exit 3"], false, false));
    let r = run(&["exec", &url], b"").await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.stdout, "out\n");
    assert!(r.stderr.contains("protocol: \"v4.channel.k8s.io\""), "{}", r.stderr);
    assert!(r.stderr.contains("err\n"), "{}", r.stderr);
    assert!(
        r.stderr.contains("status: Failure NonZeroExitCode command terminated with non-zero exit code: error executing command [sh -c echo out; echo err >&2; exit 3], exit code 3"),
        "{}",
        r.stderr
    );
    assert_eq!(stats.execs_done.load(Ordering::SeqCst), 1);

    let url = server.exec_url(exec_req(&["true"], false, false));
    let r = run(&["exec", &url], b"").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("status: Success"), "{}", r.stderr);
}

#[tokio::test]
async fn exec_stdin_eof_reaches_the_command_and_large_data_flows_both_ways() {
    need_go!();
    let (server, _) = start().await;
    let input: Vec<u8> = (0..2_000_000u32).map(|i| b'a' + (i % 26) as u8).chain(*b"\n").collect();
    let url = server.exec_url(exec_req(&["sh", "-c", "cat; echo done"], true, false));
    let r = run(&["exec", &url, "-stdin"], &input).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.len(), input.len() + 5);
    assert!(r.stdout.as_bytes().starts_with(&input));
    assert!(r.stdout.ends_with("done\n"));
}

#[tokio::test]
async fn exec_with_a_tty_gets_the_terminal_size_and_input() {
    need_go!();
    let (server, stats) = start().await;
    let url = server.exec_url(exec_req(&["sh", "-c", "read x; stty size; echo got:$x"], true, true));
    let r = run(&["exec", &url, "-stdin", "-tty", "-resize", "100x40"], b"hello\n").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("40 100\r\n"), "{:?}", r.stdout);
    assert!(r.stdout.contains("got:hello\r\n"), "{:?}", r.stdout);
    assert_eq!(*stats.resizes.lock().unwrap(), vec![TermSize { width: 100, height: 40 }]);
}

#[tokio::test]
async fn older_protocols_get_text_status_or_none() {
    need_go!();
    let (server, _) = start().await;
    for (proto, status) in [
        ("v3.channel.k8s.io", "status: text command terminated with non-zero exit code: error executing command [sh -c echo hi; exit 2], exit code 2"),
        ("v2.channel.k8s.io", "status: text command terminated with non-zero exit code"),
        // v1 resets the error stream once all streams exist: no status at all.
        ("channel.k8s.io", "status: none"),
    ] {
        let url = server.exec_url(exec_req(&["sh", "-c", "echo hi; exit 2"], false, false));
        let r = run(&["exec", &url, "-protocols", proto], b"").await;
        assert_eq!(r.stdout, "hi\n", "{proto}: {}", r.stderr);
        assert!(r.stderr.contains(&format!("protocol: \"{proto}\"")), "{proto}: {}", r.stderr);
        assert!(r.stderr.contains(status), "{proto}: {}", r.stderr);
    }
}

#[tokio::test]
async fn a_backend_error_is_an_internal_error_status() {
    need_go!();
    let (server, _) = start().await;
    let mut req = exec_req(&["true"], false, false);
    req.container_id = "nope".into();
    let r = run(&["exec", &server.exec_url(req)], b"").await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(
            "status: Failure InternalError Internal error occurred: error executing command in container: container \"nope\" not found"
        ),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn urls_are_single_use_and_protocols_are_negotiated() {
    need_go!();
    let (server, _) = start().await;
    let url = server.exec_url(exec_req(&["true"], false, false));
    assert_eq!(run(&["exec", &url], b"").await.code, 0);
    let again = run(&["exec", &url], b"").await;
    assert_eq!(again.code, 126);
    assert!(again.stderr.contains("upgrade refused: 404 404 page not found"), "{}", again.stderr);

    let url = server.exec_url(exec_req(&["true"], false, false));
    let r = run(&["exec", &url, "-protocols", "v9.channel.k8s.io"], b"").await;
    assert_eq!(r.code, 126);
    assert!(r.stderr.contains("upgrade refused: 403 unable to upgrade: unable to negotiate protocol"), "{}", r.stderr);
    // An exec token is no attach token.
    let url = server.exec_url(exec_req(&["true"], false, false)).replace("/exec/", "/attach/");
    assert!(run(&["exec", &url], b"").await.stderr.contains("404"));
}

#[tokio::test]
async fn attach_carries_stdin_and_stdout() {
    need_go!();
    let (server, stats) = start().await;
    let req = AttachRequest { container_id: "c1".into(), tty: false, stdin: true, stdout: true, stderr: true };
    let r = run(&["exec", &server.attach_url(req), "-stdin"], b"hello\n").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "attached\nHELLO\n");
    assert_eq!(stats.attaches_done.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn port_forward_carries_concurrent_connections() {
    need_go!();
    let (server, _) = start().await;
    let target = line_echo_server().await;
    let url = server.port_forward_url(SANDBOX.into(), vec![target.port() as i32]);
    let r = run(&["portforward", &url, "-port", &target.port().to_string(), "-count", "8"], b"").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("protocol: \"portforward.k8s.io\""), "{}", r.stderr);
    for i in 0..8 {
        assert!(r.stdout.contains(&format!("reply {i}: echo: request {i}\n")), "{}", r.stdout);
    }
}

#[tokio::test]
async fn port_forward_failures_come_back_on_the_error_stream() {
    need_go!();
    let (server, _) = start().await;
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = server.port_forward_url(SANDBOX.into(), vec![]);
    let r = run(&["portforward", &url, "-port", &port.to_string()], b"").await;
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains(&format!("error 0: error forwarding port {port} to pod {SANDBOX}, uid : ")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("refused"), "{}", r.stdout);
}

#[tokio::test]
async fn a_client_leaving_mid_exec_ends_the_backend_call() {
    need_go!();
    let (server, stats) = start().await;
    // `cat` ends only when its stdin does: the client never closes stdin, it is killed.
    let url = server.exec_url(exec_req(&["cat"], true, false));
    let mut child = tokio::process::Command::new(goclient().unwrap())
        .args(["exec", &url, "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"ping\n").await.unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut line = [0u8; 5];
    tokio::io::AsyncReadExt::read_exact(&mut out, &mut line).await.unwrap();
    assert_eq!(&line, b"ping\n");
    child.kill().await.unwrap();
    // Hang guard only: the call ends within milliseconds once the client is gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stats.execs_done.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the exec did not end after the client left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(input);

    // An attach with no stdin and no output is dropped when its client leaves.
    let req = AttachRequest { container_id: "c1".into(), tty: false, stdin: false, stdout: true, stderr: false };
    let mut child = tokio::process::Command::new(goclient().unwrap())
        .args(["exec", &server.attach_url(req), "-stderr=false"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut banner = [0u8; 9];
    tokio::io::AsyncReadExt::read_exact(&mut out, &mut banner).await.unwrap();
    child.kill().await.unwrap();
    // Hang guard only: the call ends within milliseconds once the client is gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stats.attaches_done.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the attach did not end after the client left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn websocket_v5_exec_with_stdin_close_and_exit_code() {
    need_go!();
    let (server, _) = start().await;
    let url = server.exec_url(exec_req(&["sh", "-c", "cat; echo done >&2; exit 4"], true, false));
    let r = run(&["ws-exec", &url, "-stdin"], b"abc\n").await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(r.stdout, "abc\n");
    assert!(r.stderr.contains("protocol: \"v5.channel.k8s.io\""), "{}", r.stderr);
    assert!(r.stderr.contains("done\n"), "{}", r.stderr);
    assert!(r.stderr.contains("pong: yes"), "{}", r.stderr);
    assert!(r.stderr.contains("first channel: 1"), "the empty hello on stdout comes first: {}", r.stderr);
    assert!(r.stderr.contains("status: Failure NonZeroExitCode"), "{}", r.stderr);
}

#[tokio::test]
async fn websocket_older_protocols_and_base64() {
    need_go!();
    let (server, _) = start().await;
    let url = server.exec_url(exec_req(&["sh", "-c", "echo hi"], false, false));
    let r = run(&["ws-exec", &url, "-protocols", "v4.base64.channel.k8s.io"], b"").await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "hi\n"), "{}", r.stderr);
    assert!(r.stderr.contains("status: Success"), "{}", r.stderr);

    let url = server.exec_url(exec_req(&["sh", "-c", "echo hi; exit 2"], false, false));
    let r = run(&["ws-exec", &url, "-protocols", "channel.k8s.io"], b"").await;
    assert_eq!(r.stdout, "hi\n", "{}", r.stderr);
    assert!(r.stderr.contains("status: text command terminated with non-zero exit code"), "{}", r.stderr);

    let url = server.exec_url(exec_req(&["true"], false, false));
    let r = run(&["ws-exec", &url, "-protocols", "v9.channel.k8s.io"], b"").await;
    assert_eq!(r.code, 126);
    assert!(r.stderr.contains("upgrade refused: 403"), "{}", r.stderr);
}

#[tokio::test]
async fn websocket_tty_exec_gets_its_size() {
    need_go!();
    let (server, _) = start().await;
    let url = server.exec_url(exec_req(&["sh", "-c", "read x; stty size"], true, true));
    let r = run(&["ws-exec", &url, "-stdin", "-tty", "-resize", "90x30"], b"x\n").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("30 90\r\n"), "{:?}", r.stdout);
}

#[tokio::test]
async fn websocket_port_forward_of_several_ports() {
    need_go!();
    let (server, _) = start().await;
    let (a, b) = (line_echo_server().await.port(), line_echo_server().await.port());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for proto in ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"] {
        let url = format!("{}?port={a},{b}", server.port_forward_url(SANDBOX.into(), vec![]));
        let r = run(&["ws-portforward", &url, "-protocols", proto], b"").await;
        assert_eq!(r.code, 0, "{proto}: {}", r.stderr);
        assert!(r.stdout.contains(&format!("reply {a}: echo: request {a}\n")), "{proto}: {}", r.stdout);
        assert!(r.stdout.contains(&format!("reply {b}: echo: request {b}\n")), "{proto}: {}", r.stdout);
    }
    // The CRI request's ports serve when the query names none; failures come on the error channel.
    let url = server.port_forward_url(SANDBOX.into(), vec![closed as i32]);
    let r = run(&["ws-portforward", &url], b"").await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("error {closed}: error forwarding port {closed} to pod {SANDBOX}, uid : ")),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn a_websocket_client_leaving_mid_exec_ends_the_backend_call() {
    need_go!();
    let (server, stats) = start().await;
    let url = server.exec_url(exec_req(&["cat"], true, false));
    let mut child = tokio::process::Command::new(goclient().unwrap())
        .args(["ws-exec", &url, "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"ping\n").await.unwrap();
    let mut line = [0u8; 5];
    tokio::io::AsyncReadExt::read_exact(child.stdout.as_mut().unwrap(), &mut line).await.unwrap();
    assert_eq!(&line, b"ping\n");
    child.kill().await.unwrap();
    // Hang guard only: the exec ends within milliseconds once its stdin reads EOF.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stats.execs_done.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the exec did not end after the client left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(input);
}
