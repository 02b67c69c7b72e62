//! An `AsyncRead` over a channel of byte chunks: how a connection's reader task hands the
//! client's data for one stream or channel to whoever reads it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// Reads the chunks sent on a channel; EOF once every sender is gone.
pub struct ChanReader {
    rx: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
    pos: usize,
}

impl ChanReader {
    pub fn new(rx: mpsc::Receiver<Vec<u8>>) -> Self {
        ChanReader { rx, pending: Vec::new(), pos: 0 }
    }
}

impl AsyncRead for ChanReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.pos >= this.pending.len() {
            match ready!(this.rx.poll_recv(cx)) {
                Some(data) => {
                    this.pending = data;
                    this.pos = 0;
                }
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = buf.remaining().min(this.pending.len() - this.pos);
        buf.put_slice(&this.pending[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}
