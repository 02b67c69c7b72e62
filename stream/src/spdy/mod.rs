//! SPDY/3.1 as moby/spdystream speaks it (the transport of client-go's `remotecommand` and
//! `portforward` over HTTP upgrades): frames, header compression, and a server connection.
//!
//! spdystream does not do flow control: it never sends WINDOW_UPDATE, ignores the ones it gets
//! and applies back-pressure only by not reading its socket. This side does the same: it never
//! enforces or advertises windows, and a stream whose reader is slow stops the connection's
//! reader once the stream's small queue is full.

pub mod conn;
mod dictionary;
pub mod frame;
pub mod zlib;

pub use conn::{serve, ConnHandle, SpdyStream, StreamCloser, StreamReader, StreamWriter};
pub use zlib::Headers;

/// A frame the peer sent that this side cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("SPDY protocol error: {0}")]
    Protocol(&'static str),
    #[error("unsupported SPDY version {0}")]
    UnsupportedVersion(u16),
}

#[cfg(test)]
mod tests;
