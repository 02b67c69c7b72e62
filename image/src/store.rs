//! The content store: blobs by digest under `<root>/blobs/sha256/<hex>`.
//!
//! Every blob is verified on the way in. [`Store::put`] streams into a temp
//! file created in the same directory, hashes while writing, checks the digest
//! and the size, fsyncs, then renames over the final name and fsyncs the
//! directory ([`capsa_fsutil::TempFile`]): a blob is either absent or complete
//! and correct, never partial. On any error the temp file is removed.
//!
//! The store root and the blob directories are 0700 (narrowed on open when an
//! older version made them 0755): image content is root's alone.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, DigestError, HashingWriter, VerifyingReader};

/// Size of the copy buffer used by [`Store::put`].
const COPY_BUF: usize = 1 << 20;

/// Mode of the store's directories: nobody but root may look in (image layers
/// hold setuid files and device nodes).
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Errors from the content store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("content store: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reading the source stream failed (not a store problem).
    #[error("content store: read blob source: {0}")]
    Source(#[source] io::Error),
    /// The content did not match the expected digest or size.
    #[error("content store: {0}")]
    Verify(#[from] DigestError),
    /// The blob is not in the store.
    #[error("content store: blob {0} not found")]
    NotFound(Digest),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { op, path: path.to_owned(), source }
}

/// A content-addressed blob store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    blobs: PathBuf,
}

fn fs_err(e: capsa_fsutil::Error) -> StoreError {
    StoreError::Io { op: e.step, path: e.path, source: e.source }
}

/// Makes `dir` (and missing parents) with [`PRIVATE_DIR_MODE`], narrowing an existing
/// one; says so when it narrowed (a store made by an older version).
pub(crate) fn private_dir(dir: &Path) -> Result<(), capsa_fsutil::Error> {
    if let Some(old) = capsa_fsutil::ensure_dir(dir, PRIVATE_DIR_MODE)? {
        tracing::info!("{}: mode {old:04o} narrowed to {PRIVATE_DIR_MODE:04o}", dir.display());
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) a store at `root`; the root, `blobs/` and
    /// `blobs/sha256/` are made (or narrowed to) 0700.
    pub fn new(root: impl AsRef<Path>) -> Result<Store, StoreError> {
        let root = root.as_ref().to_owned();
        let blobs = root.join("blobs").join("sha256");
        for d in [&root, &root.join("blobs"), &blobs] {
            private_dir(d).map_err(fs_err)?;
        }
        Ok(Store { root, blobs })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives (whether or not it is present).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn has(&self, digest: &Digest) -> bool {
        fs::symlink_metadata(self.path(digest)).is_ok_and(|m| m.is_file())
    }

    /// Streams `reader` into the store and returns its digest.
    ///
    /// With `expected`, the content must hash to it; with `expected_size`, it
    /// must have exactly that many bytes (reading stops one byte past it, so a
    /// hostile endless stream is cut short). If the blob is already present
    /// under `expected`, the reader is not consumed.
    pub fn put<R: Read>(
        &self,
        mut reader: R,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<Digest, StoreError> {
        if let Some(d) = expected {
            if self.has(d) {
                return Ok(d.clone());
            }
        }
        let file = capsa_fsutil::TempFile::create(&self.blobs, OsStr::new("blob"), 0o644).map_err(fs_err)?;
        let tmp = file.path();
        let mut w = HashingWriter::new(file);
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            let want = match expected_size {
                // One byte past the expected end at most, to detect overlong input.
                Some(size) => {
                    let left = size.saturating_sub(w.count()) + 1;
                    buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))
                }
                None => buf.len(),
            };
            let n = match reader.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::Source(e)),
            };
            w.write_all(&buf[..n]).map_err(io_err("write", &tmp))?;
            if expected_size.is_some_and(|s| w.count() > s) {
                break;
            }
        }
        let (hasher, file) = w.into_parts();
        // A mismatch drops (removes) the temp file.
        let digest = hasher.verify(expected, expected_size)?;
        file.persist(OsStr::new(digest.hex())).map_err(fs_err)?;
        Ok(digest)
    }

    /// [`Store::put`] for bytes already in memory.
    pub fn put_bytes(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest, StoreError> {
        self.put(data, expected, expected.map(|_| data.len() as u64))
    }

    /// Opens a blob for reading (not re-verified: it was verified on write).
    pub fn open(&self, digest: &Digest) -> Result<File, StoreError> {
        let p = self.path(digest);
        OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&p).map_err(|e| {
            match e.kind() {
                io::ErrorKind::NotFound => StoreError::NotFound(digest.clone()),
                _ => io_err("open", &p)(e),
            }
        })
    }

    /// Opens a blob wrapped in a reader that re-verifies it at EOF.
    pub fn open_verified(&self, digest: &Digest) -> Result<VerifyingReader<File>, StoreError> {
        let f = self.open(digest)?;
        Ok(VerifyingReader::new(f, digest.clone(), None))
    }

    /// Reads a (small) blob fully, verifying it, refusing more than `limit` bytes.
    pub fn read_bytes(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        let f = self.open(digest)?;
        let mut out = Vec::new();
        f.take(limit + 1).read_to_end(&mut out).map_err(io_err("read", &self.path(digest)))?;
        if out.len() as u64 > limit {
            return Err(StoreError::Io {
                op: "read (blob larger than the limit for this kind)",
                path: self.path(digest),
                source: io::Error::from(io::ErrorKind::InvalidData),
            });
        }
        let actual = Digest::sha256_of(&out);
        if actual != *digest {
            return Err(DigestError::Mismatch { expected: digest.clone(), actual }.into());
        }
        Ok(out)
    }

    /// Size of a blob in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64, StoreError> {
        let p = self.path(digest);
        match fs::symlink_metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound(digest.clone())),
            Err(e) => Err(io_err("stat", &p)(e)),
        }
    }

    /// Removes a blob; returns whether it was present.
    pub fn remove(&self, digest: &Digest) -> Result<bool, StoreError> {
        let p = self.path(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &p)(e)),
        }
    }

    /// Every blob in the store, sorted. Temp files and stray names are skipped.
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        for ent in fs::read_dir(&self.blobs).map_err(io_err("list", &self.blobs))? {
            let ent = ent.map_err(io_err("list", &self.blobs))?;
            if let Some(d) = ent.file_name().to_str().and_then(|n| Digest::from_hex(n).ok()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }
}
