//! Safe layer unpack: applies a (compressed) layer tar onto a directory.
//!
//! This is capsa's security boundary against hostile images. The rules:
//! - the target directory is opened once; every entry's parent directory is
//!   resolved inside it with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`,
//!   so `..` and symlinks (absolute or relative, chained, planted by an earlier
//!   layer) can never lead outside; missing parents are made one `mkdirat` at a
//!   time relative to a resolved fd;
//! - the final component is created with `*at()` calls relative to that parent
//!   fd, never following a symlink (`O_CREAT|O_EXCL|O_NOFOLLOW`, `mknodat`,
//!   `symlinkat`, `AT_SYMLINK_NOFOLLOW`); metadata is set on an fd, or with
//!   `AT_SYMLINK_NOFOLLOW`, or via `fchmodat2`/`/proc/self/fd` for chmod;
//! - names are normalized lexically; a `..` escaping the root is refused with
//!   an error naming the entry; a leading `/` is stripped; a non-directory
//!   entry for the root itself is refused;
//! - hardlink targets are resolved inside the root and must be regular files;
//! - whiteouts (`.wh.<name>`, `.wh..wh..opq`) delete only inside the root,
//!   through the resolved parent fd, recursively without following symlinks,
//!   and only what lower layers put there;
//! - directory metadata is applied last, deepest first.
//!
//! The input is decompressed by magic bytes (gzip, zstd, or plain tar) and the
//! uncompressed stream is hashed, so [`ApplyStats::diff_id`] can be checked
//! against the image config (or use [`apply_layer_verified`]). A layer that
//! fails (error or diff_id mismatch) leaves a partial tree: callers unpack into
//! a fresh snapshot directory and discard it on error.

mod entry;
mod nodes;
mod path;
mod remove;
mod sys;

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::ffi::CString;
use std::fs::OpenOptions;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader};

pub use sys::Errno;

/// Size of the read buffer on the (compressed) input.
const INPUT_BUF: usize = 1 << 20;
/// Size of the buffer between the decompressor and the tar parser.
const TAR_BUF: usize = 256 << 10;
/// Size of the file-data copy buffer.
const COPY_BUF: usize = 1 << 20;

/// How whiteout entries are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutMode {
    /// Delete what they name (flattening layers into one tree).
    #[default]
    Apply,
    /// Convert to overlayfs form for a per-layer snapshot: `.wh.x` becomes a
    /// 0:0 character device `x`, `.wh..wh..opq` sets `trusted.overlay.opaque=y`
    /// on its directory. Needs root.
    Overlay,
}

/// Options for [`apply_layer`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Set owners from the tar headers (default: when running as root).
    pub preserve_owners: bool,
    /// Restore `SCHILY.xattr.*` extended attributes (default: true). Failures
    /// for lack of filesystem support are warnings. `trusted.overlay.*` and
    /// `user.overlay.*` are never restored: they would steer overlayfs.
    pub xattrs: bool,
    /// Restore `security.*` xattrs such as file capabilities (default: when root).
    pub security_xattrs: bool,
    /// Skip device nodes that cannot be created (EPERM) instead of failing.
    pub skip_unpermitted_devices: bool,
    /// How whiteouts are applied.
    pub whiteouts: WhiteoutMode,
    /// Inflate and hash the layer on a second thread while this one applies it
    /// (default: true): a gzip layer is about half inflating and half writing,
    /// so the overlap takes the slower of the two instead of their sum (see
    /// [`crate::chunks`]). Off: one thread does everything, one after the other.
    pub pipelined: bool,
    /// With [`WhiteoutMode::Overlay`]: mark opaque directories with
    /// `user.overlay.opaque` (overlayfs's `userxattr` form, for a mount inside a
    /// user namespace, where `trusted.*` cannot be set) instead of
    /// `trusted.overlay.opaque` (default: false).
    pub overlay_userxattr: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        let root = sys::is_root();
        ApplyOptions {
            preserve_owners: root,
            xattrs: true,
            security_xattrs: root,
            skip_unpermitted_devices: false,
            whiteouts: WhiteoutMode::Apply,
            pipelined: true,
            overlay_userxattr: false,
        }
    }
}

/// Compression of a layer, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

/// Counts of what a layer contained.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryCounts {
    /// Tar entries seen (extension headers excluded).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directory entries.
    pub dirs: u64,
    /// Missing parent directories created without an entry of their own.
    pub implicit_dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Hardlinks.
    pub hardlinks: u64,
    /// Character and block devices.
    pub devices: u64,
    /// FIFOs.
    pub fifos: u64,
    /// `.wh.<name>` entries.
    pub whiteouts: u64,
    /// `.wh..wh..opq` entries.
    pub opaque_dirs: u64,
    /// Entries skipped (unknown types, AUFS metadata, unpermitted devices).
    pub skipped: u64,
    /// Bytes of regular-file data written.
    pub file_bytes: u64,
}

/// What [`apply_layer`] did.
#[derive(Debug, Clone)]
pub struct ApplyStats {
    /// Per-type counts.
    pub counts: EntryCounts,
    /// The detected compression.
    pub compression: Compression,
    /// sha256 of the whole uncompressed tar stream: the layer's diff_id.
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream.
    pub tar_size: u64,
}

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The target directory could not be opened.
    #[error("open target directory {path}: {source}")]
    Target {
        /// The target.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel lacks openat2 (Linux 5.6+).
    #[error("openat2(RESOLVE_IN_ROOT) is not available: {0} (Linux 5.6 or later is needed)")]
    NoOpenat2(Errno),
    /// A hostile or malformed entry.
    #[error("layer entry {entry:?}: refused: {reason}")]
    Refused {
        /// The entry's name as written in the tar.
        entry: String,
        /// Why.
        reason: String,
    },
    /// A syscall failed while applying an entry.
    #[error("layer entry {entry:?}: {op}: {errno}")]
    Sys {
        /// The entry's name.
        entry: String,
        /// What was asked of the kernel.
        op: &'static str,
        /// What it answered.
        errno: Errno,
    },
    /// Writing a file's data failed.
    #[error("layer entry {entry:?}: write data: {source}")]
    Write {
        /// The entry's name.
        entry: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The layer stream is unreadable (truncated, corrupt compression or tar).
    #[error("read layer: {0}")]
    Read(#[source] io::Error),
    /// The uncompressed stream does not hash to the expected diff_id.
    #[error("layer diff_id mismatch: expected {expected}, got {actual}")]
    DiffId {
        /// From the image config.
        expected: Digest,
        /// Computed.
        actual: Digest,
    },
}

/// Detects the compression from the first bytes of a layer.
pub fn detect_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps a buffered reader in the decompressor for `c`.
pub fn decompressor<'a, R: BufRead + Send + 'a>(r: R, c: Compression) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match c {
        Compression::None => Box::new(r),
        // Multi-member: pigz and some registries concatenate gzip members.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
    })
}

/// Sniffs the compression of `reader` and returns the decompressed stream.
fn open_stream<'a, R: Read + Send + 'a>(reader: R) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let mut src = BufReader::with_capacity(INPUT_BUF, reader);
    let mut head = [0u8; 4];
    let n = crate::chunks::fill(&mut src, &mut head)?;
    let c = detect_compression(&head[..n]);
    let joined = io::Cursor::new(head).take(n as u64).chain(src);
    Ok((c, decompressor(joined, c)?))
}

/// The diff_id of a (possibly compressed) layer: sha256 of its uncompressed bytes.
pub fn diff_id_of<R: Read + Send>(reader: R) -> io::Result<Digest> {
    let (_, stream) = open_stream(reader)?;
    let mut h = HashingReader::new(stream);
    let mut buf = vec![0u8; COPY_BUF];
    while h.read(&mut buf)? != 0 {}
    Ok(h.finish().0)
}

/// Applies a layer (plain, gzip or zstd tar) onto `target`.
///
/// `target` must exist and be a directory. Nothing is ever written outside
/// it. Returns what was done and the diff_id of the uncompressed stream.
pub fn apply_layer<R: Read + Send>(reader: R, target: &Path, opts: &ApplyOptions) -> Result<ApplyStats, ApplyError> {
    let root: OwnedFd = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(target)
        .map_err(|source| ApplyError::Target { path: target.to_owned(), source })?
        .into();
    // Probe openat2 once, so an old kernel gets one clear error.
    sys::openat2(root.as_fd(), c".", libc::O_PATH, 0, sys::RESOLVE_IN_ROOT).map_err(ApplyError::NoOpenat2)?;

    let (compression, stream) = open_stream(reader).map_err(ApplyError::Read)?;
    let mut ap = Applier::new(root, opts);
    let (diff_id, tar_size) = if opts.pipelined {
        // Three stages, each on its own thread: inflate, hash (the diff_id), apply.
        let (writer, relay, mut chunks) = crate::chunks::hashed_pair();
        std::thread::scope(|s| {
            let spawn = |name: &str| std::thread::Builder::new().name(name.into());
            let inflating =
                spawn("capsa-inflate").spawn_scoped(s, move || writer.pump(stream, None)).map_err(ApplyError::Read)?;
            let hashing = spawn("capsa-sha256").spawn_scoped(s, move || relay.run()).map_err(ApplyError::Read)?;
            // Whatever follows the end-of-archive marker is read too: the diff_id
            // covers the whole stream.
            // The chunks are the buffer: no BufReader (one copy less of every byte).
            let applied = apply_entries(&mut chunks, &mut ap).and_then(|()| chunks.drain().map_err(ApplyError::Read));
            // On an error, this stops the inflating thread at its next chunk.
            drop(chunks);
            let inflated = inflating.join().unwrap_or_else(|_| Err(io::Error::other("the inflating thread panicked")));
            let hashed = hashing.join().map_err(|_| ApplyError::Read(io::Error::other("the hashing thread panicked")));
            applied?;
            inflated.map_err(ApplyError::Read)?;
            hashed
        })?
    } else {
        let mut hashing = HashingReader::new(stream);
        apply_entries(BufReader::with_capacity(TAR_BUF, &mut hashing), &mut ap)?;
        // Hash whatever follows the end-of-archive marker too: the diff_id
        // covers the whole stream.
        io::copy(&mut hashing, &mut io::sink()).map_err(ApplyError::Read)?;
        let (d, n, _) = hashing.finish();
        (d, n)
    };
    ap.finish()?;
    Ok(ApplyStats { counts: ap.stats, compression, diff_id, tar_size })
}

/// Applies every entry of the tar stream `tar` (up to its end-of-archive marker).
fn apply_entries<R: Read>(tar: R, ap: &mut Applier) -> Result<(), ApplyError> {
    let mut archive = tar::Archive::new(tar);
    for e in archive.entries().map_err(ApplyError::Read)? {
        let mut e = e.map_err(ApplyError::Read)?;
        ap.entry(&mut e)?;
    }
    Ok(())
}

/// [`apply_layer`], then checks the diff_id. On mismatch the tree is partial
/// or wrong: discard `target`.
pub fn apply_layer_verified<R: Read + Send>(
    reader: R,
    target: &Path,
    opts: &ApplyOptions,
    expected_diff_id: &Digest,
) -> Result<ApplyStats, ApplyError> {
    let stats = apply_layer(reader, target, opts)?;
    if stats.diff_id != *expected_diff_id {
        return Err(ApplyError::DiffId { expected: expected_diff_id.clone(), actual: stats.diff_id });
    }
    Ok(stats)
}

/// Reads a (small) file of a root filesystem, resolving `rel` inside `root`
/// (`openat2(RESOLVE_IN_ROOT)`: an image's symlinks cannot point the read at
/// the host). `Ok(None)` when it does not exist or is not a regular file;
/// refuses more than `limit` bytes.
pub fn read_file_in_root(root: &Path, rel: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let dir: OwnedFd = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)?
        .into();
    let name = CString::new(rel.trim_start_matches('/')).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let fd = match sys::openat2(
        dir.as_fd(),
        &name,
        libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(Errno(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)) => return Ok(None),
        Err(Errno(e)) => return Err(io::Error::from_raw_os_error(e)),
    };
    let st = sys::fstat(fd.as_fd()).map_err(|Errno(e)| io::Error::from_raw_os_error(e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(None);
    }
    let mut out = Vec::new();
    std::fs::File::from(fd).take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{rel}: larger than {limit} bytes")));
    }
    Ok(Some(out))
}

/// Metadata of a directory entry, applied at the end.
struct DirMeta {
    /// Normalized path (no NUL); empty for the root.
    path: Box<[u8]>,
    /// Identity at creation, to skip a path that was replaced later.
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
}

/// The set of normalized paths an entry of this layer created or merged.
///
/// Stored as 64-bit keyed hashes (SipHash with a per-process random key), not
/// as paths: no allocation per entry and 8 bytes per path instead of the path
/// itself (a 500k-file layer costs ~8 MB, not ~50). A collision (odds ~1e-8
/// for 500k paths, and not steerable by the layer since the key is secret)
/// would only keep one lower-layer file an opaque directory should have
/// hidden; it can never cause a write or deletion outside the root.
#[derive(Default)]
struct LayerPaths {
    keys: RandomState,
    set: HashSet<u64, BuildHasherDefault<IdentityHasher>>,
}

impl LayerPaths {
    fn key(&self, path: &[u8]) -> u64 {
        self.keys.hash_one(path)
    }
    fn contains(&self, path: &[u8]) -> bool {
        self.set.contains(&self.key(path))
    }
    /// Inserts; returns whether it was new.
    fn insert(&mut self, path: &[u8]) -> bool {
        let k = self.key(path);
        self.set.insert(k)
    }
}

/// Hasher for keys that already are hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The state of one layer application.
struct Applier<'o> {
    opts: &'o ApplyOptions,
    /// The target directory (O_PATH).
    root: OwnedFd,
    /// The last parent directory resolved, kept across consecutive entries.
    cache_key: Vec<u8>,
    cache_fd: Option<OwnedFd>,
    /// Paths this layer created or merged (and their ancestors), for opaque
    /// directories and same-layer whiteouts: see [`LayerPaths`].
    layer: LayerPaths,
    /// Directory metadata to apply at the end.
    dirs: Vec<DirMeta>,
    stats: EntryCounts,
    /// Reused buffers: file data, entry name, link target, scratch path.
    buf: Vec<u8>,
    raw: Vec<u8>,
    path: Vec<u8>,
    link: Vec<u8>,
    scratch: Vec<u8>,
    /// xattrs of the current entry (from PAX `SCHILY.xattr.*`).
    xattrs: Vec<(CString, Vec<u8>)>,
    warned_xattrs: bool,
}

impl<'o> Applier<'o> {
    fn new(root: OwnedFd, opts: &'o ApplyOptions) -> Self {
        Applier {
            opts,
            root,
            cache_key: Vec::with_capacity(256),
            cache_fd: None,
            layer: LayerPaths::default(),
            dirs: Vec::new(),
            stats: EntryCounts::default(),
            buf: vec![0u8; COPY_BUF],
            raw: Vec::with_capacity(256),
            path: Vec::with_capacity(256),
            link: Vec::with_capacity(256),
            scratch: Vec::with_capacity(256),
            xattrs: Vec::new(),
            warned_xattrs: false,
        }
    }

    /// The current entry's name, for messages.
    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    fn refuse(&self, reason: impl Into<String>) -> ApplyError {
        ApplyError::Refused { entry: self.shown(), reason: reason.into() }
    }

    fn sys(&self, op: &'static str, errno: Errno) -> ApplyError {
        ApplyError::Sys { entry: self.shown(), op, errno }
    }
}
