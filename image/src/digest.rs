//! Content digests (`sha256:<64 lowercase hex>`) and streaming verification.
//!
//! Only sha256 is accepted: it is the only algorithm the OCI image spec
//! requires and the only one Docker and the registries produce. A digest is
//! parsed strictly (lowercase hex, exact length) because its hex part becomes a
//! file name in the content store: a lax parser would be a path traversal.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Length of a sha256 digest in hex characters.
const SHA256_HEX_LEN: usize = 64;

/// Errors about digests: bad syntax, or content that does not match.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// The string is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest {input:?}: {reason}")]
    Invalid {
        /// The offending input (truncated to 100 characters).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The content hashed to another digest than the one expected.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch {
        /// The digest the caller asked for.
        expected: Digest,
        /// The digest of the bytes actually read.
        actual: Digest,
    },
    /// The content had another size than the one expected.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The digest expected (or the one computed when none was expected).
        digest: String,
        /// The size the caller asked for.
        expected: u64,
        /// The number of bytes read (a lower bound when the stream was too long).
        actual: u64,
    },
}

/// A content digest. Always sha256; displayed as `sha256:<hex>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// 64 lowercase hex digits, validated at construction.
    hex: String,
}

impl Digest {
    /// Parses and validates `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let invalid = |reason| DigestError::Invalid { input: s.chars().take(100).collect(), reason };
        let (alg, hex) = s.split_once(':').ok_or_else(|| invalid("missing ':' between algorithm and hex"))?;
        if alg != "sha256" {
            return Err(invalid("unsupported algorithm (only sha256 is accepted)"));
        }
        Digest::from_hex(hex).map_err(|_| invalid("the sha256 part must be 64 lowercase hex digits"))
    }

    /// Builds a digest from the bare 64-digit lowercase hex part.
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        let ok = hex.len() == SHA256_HEX_LEN && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(DigestError::Invalid {
                input: hex.chars().take(100).collect(),
                reason: "the sha256 part must be 64 lowercase hex digits",
            });
        }
        Ok(Digest { hex: hex.to_owned() })
    }

    /// Builds a digest from a raw 32-byte sha256 value.
    pub fn from_sha256_bytes(bytes: &[u8; 32]) -> Digest {
        Digest { hex: hex::encode(bytes) }
    }

    /// The sha256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest::from_sha256_bytes(&Sha256::digest(data).into())
    }

    /// The algorithm name: always `"sha256"`.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// The 64 lowercase hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(sha256:{})", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A running sha256 with a byte count, shared by the reader and the writer.
#[derive(Clone, Default)]
pub struct Hasher {
    sha: Sha256,
    count: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.count += data.len() as u64;
    }

    /// Bytes fed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest of everything fed so far, and the byte count.
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_sha256_bytes(&self.sha.finalize().into()), self.count)
    }

    /// Finishes and checks against an expected digest and size.
    pub fn verify(self, expected: Option<&Digest>, size: Option<u64>) -> Result<Digest, DigestError> {
        let (actual, count) = self.finish();
        if let Some(size) = size {
            if size != count {
                return Err(DigestError::SizeMismatch {
                    digest: expected.unwrap_or(&actual).to_string(),
                    expected: size,
                    actual: count,
                });
            }
        }
        if let Some(expected) = expected {
            if *expected != actual {
                return Err(DigestError::Mismatch { expected: expected.clone(), actual });
            }
        }
        Ok(actual)
    }
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Hasher::new() }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.hasher.count()
    }

    /// The inner reader, for reading without hashing.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Returns the digest and size of what was read, and the inner reader.
    pub fn finish(self) -> (Digest, u64, R) {
        let (d, n) = self.hasher.finish();
        (d, n, self.inner)
    }

    /// Returns the hasher state (to verify) and the inner reader.
    pub fn into_parts(self) -> (Hasher, R) {
        (self.hasher, self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Hasher::new() }
    }

    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.hasher.count()
    }

    /// Returns the hasher state and the inner writer.
    pub fn into_parts(self) -> (Hasher, W) {
        (self.hasher, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that verifies a digest (and optionally a size) while streaming.
///
/// It never yields more than `size` bytes (reading past it is an error, so a
/// hostile blob cannot stream forever), and at end of stream it returns an
/// `InvalidData` error wrapping a [`DigestError`] if the content does not
/// match. A consumer that reads to EOF therefore never silently accepts bad
/// content; one that stops early must call [`VerifyingReader::finish`].
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Hasher,
    expected: Digest,
    size: Option<u64>,
    verified: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, expecting `expected` and, if given, exactly `size` bytes.
    pub fn new(inner: R, expected: Digest, size: Option<u64>) -> Self {
        VerifyingReader { inner, hasher: Hasher::new(), expected, size, verified: false }
    }

    /// Reads whatever is left and verifies; returns the inner reader.
    pub fn finish(mut self) -> io::Result<R> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.inner)
    }

    fn check(&mut self) -> io::Result<()> {
        let hasher = std::mem::take(&mut self.hasher);
        hasher.verify(Some(&self.expected), self.size).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.verified = true;
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified || buf.is_empty() {
            return Ok(0);
        }
        // Never hand out more than the declared size: ask for one byte past
        // the end at most, so an over-long stream is detected right away.
        let limit = match self.size {
            Some(size) => {
                let left = size.saturating_sub(self.hasher.count()) + 1;
                buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))
            }
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..limit])?;
        self.hasher.update(&buf[..n]);
        if let Some(size) = self.size {
            if self.hasher.count() > size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    DigestError::SizeMismatch {
                        digest: self.expected.to_string(),
                        expected: size,
                        actual: self.hasher.count(),
                    },
                ));
            }
        }
        if n == 0 {
            self.check()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_valid_and_invalid() {
        let d = Digest::parse(&format!("sha256:{EMPTY}")).unwrap();
        assert_eq!(d.hex(), EMPTY);
        assert_eq!(d.to_string(), format!("sha256:{EMPTY}"));
        assert_eq!(d, Digest::sha256_of(b""));
        for bad in [
            "",
            EMPTY,
            "sha256:",
            "sha512:00",
            &format!("sha256:{}", EMPTY.to_uppercase()),
            &format!("sha256:{}0", EMPTY),
            &format!("sha256:{}", &EMPTY[1..]),
            "sha256:../../../../../../../../../../../../../../../../../etc/passwd",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn serde_roundtrip() {
        let d = Digest::sha256_of(b"x");
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&j).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"md5:00\"").is_err());
    }

    #[test]
    fn verifying_reader() {
        let data = b"hello world";
        let good = Digest::sha256_of(data);
        let mut out = Vec::new();
        VerifyingReader::new(&data[..], good.clone(), Some(11)).read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        let bad = Digest::sha256_of(b"other");
        let e = VerifyingReader::new(&data[..], bad, None).read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        let e = VerifyingReader::new(&data[..], good.clone(), Some(5)).read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("size mismatch"), "{e}");
        let e = VerifyingReader::new(&data[..], good, Some(50)).read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("size mismatch"), "{e}");
    }

    #[test]
    fn hashing_writer() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (h, v) = w.into_parts();
        assert_eq!(v, b"abc");
        assert_eq!(h.finish().0, Digest::sha256_of(b"abc"));
    }
}
