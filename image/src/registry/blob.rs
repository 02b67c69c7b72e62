//! Blob downloads: streamed into the content store (which verifies them), resumed
//! with `Range` requests when the connection breaks.

use std::io::Read;

use crate::chunks::{ChunkWriter, Tee};
use crate::oci::Descriptor;
use crate::store::Store;

use super::session::Session;
use super::RegistryError;

/// Requests per blob download (the first, then resumes with `Range`).
const BLOB_ATTEMPTS: u32 = 3;

impl Session<'_> {
    /// Streams a blob into the store, verified.
    pub(super) fn blob(&mut self, store: &Store, d: &Descriptor) -> Result<(), RegistryError> {
        self.blob_bar(store, d, None, None)
    }

    /// [`Session::blob`], advancing `bar` (a terminal progress bar), and handing
    /// every byte to `tee` too (a layer unpacked as it downloads; it sees the end
    /// of the stream when this returns, whether the blob verified or not).
    pub(super) fn blob_bar(
        &mut self,
        store: &Store,
        d: &Descriptor,
        bar: Option<indicatif::ProgressBar>,
        tee: Option<ChunkWriter>,
    ) -> Result<(), RegistryError> {
        if store.has(&d.digest) {
            return Ok(());
        }
        let path = format!("/blobs/{}", d.digest);
        let resp = self.get(&path, None)?;
        let r = Resuming {
            s: self,
            path: &path,
            size: d.size,
            got: 0,
            skip: 0,
            attempts: 1,
            reader: Some(resp.into_reader()),
            last: None,
        };
        let res = match tee {
            Some(w) => {
                store.put(crate::progress::Counting::new(Tee::new(r, w), bar.clone()), Some(&d.digest), Some(d.size))
            }
            None => store.put(crate::progress::Counting::new(r, bar.clone()), Some(&d.digest), Some(d.size)),
        };
        if let Some(b) = bar {
            match res {
                Ok(_) => b.finish_with_message("done"),
                Err(_) => b.abandon_with_message("failed"),
            }
        }
        res?;
        Ok(())
    }
}

/// A blob body that survives broken connections: when the body ends early
/// (an error, or EOF before the descriptor's size), it asks again with
/// `Range: bytes=N-` (N = the bytes already handed out, which are in the
/// store's temp file) and goes on reading the 206 answer; a server that
/// ignores Range (200) sends the whole blob again, whose first N bytes are
/// skipped (the download restarts from zero). At most [`BLOB_ATTEMPTS`]
/// requests; the store verifies the digest and the size of the whole file.
struct Resuming<'s, 'a> {
    s: &'s mut Session<'a>,
    path: &'s str,
    size: u64,
    /// Bytes handed out.
    got: u64,
    /// Bytes of the current body still to drop (a restart from zero).
    skip: u64,
    attempts: u32,
    reader: Option<Box<dyn Read + Send + Sync + 'static>>,
    /// Why the last attempt failed.
    last: Option<String>,
}

impl Resuming<'_, '_> {
    /// Opens the next attempt's body.
    fn resume(&mut self, why: String) -> std::io::Result<()> {
        if self.attempts >= BLOB_ATTEMPTS {
            return Err(std::io::Error::other(format!(
                "{}: download failed after {} attempts: {why}",
                self.path.trim_start_matches('/'),
                self.attempts
            )));
        }
        self.attempts += 1;
        tracing::info!(path = self.path, from = self.got, %why, "resuming blob download");
        self.last = Some(why);
        self.reader = None;
        self.skip = 0;
        let resp = self.s.get_from(self.path, None, Some(self.got)).map_err(|e| std::io::Error::other(e.to_string()));
        match resp {
            Ok(r) if r.status() == 206 => {
                // Content-Range: bytes START-END/TOTAL must start where we are.
                let start = r
                    .header("Content-Range")
                    .and_then(|v| v.trim().strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if start != Some(self.got) {
                    return Err(std::io::Error::other(format!(
                        "{}: bad Content-Range {:?} for a resume at byte {}",
                        self.path.trim_start_matches('/'),
                        r.header("Content-Range"),
                        self.got
                    )));
                }
                self.reader = Some(r.into_reader());
            }
            Ok(r) => {
                self.skip = self.got;
                self.reader = Some(r.into_reader());
            }
            Err(e) => self.last = Some(e.to_string()),
        }
        Ok(())
    }
}

impl Read for Resuming<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(r) = self.reader.as_mut() else {
                let why = self.last.take().unwrap_or_default();
                self.resume(why)?;
                continue;
            };
            let res = if self.skip > 0 {
                let n = buf.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                match r.read(&mut buf[..n]) {
                    Ok(0) => Ok(0),
                    Ok(k) => {
                        self.skip -= k as u64;
                        continue;
                    }
                    Err(e) => Err(e),
                }
            } else {
                r.read(buf)
            };
            match res {
                Ok(0) if self.skip == 0 && self.got >= self.size => return Ok(0),
                Ok(0) => {
                    let why = format!("connection closed after {} of {} bytes", self.got, self.size);
                    self.resume(why)?;
                }
                Ok(n) => {
                    self.got += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(e),
                Err(e) => self.resume(format!("{e} after {} of {} bytes", self.got, self.size))?,
            }
        }
    }
}
