//! Property-based fuzzing of the layer applier ([`capsa_image::apply::apply_layer`]) with hostile tar
//! streams: garbled headers (bad octal, base-256 numbers, wrong checksums, random type flags), path
//! traversal (`../`, absolute names, symlink-then-write-through, hardlinks and symlinks to the sandbox
//! outside the root), whiteouts and opaque markers, device nodes, lying sizes, truncated and corrupt
//! (gzip/zstd) streams, names with NUL bytes and long names (PAX, GNU `L`/`K`, ustar prefix), across
//! several layers applied one over the other.
//!
//! Properties: applying never panics, always ends (`Ok` or `Err`), and never changes anything outside
//! the target: the sandbox around it (sentinel files and directories, their modes, owners, mtimes, link
//! counts and contents) is compared before and after, and no inode of the result is a sentinel's.
//! Well-formed layers of plain files always apply and read back.
//!
//! Runs as root (device nodes, owners) like the other image tests. Default: 256 cases per property
//! (about a second in release mode, sandboxes on /dev/shm). Run longer with
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --release -p capsa-image --test fuzz_apply
//! ```
//!
//! A failing case is shrunk and its seed appended to `tests/proptest-regressions/fuzz_apply.txt`, which
//! every later run replays first: commit that file (and keep a real bug's input as a named unit test).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use capsa_image::apply::{apply_layer, decompressor, detect_compression, ApplyOptions, WhiteoutMode};
use capsa_image::Digest;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;

/// Cases per property when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 256;

/// `PROPTEST_CASES` (read by proptest itself) or [`DEFAULT_CASES`]; failures persisted next to this file.
fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = DEFAULT_CASES;
    }
    c.failure_persistence = Some(Box::new(FileFailurePersistence::Direct(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/proptest-regressions/fuzz_apply.txt"
    ))));
    c
}

// ---------------------------------------------------------------------------------------------------
// A raw tar writer: every header byte is ours to set (or garble).
// ---------------------------------------------------------------------------------------------------

/// How a name longer than the 100-byte header field is written.
#[derive(Debug, Clone, Copy)]
enum LongName {
    /// A PAX `x` header with `path` / `linkpath` records.
    Pax,
    /// GNU `L` / `K` entries.
    Gnu,
    /// The ustar `prefix` field (when the name splits that way), else cut.
    Prefix,
    /// Cut to 100 bytes.
    Cut,
}

/// One tar entry, as hostile as the strategy makes it.
#[derive(Debug, Clone)]
struct Ent {
    name: Vec<u8>,
    typeflag: u8,
    mode: u64,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Vec<u8>,
    data: Vec<u8>,
    /// The size written in the header when it lies about the data.
    size: Option<u64>,
    dev: (u64, u64),
    pax: Vec<(Vec<u8>, Vec<u8>)>,
    long: LongName,
    gnu_magic: bool,
    bad_cksum: bool,
    /// Header bytes overwritten before the checksum is computed.
    pokes: Vec<(usize, u8)>,
}

impl Ent {
    fn new(name: &str, typeflag: u8) -> Ent {
        Ent {
            name: name.as_bytes().to_vec(),
            typeflag,
            mode: if typeflag == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            link: Vec::new(),
            data: Vec::new(),
            size: None,
            dev: (0, 0),
            pax: Vec::new(),
            long: LongName::Pax,
            gnu_magic: false,
            bad_cksum: false,
            pokes: Vec::new(),
        }
    }

    fn file(name: &str, data: &[u8]) -> Ent {
        Ent { data: data.to_vec(), ..Ent::new(name, b'0') }
    }

    fn link(name: &str, typeflag: u8, target: &[u8]) -> Ent {
        Ent { link: target.to_vec(), ..Ent::new(name, typeflag) }
    }
}

/// Writes `v` as a NUL-terminated octal field, or in base-256 when it does not fit.
fn num(field: &mut [u8], v: u64) {
    let w = field.len();
    let s = format!("{v:0width$o}", width = w - 1);
    field.fill(0);
    if s.len() < w {
        field[..s.len()].copy_from_slice(s.as_bytes());
    } else {
        field[0] = 0x80;
        let be = v.to_be_bytes();
        let n = be.len().min(w - 1);
        field[w - n..].copy_from_slice(&be[8 - n..]);
    }
}

fn put(field: &mut [u8], bytes: &[u8]) {
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = len.to_string().into_bytes();
    r.push(b' ');
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// Replaces `@T@` with the sandbox's absolute path.
fn subst(b: &[u8], top: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"@T@") {
            out.extend_from_slice(top);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn header(e: &Ent, name: &[u8], prefix: &[u8], link: &[u8], typeflag: u8, size: u64, pokes: bool) -> [u8; 512] {
    let mut h = [0u8; 512];
    put(&mut h[0..100], name);
    num(&mut h[100..108], e.mode);
    num(&mut h[108..116], e.uid);
    num(&mut h[116..124], e.gid);
    num(&mut h[124..136], size);
    num(&mut h[136..148], e.mtime);
    h[156] = typeflag;
    put(&mut h[157..257], link);
    if e.gnu_magic {
        h[257..265].copy_from_slice(b"ustar  \0");
    } else {
        h[257..265].copy_from_slice(b"ustar\x0000");
        put(&mut h[345..500], prefix);
    }
    put(&mut h[265..297], b"root");
    put(&mut h[297..329], b"root");
    num(&mut h[329..337], e.dev.0);
    num(&mut h[337..345], e.dev.1);
    if pokes {
        for &(off, b) in &e.pokes {
            h[off % 512] = b;
        }
    }
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes());
    if e.bad_cksum {
        h[150] = if h[150] == b'7' { b'0' } else { h[150] + 1 };
    }
    h
}

fn blocks(out: &mut Vec<u8>, h: &[u8; 512], data: &[u8]) {
    out.extend_from_slice(h);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

fn write_entry(out: &mut Vec<u8>, e: &Ent, top: &[u8]) {
    let name = subst(&e.name, top);
    let link = subst(&e.link, top);
    let mut pax: Vec<u8> = e.pax.iter().flat_map(|(k, v)| pax_record(k, &subst(v, top))).collect();
    let mut prefix: &[u8] = &[];
    let mut short: &[u8] = &name;
    match e.long {
        LongName::Pax => {
            if name.len() > 100 {
                pax.extend(pax_record(b"path", &name));
            }
            if link.len() > 100 {
                pax.extend(pax_record(b"linkpath", &link));
            }
        }
        LongName::Gnu => {
            for (bytes, flag) in [(&name, b'L'), (&link, b'K')] {
                if bytes.len() > 100 {
                    let mut data = bytes.clone();
                    data.push(0);
                    let h = header(e, b"././@LongLink", b"", b"", flag, data.len() as u64, false);
                    blocks(out, &h, &data);
                }
            }
        }
        LongName::Prefix => {
            if name.len() > 100 {
                let cut =
                    name.iter().enumerate().rev().find(|&(i, &b)| b == b'/' && i <= 155 && name.len() - i - 1 <= 100);
                if let Some((i, _)) = cut {
                    prefix = &name[..i];
                    short = &name[i + 1..];
                }
            }
        }
        LongName::Cut => {}
    }
    if !pax.is_empty() {
        let h = header(e, b"PaxHeaders/x", b"", b"", b'x', pax.len() as u64, false);
        blocks(out, &h, &pax);
    }
    let size = e.size.unwrap_or(e.data.len() as u64);
    let h = header(e, short, prefix, &link, e.typeflag, size, true);
    blocks(out, &h, &e.data);
}

/// One layer: a tar of entries (then damaged and compressed), or raw bytes.
#[derive(Debug, Clone)]
enum Layer {
    Tar {
        entries: Vec<Ent>,
        /// Zero blocks at the end (2 is a proper end-of-archive marker).
        zero_blocks: usize,
        tail: Vec<u8>,
        /// Byte overwrites anywhere in the stream.
        corrupt: Vec<(Index, u8)>,
        truncate: Option<Index>,
        /// 0: plain, 1: gzip, 2: zstd.
        compression: u8,
        /// Corrupt/truncate the compressed stream instead of the tar.
        damage_compressed: bool,
    },
    Raw(Vec<u8>),
}

fn damage(mut b: Vec<u8>, corrupt: &[(Index, u8)], truncate: Option<&Index>) -> Vec<u8> {
    if !b.is_empty() {
        for (i, v) in corrupt {
            let at = i.index(b.len());
            b[at] = *v;
        }
        if let Some(t) = truncate {
            b.truncate(t.index(b.len()));
        }
    }
    b
}

fn compress(plain: &[u8], how: u8) -> Vec<u8> {
    match how {
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
        2 => zstd::encode_all(plain, 1).unwrap(),
        _ => plain.to_vec(),
    }
}

impl Layer {
    fn bytes(&self, top: &[u8]) -> Vec<u8> {
        match self {
            Layer::Raw(b) => b.clone(),
            Layer::Tar { entries, zero_blocks, tail, corrupt, truncate, compression, damage_compressed } => {
                let mut tar = Vec::new();
                for e in entries {
                    write_entry(&mut tar, e, top);
                }
                tar.resize(tar.len() + 512 * zero_blocks, 0);
                tar.extend_from_slice(tail);
                if *damage_compressed {
                    damage(compress(&tar, *compression), corrupt, truncate.as_ref())
                } else {
                    compress(&damage(tar, corrupt, truncate.as_ref()), *compression)
                }
            }
        }
    }
}

/// Whether the stream's entries add up to more than 64 MiB of data once expanded. A GNU sparse entry
/// of a few hundred bytes can declare holes of any size (a "sparse bomb"); the applier leaves them
/// as holes, taking no disk space (see tests/sparse.rs), but still reads them as zeros, so such
/// streams are not applied here, to keep each case fast.
fn expands_too_much(stream: &[u8]) -> bool {
    const LIMIT: u64 = 64 << 20;
    let c = detect_compression(stream);
    let Ok(r) = decompressor(BufReader::new(stream), c) else { return false };
    let mut a = tar::Archive::new(r);
    let Ok(entries) = a.entries() else { return false };
    let mut total = 0u64;
    for e in entries {
        match e {
            Ok(e) => {
                total = total.saturating_add(e.size());
                if total > LIMIT {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------------
// The sandbox: `<top>/mid/root` is the target; everything else under `<top>` is a sentinel.
// ---------------------------------------------------------------------------------------------------

struct Sandbox {
    _tmp: tempfile::TempDir,
    top: PathBuf,
    root: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        // tmpfs when there is one: /tmp may be a disk mounted with `discard`, where each case's
        // cleanup waits for the device.
        let parent = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let tmp = tempfile::Builder::new().prefix("capsa-fuzz-apply-").tempdir_in(parent).unwrap();
        let top = tmp.path().to_owned();
        let root = top.join("mid/root");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(top.join("victim/sub")).unwrap();
        fs::write(top.join("victim/secret"), "victim data").unwrap();
        fs::write(top.join("victim/sub/file"), "deeper").unwrap();
        fs::write(top.join("victim-file"), "precious").unwrap();
        fs::write(top.join("mid/sibling"), "next to the root").unwrap();
        std::os::unix::fs::symlink("victim", top.join("victim-link")).unwrap();
        Sandbox { _tmp: tmp, top, root }
    }

    /// Everything under `top` but the root's subtree, with the root's identity.
    fn outside(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        walk(&self.top, &self.top, Some(&self.root), &mut out);
        let m = fs::symlink_metadata(&self.root).unwrap();
        out.insert("<root identity>".into(), format!("dir={} dev={} ino={}", m.is_dir(), m.dev(), m.ino()));
        out
    }

    /// (dev, ino) of every non-directory outside the root.
    fn outside_inodes(&self) -> BTreeSet<(u64, u64)> {
        let mut set = BTreeSet::new();
        let mut stack = vec![self.top.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p == self.root {
                    continue;
                }
                let m = fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    stack.push(p);
                } else {
                    set.insert((m.dev(), m.ino()));
                }
            }
        }
        set
    }

    /// Checks that the root's tree shares no inode with the outside and is readable without
    /// following anything (lstat only: it may hold FIFOs and device nodes).
    fn check_root_tree(&self, outside: &BTreeSet<(u64, u64)>) {
        let mut stack = vec![self.root.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                assert!(!outside.contains(&(m.dev(), m.ino())), "{} is an inode from outside the root", p.display());
                if m.is_dir() {
                    stack.push(p);
                }
            }
        }
    }
}

/// Snapshot of a sentinel tree (never follows symlinks; reads regular files, which are ours).
fn walk(top: &Path, p: &Path, skip: Option<&Path>, out: &mut BTreeMap<String, String>) {
    let m = fs::symlink_metadata(p).unwrap();
    let rel = p.strip_prefix(top).unwrap().display().to_string();
    let ft = m.file_type();
    let detail = if ft.is_file() {
        format!("file {:?}", fs::read(p).unwrap())
    } else if ft.is_symlink() {
        format!("symlink {:?}", fs::read_link(p).unwrap())
    } else if ft.is_dir() {
        "dir".to_string()
    } else {
        format!("other {:o}", m.mode())
    };
    out.insert(
        rel,
        format!(
            "{detail} mode={:o} uid={} gid={} nlink={} ino={} size={} mtime={}.{}",
            m.mode(),
            m.uid(),
            m.gid(),
            m.nlink(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec()
        ),
    );
    if ft.is_dir() {
        let mut names: Vec<PathBuf> = fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for c in names {
            if Some(c.as_path()) != skip {
                walk(top, &c, skip, out);
            }
        }
    }
}

/// Applies `layers` in order (each whatever the previous ones left, errors included) and checks
/// that nothing outside the root changed.
fn apply_all(layers: &[Layer], opts: &ApplyOptions) -> Result<(), TestCaseError> {
    let sb = Sandbox::new();
    let top = sb.top.as_os_str().as_encoded_bytes().to_vec();
    let streams: Vec<Vec<u8>> = layers.iter().map(|l| l.bytes(&top)).collect();
    if streams.iter().any(|s| expands_too_much(s)) {
        return Ok(());
    }
    let before = sb.outside();
    let inodes = sb.outside_inodes();
    for s in &streams {
        // Ok or Err are both fine; a panic fails the case.
        let _ = apply_layer(&s[..], &sb.root, opts);
    }
    let after = sb.outside();
    let changed: Vec<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v} -> {:?}", after.get(k)))
        .chain(after.keys().filter(|k| !before.contains_key(*k)).map(|k| format!("new outside the root: {k}")))
        .collect();
    prop_assert!(changed.is_empty(), "outside the root changed:\n{}", changed.join("\n"));
    sb.check_root_tree(&inodes);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------------------------

const COMPONENTS: &[&str] = &["a", "b", "c", "sub", "secret", "victim", "victim-link", "mid", "root", "sibling", "@T@"];

/// Components that normalize away or climb.
const DOTS: &[&str] = &[".", "..", ""];

/// Whiteout names, good and bad.
const WHITEOUTS: &[&str] = &[
    ".wh..wh..opq",
    ".wh.a",
    ".wh.b",
    ".wh.secret",
    ".wh.victim",
    ".wh.sub",
    ".wh.",
    ".wh..",
    ".wh...",
    ".wh..wh.plnk",
];

fn component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        20 => prop::sample::select(COMPONENTS).prop_map(|s| s.as_bytes().to_vec()),
        2 => prop::sample::select(DOTS).prop_map(|s| s.as_bytes().to_vec()),
        3 => prop::sample::select(WHITEOUTS).prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..8),
        1 => (90usize..300).prop_map(|n| vec![b'l'; n]),
    ]
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(&["", "", "", "", "", "", "/", "./", "../", "//", "a/../"][..]),
        prop::collection::vec(component(), 1..5),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(lead, comps, slash)| {
            let mut n = lead.as_bytes().to_vec();
            n.extend(comps.join(&b'/'));
            if slash {
                n.push(b'/');
            }
            n
        })
}

const TARGETS: &[&str] = &[
    "@T@",
    "@T@/victim",
    "@T@/victim/secret",
    "@T@/victim/sub",
    "@T@/victim-file",
    "@T@/victim-link",
    "@T@/mid",
    "@T@/mid/sibling",
    "..",
    "../..",
    "../victim",
    "../sibling",
    "../../victim",
    "../../victim/secret",
    "../../victim-file",
    "a/../../..",
    "/",
    "/..",
    ".",
    "",
    "/proc/self/root",
    "/proc/self/cwd",
    "/proc/self/fd/3",
    "a",
    "a/secret",
    "secret",
    "sub",
];

fn link_target() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(TARGETS).prop_map(|s| s.as_bytes().to_vec()),
        2 => name(),
    ]
}

fn typeflag() -> impl Strategy<Value = u8> {
    prop_oneof![
        12 => prop::sample::select(&b"0\x0052213467"[..]),
        2 => prop::sample::select(&b"xgLKSDMNV"[..]),
        1 => any::<u8>(),
    ]
}

fn mode() -> impl Strategy<Value = u64> {
    prop_oneof![
        10 => prop::sample::select(&[0o644u64, 0o755, 0o777, 0o4755, 0o2755, 0o1777, 0, 0o7777, 0o200][..]),
        1 => 0u64..0o7777777,
        1 => any::<u64>(),
    ]
}

fn id() -> impl Strategy<Value = u64> {
    prop_oneof![12 => Just(0u64), 4 => 1u64..70_000, 1 => 0..=u64::from(u32::MAX), 1 => any::<u64>()]
}

fn pax_key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(
            &[
                "mtime",
                "path",
                "linkpath",
                "size",
                "uid",
                "gid",
                "SCHILY.xattr.user.fuzz",
                "SCHILY.xattr.trusted.overlay.opaque",
                "SCHILY.xattr.user.overlay.opaque",
                "SCHILY.xattr.security.capability",
                "SCHILY.xattr.trusted.fuzz",
                "SCHILY.xattr.",
                "SCHILY.xattr.bogus",
                "GNU.sparse.map",
                "GNU.sparse.size",
                "GNU.sparse.realsize",
                "atime",
                "comment",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ]
}

fn pax_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(
            &[
                "1.5",
                "-1.5",
                "1.-5",
                "1.+5",
                "-0.000000001",
                "99999999999999999999",
                "9223372036854775807.999999999",
                "x",
                "",
                "0",
                "y",
                "../../victim/secret",
                "@T@/victim/secret",
                "18446744073709551615",
                "4294967296",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..24),
        1 => name(),
    ]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![8 => prop::collection::vec(any::<u8>(), 0..48), 1 => prop::collection::vec(any::<u8>(), 0..3000)]
}

fn entry() -> impl Strategy<Value = Ent> {
    let header_fields = (typeflag(), mode(), id(), id(), prop_oneof![4 => Just(1_600_000_000u64), 1 => any::<u64>()]);
    let lies = (
        prop_oneof![10 => Just(None), 1 => any::<u64>().prop_map(Some), 1 => (0u64..3000).prop_map(Some)],
        prop_oneof![3 => (0u64..300, 0u64..300), 1 => (any::<u64>(), any::<u64>())],
        prop_oneof![4 => Just(Vec::new()), 1 => prop::collection::vec((pax_key(), pax_value()), 1..4)],
        prop::sample::select(&[LongName::Pax, LongName::Gnu, LongName::Prefix, LongName::Cut][..]),
        any::<bool>(),
        prop::bool::weighted(0.03),
        prop_oneof![12 => Just(Vec::new()), 1 => prop::collection::vec((0usize..512, any::<u8>()), 1..4)],
    );
    (name(), header_fields, link_target(), data(), lies).prop_map(
        |(name, (typeflag, mode, uid, gid, mtime), link, data, (size, dev, pax, long, gnu_magic, bad_cksum, pokes))| {
            Ent { name, typeflag, mode, uid, gid, mtime, link, data, size, dev, pax, long, gnu_magic, bad_cksum, pokes }
        },
    )
}

/// Entry sequences built to escape: a symlink (or hardlink) to the outside, then something through it.
fn scenario() -> impl Strategy<Value = Vec<Ent>> {
    (prop::sample::select(&["a", "a/b", "sub", "victim", "@T@", "@T@/victim"][..]), link_target(), 0u8..14, data())
        .prop_map(|(x, t, k, d)| {
            let sym = Ent::link(x, b'2', &t);
            let under = |rest: &str| format!("{x}/{rest}");
            match k {
                0 => vec![sym, Ent::file(&under("secret"), &d)],
                1 => vec![sym, Ent::new(&under("sub"), b'5'), Ent::file(&under("sub/file"), &d)],
                2 => vec![sym, Ent::file(&under(".wh.secret"), b"")],
                3 => vec![sym, Ent::file(&under(".wh..wh..opq"), b"")],
                4 => vec![Ent::link(x, b'1', &t)],
                5 => vec![sym, Ent::link(&under("y"), b'1', format!("{x}/secret").as_bytes())],
                6 => vec![Ent::file(x, &d), sym, Ent::file(x, &d)],
                7 => vec![sym, Ent::link(&under("secret"), b'2', b"/")],
                8 => vec![sym, Ent { dev: (1, 3), ..Ent::new(&under("secret"), b'3') }],
                9 => vec![sym, Ent::new(&under("fifo"), b'6')],
                10 => vec![sym, Ent::new(x, b'5')],
                11 => vec![sym, Ent::file(x, &d)],
                12 => vec![sym, Ent::new(&format!("{x}/."), b'5'), Ent::file(&format!("{x}/./secret"), &d)],
                _ => vec![Ent::new(x, b'5'), Ent::file(&under("secret"), &d), Ent::link(&under("secret"), b'1', &t)],
            }
        })
}

fn tar_layer() -> impl Strategy<Value = Layer> {
    (
        prop::collection::vec(prop_oneof![3 => entry().prop_map(|e| vec![e]), 1 => scenario()], 0..10),
        prop_oneof![6 => Just(2usize), 1 => 0usize..4],
        prop_oneof![6 => Just(Vec::new()), 1 => prop::collection::vec(any::<u8>(), 0..600)],
        prop_oneof![10 => Just(Vec::new()), 1 => prop::collection::vec((any::<Index>(), any::<u8>()), 1..6)],
        prop_oneof![10 => Just(None), 1 => any::<Index>().prop_map(Some)],
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        any::<bool>(),
    )
        .prop_map(|(entries, zero_blocks, tail, corrupt, truncate, compression, damage_compressed)| Layer::Tar {
            entries: entries.into_iter().flatten().collect(),
            zero_blocks,
            tail,
            corrupt,
            truncate,
            compression,
            damage_compressed,
        })
}

/// Stream starts: none, gzip, gzip+deflate, zstd, a stray ustar magic.
const MAGICS: &[&[u8]] = &[b"", b"\x1f\x8b", b"\x1f\x8b\x08\x00", b"\x28\xb5\x2f\xfd", b"ustar"];

fn raw_layer() -> impl Strategy<Value = Layer> {
    (prop::sample::select(MAGICS), prop::collection::vec(any::<u8>(), 0..2048)).prop_map(|(magic, rest)| {
        let mut b = magic.to_vec();
        b.extend(rest);
        Layer::Raw(b)
    })
}

fn options() -> impl Strategy<Value = ApplyOptions> {
    (any::<[bool; 7]>(), prop::bool::weighted(0.25)).prop_map(|(b, overlay)| ApplyOptions {
        preserve_owners: b[0],
        xattrs: b[1],
        security_xattrs: b[2],
        skip_unpermitted_devices: b[3],
        whiteouts: if overlay { WhiteoutMode::Overlay } else { WhiteoutMode::Apply },
        pipelined: b[4] && b[5],
        overlay_userxattr: b[6],
    })
}

/// A well-formed tree of regular files: relative path → content (no path is another's ancestor).
fn benign_tree() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    let path = prop::collection::vec(prop::sample::select(&["a", "b", "c", "d", "e.txt", "f f", "ünï"][..]), 1..4)
        .prop_map(|c| c.join("/"));
    prop::collection::btree_map(path, prop::collection::vec(any::<u8>(), 0..700), 0..16).prop_map(|m| {
        let keys: Vec<String> = m.keys().cloned().collect();
        m.into_iter().filter(|(k, _)| !keys.iter().any(|o| o.starts_with(&format!("{k}/")))).collect()
    })
}

proptest! {
    #![proptest_config(config())]

    /// Hostile layers, one to three over each other: no panic, nothing outside the root touched.
    #[test]
    fn hostile_layers_stay_inside(
        layers in prop::collection::vec(prop_oneof![6 => tar_layer(), 1 => raw_layer()], 1..4),
        opts in options(),
    ) {
        apply_all(&layers, &opts)?;
    }

    /// Plain files with ordinary names apply without error, in any compression, and read back;
    /// the diff_id is the sha256 of the uncompressed tar.
    #[test]
    fn benign_files_apply_and_read_back(tree in benign_tree(), compression in 0u8..3) {
        let mut tar = Vec::new();
        for (path, content) in &tree {
            write_entry(&mut tar, &Ent::file(path, content), b"");
        }
        tar.resize(tar.len() + 1024, 0);
        let sb = Sandbox::new();
        let stats = apply_layer(&compress(&tar, compression)[..], &sb.root, &ApplyOptions::default())
            .map_err(|e| TestCaseError::fail(format!("benign layer refused: {e}")))?;
        prop_assert_eq!(stats.counts.files, tree.len() as u64);
        prop_assert_eq!(stats.diff_id, Digest::sha256_of(&tar));
        for (path, content) in &tree {
            prop_assert_eq!(&fs::read(sb.root.join(path)).unwrap(), content);
        }
    }
}
