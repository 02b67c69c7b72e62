//! SPDY/3 header blocks: the name/value block format and its zlib compression.
//!
//! Each direction of a connection has one zlib stream for its whole life, primed with the SPDY
//! dictionary; every header block is one sync-flushed chunk of it (what Go's framer writes and
//! expects). flate2's pure-Rust zlib-rs backend supports dictionaries (miniz_oxide does not).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::DICTIONARY;
use super::FrameError;

/// Largest decompressed header block accepted: kubelet's clients send a handful of short
/// headers; this bounds what a zlib bomb can make us allocate.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Header name/value pairs, names lowercase. A name with several values appears several times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name` (case-insensitive), as Go's `http.Header.Get`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Adds a pair (name lowercased).
    pub fn add(&mut self, name: &str, value: &str) {
        self.0.push((name.to_ascii_lowercase(), value.to_string()));
    }

    /// The uncompressed block: a count, then length-prefixed names and values; several values
    /// of one name are joined with NUL (SPDY/3 section 2.6.10).
    pub fn encode(&self) -> Vec<u8> {
        let mut names: Vec<&str> = Vec::new();
        for (n, _) in &self.0 {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(names.len() as u32).to_be_bytes());
        for name in names {
            let values: Vec<&str> = self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
            let value = values.join("\0");
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// Parses an uncompressed block. Names are lowercased (Go's framer does the same, then
    /// reports an error we do not need: header names are looked up case-insensitively).
    pub fn decode(block: &[u8]) -> Result<Headers, FrameError> {
        let mut r = block;
        let count = take_u32(&mut r)?;
        let mut pairs = Vec::new();
        for _ in 0..count {
            let name_len = take_u32(&mut r)? as usize;
            let name = take(&mut r, name_len)?;
            let value_len = take_u32(&mut r)? as usize;
            let value = take(&mut r, value_len)?;
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            let value = String::from_utf8_lossy(value);
            for v in value.split('\0') {
                pairs.push((name.clone(), v.to_string()));
            }
        }
        if !r.is_empty() {
            return Err(FrameError::Protocol("trailing bytes after the header block"));
        }
        Ok(Headers(pairs))
    }
}

fn take_u32(r: &mut &[u8]) -> Result<u32, FrameError> {
    let b = take(r, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
    if r.len() < n {
        return Err(FrameError::Protocol("header block shorter than its lengths"));
    }
    let (head, tail) = r.split_at(n);
    *r = tail;
    Ok(head)
}

/// The compressing side of a connection's header stream.
pub struct HeaderCompressor {
    z: Compress,
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCompressor {
    pub fn new() -> Self {
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(DICTIONARY).expect("zlib-rs accepts a dictionary before the first deflate");
        HeaderCompressor { z }
    }

    /// Compresses one header block, sync-flushed so the peer can decode it at once.
    pub fn compress(&mut self, headers: &Headers) -> Vec<u8> {
        let raw = headers.encode();
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start_in = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start_in) as usize;
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            // Compressing into a Vec with spare room cannot fail: zlib only reports buffer
            // errors when it has no room or nothing to do, and we give it room.
            let _ = self.z.compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync);
            let consumed = (self.z.total_in() - start_in) as usize;
            if consumed == raw.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// The decompressing side of a connection's header stream.
pub struct HeaderDecompressor {
    z: Decompress,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    pub fn new() -> Self {
        HeaderDecompressor { z: Decompress::new(true) }
    }

    /// Decompresses one header block (a sync-flushed chunk of the connection's zlib stream)
    /// and parses it.
    pub fn decompress(&mut self, block: &[u8]) -> Result<Headers, FrameError> {
        let mut out = Vec::with_capacity(256);
        let start_in = self.z.total_in();
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(FrameError::Protocol("header block too large"));
                }
                out.reserve(out.len().min(MAX_HEADER_BLOCK - out.len()).max(256));
            }
            let (in_before, out_before) = (self.z.total_in(), out.len());
            let consumed = (in_before - start_in) as usize;
            match self.z.decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync) {
                Ok(Status::StreamEnd) => return Err(FrameError::Protocol("header zlib stream ended")),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z.set_dictionary(DICTIONARY).map_err(|_| FrameError::Protocol("header zlib dictionary"))?;
                    continue;
                }
                Err(_) => return Err(FrameError::Protocol("corrupt compressed header block")),
            }
            let consumed = (self.z.total_in() - start_in) as usize;
            if consumed == block.len() && out.len() < out.capacity() {
                break;
            }
            if self.z.total_in() == in_before && out.len() == out_before {
                return Err(FrameError::Protocol("truncated compressed header block"));
            }
        }
        Headers::decode(&out)
    }
}
