//! A byte stream handed from one thread to another in recycled 1 MiB chunks.
//!
//! Two uses: a layer is inflated (and its tar stream hashed) on one thread while
//! another applies it (see `apply`), and a layer is unpacked on one thread while
//! another downloads it into the content store (see `registry`). Overlapping the
//! two halves takes the slower of them instead of their sum. The queue is bounded
//! (a few chunks) and chunks are recycled, so memory stays at a few MiB whatever
//! the stream's size; a full queue makes the writer wait for the reader.
//!
//! Dropping the [`ChunkReader`] (its user failed) makes the writer's next push
//! report it, so the writing thread can stop or go on alone; dropping the
//! [`ChunkWriter`] ends the stream (after flushing what it holds).

use std::io::{self, Read};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use crate::digest::Hasher;

/// Size of one chunk.
const CHUNK: usize = 1 << 20;
/// Chunks queued before the writer waits for the reader.
const QUEUE: usize = 4;

/// A filled chunk (the buffer and how much of it holds data), or the error that
/// ended the stream.
type Msg = io::Result<(Vec<u8>, usize)>;

/// A writer and a reader with a relay between them that hashes every byte on its
/// way (run [`HashRelay::run`] on a thread of its own): the three stages of a layer
/// unpack (inflate, hash, apply) then overlap instead of inflate and hash sharing
/// one thread. Chunks still go back to the writer for reuse.
pub fn hashed_pair() -> (ChunkWriter, HashRelay, ChunkReader) {
    let (tx1, rx1) = sync_channel(QUEUE);
    let (tx2, rx2) = sync_channel(QUEUE);
    let (free_tx, free) = channel();
    (
        ChunkWriter { tx: Some(tx1), free, cur: Vec::new(), len: 0 },
        HashRelay { rx: rx1, tx: tx2 },
        ChunkReader { rx: rx2, free: free_tx, cur: Vec::new(), len: 0, pos: 0, done: false },
    )
}

/// The middle stage of [`hashed_pair`].
pub struct HashRelay {
    rx: Receiver<Msg>,
    tx: SyncSender<Msg>,
}

impl HashRelay {
    /// Hashes and forwards every chunk until the writer ends the stream (or fails,
    /// which is forwarded too) or the reader goes away; the digest and size of
    /// what passed.
    pub fn run(self) -> (crate::digest::Digest, u64) {
        let mut h = Hasher::new();
        for msg in self.rx {
            let stop = msg.is_err();
            if let Ok((buf, n)) = &msg {
                h.update(&buf[..*n]);
            }
            if self.tx.send(msg).is_err() || stop {
                break;
            }
        }
        h.finish()
    }
}

/// The writing end.
pub struct ChunkWriter {
    tx: Option<SyncSender<Msg>>,
    free: Receiver<Vec<u8>>,
    /// The chunk being filled by [`ChunkWriter::push`], and its fill.
    cur: Vec<u8>,
    len: usize,
}

/// The reading end: a [`Read`] of the stream.
pub struct ChunkReader {
    rx: Receiver<Msg>,
    free: Sender<Vec<u8>>,
    cur: Vec<u8>,
    len: usize,
    pos: usize,
    done: bool,
}

/// A connected writer and reader.
pub fn channel_pair() -> (ChunkWriter, ChunkReader) {
    let (tx, rx) = sync_channel(QUEUE);
    let (free_tx, free) = channel();
    (
        ChunkWriter { tx: Some(tx), free, cur: Vec::new(), len: 0 },
        ChunkReader { rx, free: free_tx, cur: Vec::new(), len: 0, pos: 0, done: false },
    )
}

impl ChunkWriter {
    /// Whether the reader is still there (pushes are not dropped).
    pub fn is_connected(&self) -> bool {
        self.tx.is_some()
    }

    fn buffer(&self) -> Vec<u8> {
        self.free.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK])
    }

    /// Queues a full or final chunk; false (and disconnected) when the reader is gone.
    fn send(&mut self, buf: Vec<u8>, n: usize) -> bool {
        match &self.tx {
            Some(tx) if tx.send(Ok((buf, n))).is_ok() => true,
            _ => {
                self.tx = None;
                false
            }
        }
    }

    /// Copies `data` into the stream; false once the reader is gone (the data is
    /// dropped then).
    pub fn push(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() && self.tx.is_some() {
            if self.cur.is_empty() {
                self.cur = self.buffer();
                self.len = 0;
            }
            let n = data.len().min(CHUNK - self.len);
            self.cur[self.len..self.len + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == CHUNK {
                let buf = std::mem::take(&mut self.cur);
                self.send(buf, CHUNK);
            }
        }
        self.tx.is_some()
    }

    /// Reads `src` to its end straight into chunks (no extra copy), feeding
    /// `hasher` (if any) with every byte. Stops early, without error, when the
    /// reader goes away. A read error is handed to the reader and returned.
    pub fn pump<R: Read>(mut self, mut src: R, mut hasher: Option<&mut Hasher>) -> io::Result<()> {
        self.flush();
        while self.tx.is_some() {
            let mut buf = self.buffer();
            let n = match fill(&mut src, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let copy = io::Error::new(e.kind(), e.to_string());
                    self.fail(e);
                    return Err(copy);
                }
            };
            if n == 0 {
                break;
            }
            if let Some(h) = hasher.as_deref_mut() {
                h.update(&buf[..n]);
            }
            if !self.send(buf, n) || n < CHUNK {
                break;
            }
        }
        Ok(())
    }

    /// Ends the stream with an error the reader will return.
    pub fn fail(&mut self, e: io::Error) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(e));
        }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            let (buf, n) = (std::mem::take(&mut self.cur), self.len);
            self.len = 0;
            self.send(buf, n);
        }
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Reads until `buf` is full or the input ends; the bytes read.
pub(crate) fn fill<R: Read>(src: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl ChunkReader {
    /// Takes the next chunk; false at the end of the stream.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        let old = std::mem::take(&mut self.cur);
        if !old.is_empty() {
            // Recycled; the writer may be gone already (then it is dropped).
            let _ = self.free.send(old);
        }
        self.pos = 0;
        self.len = 0;
        match self.rx.recv() {
            Ok(Ok((buf, n))) => {
                self.cur = buf;
                self.len = n;
                Ok(true)
            }
            Ok(Err(e)) => {
                self.done = true;
                Err(e)
            }
            Err(_) => {
                self.done = true;
                Ok(false)
            }
        }
    }

    /// Reads the rest of the stream without looking at it.
    pub fn drain(&mut self) -> io::Result<()> {
        while self.next_chunk()? {}
        Ok(())
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.len - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A reader that copies everything read through it into a [`ChunkWriter`] (a
/// second consumer of the same bytes, on another thread). When that consumer goes
/// away, reading goes on alone.
pub struct Tee<R> {
    inner: R,
    out: ChunkWriter,
}

impl<R: Read> Tee<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, out: ChunkWriter) -> Tee<R> {
        Tee { inner, out }
    }

    /// Ends the copy: the second consumer sees the end of the stream.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.out.is_connected() {
            self.out.push(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Vec<u8> {
        (0..3 * CHUNK + 12345).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn read_all(r: &mut ChunkReader) -> Vec<u8> {
        let mut got = Vec::new();
        let mut small = [0u8; 513];
        loop {
            let n = r.read(&mut small).unwrap();
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&small[..n]);
        }
    }

    #[test]
    fn pump_carries_and_hashes_every_byte() {
        let data = data();
        let (w, mut r) = channel_pair();
        let (got, h) = std::thread::scope(|s| {
            let t = s.spawn(|| {
                let mut h = Hasher::new();
                w.pump(&data[..], Some(&mut h)).unwrap();
                h
            });
            (read_all(&mut r), t.join().unwrap())
        });
        assert_eq!(got, data);
        let mut want = Hasher::new();
        want.update(&data);
        assert_eq!(h.finish(), want.finish());
    }

    #[test]
    fn a_hash_relay_hashes_what_it_forwards() {
        let data = data();
        let (w, relay, mut r) = hashed_pair();
        let (got, (d, n)) = std::thread::scope(|s| {
            s.spawn(|| w.pump(&data[..], None).unwrap());
            let t = s.spawn(|| relay.run());
            (read_all(&mut r), t.join().unwrap())
        });
        assert_eq!(got, data);
        let mut want = Hasher::new();
        want.update(&data);
        assert_eq!((d, n), want.finish());
    }

    #[test]
    fn a_tee_hands_the_same_bytes_to_both() {
        let data = data();
        let (w, mut r) = channel_pair();
        let (first, second) = std::thread::scope(|s| {
            let t = s.spawn(|| {
                let mut tee = Tee::new(&data[..], w);
                let mut first = Vec::new();
                let mut buf = [0u8; 7000];
                loop {
                    let n = tee.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    first.extend_from_slice(&buf[..n]);
                }
                first
            });
            let second = read_all(&mut r);
            (t.join().unwrap(), second)
        });
        assert_eq!(first, data);
        assert_eq!(second, data);
    }

    #[test]
    fn a_read_error_reaches_the_reader() {
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt deflate stream"));
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
        }
        let (w, mut r) = channel_pair();
        std::thread::scope(|s| {
            let t = s.spawn(|| w.pump(Broken(CHUNK + 10), None));
            let e = r.drain().unwrap_err();
            assert!(e.to_string().contains("corrupt deflate"), "{e}");
            assert!(t.join().unwrap().is_err());
        });
    }

    #[test]
    fn a_reader_that_goes_away_stops_the_writer() {
        let data = vec![0u8; 64 * CHUNK];
        let (w, r) = channel_pair();
        drop(r);
        // It returns (does not block on the full queue) once the reader is gone.
        std::thread::scope(|s| assert!(s.spawn(|| w.pump(&data[..], None)).join().unwrap().is_ok()));
        // A tee whose second consumer is gone goes on reading alone.
        let (w, r) = channel_pair();
        drop(r);
        let mut tee = Tee::new(&data[..], w);
        assert_eq!(io::copy(&mut tee, &mut io::sink()).unwrap(), data.len() as u64);
    }
}
