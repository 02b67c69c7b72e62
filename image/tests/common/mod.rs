//! Test helpers: a raw tar writer (names written straight into header bytes,
//! so hostile names the tar crate's Builder refuses can be made), and tree
//! snapshots for comparing directories.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

/// The mtime every test entry gets unless told otherwise.
pub const MTIME: u64 = 1_600_000_000;

/// Builds a tar in memory, entry by entry.
pub struct TarW {
    b: tar::Builder<Vec<u8>>,
}

/// One entry's description.
pub struct E<'a> {
    pub name: &'a [u8],
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub link: Option<&'a [u8]>,
    pub data: &'a [u8],
    pub dev: (u32, u32),
    pub mtime: u64,
    pub pax: Vec<(&'a str, &'a [u8])>,
}

impl<'a> E<'a> {
    pub fn new(name: &'a str, kind: EntryType) -> Self {
        E {
            name: name.as_bytes(),
            kind,
            mode: if kind == EntryType::Directory { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            link: None,
            data: b"",
            dev: (0, 0),
            mtime: MTIME,
            pax: Vec::new(),
        }
    }
}

impl Default for TarW {
    fn default() -> Self {
        Self::new()
    }
}

impl TarW {
    pub fn new() -> Self {
        TarW { b: tar::Builder::new(Vec::new()) }
    }

    /// Appends an entry, writing the name bytes directly into the header
    /// (or a PAX `path` record when longer than 100 bytes).
    pub fn entry(&mut self, e: E<'_>) -> &mut Self {
        let mut pax = e.pax.clone();
        if e.name.len() > 100 {
            pax.push(("path", e.name));
        }
        if let Some(l) = e.link {
            if l.len() > 100 {
                pax.push(("linkpath", l));
            }
        }
        if !pax.is_empty() {
            self.b.append_pax_extensions(pax).unwrap();
        }
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            let n = e.name.len().min(100);
            old.name[..n].copy_from_slice(&e.name[..n]);
            if let Some(l) = e.link {
                let n = l.len().min(100);
                old.linkname[..n].copy_from_slice(&l[..n]);
            }
        }
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(e.data.len() as u64);
        if matches!(e.kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(e.dev.0).unwrap();
            h.set_device_minor(e.dev.1).unwrap();
        }
        h.set_cksum();
        self.b.append(&h, e.data).unwrap();
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        let mut e = E::new(name, EntryType::Regular);
        e.data = data;
        e.mode = mode;
        self.entry(e)
    }

    pub fn file_owned(&mut self, name: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut e = E::new(name, EntryType::Regular);
        e.data = data;
        e.mode = mode;
        e.uid = uid;
        e.gid = gid;
        self.entry(e)
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        let mut e = E::new(name, EntryType::Directory);
        e.mode = mode;
        self.entry(e)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut e = E::new(name, EntryType::Symlink);
        e.link = Some(target.as_bytes());
        e.mode = 0o777;
        self.entry(e)
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut e = E::new(name, EntryType::Link);
        e.link = Some(target.as_bytes());
        self.entry(e)
    }

    pub fn node(&mut self, name: &str, kind: EntryType, major: u32, minor: u32, mode: u32) -> &mut Self {
        let mut e = E::new(name, kind);
        e.dev = (major, minor);
        e.mode = mode;
        self.entry(e)
    }

    pub fn whiteout(&mut self, name: &str) -> &mut Self {
        self.file(name, b"", 0o644)
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// gzip-compresses bytes (fast level).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// One node of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// File content, symlink target, or `major:minor`.
    pub detail: String,
    /// For files with several links: the first path (sorted) of the inode.
    pub link_group: Option<String>,
    /// mtime (seconds) for non-directories.
    pub mtime: Option<i64>,
}

/// Snapshot of a tree: relative path → node. Never follows symlinks.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>, inodes: &mut BTreeMap<(u64, u64), String>) {
    let mut names: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let ft = m.file_type();
        let (kind, detail) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_symlink() {
            ("symlink", fs::read_link(&p).unwrap().to_string_lossy().into_owned())
        } else if ft.is_file() {
            let data = fs::read(&p).unwrap();
            ("file", String::from_utf8_lossy(&data).into_owned())
        } else if ft.is_char_device() {
            ("char", format!("{}:{}", libc::major(m.rdev()), libc::minor(m.rdev())))
        } else if ft.is_block_device() {
            ("block", format!("{}:{}", libc::major(m.rdev()), libc::minor(m.rdev())))
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            ("other", String::new())
        };
        let link_group = if ft.is_file() && m.nlink() > 1 {
            Some(inodes.entry((m.dev(), m.ino())).or_insert_with(|| rel.clone()).clone())
        } else {
            None
        };
        out.insert(
            rel,
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                detail,
                link_group,
                mtime: (!ft.is_dir()).then(|| m.mtime()),
            },
        );
        if ft.is_dir() {
            walk(root, &p, out, inodes);
        }
    }
}

/// Differences between two snapshots, as readable lines.
pub fn diff(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("only in left: {k} {v:?}")),
            Some(w) if w != v => out.push(format!("differs: {k}\n   left  {v:?}\n   right {w:?}")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            out.push(format!("only in right: {k} {v:?}"));
        }
    }
    out
}

/// sha256 hex of bytes.
pub fn sha(data: &[u8]) -> String {
    capsa_image::Digest::sha256_of(data).hex().to_owned()
}

/// Writes a blob into `<layout>/blobs/sha256/` and returns its descriptor JSON.
pub fn put_blob(layout: &Path, media_type: &str, data: &[u8]) -> serde_json::Value {
    let hex = sha(data);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&hex), data).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": data.len()})
}

/// A layer for [`write_image`]: the blob as stored, its media type, and the
/// uncompressed tar (for the diff_id).
pub struct LayerBlob {
    pub blob: Vec<u8>,
    pub media_type: &'static str,
    pub tar: Vec<u8>,
}

impl LayerBlob {
    pub fn plain(tar: Vec<u8>) -> Self {
        LayerBlob { blob: tar.clone(), media_type: "application/vnd.oci.image.layer.v1.tar", tar }
    }
    pub fn gzip(tar: Vec<u8>) -> Self {
        LayerBlob { blob: gzip(&tar), media_type: "application/vnd.oci.image.layer.v1.tar+gzip", tar }
    }
    pub fn zstd(tar: Vec<u8>) -> Self {
        LayerBlob {
            blob: zstd::encode_all(&tar[..], 3).unwrap(),
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd",
            tar,
        }
    }
}

/// Writes config + manifest blobs for an image into a layout; returns the
/// manifest descriptor (without annotations). Does not touch index.json.
pub fn write_image(layout: &Path, arch: &str, layers: &[LayerBlob], docker_types: bool) -> serde_json::Value {
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("sha256:{}", sha(&l.tar))).collect();
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/",
                   "Labels": {"test": "yes"}, "ExposedPorts": {"80/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": []
    });
    let (cfg_mt, man_mt) = if docker_types {
        ("application/vnd.docker.container.image.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
    } else {
        ("application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.manifest.v1+json")
    };
    let cfg = put_blob(layout, cfg_mt, &serde_json::to_vec(&config).unwrap());
    let ls: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let mt = if docker_types && l.media_type.ends_with("gzip") {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            } else {
                l.media_type
            };
            put_blob(layout, mt, &l.blob)
        })
        .collect();
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": man_mt, "config": cfg, "layers": ls});
    put_blob(layout, man_mt, &serde_json::to_vec_pretty(&manifest).unwrap())
}

/// Writes `oci-layout` and `index.json` listing `manifests`.
pub fn write_index(layout: &Path, manifests: Vec<serde_json::Value>) {
    fs::create_dir_all(layout).unwrap();
    fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    fs::write(layout.join("index.json"), serde_json::to_vec_pretty(&index).unwrap()).unwrap();
}

/// Adds annotations to a descriptor.
pub fn annotate(mut d: serde_json::Value, pairs: &[(&str, &str)]) -> serde_json::Value {
    let mut a = serde_json::Map::new();
    for (k, v) in pairs {
        a.insert((*k).to_owned(), serde_json::Value::String((*v).to_owned()));
    }
    d["annotations"] = serde_json::Value::Object(a);
    d
}
