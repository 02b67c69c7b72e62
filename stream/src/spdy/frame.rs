//! SPDY/3 frames: the wire format (draft 3, section 2) of the frames moby/spdystream exchanges.
//!
//! A frame is an 8-byte header and a payload of at most 2^24-1 bytes. Control frames carry
//! `1 | version(15) | type(16)` then `flags(8) | length(24)`; data frames carry
//! `0 | stream id(31)` then `flags(8) | length(24)`.

use super::zlib::{HeaderCompressor, HeaderDecompressor, Headers};
use super::FrameError;

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
pub const FLAG_CLEAR_SETTINGS: u8 = 0x01;
/// Largest payload a frame length can express.
pub const MAX_PAYLOAD: usize = 0x00ff_ffff;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes used here.
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const CANCEL: u32 = 5;
    pub const STREAM_IN_USE: u32 = 8;
}

/// GOAWAY status codes.
pub mod goaway {
    pub const OK: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
}

/// One SPDY/3 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        slot: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// Entries are (flags, id, value).
    Settings {
        flags: u8,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Vec<u8>,
    },
    /// A control frame of a type this server ignores (NOOP, CREDENTIAL, future types).
    Unknown {
        frame_type: u16,
    },
}

/// A frame's 8-byte header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// `Some((version, type))` for a control frame, `None` for data.
    pub control: Option<(u16, u16)>,
    /// The stream id of a data frame.
    pub stream_id: u32,
    pub flags: u8,
    pub length: usize,
}

impl FrameHead {
    pub fn parse(b: [u8; 8]) -> FrameHead {
        let word = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let flags = b[4];
        let length = u32::from_be_bytes([0, b[5], b[6], b[7]]) as usize;
        if word & 0x8000_0000 != 0 {
            FrameHead { control: Some((((word >> 16) & 0x7fff) as u16, word as u16)), stream_id: 0, flags, length }
        } else {
            FrameHead { control: None, stream_id: word & 0x7fff_ffff, flags, length }
        }
    }
}

fn u31(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
}

fn u32_at(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Decodes a frame from its head and payload. Header blocks go through `inflate`, which must
/// see every header block of the connection in order.
pub fn decode(head: FrameHead, payload: Vec<u8>, inflate: &mut HeaderDecompressor) -> Result<Frame, FrameError> {
    let Some((version, frame_type)) = head.control else {
        if head.stream_id == 0 {
            return Err(FrameError::Protocol("data frame on stream 0"));
        }
        return Ok(Frame::Data { stream_id: head.stream_id, flags: head.flags, data: payload });
    };
    if version != VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    let p = &payload[..];
    let need = |n: usize| if p.len() < n { Err(FrameError::Protocol("control frame too short")) } else { Ok(()) };
    let exact =
        |n: usize| if p.len() != n { Err(FrameError::Protocol("control frame of a wrong length")) } else { Ok(()) };
    let frame = match frame_type {
        TYPE_SYN_STREAM => {
            need(10)?;
            let stream_id = u31(p);
            if stream_id == 0 {
                return Err(FrameError::Protocol("SYN_STREAM on stream 0"));
            }
            let headers = inflate.decompress(&p[10..])?;
            Frame::SynStream {
                stream_id,
                associated_to: u31(&p[4..]),
                priority: p[8] >> 5,
                slot: p[9],
                flags: head.flags,
                headers,
            }
        }
        TYPE_SYN_REPLY | TYPE_HEADERS => {
            need(4)?;
            let stream_id = u31(p);
            let headers = inflate.decompress(&p[4..])?;
            if frame_type == TYPE_SYN_REPLY {
                Frame::SynReply { stream_id, flags: head.flags, headers }
            } else {
                Frame::Headers { stream_id, flags: head.flags, headers }
            }
        }
        TYPE_RST_STREAM => {
            exact(8)?;
            Frame::RstStream { stream_id: u31(p), status: u32_at(&p[4..]) }
        }
        TYPE_SETTINGS => {
            need(4)?;
            let n = u32_at(p) as usize;
            if p.len() != 4 + n.checked_mul(8).ok_or(FrameError::Protocol("SETTINGS count"))? {
                return Err(FrameError::Protocol("SETTINGS length does not match its count"));
            }
            let entries = p[4..]
                .chunks_exact(8)
                .map(|e| (e[0], u32::from_be_bytes([0, e[1], e[2], e[3]]), u32_at(&e[4..])))
                .collect();
            Frame::Settings { flags: head.flags, entries }
        }
        TYPE_PING => {
            exact(4)?;
            Frame::Ping { id: u32_at(p) }
        }
        TYPE_GOAWAY => {
            // SPDY/2 GOAWAY had no status; accept the 4-byte form too.
            if p.len() != 8 && p.len() != 4 {
                return Err(FrameError::Protocol("GOAWAY of a wrong length"));
            }
            let status = if p.len() == 8 { u32_at(&p[4..]) } else { goaway::OK };
            Frame::GoAway { last_good_stream_id: u31(p), status }
        }
        TYPE_WINDOW_UPDATE => {
            exact(8)?;
            Frame::WindowUpdate { stream_id: u31(p), delta: u31(&p[4..]) }
        }
        other => Frame::Unknown { frame_type: other },
    };
    Ok(frame)
}

fn control(out: &mut Vec<u8>, frame_type: u16, flags: u8, payload_len: usize) {
    out.extend_from_slice(&(0x8000_0000u32 | (VERSION as u32) << 16 | frame_type as u32).to_be_bytes());
    out.extend_from_slice(&((flags as u32) << 24 | (payload_len as u32 & 0x00ff_ffff)).to_be_bytes());
}

/// Appends the wire form of `frame` to `out`. Header blocks go through `deflate`, which must
/// see every header block the connection sends, in order. Data payloads must not exceed
/// [`MAX_PAYLOAD`] (callers split larger writes).
pub fn encode(frame: &Frame, deflate: &mut HeaderCompressor, out: &mut Vec<u8>) {
    match frame {
        Frame::SynStream { stream_id, associated_to, priority, slot, flags, headers } => {
            let block = deflate.compress(headers);
            control(out, TYPE_SYN_STREAM, *flags, 10 + block.len());
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&(associated_to & 0x7fff_ffff).to_be_bytes());
            out.push(priority << 5);
            out.push(*slot);
            out.extend_from_slice(&block);
        }
        Frame::SynReply { stream_id, flags, headers } | Frame::Headers { stream_id, flags, headers } => {
            let t = if matches!(frame, Frame::SynReply { .. }) { TYPE_SYN_REPLY } else { TYPE_HEADERS };
            let block = deflate.compress(headers);
            control(out, t, *flags, 4 + block.len());
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&block);
        }
        Frame::RstStream { stream_id, status } => {
            control(out, TYPE_RST_STREAM, 0, 8);
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&status.to_be_bytes());
        }
        Frame::Settings { flags, entries } => {
            control(out, TYPE_SETTINGS, *flags, 4 + 8 * entries.len());
            out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            for (f, id, value) in entries {
                out.extend_from_slice(&((*f as u32) << 24 | (id & 0x00ff_ffff)).to_be_bytes());
                out.extend_from_slice(&value.to_be_bytes());
            }
        }
        Frame::Ping { id } => {
            control(out, TYPE_PING, 0, 4);
            out.extend_from_slice(&id.to_be_bytes());
        }
        Frame::GoAway { last_good_stream_id, status } => {
            control(out, TYPE_GOAWAY, 0, 8);
            out.extend_from_slice(&(last_good_stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&status.to_be_bytes());
        }
        Frame::WindowUpdate { stream_id, delta } => {
            control(out, TYPE_WINDOW_UPDATE, 0, 8);
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
        }
        Frame::Data { stream_id, flags, data } => {
            debug_assert!(data.len() <= MAX_PAYLOAD);
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.extend_from_slice(&((*flags as u32) << 24 | (data.len() as u32 & 0x00ff_ffff)).to_be_bytes());
            out.extend_from_slice(data);
        }
        Frame::Unknown { .. } => {}
    }
}

/// Splits `buf` into frames (for tests and the randomized parser check): returns the frames
/// decoded and how many bytes they used; stops at the first incomplete frame.
pub fn decode_buffer(mut buf: &[u8], inflate: &mut HeaderDecompressor) -> Result<(Vec<Frame>, usize), FrameError> {
    let mut frames = Vec::new();
    let mut used = 0;
    while buf.len() >= 8 {
        let head = FrameHead::parse(buf[..8].try_into().expect("8 bytes"));
        if buf.len() < 8 + head.length {
            break;
        }
        let payload = buf[8..8 + head.length].to_vec();
        frames.push(decode(head, payload, inflate)?);
        buf = &buf[8 + head.length..];
        used += 8 + head.length;
    }
    Ok((frames, used))
}
