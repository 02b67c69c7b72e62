//! Exec and attach over SPDY: the `channel.k8s.io` protocol family (v1–v4) of client-go's
//! `remotecommand`, as kubelet's `remotecommand` server package serves it.
//!
//! The client opens one stream per channel, each tagged by a `streamtype` header (error,
//! stdin, stdout, stderr, resize), one at a time, waiting for each reply. The server waits
//! until every expected stream exists (or the creation timeout passes), runs the command,
//! finishes stdout/stderr, writes the outcome on the error stream and closes the connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::http;
use crate::resize::ResizeDecoder;
use crate::spdy::{self, SpdyStream};
use crate::status::Outcome;
use crate::{AttachRequest, Backend, ExecRequest, Session, StreamIo, TermSize};

/// The remote command protocols, newest first (kubelet's order of preference is the
/// client's; these are the ones it accepts over SPDY).
pub const SPDY_PROTOCOLS: [&str; 4] = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];

/// A remote command protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    V1,
    V2,
    V3,
    V4,
    V5,
}

impl Proto {
    pub fn from_name(name: &str) -> Option<Proto> {
        Some(match name {
            "channel.k8s.io" => Proto::V1,
            "v2.channel.k8s.io" => Proto::V2,
            "v3.channel.k8s.io" => Proto::V3,
            "v4.channel.k8s.io" => Proto::V4,
            "v5.channel.k8s.io" => Proto::V5,
            _ => return None,
        })
    }
}

/// What the client asked to run, taken from the token's request.
#[derive(Debug, Clone)]
pub enum Command {
    Exec(ExecRequest),
    Attach(AttachRequest),
}

/// Which channels a command uses.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub stdin: bool,
    pub stdout: bool,
    /// Always false with a tty (kubelet drops stderr then too).
    pub stderr: bool,
    pub tty: bool,
}

impl Command {
    pub fn opts(&self) -> Opts {
        let (stdin, stdout, stderr, tty) = match self {
            Command::Exec(r) => (r.stdin, r.stdout, r.stderr, r.tty),
            Command::Attach(r) => (r.stdin, r.stdout, r.stderr, r.tty),
        };
        Opts { stdin, stdout, stderr: stderr && !tty, tty }
    }

    /// Runs the command through the backend. An attach ends when the client leaves (its
    /// future is dropped: detaching needs no cleanup); an exec is awaited to its end, as
    /// containerd lets an orphaned exec run (its stdin reads EOF, its output fails EPIPE).
    pub async fn run(self, backend: &Arc<dyn Backend>, io: StreamIo, client_gone: impl Future<Output = ()>) -> Outcome {
        match self {
            Command::Exec(req) => {
                let cmd = req.cmd.clone();
                match backend.exec(req, io).await {
                    Ok(code) => Outcome::from_exit(code, &cmd),
                    Err(e) => Outcome::Internal(format!("error executing command in container: {e}")),
                }
            }
            Command::Attach(req) => {
                let attach = backend.attach(req, io);
                tokio::select! {
                    r = attach => match r {
                        Ok(()) => Outcome::Success,
                        Err(e) => Outcome::Internal(format!("error attaching to container: {e}")),
                    },
                    () = client_gone => Outcome::Success,
                }
            }
        }
    }
}

/// Forwards resize events from `r` until it ends or nobody listens.
pub async fn pump_resizes<R: AsyncRead + Unpin>(mut r: R, tx: mpsc::Sender<TermSize>) {
    let mut decoder = ResizeDecoder::default();
    let mut buf = [0u8; 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for size in decoder.push(&buf[..n]) {
            if tx.send(size).await.is_err() {
                return;
            }
        }
    }
}

#[derive(Default)]
struct Streams {
    error: Option<SpdyStream>,
    stdin: Option<SpdyStream>,
    stdout: Option<SpdyStream>,
    stderr: Option<SpdyStream>,
    resize: Option<SpdyStream>,
    /// Our side of streams of types not asked for (kept open so the client is not surprised).
    extra: Vec<spdy::StreamWriter>,
}

/// Serves an exec or attach over SPDY on a connection whose request head was read.
pub async fn serve_spdy(session: Session<'_>, mut tcp: TcpStream, cmd: Command) {
    let (req, cfg) = (session.req, session.config);
    let client_protocols = req.header_tokens("x-stream-protocol-version");
    let (proto, proto_name) = if client_protocols.is_empty() {
        // Kubernetes 1.0 clients did not negotiate; kubelet falls back to v1 for them.
        (Proto::V1, None)
    } else {
        match client_protocols.iter().find(|p| SPDY_PROTOCOLS.contains(&p.as_str())) {
            Some(p) => (Proto::from_name(p).expect("a listed protocol"), Some(p.clone())),
            None => {
                refuse_protocol(&mut tcp, &client_protocols, &SPDY_PROTOCOLS).await;
                return;
            }
        }
    };
    if !req.is_upgrade_to("SPDY/3.1") {
        let _ = http::respond(&mut tcp, 400, &[], "unable to upgrade: missing upgrade headers in request").await;
        return;
    }
    let mut head = vec![("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")];
    if let Some(name) = &proto_name {
        head.push(("X-Stream-Protocol-Version", name));
    }
    let Some((leftover, backend)) = session.claim(&mut tcp).await else { return };
    if http::switch_protocols(&mut tcp, &head).await.is_err() {
        return;
    }
    let (r, w) = tcp.into_split();
    let (conn, mut new_streams) = spdy::serve(std::io::Cursor::new(leftover).chain(r), w, Box::new(|_| Ok(())));

    let opts = cmd.opts();
    let expected = 1
        + opts.stdin as usize
        + opts.stdout as usize
        + opts.stderr as usize
        + (opts.tty && proto >= Proto::V3) as usize;
    let mut streams = Streams::default();
    let mut have = 0;
    let deadline = tokio::time::sleep(cfg.stream_creation_timeout);
    tokio::pin!(deadline);
    while have < expected {
        tokio::select! {
            s = new_streams.recv() => {
                let Some(s) = s else { return };
                let kind = s.headers.get("streamtype").unwrap_or("").to_string();
                let slot = match kind.as_str() {
                    "error" => Some(&mut streams.error),
                    "stdin" if opts.stdin => Some(&mut streams.stdin),
                    "stdout" if opts.stdout => Some(&mut streams.stdout),
                    "stderr" if opts.stderr => Some(&mut streams.stderr),
                    "resize" if opts.tty && proto >= Proto::V3 => Some(&mut streams.resize),
                    _ => None,
                };
                match slot {
                    Some(slot) if slot.is_none() => {
                        *slot = Some(s);
                        have += 1;
                    }
                    _ => {
                        // Kept open but unread: what the client sends there is dropped.
                        tracing::debug!("streaming: unexpected stream type {kind:?}");
                        streams.extra.push(s.writer);
                    }
                }
            }
            () = &mut deadline => {
                tracing::info!("streaming: timed out waiting for the client to create streams");
                conn.finish(Duration::from_secs(1)).await;
                return;
            }
        }
    }

    let Streams { error, stdin, stdout, stderr, resize, extra } = streams;
    let error = error.expect("the error stream is always expected");
    let mut keep = Vec::new();
    let stdin_reader = stdin.map(|s| {
        keep.push(s.writer);
        s.reader
    });
    let mut finishers = Vec::new();
    let stdout_writer = stdout.map(|s| {
        finishers.push(s.writer.closer());
        s.writer
    });
    let stderr_writer = stderr.map(|s| {
        finishers.push(s.writer.closer());
        s.writer
    });
    let (resize_rx, resize_task) = match resize {
        Some(s) => {
            keep.push(s.writer);
            let (tx, rx) = mpsc::channel(8);
            (Some(rx), Some(tokio::spawn(pump_resizes(s.reader, tx))))
        }
        None => (None, None),
    };
    let error_closer = error.writer.closer();
    let mut error_writer = Some(error.writer);
    if proto == Proto::V1 {
        // What 1.0 kubelets did: the error stream is reset once every stream exists.
        error_closer.reset().await;
        error_writer = None;
    }
    let io = StreamIo {
        stdin: stdin_reader.map(|r| Box::new(r) as _),
        stdout: stdout_writer.map(|w| Box::new(w) as _),
        stderr: stderr_writer.map(|w| Box::new(w) as _),
        resize: resize_rx,
    };

    let outcome = cmd.run(&backend, io, conn.closed()).await;

    // Bounded: a client that stopped reading cannot hold the session.
    let _ = tokio::time::timeout(cfg.linger, async {
        for f in &finishers {
            f.finish().await;
        }
        if let Some(mut w) = error_writer {
            let bytes = if proto >= Proto::V4 { outcome.to_json() } else { outcome.message().into_bytes() };
            if !bytes.is_empty() {
                let _ = w.write_all(&bytes).await;
            }
            let _ = w.shutdown().await;
        }
    })
    .await;
    drop(keep);
    drop(extra);
    if let Some(t) = resize_task {
        t.abort();
    }
    conn.finish(cfg.linger).await;
}

/// Answers a protocol negotiation failure as kubelet's `httpstream.Handshake` does.
pub async fn refuse_protocol(tcp: &mut TcpStream, client: &[String], server: &[&str]) {
    let body = format!(
        "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
        client.join(" "),
        server.join(" ")
    );
    let accepted: Vec<(&str, &str)> = server.iter().map(|p| ("X-Accepted-Stream-Protocol-Versions", *p)).collect();
    let _ = http::respond(tcp, 403, &accepted, &body).await;
}
