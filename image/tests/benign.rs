//! A benign three-layer image (whiteouts, an opaque directory with its marker
//! after the layer's own entries, type replacements, hardlinks, symlinks,
//! setuid/setgid/sticky, fifo, devices, a user xattr) applied with capsa and
//! compared with the expected tree, and with `umoci raw unpack` of the same
//! layers packed as an OCI layout.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use capsa_image::apply::{apply_layer, ApplyOptions, Compression};
use common::{snapshot, LayerBlob, Node, TarW, E, MTIME};
use tar::EntryType;

fn layers() -> Vec<LayerBlob> {
    let mut l1 = TarW::new();
    l1.dir("etc", 0o755)
        .file("etc/passwd", b"root:x:0:0\n", 0o644)
        .file_owned("etc/shadow", b"root:*\n", 0o640, 0, 42)
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file_owned("usr/bin/tool", b"tool v1", 0o755, 1000, 1000)
        .hardlink("usr/bin/tool2", "usr/bin/tool")
        .file("usr/bin/suid", b"suid", 0o4755)
        .file_owned("usr/bin/sgid", b"sgid", 0o2755, 0, 50)
        .dir("usr/lib", 0o755)
        .file("usr/lib/libx.so.1", b"libx", 0o644)
        .symlink("usr/lib/libx.so", "libx.so.1")
        .dir("tmp", 0o1777)
        .dir("var", 0o755)
        .node("var/fifo", EntryType::Fifo, 0, 0, 0o644)
        .dir("dev", 0o755)
        .node("dev/null", EntryType::Char, 1, 3, 0o666)
        .node("dev/loop0", EntryType::Block, 7, 0, 0o660)
        .dir("opq", 0o755)
        .file("opq/a", b"a", 0o644)
        .dir("opq/sub", 0o755)
        .file("opq/sub/b", b"b", 0o644)
        .dir("gone", 0o755)
        .file("gone/x", b"x", 0o644)
        .file("del.txt", b"delete me", 0o644)
        .dir("setgid-dir", 0o2775)
        .symlink("abs-link", "/etc/passwd");
    let mut e = E::new("xattr.txt", EntryType::Regular);
    e.data = b"has xattr";
    e.pax = vec![("SCHILY.xattr.user.test", b"hello".as_slice())];
    l1.entry(e);

    let mut l2 = TarW::new();
    l2.whiteout(".wh.del.txt")
        .dir("opq", 0o700)
        .file("opq/new", b"new", 0o644)
        .whiteout("opq/.wh..wh..opq") // after this layer's own opq/new
        .file("etc/passwd", b"root:x:0:0:new\n", 0o644)
        .file("usr/lib/libx.so", b"now a file", 0o644)
        .file("gone", b"was a dir", 0o600)
        .dir("var/fifo", 0o750)
        .file("var/fifo/inside", b"i", 0o644)
        .hardlink("usr/bin/newlink", "usr/bin/suid");

    let mut l3 = TarW::new();
    l3.whiteout(".wh.gone")
        .whiteout("usr/bin/.wh.tool")
        .symlink("dangling", "/nonexistent")
        .whiteout("var/.wh..wh..opq")
        .file("var/new", b"n", 0o644)
        .whiteout("etc/.wh.shadow")
        .whiteout("nothing/here/.wh.x");
    let mut d = E::new("mt", EntryType::Directory);
    d.mtime = 1_234_567_890;
    l3.entry(d);
    l3.file("mt/f", b"f", 0o644);

    vec![LayerBlob::gzip(l1.finish()), LayerBlob::zstd(l2.finish()), LayerBlob::plain(l3.finish())]
}

fn xattr_supported(dir: &Path) -> bool {
    let p = dir.join(".xattr-probe");
    fs::write(&p, b"").unwrap();
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: valid C strings and value buffer.
    let r = unsafe { libc::setxattr(c.as_ptr(), c"user.probe".as_ptr(), b"1".as_ptr().cast(), 1, 0) };
    fs::remove_file(&p).unwrap();
    r == 0
}

fn node(kind: &'static str, mode: u32, detail: &str) -> Node {
    Node {
        kind,
        mode,
        uid: 0,
        gid: 0,
        detail: detail.to_owned(),
        link_group: None,
        mtime: (kind != "dir").then_some(MTIME as i64),
    }
}

fn expected() -> BTreeMap<String, Node> {
    let mut m = BTreeMap::new();
    let mut put = |p: &str, n: Node| {
        m.insert(p.to_owned(), n);
    };
    put("abs-link", node("symlink", 0o777, "/etc/passwd"));
    put("dangling", node("symlink", 0o777, "/nonexistent"));
    put("dev", node("dir", 0o755, ""));
    put("dev/loop0", node("block", 0o660, "7:0"));
    put("dev/null", node("char", 0o666, "1:3"));
    put("etc", node("dir", 0o755, ""));
    put("etc/passwd", node("file", 0o644, "root:x:0:0:new\n"));
    put("mt", node("dir", 0o755, ""));
    put("mt/f", node("file", 0o644, "f"));
    put("opq", node("dir", 0o700, ""));
    put("opq/new", node("file", 0o644, "new"));
    put("setgid-dir", node("dir", 0o2775, ""));
    put("tmp", node("dir", 0o1777, ""));
    put("usr", node("dir", 0o755, ""));
    put("usr/bin", node("dir", 0o755, ""));
    let mut newlink = node("file", 0o4755, "suid");
    newlink.link_group = Some("usr/bin/newlink".into());
    put("usr/bin/newlink", newlink.clone());
    put("usr/bin/suid", newlink);
    let mut sgid = node("file", 0o2755, "sgid");
    sgid.gid = 50;
    put("usr/bin/sgid", sgid);
    let mut tool2 = node("file", 0o755, "tool v1");
    tool2.uid = 1000;
    tool2.gid = 1000;
    put("usr/bin/tool2", tool2);
    put("usr/lib", node("dir", 0o755, ""));
    put("usr/lib/libx.so", node("file", 0o644, "now a file"));
    put("usr/lib/libx.so.1", node("file", 0o644, "libx"));
    put("var", node("dir", 0o755, ""));
    put("var/new", node("file", 0o644, "n"));
    put("xattr.txt", node("file", 0o644, "has xattr"));
    m
}

#[test]
fn three_layers_match_the_expected_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    fs::create_dir(&root).unwrap();
    let ls = layers();
    let wanted = [Compression::Gzip, Compression::Zstd, Compression::None];
    for (i, (l, c)) in ls.iter().zip(wanted).enumerate() {
        // Both diff_id hashers: on another thread and inline.
        let opts = ApplyOptions { pipelined: i % 2 == 0, ..ApplyOptions::default() };
        let st = apply_layer(&l.blob[..], &root, &opts).unwrap();
        assert_eq!(st.compression, c);
        assert_eq!(st.diff_id.hex(), common::sha(&l.tar), "diff_id");
        assert_eq!(st.tar_size, l.tar.len() as u64);
    }
    let got = snapshot(&root);
    let d = common::diff(&expected(), &got);
    assert!(d.is_empty(), "differences (left = expected):\n{}", d.join("\n"));
    // The directory whose entry carried an mtime keeps it after its children.
    assert_eq!(fs::metadata(root.join("mt")).unwrap().mtime(), 1_234_567_890);
    // tool2 is the last name of its inode after tool's whiteout.
    assert_eq!(fs::metadata(root.join("usr/bin/tool2")).unwrap().nlink(), 1);
    if xattr_supported(tmp.path()) {
        let mut buf = [0u8; 16];
        let c = std::ffi::CString::new(root.join("xattr.txt").to_str().unwrap()).unwrap();
        // SAFETY: valid C strings and buffer.
        let n = unsafe { libc::getxattr(c.as_ptr(), c"user.test".as_ptr(), buf.as_mut_ptr().cast(), 16) };
        assert_eq!(&buf[..n as usize], b"hello");
    }
}

#[test]
fn opaque_marker_before_the_layer_entries_works_too() {
    let tmp = tempfile::tempdir().unwrap();
    let mut l1 = TarW::new();
    l1.dir("d", 0o755).file("d/lower", b"l", 0o644).dir("d/sub", 0o755).file("d/sub/deep", b"x", 0o644);
    let mut l2 = TarW::new();
    l2.whiteout("d/.wh..wh..opq").file("d/upper", b"u", 0o644).file("d/sub/new", b"n", 0o644);
    let mut l3 = TarW::new();
    // Marker last; this layer's entries (implicit parent d/sub2 included) stay.
    l3.file("d/sub2/f", b"f", 0o644).file("d/upper", b"u3", 0o644).whiteout("d/.wh..wh..opq");
    let opts = ApplyOptions::default();
    apply_layer(&l1.finish()[..], tmp.path(), &opts).unwrap();
    apply_layer(&l2.finish()[..], tmp.path(), &opts).unwrap();
    let names: Vec<String> = snapshot(tmp.path()).into_keys().collect();
    assert_eq!(names, ["d", "d/sub", "d/sub/new", "d/upper"]);
    apply_layer(&l3.finish()[..], tmp.path(), &opts).unwrap();
    let names: Vec<String> = snapshot(tmp.path()).into_keys().collect();
    assert_eq!(names, ["d", "d/sub2", "d/sub2/f", "d/upper"]);
}

#[test]
fn same_layer_whiteout_does_not_hide_same_layer_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let mut l = TarW::new();
    l.file("a", b"a", 0o644).whiteout(".wh.a");
    apply_layer(&l.finish()[..], tmp.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(fs::read(tmp.path().join("a")).unwrap(), b"a");
}

#[test]
fn unprivileged_style_options_skip_owners() {
    let tmp = tempfile::tempdir().unwrap();
    let mut l = TarW::new();
    l.file_owned("f", b"x", 0o640, 1234, 5678);
    let opts = ApplyOptions { preserve_owners: false, ..ApplyOptions::default() };
    apply_layer(&l.finish()[..], tmp.path(), &opts).unwrap();
    let m = fs::metadata(tmp.path().join("f")).unwrap();
    // SAFETY: geteuid cannot fail.
    assert_eq!(m.uid(), unsafe { libc::geteuid() });
    assert_eq!(m.mode() & 0o7777, 0o640);
}

#[test]
fn diff_id_mismatch_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let mut l = TarW::new();
    l.file("f", b"x", 0o644);
    let wrong = capsa_image::Digest::sha256_of(b"not this");
    let e =
        capsa_image::apply_layer_verified(&l.finish()[..], tmp.path(), &ApplyOptions::default(), &wrong).unwrap_err();
    assert!(e.to_string().contains("diff_id mismatch"), "{e}");
}

#[test]
fn truncated_gzip_layer_is_a_read_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut l = TarW::new();
    l.file("f", &vec![7u8; 100_000], 0o644);
    let gz = common::gzip(&l.finish());
    let e = apply_layer(&gz[..gz.len() / 2], tmp.path(), &ApplyOptions::default()).unwrap_err();
    assert!(matches!(e, capsa_image::ApplyError::Read(_)), "{e:?}");
}

fn have_umoci() -> bool {
    Command::new("umoci").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn three_layers_match_umoci_raw_unpack() {
    if !have_umoci() {
        assert!(std::env::var("CI").is_err(), "umoci is required in CI");
        eprintln!("umoci not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let ls = layers();
    // umoci 0.4.7 refuses tar+zstd layers: give it gzip instead.
    let for_umoci: Vec<LayerBlob> = ls
        .iter()
        .map(|l| {
            if l.media_type.ends_with("zstd") {
                LayerBlob::gzip(l.tar.clone())
            } else {
                LayerBlob { blob: l.blob.clone(), media_type: l.media_type, tar: l.tar.clone() }
            }
        })
        .collect();
    let m = common::write_image(&layout, "amd64", &for_umoci, false);
    common::write_index(&layout, vec![common::annotate(m, &[("org.opencontainers.image.ref.name", "test")])]);
    let theirs = tmp.path().join("umoci-rootfs");
    let out = Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:test", layout.display()))
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci: {}", String::from_utf8_lossy(&out.stderr));

    let ours = tmp.path().join("capsa-rootfs");
    fs::create_dir(&ours).unwrap();
    for l in &ls {
        apply_layer(&l.blob[..], &ours, &ApplyOptions::default()).unwrap();
    }
    let d = common::diff(&snapshot(&theirs), &snapshot(&ours));
    assert!(d.is_empty(), "differences (left = umoci, right = capsa):\n{}", d.join("\n"));
}
