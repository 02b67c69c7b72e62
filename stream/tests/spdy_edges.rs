//! What a well-behaved client never does, driven by a raw SPDY client written with the crate's
//! own frame codec: garbage frames, missing streams, resets mid-exec, pings, bad requests. The
//! server must answer each cleanly, never panic, and keep serving.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use capsa_stream::spdy::frame::{self, goaway, rst, Frame, FrameHead, FLAG_FIN};
use capsa_stream::spdy::zlib::{HeaderCompressor, HeaderDecompressor, Headers};
use capsa_stream::{Config, Server};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw SPDY/3.1 client connection.
struct Client {
    tcp: TcpStream,
    deflate: HeaderCompressor,
    inflate: HeaderDecompressor,
    next_id: u32,
}

impl Client {
    /// Sends the upgrade request; returns the client and the response head.
    async fn upgrade(url: &str, protocols: &[&str]) -> (Client, String) {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut tcp = TcpStream::connect(host).await.unwrap();
        let mut req = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n");
        for p in protocols {
            req.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            if tcp.read(&mut b).await.unwrap() == 0 {
                break;
            }
            head.push(b[0]);
        }
        let client = Client { tcp, deflate: HeaderCompressor::new(), inflate: HeaderDecompressor::new(), next_id: 1 };
        (client, String::from_utf8_lossy(&head).into_owned())
    }

    async fn send(&mut self, f: Frame) {
        let mut out = Vec::new();
        frame::encode(&f, &mut self.deflate, &mut out);
        self.tcp.write_all(&out).await.unwrap();
    }

    /// The next frame, or `None` at EOF.
    async fn recv(&mut self) -> Option<Frame> {
        let mut head = [0u8; 8];
        self.tcp.read_exact(&mut head).await.ok()?;
        let head = FrameHead::parse(head);
        let mut payload = vec![0u8; head.length];
        self.tcp.read_exact(&mut payload).await.ok()?;
        Some(frame::decode(head, payload, &mut self.inflate).unwrap())
    }

    /// Opens a stream of `kind` and waits for its reply.
    async fn open(&mut self, kind: &str) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        let mut headers = Headers::default();
        headers.add("streamType", kind);
        self.send(Frame::SynStream { stream_id: id, associated_to: 0, priority: 0, slot: 0, flags: 0, headers }).await;
        match self.recv().await {
            Some(Frame::SynReply { stream_id, .. }) if stream_id == id => id,
            other => panic!("expected the reply to {id}, got {other:?}"),
        }
    }

    /// Every frame until EOF.
    async fn drain(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = self.recv().await {
            frames.push(f);
        }
        frames
    }
}

fn data_of(frames: &[Frame], id: u32) -> Vec<u8> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Data { stream_id, data, .. } if *stream_id == id => Some(data.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn fin_index(frames: &[Frame], id: u32) -> Option<usize> {
    frames
        .iter()
        .position(|f| matches!(f, Frame::Data { stream_id, flags, .. } if *stream_id == id && flags & FLAG_FIN != 0))
}

#[tokio::test]
async fn output_is_finished_before_the_status_and_the_goaway() {
    let (server, _) = start().await;
    let url = server.exec_url(exec_req(&["sh", "-c", "echo out; echo err >&2"], false, false));
    let (mut c, head) = Client::upgrade(&url, &["v4.channel.k8s.io"]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"), "{head}");
    let (error, stdout) = (c.open("error").await, c.open("stdout").await);
    // A client ping (odd id) is echoed; an even one would be a reply to ours and is not.
    c.send(Frame::Ping { id: 8 }).await;
    c.send(Frame::Ping { id: 7 }).await;
    assert_eq!(c.recv().await, Some(Frame::Ping { id: 7 }));
    let stderr = c.open("stderr").await;
    let frames = c.drain().await;
    assert_eq!(data_of(&frames, stdout), b"out\n");
    assert_eq!(data_of(&frames, stderr), b"err\n");
    assert_eq!(data_of(&frames, error), br#"{"metadata":{},"status":"Success"}"#);
    let status_at = frames
        .iter()
        .position(|f| matches!(f, Frame::Data { stream_id, data, .. } if *stream_id == error && !data.is_empty()))
        .unwrap();
    assert!(fin_index(&frames, stdout).unwrap() < status_at);
    assert!(fin_index(&frames, stderr).unwrap() < status_at);
    let goaway_at = frames.iter().position(|f| matches!(f, Frame::GoAway { status: goaway::OK, .. })).unwrap();
    assert!(fin_index(&frames, error).unwrap() < goaway_at);
}

#[tokio::test]
async fn garbage_frames_get_a_protocol_error_and_the_server_keeps_serving() {
    let (server, stats) = start().await;
    let url = server.exec_url(exec_req(&["true"], false, false));
    let (mut c, _) = Client::upgrade(&url, &["v4.channel.k8s.io"]).await;
    // A SYN_STREAM whose header block is not zlib, then more junk.
    c.tcp.write_all(&[0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]).await.unwrap();
    let frames = c.drain().await;
    assert_eq!(frames, vec![Frame::GoAway { last_good_stream_id: 0, status: goaway::PROTOCOL_ERROR }]);
    assert_eq!(stats.execs_done.load(Ordering::SeqCst), 0);

    // A stream id of the server's parity is refused, the connection lives on.
    let url = server.exec_url(exec_req(&["echo", "still here"], false, false));
    let (mut c, _) = Client::upgrade(&url, &["v4.channel.k8s.io"]).await;
    let error = c.open("error").await;
    let mut headers = Headers::default();
    headers.add("streamtype", "stdout");
    c.send(Frame::SynStream { stream_id: 2, associated_to: 0, priority: 0, slot: 0, flags: 0, headers }).await;
    assert_eq!(c.recv().await, Some(Frame::RstStream { stream_id: 2, status: rst::PROTOCOL_ERROR }));
    c.next_id = 3;
    let stdout = c.open("stdout").await;
    c.open("stderr").await;
    let frames = c.drain().await;
    assert_eq!(data_of(&frames, stdout), b"still here\n");
    assert_eq!(data_of(&frames, error), br#"{"metadata":{},"status":"Success"}"#);
}

#[tokio::test]
async fn streams_not_created_in_time_end_the_connection_without_running_anything() {
    let backend = HostBackend::default();
    let stats = backend.stats.clone();
    let config = Config { stream_creation_timeout: Duration::from_millis(200), ..Config::default() };
    let server = Server::start_with(config, Arc::new(backend)).await.unwrap();
    let url = server.exec_url(exec_req(&["true"], false, false));
    let (mut c, _) = Client::upgrade(&url, &["v4.channel.k8s.io"]).await;
    c.open("error").await;
    // No stdout stream follows.
    let frames = c.drain().await;
    assert!(frames.iter().any(|f| matches!(f, Frame::GoAway { .. })), "{frames:?}");
    assert_eq!(stats.execs_done.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_client_reset_of_stdout_ends_an_endless_command() {
    let (server, stats) = start().await;
    let url = server.exec_url(exec_req(&["yes"], false, false));
    let (mut c, _) = Client::upgrade(&url, &["v4.channel.k8s.io"]).await;
    let error = c.open("error").await;
    let stdout = c.open("stdout").await;
    let stderr = c.open("stderr").await;
    // Read some output, then reset stdout.
    loop {
        if let Some(Frame::Data { stream_id, .. }) = c.recv().await {
            if stream_id == stdout {
                break;
            }
        }
    }
    c.send(Frame::RstStream { stream_id: stdout, status: rst::CANCEL }).await;
    let frames = c.drain().await;
    // `yes` died of the broken pipe (SIGPIPE: no exit code, the backend reports 128).
    let status = String::from_utf8(data_of(&frames, error)).unwrap();
    assert!(status.contains("NonZeroExitCode"), "{status}");
    assert!(fin_index(&frames, stderr).is_some());
    assert_eq!(stats.execs_done.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http_errors_as_kubelet_answers_them() {
    let (server, _) = start().await;
    let addr = server.local_addr();
    let ask = |req: String| async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut resp = String::new();
        tcp.read_to_string(&mut resp).await.unwrap();
        resp
    };
    let resp = ask("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n".into()).await;
    assert!(resp.starts_with("HTTP/1.1 404 Not Found\r\n") && resp.ends_with("404 page not found\n"), "{resp}");
    let resp = ask("GET /exec/unknowntoken HTTP/1.1\r\nHost: x\r\n\r\n".into()).await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    let url = server.exec_url(exec_req(&["true"], false, false));
    let path = url.split_once(&addr.to_string()).unwrap().1.to_string();
    let resp = ask(format!("DELETE {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
    // Not an upgrade, or a websocket subprotocol we lack: refused, and the URL stays valid for
    // the client's fallback (kubelet would have spent it).
    let resp =
        ask(format!("POST {path} HTTP/1.1\r\nHost: x\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")).await;
    assert!(resp.starts_with("HTTP/1.1 400") && resp.contains("missing upgrade headers"), "{resp}");
    let resp = ask(format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v9.channel.k8s.io\r\n\r\n"
    ))
    .await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    let (mut c, head) = Client::upgrade(&url, &["v4.channel.k8s.io"]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    c.open("error").await;
    drop(c);
    // Spent by that upgrade.
    let resp = ask(format!("POST {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    let resp = ask("\x16\x03\x01 definitely not http\r\n\r\n".into()).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    // Still serving.
    let url = server.exec_url(exec_req(&["true"], false, false));
    let (_c, head) = Client::upgrade(&url, &["v4.channel.k8s.io"]).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
}

#[tokio::test]
async fn urls_name_the_bound_address_and_expire() {
    let backend = Arc::new(HostBackend::default());
    let config = Config { addr: "0.0.0.0:0".into(), token_ttl: Duration::from_millis(50), ..Config::default() };
    let server = Server::start_with(config, backend.clone()).await.unwrap();
    let url = server.exec_url(exec_req(&["true"], false, false));
    let port = server.local_addr().port();
    assert!(url.starts_with(&format!("http://127.0.0.1:{port}/exec/")), "{url}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_c, head) = Client::upgrade(&url, &["v4.channel.k8s.io"]).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    let config = Config { base_url: Some("http://node.example:10010/".into()), ..Config::default() };
    let server = Server::start_with(config, backend).await.unwrap();
    let url = server.port_forward_url("s".into(), vec![80]);
    assert!(url.starts_with("http://node.example:10010/portforward/"), "{url}");
}
