//! Port forwarding over SPDY (`portforward.k8s.io`), as kubelet's `portforward` package serves
//! it: for every local connection the client opens a pair of streams, `error` then `data`,
//! both tagged with the remote `port` and a `requestID`; the server connects to the port in the
//! sandbox and copies bytes both ways; failures are written as text on the error stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::http;
use crate::remotecommand::refuse_protocol;
use crate::spdy::{self, Headers, SpdyStream};
use crate::{Backend, Session};

pub const SPDY_PROTOCOL: &str = "portforward.k8s.io";
/// How long the second direction may take to finish once the target closed (containerd's
/// grace period, from socat).
const HALF_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Checks a new stream's headers as kubelet's `httpStreamReceived` does.
fn check_headers(h: &Headers) -> Result<(), String> {
    let port = h.get("port").filter(|p| !p.is_empty()).ok_or("\"port\" header is required")?;
    let port: u16 = port.parse().map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if port < 1 {
        return Err(format!("port {port:?} must be > 0"));
    }
    match h.get("streamtype") {
        None | Some("") => Err("\"streamType\" header is required".into()),
        Some("error" | "data") => Ok(()),
        Some(other) => Err(format!("invalid stream type {other:?}")),
    }
}

#[derive(Default)]
struct Pair {
    data: Option<SpdyStream>,
    error: Option<SpdyStream>,
    deadline: Option<Instant>,
}

/// Serves port forwarding over SPDY for `sandbox` on a connection whose request head was read.
pub async fn serve_spdy(session: Session<'_>, mut tcp: TcpStream, sandbox: String) {
    let (req, cfg) = (session.req, session.config);
    let client_protocols = req.header_tokens("x-stream-protocol-version");
    if !client_protocols.is_empty() && !client_protocols.iter().any(|p| p == SPDY_PROTOCOL) {
        refuse_protocol(&mut tcp, &client_protocols, &[SPDY_PROTOCOL]).await;
        return;
    }
    if !req.is_upgrade_to("SPDY/3.1") {
        let _ = http::respond(&mut tcp, 400, &[], "unable to upgrade: missing upgrade headers in request").await;
        return;
    }
    let mut head = vec![("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")];
    if !client_protocols.is_empty() {
        head.push(("X-Stream-Protocol-Version", SPDY_PROTOCOL));
    }
    let Some((leftover, backend)) = session.claim(&mut tcp).await else { return };
    if http::switch_protocols(&mut tcp, &head).await.is_err() {
        return;
    }
    let (r, w) = tcp.into_split();
    let (conn, mut new_streams) = spdy::serve(std::io::Cursor::new(leftover).chain(r), w, Box::new(check_headers));

    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut forwards = JoinSet::new();
    loop {
        let next_deadline = pairs.values().filter_map(|p| p.deadline).min();
        let timer = async {
            match next_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            s = new_streams.recv() => {
                let Some(s) = s else { break };
                let id = request_id(&s);
                let pair = pairs.entry(id.clone()).or_default();
                if pair.deadline.is_none() {
                    pair.deadline = Some(Instant::now() + cfg.stream_creation_timeout);
                }
                let is_error = s.headers.get("streamtype") == Some("error");
                let slot = if is_error { &mut pair.error } else { &mut pair.data };
                if slot.is_some() {
                    let msg = format!(
                        "error processing stream for request {id}: {} stream already assigned",
                        if is_error { "error" } else { "data" }
                    );
                    print_error(pair, &msg).await;
                    continue;
                }
                *slot = Some(s);
                if pair.data.is_some() && pair.error.is_some() {
                    let pair = pairs.remove(&id).expect("the pair just filled");
                    let (Some(data), Some(error)) = (pair.data, pair.error) else { continue };
                    forwards.spawn(forward(backend.clone(), sandbox.clone(), data, error));
                }
            }
            () = timer => {
                let now = Instant::now();
                let expired: Vec<String> = pairs.iter().filter(|(_, p)| p.deadline.is_some_and(|d| d <= now)).map(|(k, _)| k.clone()).collect();
                for id in expired {
                    if let Some(mut pair) = pairs.remove(&id) {
                        print_error(&mut pair, &format!("timed out waiting for streams for request {id}")).await;
                        finish_pair(pair).await;
                    }
                }
            }
            Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
            () = conn.closed() => break,
        }
    }
    // The client left: JoinSet's drop aborts the forwards still running.
    drop(forwards);
}

/// The pair's request id: the `requestID` header, or (clients before 1.4) derived from the
/// stream id, assuming consecutive error/data streams as kubelet does.
fn request_id(s: &SpdyStream) -> String {
    match s.headers.get("requestid") {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => match s.headers.get("streamtype") {
            Some("data") => s.id.saturating_sub(2).to_string(),
            _ => s.id.to_string(),
        },
    }
}

async fn print_error(pair: &mut Pair, msg: &str) {
    tracing::debug!("port-forward: {msg}");
    if let Some(e) = pair.error.as_mut() {
        let _ = e.writer.write_all(msg.as_bytes()).await;
    }
}

async fn finish_pair(pair: Pair) {
    for s in [pair.data, pair.error].into_iter().flatten() {
        s.writer.closer().finish().await;
    }
}

async fn forward(backend: Arc<dyn Backend>, sandbox: String, data: SpdyStream, mut error: SpdyStream) {
    let port: u16 = data.headers.get("port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let data_closer = data.writer.closer();
    let result = match backend.port_forward(sandbox.clone(), port).await {
        Ok(target) => copy_both_ways(target, data.reader, data.writer).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        let msg = format!("error forwarding port {port} to pod {sandbox}, uid : {e}");
        tracing::debug!("port-forward: {msg}");
        let _ = error.writer.write_all(msg.as_bytes()).await;
    }
    data_closer.finish().await;
    let _ = error.writer.shutdown().await;
}

/// Copies between the target and the client's stream until both directions end (or the target
/// closed and the client did not follow within a second). Half-closes are passed on.
pub async fn copy_both_ways<R, W>(target: TcpStream, mut from_client: R, mut to_client: W) -> Result<(), String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut tr, mut tw) = target.into_split();
    let upstream = async {
        let r = tokio::io::copy(&mut from_client, &mut tw).await;
        let _ = tw.shutdown().await;
        r.map(|_| ()).map_err(|e| format!("copying from the client to the port: {e}"))
    };
    let downstream = async {
        let r = tokio::io::copy(&mut tr, &mut to_client).await;
        let _ = to_client.shutdown().await;
        r.map(|_| ()).map_err(|e| format!("copying from the port to the client: {e}"))
    };
    tokio::pin!(upstream, downstream);
    tokio::select! {
        up = &mut upstream => {
            // The client finished sending; the answer may still be coming.
            let down = downstream.await;
            up.and(down)
        }
        down = &mut downstream => {
            match tokio::time::timeout(HALF_CLOSE_GRACE, upstream).await {
                Ok(up) => down.and(up),
                Err(_) => down,
            }
        }
    }
}
