//! Exec, attach and port-forward over websocket, as kubelet's `wsstream` serves them.
//!
//! Every message carries one channel's data, prefixed by the channel number: a byte in the
//! binary protocols, an ASCII digit before base64 text in the `base64.` ones. Remote commands
//! use channels 0 stdin, 1 stdout, 2 stderr, 3 error (the status), 4 resize; port-forward uses
//! a data and an error channel per port, each opened by a message holding the port (u16 LE).
//! `v5.channel.k8s.io` adds the client's half-close: the message `[255, channel]`.

mod handshake;

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::PollSender;

use crate::http::{self, Request};
use crate::pipe::ChanReader;
use crate::portforward::copy_both_ways;
use crate::remotecommand::{pump_resizes, Command, Proto};
use crate::{Session, StreamIo};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: `[STREAM_CLOSE, channel]` half-closes the client's side of a channel.
const STREAM_CLOSE: u8 = 255;
/// Largest message accepted from a client (client-go sends at most 32 KiB of stdin at once).
const MAX_MESSAGE: usize = 1 << 20;

/// Remote command subprotocols: (name, base64 codec, protocol version).
const COMMAND_PROTOCOLS: [(&str, bool, Proto); 6] = [
    ("v5.channel.k8s.io", false, Proto::V5),
    ("v4.channel.k8s.io", false, Proto::V4),
    ("v4.base64.channel.k8s.io", true, Proto::V4),
    ("channel.k8s.io", false, Proto::V1),
    ("base64.channel.k8s.io", true, Proto::V1),
    ("", false, Proto::V1),
];

/// Port-forward subprotocols: (name, base64 codec).
const PORT_FORWARD_PROTOCOLS: [(&str, bool); 3] =
    [("v4.channel.k8s.io", false), ("v4.base64.channel.k8s.io", true), ("", false)];

enum Out {
    Data(u8, Vec<u8>),
    /// Send a normal close and stop.
    Close,
}

/// A channel of ours: writes become messages. Nothing is sent at shutdown (the protocol has no
/// server-side channel close); the connection's close ends every channel.
struct ChannelWriter {
    channel: u8,
    tx: PollSender<Out>,
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let broken = || io::Error::new(io::ErrorKind::BrokenPipe, "websocket connection closed");
        if ready!(self.tx.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(broken()));
        }
        let n = buf.len().min(32 * 1024);
        let channel = self.channel;
        match self.tx.send_item(Out::Data(channel, buf[..n].to_vec())) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(_) => Poll::Ready(Err(broken())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}

/// A channel-multiplexed websocket connection.
struct WsConn {
    out: mpsc::Sender<Out>,
    closed: watch::Receiver<bool>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for WsConn {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl WsConn {
    fn writer(&self, channel: u8) -> ChannelWriter {
        ChannelWriter { channel, tx: PollSender::new(self.out.clone()) }
    }

    async fn send(&self, channel: u8, data: Vec<u8>) {
        let _ = self.out.send(Out::Data(channel, data)).await;
    }

    async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Sends a normal close after what is queued and waits (up to `linger`) for the client's.
    async fn finish(self, linger: std::time::Duration) {
        let _ = tokio::time::timeout(linger, async {
            let _ = self.out.send(Out::Close).await;
            self.closed().await;
        })
        .await;
    }
}

/// Upgrades `tcp` and starts the connection's tasks. `readable` are the channels the client
/// may send on: their data comes out of the returned readers.
async fn open(
    mut tcp: TcpStream,
    leftover: Vec<u8>,
    accept_key: &str,
    protocol: &str,
    base64: bool,
    v5: bool,
    readable: &[u8],
) -> Option<(WsConn, HashMap<u8, ChanReader>)> {
    let mut head = vec![("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept_key)];
    if !protocol.is_empty() {
        head.push(("Sec-WebSocket-Protocol", protocol));
    }
    http::switch_protocols(&mut tcp, &head).await.ok()?;
    let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
    let ws = WebSocketStream::from_partially_read(tcp, leftover, Role::Server, Some(config)).await;
    let (sink, stream) = ws.split();
    let (out_tx, out_rx) = mpsc::channel(64);
    let (closed_tx, closed_rx) = watch::channel(false);
    let mut senders = HashMap::new();
    let mut readers = HashMap::new();
    for &ch in readable {
        let (tx, rx) = mpsc::channel(16);
        senders.insert(ch, tx);
        readers.insert(ch, ChanReader::new(rx));
    }
    let writer = tokio::spawn(write_loop(sink, out_rx, base64));
    let reader = tokio::spawn(read_loop(stream, senders, base64, v5, closed_tx));
    Some((WsConn { out: out_tx, closed: closed_rx, reader, writer }, readers))
}

async fn write_loop<S>(mut sink: S, mut rx: mpsc::Receiver<Out>, base64: bool)
where
    S: futures_util::Sink<Message> + Unpin,
{
    while let Some(out) = rx.recv().await {
        let msg = match out {
            Out::Data(channel, data) => encode(channel, &data, base64),
            Out::Close => {
                let frame = CloseFrame { code: 1000.into(), reason: "".into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                break;
            }
        };
        if sink.feed(msg).await.is_err() {
            break;
        }
        // Batch what is queued, then flush.
        if rx.is_empty() && sink.flush().await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

fn encode(channel: u8, data: &[u8], base64: bool) -> Message {
    if base64 {
        let mut text = String::with_capacity(1 + data.len() * 4 / 3 + 4);
        text.push(b'0'.wrapping_add(channel) as char);
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut text);
        Message::Text(text.into())
    } else {
        let mut bytes = Vec::with_capacity(1 + data.len());
        bytes.push(channel);
        bytes.extend_from_slice(data);
        Message::Binary(Bytes::from(bytes))
    }
}

async fn read_loop<S>(
    mut stream: S,
    mut senders: HashMap<u8, mpsc::Sender<Vec<u8>>>,
    base64: bool,
    v5: bool,
    closed: watch::Sender<bool>,
) where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(Ok(msg)) = stream.next().await {
        let (channel, data) = match msg {
            Message::Binary(b) if !base64 => {
                let Some((&channel, data)) = b.split_first() else { continue };
                if v5 && channel == STREAM_CLOSE {
                    // [255, channel]: the client will send no more on that channel.
                    if let [target] = data {
                        senders.remove(target);
                    }
                    continue;
                }
                (channel, data.to_vec())
            }
            Message::Text(t) if base64 => {
                let Some((&digit, rest)) = t.as_bytes().split_first() else { continue };
                let Ok(data) = base64::engine::general_purpose::STANDARD.decode(rest) else { continue };
                (digit.wrapping_sub(b'0'), data)
            }
            Message::Close(_) => break,
            _ => continue,
        };
        if data.is_empty() {
            continue;
        }
        if let Some(tx) = senders.get(&channel) {
            if tx.send(data).await.is_err() {
                senders.remove(&channel);
            }
        }
    }
    drop(senders);
    let _ = closed.send(true);
}

/// Serves an exec or attach over websocket.
pub async fn serve_command(session: Session<'_>, mut tcp: TcpStream, cmd: Command) {
    let (req, cfg) = (session.req, session.config);
    let names: Vec<&str> = COMMAND_PROTOCOLS.iter().map(|p| p.0).collect();
    let (key, protocol) = match handshake::accept(req, &names) {
        Ok(k) => k,
        Err(r) => {
            let _ = http::respond(&mut tcp, r.status, &[("Sec-WebSocket-Version", "13")], &r.message).await;
            return;
        }
    };
    let &(_, base64, proto) = COMMAND_PROTOCOLS.iter().find(|p| p.0 == protocol).expect("negotiated from the list");
    let opts = cmd.opts();
    let mut readable = vec![RESIZE];
    if opts.stdin {
        readable.push(STDIN);
    }
    let Some((leftover, backend)) = session.claim(&mut tcp).await else { return };
    let Some((conn, mut readers)) = open(tcp, leftover, &key, &protocol, base64, proto == Proto::V5, &readable).await
    else {
        return;
    };
    // kubelet's "connection established" signal: an empty message on the lowest writable channel.
    let first = if opts.stdout {
        STDOUT
    } else if opts.stderr {
        STDERR
    } else {
        ERROR
    };
    conn.send(first, Vec::new()).await;

    let resize_reader = readers.remove(&RESIZE).expect("resize is readable");
    let (resize, resize_task) = if opts.tty {
        let (tx, rx) = mpsc::channel(8);
        (Some(rx), Some(tokio::spawn(pump_resizes(resize_reader, tx))))
    } else {
        (None, None)
    };
    let io = StreamIo {
        stdin: readers.remove(&STDIN).map(|r| Box::new(r) as _),
        stdout: opts.stdout.then(|| Box::new(conn.writer(STDOUT)) as _),
        stderr: opts.stderr.then(|| Box::new(conn.writer(STDERR)) as _),
        resize,
    };
    let outcome = cmd.run(&backend, io, conn.closed()).await;
    let status = if proto >= Proto::V4 { outcome.to_json() } else { outcome.message().into_bytes() };
    if !status.is_empty() {
        // Bounded: a client that stopped reading cannot hold the session.
        let _ = tokio::time::timeout(cfg.linger, conn.send(ERROR, status)).await;
    }
    if let Some(t) = resize_task {
        t.abort();
    }
    conn.finish(cfg.linger).await;
}

/// Serves port forwarding over websocket: the ports come from the `port` query parameters
/// (kubelet's only source), else from the CRI request.
pub async fn serve_port_forward(session: Session<'_>, mut tcp: TcpStream, sandbox: String, cri_ports: Vec<i32>) {
    let (req, cfg) = (session.req, session.config);
    let ports = match query_ports(req, &cri_ports) {
        Ok(p) => p,
        Err(e) => {
            let _ = http::respond(&mut tcp, 400, &[], &e).await;
            return;
        }
    };
    let names: Vec<&str> = PORT_FORWARD_PROTOCOLS.iter().map(|p| p.0).collect();
    let (key, protocol) = match handshake::accept(req, &names) {
        Ok(k) => k,
        Err(r) => {
            let _ = http::respond(&mut tcp, r.status, &[("Sec-WebSocket-Version", "13")], &r.message).await;
            return;
        }
    };
    let &(_, base64) = PORT_FORWARD_PROTOCOLS.iter().find(|p| p.0 == protocol).expect("negotiated from the list");
    let readable: Vec<u8> = (0..ports.len()).map(|i| (2 * i) as u8).collect();
    let Some((leftover, backend)) = session.claim(&mut tcp).await else { return };
    let Some((conn, mut readers)) = open(tcp, leftover, &key, &protocol, base64, false, &readable).await else {
        return;
    };
    let mut forwards = tokio::task::JoinSet::new();
    for (i, &port) in ports.iter().enumerate() {
        let (data_ch, error_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        conn.send(data_ch, port.to_le_bytes().to_vec()).await;
        conn.send(error_ch, port.to_le_bytes().to_vec()).await;
        let reader = readers.remove(&data_ch).expect("data channels are readable");
        let writer = conn.writer(data_ch);
        let mut error = conn.writer(error_ch);
        let backend = backend.clone();
        let sandbox = sandbox.clone();
        forwards.spawn(async move {
            let result = match backend.port_forward(sandbox.clone(), port).await {
                Ok(target) => copy_both_ways(target, reader, writer).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                let msg = format!("error forwarding port {port} to pod {sandbox}, uid : {e}");
                let _ = error.write_all(msg.as_bytes()).await;
            }
        });
    }
    tokio::select! {
        _ = async { while forwards.join_next().await.is_some() {} } => {}
        () = conn.closed() => {}
    }
    drop(forwards);
    conn.finish(cfg.linger).await;
}

/// kubelet's `NewV4Options`: every `port` query value, comma-separated lists allowed.
fn query_ports(req: &Request, cri_ports: &[i32]) -> Result<Vec<u16>, String> {
    let values = req.query_all("port");
    if values.is_empty() {
        let ports: Vec<u16> = cri_ports.iter().filter_map(|&p| u16::try_from(p).ok()).filter(|&p| p > 0).collect();
        if ports.is_empty() {
            return Err("query parameter \"port\" is required".into());
        }
        return Ok(ports);
    }
    let mut ports = Vec::new();
    for value in values {
        if value.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for p in value.split(',') {
            let port: u16 = p.parse().map_err(|e| format!("unable to parse {value:?} as a port: {e}"))?;
            if port < 1 {
                return Err(format!("port {value:?} must be > 0"));
            }
            ports.push(port);
        }
    }
    if ports.len() > 127 {
        return Err("too many ports (a websocket carries at most 127)".into());
    }
    Ok(ports)
}
