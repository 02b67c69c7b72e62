//! A fix for clients that send the socket path as HTTP/2 `:authority`.
//!
//! gRPC-Go clients that dial a unix socket by its path (crictl up to at least
//! v1.26, older kubelets, grpcurl) send `:authority: /run/capsa/cri.sock`. The
//! HTTP/2 server under tonic (h2) refuses that as a malformed authority and resets
//! every stream (PROTOCOL_ERROR), and it has no option to accept it.
//!
//! So each accepted connection goes through [`FixAuthority`]: it reads the client's
//! frames and, if the first request's `:authority` is not a valid authority, it
//! rewrites every request's header block from then on, with `:authority: localhost`.
//! Rewriting means decoding the HPACK block (keeping the client's dynamic table, as
//! the server would) and encoding each header as a literal without indexing (no
//! dynamic table on the server's side at all). A connection whose first request is
//! well-formed (kubelet sends `localhost`) is passed through untouched, byte for byte.
//! Only the client-to-server direction is read; answers go straight back.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use httlib_hpack::{Decoder, Encoder};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The server's SETTINGS_MAX_FRAME_SIZE (h2's default, which tonic keeps).
const MAX_FRAME: usize = 16_384;
/// The server's SETTINGS_HEADER_TABLE_SIZE (h2's default).
const TABLE_SIZE: u32 = 4096;
/// A client that sends more than this in one header block is cut off.
const MAX_BLOCK: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Until the first request's headers: undecided.
    Undecided,
    /// Well-formed: everything passes untouched.
    Pass,
    /// Header blocks are rewritten.
    Rewrite,
}

/// A header block being gathered (HEADERS + CONTINUATION frames).
struct Pending {
    stream: u32,
    /// HEADERS flags (END_STREAM kept), and its PRIORITY fields if any.
    flags: u8,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
    /// The frames as received (forwarded as they are when the mode is Pass).
    raw: Vec<u8>,
}

/// The client-to-server byte stream, frame by frame.
struct Rewriter {
    mode: Mode,
    preface_left: usize,
    input: Vec<u8>,
    pending: Option<Pending>,
    decoder: Decoder<'static>,
}

/// Whether `a` can be an HTTP `:authority` (`host[:port]`, RFC 3986 characters).
fn valid_authority(a: &[u8]) -> bool {
    !a.is_empty() && a.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@[]%".contains(&b))
}

fn frame_header(len: usize, ty: u8, flags: u8, stream: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

impl Rewriter {
    fn new() -> Rewriter {
        Rewriter {
            mode: Mode::Undecided,
            preface_left: PREFACE.len(),
            input: Vec::new(),
            pending: None,
            decoder: Decoder::with_dynamic_size(TABLE_SIZE),
        }
    }

    /// Takes bytes from the client; returns what goes to the server.
    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        if self.mode == Mode::Pass && self.input.is_empty() {
            out.extend_from_slice(data);
            return Ok(());
        }
        self.input.extend_from_slice(data);
        let mut pos = 0;
        if self.preface_left > 0 {
            let n = self.preface_left.min(self.input.len());
            out.extend_from_slice(&self.input[..n]);
            self.preface_left -= n;
            pos = n;
        }
        while self.preface_left == 0 {
            if self.mode == Mode::Pass {
                out.extend_from_slice(&self.input[pos..]);
                pos = self.input.len();
                break;
            }
            let rest = &self.input[pos..];
            if rest.len() < 9 {
                break;
            }
            let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
            if rest.len() < 9 + len {
                break;
            }
            let (ty, flags) = (rest[3], rest[4]);
            let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
            let frame = rest[..9 + len].to_vec();
            pos += 9 + len;
            self.frame(ty, flags, stream, &frame, out)?;
        }
        self.input.drain(..pos);
        Ok(())
    }

    fn frame(&mut self, ty: u8, flags: u8, stream: u32, frame: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let payload = &frame[9..];
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, format!("HTTP/2 from the client: {m}"));
        match ty {
            HEADERS => {
                if self.pending.is_some() {
                    return Err(bad("HEADERS inside a header block"));
                }
                let mut p = payload;
                let mut pad = 0;
                if flags & PADDED != 0 {
                    pad = *p.first().ok_or_else(|| bad("short HEADERS"))? as usize;
                    p = &p[1..];
                }
                let mut priority = None;
                if flags & PRIORITY != 0 {
                    let f: [u8; 5] = p.get(..5).and_then(|s| s.try_into().ok()).ok_or_else(|| bad("short HEADERS"))?;
                    priority = Some(f);
                    p = &p[5..];
                }
                let block = p.get(..p.len().checked_sub(pad).ok_or_else(|| bad("bad padding"))?).unwrap_or(&[]);
                self.pending = Some(Pending {
                    stream,
                    flags: flags & !(PADDED | PRIORITY | END_HEADERS),
                    priority,
                    block: block.to_vec(),
                    raw: frame.to_vec(),
                });
            }
            CONTINUATION => {
                let p = self.pending.as_mut().ok_or_else(|| bad("CONTINUATION without HEADERS"))?;
                if p.stream != stream {
                    return Err(bad("CONTINUATION of another stream"));
                }
                p.block.extend_from_slice(payload);
                p.raw.extend_from_slice(frame);
                if p.block.len() > MAX_BLOCK {
                    return Err(bad("header block too large"));
                }
            }
            _ => {
                if self.pending.is_some() {
                    return Err(bad("a frame inside a header block"));
                }
                out.extend_from_slice(frame);
                return Ok(());
            }
        }
        if flags & END_HEADERS != 0 {
            if let Some(p) = self.pending.take() {
                self.block(p, out)?;
            }
        }
        Ok(())
    }

    /// A complete header block: decided, passed or rewritten.
    fn block(&mut self, p: Pending, out: &mut Vec<u8>) -> io::Result<()> {
        let mut buf = p.block.clone();
        let mut fields = Vec::new();
        self.decoder
            .decode(&mut buf, &mut fields)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("HPACK from the client: {e:?}")))?;
        let authority_ok =
            fields.iter().find(|(n, _, _)| n == b":authority").is_none_or(|(_, v, _)| valid_authority(v));
        if self.mode == Mode::Undecided {
            if authority_ok {
                self.mode = Mode::Pass;
                out.extend_from_slice(&p.raw);
                return Ok(());
            }
            tracing::debug!("a client sent a malformed :authority; rewriting its requests' headers");
            self.mode = Mode::Rewrite;
        }
        let mut enc = Encoder::default();
        let mut block = Vec::new();
        for (name, value, flags) in fields {
            let value = if name == b":authority" && !valid_authority(&value) { b"localhost".to_vec() } else { value };
            // Without indexing (or never indexed, as the client asked), no Huffman.
            let f = if flags & Decoder::NEVER_INDEXED != 0 { Encoder::NEVER_INDEXED } else { 0 };
            enc.encode_literal(name, value, f, &mut block)
                .map_err(|e| io::Error::other(format!("HPACK encode: {e:?}")))?;
        }
        let mut first = Vec::new();
        if let Some(pr) = p.priority {
            first.extend_from_slice(&pr);
        }
        let room = MAX_FRAME - first.len();
        let (head, mut rest) = block.split_at(block.len().min(room));
        first.extend_from_slice(head);
        let hflags =
            p.flags | if p.priority.is_some() { PRIORITY } else { 0 } | if rest.is_empty() { END_HEADERS } else { 0 };
        frame_header(first.len(), HEADERS, hflags, p.stream, out);
        out.extend_from_slice(&first);
        while !rest.is_empty() {
            let (c, r) = rest.split_at(rest.len().min(MAX_FRAME));
            frame_header(c.len(), CONTINUATION, if r.is_empty() { END_HEADERS } else { 0 }, p.stream, out);
            out.extend_from_slice(c);
            rest = r;
        }
        Ok(())
    }
}

/// An accepted connection whose requests get a valid `:authority` (see the module docs).
pub struct FixAuthority<S> {
    inner: S,
    rw: Rewriter,
    /// Rewritten bytes not yet handed to the reader.
    ready: Vec<u8>,
    ready_pos: usize,
}

impl<S> FixAuthority<S> {
    pub fn new(inner: S) -> FixAuthority<S> {
        FixAuthority { inner, rw: Rewriter::new(), ready: Vec::new(), ready_pos: 0 }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FixAuthority<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        loop {
            if me.ready_pos < me.ready.len() {
                let n = (me.ready.len() - me.ready_pos).min(buf.remaining());
                buf.put_slice(&me.ready[me.ready_pos..me.ready_pos + n]);
                me.ready_pos += n;
                if me.ready_pos == me.ready.len() {
                    me.ready.clear();
                    me.ready_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut tmp = [0u8; 16 << 10];
            let mut rb = ReadBuf::new(&mut tmp);
            match Pin::new(&mut me.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let got = rb.filled();
                    if got.is_empty() {
                        return Poll::Ready(Ok(())); // EOF
                    }
                    me.rw.feed(got, &mut me.ready)?;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FixAuthority<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S> tonic::transport::server::Connected for FixAuthority<S> {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's header block: (name, value) with Huffman and indexing, as grpc-go does.
    fn client_block(enc: &mut Encoder<'static>, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (n, v) in fields {
            let flags = Encoder::HUFFMAN_NAME | Encoder::HUFFMAN_VALUE | Encoder::WITH_INDEXING | Encoder::BEST_FORMAT;
            enc.encode((n.as_bytes().to_vec(), v.as_bytes().to_vec(), flags), &mut b).unwrap();
        }
        b
    }

    fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        frame_header(payload.len(), ty, flags, stream, &mut f);
        f.extend_from_slice(payload);
        f
    }

    /// (frame type, stream, decoded headers) as the server sees them.
    type Seen = Vec<(u8, u32, Vec<(String, String)>)>;

    /// Splits the server-side bytes into frames; decodes header blocks with a fresh decoder.
    fn server_view(bytes: &[u8]) -> Seen {
        assert!(bytes.starts_with(PREFACE));
        let mut d = Decoder::with_dynamic_size(TABLE_SIZE);
        let mut out = Vec::new();
        let mut p = PREFACE.len();
        let mut block = Vec::new();
        while p < bytes.len() {
            let len = u32::from_be_bytes([0, bytes[p], bytes[p + 1], bytes[p + 2]]) as usize;
            let (ty, flags) = (bytes[p + 3], bytes[p + 4]);
            let stream = u32::from_be_bytes(bytes[p + 5..p + 9].try_into().unwrap());
            let payload = &bytes[p + 9..p + 9 + len];
            p += 9 + len;
            if ty == HEADERS || ty == CONTINUATION {
                let skip = if ty == HEADERS && flags & PRIORITY != 0 { 5 } else { 0 };
                block.extend_from_slice(&payload[skip..]);
                if flags & END_HEADERS != 0 {
                    let mut fields = Vec::new();
                    d.decode(&mut block, &mut fields).unwrap();
                    block.clear();
                    let f = fields
                        .into_iter()
                        .map(|(n, v, _)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                        .collect();
                    out.push((HEADERS, stream, f));
                }
            } else {
                out.push((ty, stream, Vec::new()));
            }
        }
        out
    }

    fn run(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut rw = Rewriter::new();
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            rw.feed(c, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn socket_path_authority_becomes_localhost_across_dynamic_table_references() {
        let mut enc = Encoder::default();
        let req = |enc: &mut Encoder<'static>, path: &str| {
            client_block(
                enc,
                &[
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":path", path),
                    (":authority", "/run/capsa/cri.sock"),
                    ("content-type", "application/grpc"),
                    ("user-agent", "grpc-go/1.51.0"),
                ],
            )
        };
        let b1 = req(&mut enc, "/runtime.v1.RuntimeService/Version");
        let b2 = req(&mut enc, "/runtime.v1.RuntimeService/Status");
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        input.extend(frame(HEADERS, END_HEADERS, 1, &b1));
        input.extend(frame(0x0, 0x1, 1, b"\0\0\0\0\0")); // DATA
                                                         // The second request split over HEADERS + CONTINUATION, which refer to the
                                                         // first one's dynamic table entries.
        let (x, y) = b2.split_at(b2.len() / 2);
        input.extend(frame(HEADERS, 0, 3, x));
        input.extend(frame(CONTINUATION, END_HEADERS, 3, y));
        for chunk in [1, 7, 4096] {
            let v = server_view(&run(&input, chunk));
            let heads: Vec<_> = v.iter().filter(|(t, _, f)| *t == HEADERS && !f.is_empty()).collect();
            assert_eq!(heads.len(), 2, "{v:?}");
            for (_, _, f) in &heads {
                assert!(f.contains(&(":authority".into(), "localhost".into())), "{f:?}");
                assert!(f.contains(&("user-agent".into(), "grpc-go/1.51.0".into())), "{f:?}");
            }
            assert!(heads[1].2.contains(&(":path".into(), "/runtime.v1.RuntimeService/Status".into())));
            assert_eq!(v.iter().filter(|(t, _, _)| *t == 0x0).count(), 1, "the DATA frame passes");
        }
    }

    #[test]
    fn well_formed_connections_pass_untouched() {
        let mut enc = Encoder::default();
        let b = client_block(&mut enc, &[(":method", "POST"), (":path", "/x"), (":authority", "localhost")]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS | PADDED, 1, &[&[2u8][..], &b, &[0, 0]].concat()));
        input.extend(frame(0x0, 0, 1, b"abc"));
        assert_eq!(run(&input, 5), input);
        assert!(valid_authority(b"localhost:8080") && valid_authority(b"[::1]:1"));
        assert!(!valid_authority(b"/run/x.sock") && !valid_authority(b""));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut rw = Rewriter::new();
        let mut out = Vec::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(CONTINUATION, END_HEADERS, 1, b"x"));
        assert!(rw.feed(&input, &mut out).is_err());
        let mut rw = Rewriter::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS | PADDED, 1, &[9]));
        assert!(rw.feed(&input, &mut out).is_err());
    }
}
