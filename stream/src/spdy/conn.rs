//! A server-side SPDY/3.1 connection: a reader task that decodes frames and feeds streams, a
//! writer task that owns the outgoing header compressor and the socket's write half.
//!
//! Streams are opened only by the client (odd ids, increasing), answered at once with an empty
//! SYN_REPLY (as spdystream's server does after its handler accepts), and handed to the session
//! as [`SpdyStream`]s: an `AsyncRead` of the client's data (EOF at the client's FIN or RST) and
//! an `AsyncWrite` whose shutdown (or drop) sends our FIN.

use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::PollSender;

use crate::pipe::ChanReader;

use super::frame::{self, goaway, rst, Frame, FrameHead, FLAG_FIN, FLAG_UNIDIRECTIONAL};
use super::zlib::{HeaderCompressor, HeaderDecompressor, Headers};

/// Largest data frame this side sends (client-go copies in 32 KiB chunks too).
const CHUNK: usize = 32 * 1024;
/// Frames queued for the writer task before writers wait.
const OUT_QUEUE: usize = 64;
/// Data frames queued per incoming stream before the connection's reader waits.
const IN_QUEUE: usize = 16;
/// Streams open at once on one connection; more are refused.
const MAX_STREAMS: usize = 1000;

enum Out {
    Frame(Frame),
    /// Flush, shut the socket's write half down and stop.
    Close,
}

/// Decides whether a new stream is accepted, from its headers; an error resets it.
pub type Acceptor = Box<dyn Fn(&Headers) -> Result<(), String> + Send>;

/// A stream the client opened.
pub struct SpdyStream {
    pub id: u32,
    pub headers: Headers,
    pub reader: StreamReader,
    pub writer: StreamWriter,
}

struct Shared {
    /// The peer reset the stream or the connection is gone: writes fail.
    reset: AtomicBool,
    /// Our FIN was queued (or the stream was unidirectional).
    local_done: AtomicBool,
}

/// The client's data on one stream (EOF at the client's FIN or RST, or when it left).
pub type StreamReader = ChanReader;

/// Our side of one stream: writes become data frames, shutdown (or drop) sends FIN.
pub struct StreamWriter {
    id: u32,
    tx: PollSender<Out>,
    raw: mpsc::Sender<Out>,
    shared: Arc<Shared>,
    closed: bool,
}

/// Finishes a stream from the session's side even while a backend still holds its writer:
/// what the writer queued before goes out, what it writes after fails.
#[derive(Clone)]
pub struct StreamCloser {
    id: u32,
    raw: mpsc::Sender<Out>,
    shared: Arc<Shared>,
}

impl StreamCloser {
    /// Sends our FIN (once; the writer task drops repeats and any data queued after it).
    pub async fn finish(&self) {
        self.shared.local_done.store(true, Ordering::Relaxed);
        if !self.shared.reset.load(Ordering::Relaxed) {
            let fin = Frame::Data { stream_id: self.id, flags: FLAG_FIN, data: Vec::new() };
            let _ = self.raw.send(Out::Frame(fin)).await;
        }
    }

    /// Resets the stream (RST_STREAM CANCEL).
    pub async fn reset(&self) {
        self.shared.local_done.store(true, Ordering::Relaxed);
        let _ = self.raw.send(Out::Frame(Frame::RstStream { stream_id: self.id, status: rst::CANCEL })).await;
    }
}

impl StreamWriter {
    /// A handle that can finish this stream later, whoever holds the writer then.
    pub fn closer(&self) -> StreamCloser {
        StreamCloser { id: self.id, raw: self.raw.clone(), shared: self.shared.clone() }
    }

    fn broken(&self) -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, format!("SPDY stream {} closed by the client", self.id))
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.closed || self.shared.reset.load(Ordering::Relaxed) || self.shared.local_done.load(Ordering::Relaxed) {
            return Poll::Ready(Err(self.broken()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if ready!(self.tx.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(self.broken()));
        }
        let n = buf.len().min(CHUNK);
        let frame = Frame::Data { stream_id: self.id, flags: 0, data: buf[..n].to_vec() };
        match self.tx.send_item(Out::Frame(frame)) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(_) => Poll::Ready(Err(self.broken())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Frames are queued in order and the writer task flushes whenever its queue drains.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        if self.shared.reset.load(Ordering::Relaxed) || ready!(self.tx.poll_reserve(cx)).is_err() {
            self.closed = true;
            return Poll::Ready(Ok(()));
        }
        let fin = Frame::Data { stream_id: self.id, flags: FLAG_FIN, data: Vec::new() };
        let _ = self.tx.send_item(Out::Frame(fin));
        self.closed = true;
        self.shared.local_done.store(true, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        if self.closed || self.shared.reset.load(Ordering::Relaxed) {
            return;
        }
        self.shared.local_done.store(true, Ordering::Relaxed);
        let fin = Out::Frame(Frame::Data { stream_id: self.id, flags: FLAG_FIN, data: Vec::new() });
        if let Err(mpsc::error::TrySendError::Full(fin)) = self.raw.try_send(fin) {
            let raw = self.raw.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = raw.send(fin).await;
                });
            }
        }
    }
}

/// The session's handle on a connection. Dropping it tears the connection down.
pub struct ConnHandle {
    tx: mpsc::Sender<Out>,
    closed: watch::Receiver<bool>,
    last_stream: Arc<AtomicU32>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl ConnHandle {
    /// Sends GOAWAY (no new streams), flushes what is queued and shuts the socket's write side
    /// down; the client then closes its side.
    pub async fn close(&self) {
        let last = self.last_stream.load(Ordering::Relaxed);
        let _ = self.tx.send(Out::Frame(Frame::GoAway { last_good_stream_id: last, status: goaway::OK })).await;
        let _ = self.tx.send(Out::Close).await;
    }

    /// Resolves once the client is gone (its side of the socket ended or failed).
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// Closes (see [`ConnHandle::close`]) and waits, up to `linger` in all (a client that does
    /// not read cannot hold the session), for the client to close its side; then tears down.
    pub async fn finish(self, linger: std::time::Duration) {
        let _ = tokio::time::timeout(linger, async {
            self.close().await;
            self.closed().await;
        })
        .await;
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        self.reader.abort();
        // The writer stops by itself once every sender is gone; abort it in case a backend
        // still holds a stream writer after the session ended.
        self.writer.abort();
    }
}

/// Runs a SPDY/3.1 server connection over `r`/`w`; new streams whose headers `accept` takes
/// arrive on the returned channel.
pub fn serve<R, W>(r: R, w: W, accept: Acceptor) -> (ConnHandle, mpsc::UnboundedReceiver<SpdyStream>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    let (new_tx, new_rx) = mpsc::unbounded_channel();
    let (closed_tx, closed_rx) = watch::channel(false);
    let last_stream = Arc::new(AtomicU32::new(0));
    let writer = tokio::spawn(write_loop(w, rx));
    let reader = tokio::spawn(read_loop(r, tx.clone(), new_tx, accept, closed_tx, last_stream.clone()));
    (ConnHandle { tx, closed: closed_rx, last_stream, reader, writer }, new_rx)
}

async fn write_loop<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::Receiver<Out>) {
    let mut deflate = HeaderCompressor::new();
    let mut buf = Vec::with_capacity(CHUNK + 64);
    // Streams we finished or reset: later frames for them are dropped, so a FIN sent by the
    // session is never followed by data a backend queued after it.
    let mut done: HashSet<u32> = HashSet::new();
    loop {
        let Some(first) = rx.recv().await else { break };
        let mut close = false;
        let mut next = Some(first);
        // Batch what is already queued into one write.
        while let Some(out) = next.take() {
            match out {
                Out::Frame(f) => {
                    let finishes = match &f {
                        Frame::Data { stream_id, flags, .. } => (flags & FLAG_FIN != 0).then_some(*stream_id),
                        Frame::RstStream { stream_id, .. } => Some(*stream_id),
                        _ => None,
                    };
                    let stream = match &f {
                        Frame::Data { stream_id, .. } | Frame::RstStream { stream_id, .. } => Some(*stream_id),
                        _ => None,
                    };
                    if stream.is_some_and(|id| done.contains(&id)) {
                        // Already finished: drop.
                    } else {
                        if let Some(id) = finishes {
                            done.insert(id);
                        }
                        frame::encode(&f, &mut deflate, &mut buf);
                    }
                }
                Out::Close => {
                    close = true;
                    break;
                }
            }
            if buf.len() < 4 * CHUNK {
                next = rx.try_recv().ok();
            }
        }
        if w.write_all(&buf).await.is_err() || w.flush().await.is_err() {
            break;
        }
        buf.clear();
        if close {
            let _ = w.shutdown().await;
            break;
        }
    }
}

struct Entry {
    /// `None` once the client finished its side.
    in_tx: Option<mpsc::Sender<Vec<u8>>>,
    shared: Arc<Shared>,
}

async fn read_loop<R: AsyncRead + Unpin>(
    r: R,
    out: mpsc::Sender<Out>,
    new_streams: mpsc::UnboundedSender<SpdyStream>,
    accept: Acceptor,
    closed: watch::Sender<bool>,
    last_stream: Arc<AtomicU32>,
) {
    let mut r = BufReader::with_capacity(16 * 1024, r);
    let mut inflate = HeaderDecompressor::new();
    let mut streams: HashMap<u32, Entry> = HashMap::new();
    let mut gone_away = false;
    loop {
        let mut head = [0u8; 8];
        if r.read_exact(&mut head).await.is_err() {
            break;
        }
        let head = FrameHead::parse(head);
        let mut payload = vec![0u8; head.length];
        if r.read_exact(&mut payload).await.is_err() {
            break;
        }
        let frame = match frame::decode(head, payload, &mut inflate) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!("spdy: {e}; closing the connection");
                let last = last_stream.load(Ordering::Relaxed);
                let _ = out
                    .send(Out::Frame(Frame::GoAway { last_good_stream_id: last, status: goaway::PROTOCOL_ERROR }))
                    .await;
                let _ = out.send(Out::Close).await;
                break;
            }
        };
        match frame {
            Frame::SynStream { stream_id, flags, headers, .. } => {
                if gone_away {
                    continue;
                }
                let last = last_stream.load(Ordering::Relaxed);
                if stream_id % 2 == 0 || stream_id <= last {
                    let _ = out.send(Out::Frame(Frame::RstStream { stream_id, status: rst::PROTOCOL_ERROR })).await;
                    continue;
                }
                last_stream.store(stream_id, Ordering::Relaxed);
                streams.retain(|_, e| !(e.in_tx.is_none() && e.shared.local_done.load(Ordering::Relaxed)));
                if streams.len() >= MAX_STREAMS {
                    let _ = out.send(Out::Frame(Frame::RstStream { stream_id, status: rst::REFUSED_STREAM })).await;
                    continue;
                }
                if let Err(e) = accept(&headers) {
                    tracing::debug!("spdy: stream {stream_id} rejected: {e}");
                    let _ = out.send(Out::Frame(Frame::RstStream { stream_id, status: rst::CANCEL })).await;
                    continue;
                }
                let unidirectional = flags & FLAG_UNIDIRECTIONAL != 0;
                let shared =
                    Arc::new(Shared { reset: AtomicBool::new(false), local_done: AtomicBool::new(unidirectional) });
                let (in_tx, in_rx) = mpsc::channel(IN_QUEUE);
                let in_tx = if flags & FLAG_FIN != 0 { None } else { Some(in_tx) };
                streams.insert(stream_id, Entry { in_tx, shared: shared.clone() });
                let reply = Frame::SynReply { stream_id, flags: 0, headers: Headers::default() };
                if out.send(Out::Frame(reply)).await.is_err() {
                    break;
                }
                let writer = StreamWriter {
                    id: stream_id,
                    tx: PollSender::new(out.clone()),
                    raw: out.clone(),
                    shared,
                    closed: unidirectional,
                };
                let reader = ChanReader::new(in_rx);
                let _ = new_streams.send(SpdyStream { id: stream_id, headers, reader, writer });
            }
            Frame::Data { stream_id, flags, data } => {
                let Some(entry) = streams.get_mut(&stream_id) else { continue };
                if !data.is_empty() {
                    if let Some(tx) = &entry.in_tx {
                        // A reader that went away just loses the data, as a closed pipe would.
                        if tx.send(data).await.is_err() {
                            entry.in_tx = None;
                        }
                    }
                }
                if flags & FLAG_FIN != 0 {
                    entry.in_tx = None;
                    if entry.shared.local_done.load(Ordering::Relaxed) {
                        streams.remove(&stream_id);
                    }
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(entry) = streams.remove(&stream_id) {
                    entry.shared.reset.store(true, Ordering::Relaxed);
                }
            }
            Frame::Ping { id } => {
                // Odd ids are the client's pings: echo them. Even ones would answer ours.
                if id % 2 == 1 && out.send(Out::Frame(Frame::Ping { id })).await.is_err() {
                    break;
                }
            }
            Frame::GoAway { .. } => gone_away = true,
            Frame::Headers { stream_id, flags, .. } => {
                if flags & FLAG_FIN != 0 {
                    if let Some(entry) = streams.get_mut(&stream_id) {
                        entry.in_tx = None;
                    }
                }
            }
            Frame::SynReply { .. } | Frame::Settings { .. } | Frame::WindowUpdate { .. } | Frame::Unknown { .. } => {}
        }
    }
    for (_, entry) in streams.drain() {
        entry.shared.reset.store(true, Ordering::Relaxed);
    }
    let _ = closed.send(true);
}
