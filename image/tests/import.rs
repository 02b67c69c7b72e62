//! OCI layouts and `docker save` archives built by hand, imported, resolved,
//! verified, then unpacked.

mod common;

use std::fs;
use std::path::Path;

use capsa_image::apply::{apply_layer_verified, ApplyOptions};
use capsa_image::layout::LayoutError;
use capsa_image::oci::Platform;
use capsa_image::{DockerArchive, ImageSource, OciLayout, ResolvedImage, Store};
use common::{annotate, put_blob, sha, LayerBlob, TarW};
use serde_json::json;

fn base_layers() -> Vec<Vec<u8>> {
    let mut l1 = TarW::new();
    l1.dir("bin", 0o755).file("bin/sh", b"#!shell", 0o755).file("hello", b"hello from l1", 0o644);
    let mut l2 = TarW::new();
    l2.file("hello", b"hello from l2", 0o644).whiteout("bin/.wh.sh");
    vec![l1.finish(), l2.finish()]
}

/// Unpacks an imported image from the store, verifying every diff_id.
fn unpack_from_store(store: &Store, img: &ResolvedImage, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    for (l, diff_id) in img.layers().iter().zip(img.diff_ids()) {
        let f = store.open(&l.digest).unwrap();
        apply_layer_verified(f, dest, &ApplyOptions::default(), diff_id).unwrap();
    }
    assert_eq!(fs::read(dest.join("hello")).unwrap(), b"hello from l2");
    assert!(dest.join("bin").is_dir() && !dest.join("bin/sh").exists());
}

/// A layout with: `v1` → image index (amd64 OCI, arm64 Docker types, an
/// attestation), `v2` → a Docker-typed amd64 manifest, `nested` → index → index.
fn build_layout(dir: &Path) -> (serde_json::Value, serde_json::Value) {
    let ls = base_layers();
    let amd =
        common::write_image(dir, "amd64", &[LayerBlob::gzip(ls[0].clone()), LayerBlob::plain(ls[1].clone())], false);
    let arm =
        common::write_image(dir, "arm64", &[LayerBlob::gzip(ls[0].clone()), LayerBlob::gzip(ls[1].clone())], true);
    let mut amd_p = amd.clone();
    amd_p["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let mut arm_p = arm.clone();
    arm_p["platform"] = json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
    let mut att = amd.clone();
    att["platform"] = json!({"architecture": "unknown", "os": "unknown"});
    att["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest"});
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": [att, arm_p, amd_p]});
    let idx = put_blob(dir, "application/vnd.oci.image.index.v1+json", &serde_json::to_vec(&index).unwrap());
    let outer = json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                       "manifests": [idx.clone()]});
    let outer = put_blob(
        dir,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        &serde_json::to_vec(&outer).unwrap(),
    );
    common::write_index(
        dir,
        vec![
            annotate(idx, &[("org.opencontainers.image.ref.name", "v1")]),
            annotate(
                amd.clone(),
                &[("org.opencontainers.image.ref.name", "v2"), ("io.containerd.image.name", "example.com/app:v2")],
            ),
            annotate(outer, &[("org.opencontainers.image.ref.name", "nested")]),
        ],
    );
    (amd, arm)
}

#[test]
fn oci_layout_resolves_tags_and_platforms() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let (amd, arm) = build_layout(&dir);
    let layout = OciLayout::open(&dir).unwrap();
    let amd64 = Platform::linux_amd64();
    let mut arm64 = Platform::linux("arm64");

    let img = layout.resolve(Some("v1"), &amd64).unwrap();
    assert_eq!(img.manifest_descriptor.digest.to_string(), amd["digest"]);
    assert_eq!(img.config.architecture, "amd64");
    assert_eq!(img.indexes.len(), 1);
    let img = layout.resolve(Some("v1"), &arm64).unwrap();
    assert_eq!(img.manifest_descriptor.digest.to_string(), arm["digest"]);
    assert_eq!(img.layers()[1].media_type, "application/vnd.docker.image.rootfs.diff.tar.gzip");
    arm64.variant = Some("v7".into());
    assert!(matches!(layout.resolve(Some("v1"), &arm64), Err(LayoutError::NoPlatform { .. })));
    let e = layout.resolve(Some("v1"), &Platform::linux("s390x")).unwrap_err();
    assert!(e.to_string().contains("linux/arm64/v8"), "{e}");

    let img = layout.resolve(Some("v2"), &amd64).unwrap();
    assert_eq!(img.manifest_descriptor.digest.to_string(), amd["digest"]);
    let cc = img.config.config.as_ref().unwrap();
    assert_eq!(cc.cmd.as_deref(), Some(&["/bin/sh".to_owned()][..]));
    assert_eq!(
        layout.resolve(Some("example.com/app:v2"), &amd64).unwrap().manifest_descriptor,
        img.manifest_descriptor
    );

    let img = layout.resolve(Some("nested"), &amd64).unwrap();
    assert_eq!(img.indexes.len(), 2);
    assert_eq!(img.manifest_descriptor.digest.to_string(), amd["digest"]);

    assert!(matches!(layout.resolve(None, &amd64), Err(LayoutError::Ambiguous { count: 3, .. })));
    match layout.resolve(Some("nope"), &amd64) {
        Err(LayoutError::NotFound { available, .. }) => {
            assert_eq!(available, ["v1", "v2", "nested"])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn oci_layout_import_and_unpack() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    build_layout(&dir);
    let store = Store::new(tmp.path().join("store")).unwrap();
    let img = OciLayout::open(&dir).unwrap().import(&store, Some("v1"), &Platform::linux_amd64()).unwrap();
    for d in [&img.manifest_descriptor.digest, &img.manifest.config.digest] {
        assert!(store.has(d));
    }
    for l in img.layers() {
        assert!(store.has(&l.digest));
    }
    assert!(store.has(&img.indexes[0].0.digest));
    unpack_from_store(&store, &img, &tmp.path().join("rootfs"));
}

#[test]
fn oci_layout_single_image_needs_no_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let ls = base_layers();
    let m = common::write_image(
        tmp.path(),
        "amd64",
        &[LayerBlob::plain(ls[0].clone()), LayerBlob::plain(ls[1].clone())],
        false,
    );
    common::write_index(tmp.path(), vec![m.clone()]);
    let img = OciLayout::open(tmp.path()).unwrap().resolve(None, &Platform::linux_amd64()).unwrap();
    assert_eq!(img.manifest_descriptor.digest.to_string(), m["digest"]);
}

#[test]
fn corrupted_blobs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let (amd, _) = build_layout(&dir);
    let layout = OciLayout::open(&dir).unwrap();
    let img = layout.resolve(Some("v2"), &Platform::linux_amd64()).unwrap();
    // Flip one byte of the second layer, keeping its size.
    let victim = &img.layers()[1].digest;
    let p = dir.join("blobs/sha256").join(victim.hex());
    let mut data = fs::read(&p).unwrap();
    data[600] ^= 0xff;
    fs::write(&p, &data).unwrap();
    let store = Store::new(tmp.path().join("store")).unwrap();
    let e = layout.import(&store, Some("v2"), &Platform::linux_amd64()).unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert!(!store.has(victim));
    assert!(store.list().unwrap().iter().all(|d| d != victim));

    // A manifest whose bytes do not match its digest.
    let mp = dir.join("blobs/sha256").join(amd["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap());
    let mut m = fs::read(&mp).unwrap();
    let last = m.len() - 1;
    m[last] = b' ';
    fs::write(&mp, &m).unwrap();
    let e = layout.resolve(Some("v2"), &Platform::linux_amd64()).unwrap_err();
    assert!(matches!(e, LayoutError::Verify { .. }), "{e:?}");
}

#[test]
fn oci_layout_rejects_bad_layout_version_and_digest() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("oci-layout"), r#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    assert!(OciLayout::open(tmp.path()).is_err());
    common::write_index(
        tmp.path(),
        vec![json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:../../../../etc/passwd", "size": 1})],
    );
    let e = OciLayout::open(tmp.path()).unwrap().index().unwrap_err();
    assert!(e.to_string().contains("invalid digest"), "{e}");
}

/// A classic (Docker < 25) `docker save` tar.
fn classic_archive(layers: &[Vec<u8>], tags: &[&str]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("sha256:{}", sha(l))).collect();
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["A=1"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
    .unwrap();
    let cfg = sha(&config);
    let mut t = TarW::new();
    let mut paths = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let id = sha(format!("layer{i}").as_bytes());
        t.dir(&format!("{id}/"), 0o755)
            .file(&format!("{id}/VERSION"), b"1.0", 0o644)
            .file(&format!("{id}/json"), b"{}", 0o644)
            .file(&format!("{id}/layer.tar"), l, 0o644);
        paths.push(format!("{id}/layer.tar"));
    }
    t.file(&format!("{cfg}.json"), &config, 0o644);
    let manifest = json!([{"Config": format!("{cfg}.json"), "RepoTags": tags, "Layers": paths}]);
    t.file("manifest.json", &serde_json::to_vec(&manifest).unwrap(), 0o644);
    t.file("repositories", br#"{"busybox":{"latest":"x"}}"#, 0o644);
    t.finish()
}

#[test]
fn classic_docker_save_import() {
    let tmp = tempfile::tempdir().unwrap();
    let ls = base_layers();
    let path = tmp.path().join("save.tar");
    fs::write(&path, classic_archive(&ls, &["busybox:latest", "busybox:1.36"])).unwrap();
    let store = Store::new(tmp.path().join("store")).unwrap();
    let ar = DockerArchive::open(&path).unwrap();
    let p = Platform::linux_amd64();
    for r in [Some("busybox"), Some("docker.io/library/busybox:1.36"), None] {
        let img = ar.import(&store, r, &p).unwrap();
        assert_eq!(img.layers().len(), 2);
        for (l, d) in img.layers().iter().zip(img.diff_ids()) {
            assert_eq!(&l.digest, d, "uncompressed layer: digest is the diff_id");
        }
        assert!(store.has(&img.manifest_descriptor.digest));
        assert_eq!(img.config.config.as_ref().unwrap().cmd.as_deref(), Some(&["sh".to_owned()][..]));
    }
    assert!(matches!(ar.import(&store, Some("alpine"), &p), Err(LayoutError::NotFound { .. })));
    unpack_from_store(&store, &ar.import(&store, None, &p).unwrap(), &tmp.path().join("rootfs"));

    // Compressed archive (docker save | gzip).
    let gz = tmp.path().join("save.tar.gz");
    fs::write(&gz, common::gzip(&fs::read(&path).unwrap())).unwrap();
    let store2 = Store::new(tmp.path().join("store2")).unwrap();
    let img = DockerArchive::open(&gz).unwrap().import(&store2, Some("busybox"), &p).unwrap();
    assert_eq!(img.layers().len(), 2);
}

#[test]
fn classic_docker_save_with_a_wrong_layer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ls = base_layers();
    let mut bytes = classic_archive(&ls, &["busybox:latest"]);
    // Corrupt "hello from l1" inside the first layer.tar.
    let pos = bytes.windows(13).position(|w| w == b"hello from l1").unwrap();
    bytes[pos] = b'j';
    let path = tmp.path().join("save.tar");
    fs::write(&path, bytes).unwrap();
    let store = Store::new(tmp.path().join("store")).unwrap();
    let e = DockerArchive::open(&path).unwrap().import(&store, None, &Platform::linux_amd64()).unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
}

/// A Docker 25+ `docker save` tar: an OCI layout plus manifest.json pointing
/// into blobs/, and legacy `<id>/layer.tar` symlinks.
fn docker25_archive(layers: &[Vec<u8>], gzip_layers: bool) -> (Vec<u8>, String) {
    let stage = tempfile::tempdir().unwrap();
    let blobs: Vec<LayerBlob> = layers
        .iter()
        .map(|l| if gzip_layers { LayerBlob::gzip(l.clone()) } else { LayerBlob::plain(l.clone()) })
        .collect();
    let m = common::write_image(stage.path(), "amd64", &blobs, true);
    let manifest_digest = m["digest"].as_str().unwrap().to_owned();
    let mbytes =
        fs::read(stage.path().join("blobs/sha256").join(manifest_digest.strip_prefix("sha256:").unwrap())).unwrap();
    let mv: serde_json::Value = serde_json::from_slice(&mbytes).unwrap();
    let cfg = mv["config"]["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap().to_owned();
    let lpaths: Vec<String> = mv["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| format!("blobs/sha256/{}", l["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap()))
        .collect();
    let mut t = TarW::new();
    t.dir("blobs/", 0o755).dir("blobs/sha256/", 0o755);
    let mut names: Vec<_> =
        fs::read_dir(stage.path().join("blobs/sha256")).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        let name = format!("blobs/sha256/{}", p.file_name().unwrap().to_str().unwrap());
        t.file(&name, &fs::read(&p).unwrap(), 0o644);
    }
    for lp in &lpaths {
        let hex = lp.rsplit('/').next().unwrap();
        t.dir(&format!("{hex}/"), 0o755).symlink(&format!("{hex}/layer.tar"), &format!("../{lp}"));
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [annotate(m, &[("io.containerd.image.name", "docker.io/library/busybox:latest"),
                                    ("org.opencontainers.image.ref.name", "latest")])]});
    t.file("index.json", &serde_json::to_vec(&index).unwrap(), 0o644);
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644);
    let manifest = json!([{"Config": format!("blobs/sha256/{cfg}"), "RepoTags": ["busybox:latest", "extra:tag"],
                           "Layers": lpaths}]);
    t.file("manifest.json", &serde_json::to_vec(&manifest).unwrap(), 0o644);
    t.file("repositories", br#"{"busybox":{"latest":"x"}}"#, 0o644);
    (t.finish(), manifest_digest)
}

#[test]
fn docker25_save_import_uses_the_oci_index() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Platform::linux_amd64();
    for gz in [false, true] {
        let (bytes, manifest_digest) = docker25_archive(&base_layers(), gz);
        let path = tmp.path().join(format!("save25-{gz}.tar"));
        fs::write(&path, bytes).unwrap();
        let store = Store::new(tmp.path().join(format!("store-{gz}"))).unwrap();
        let ar = DockerArchive::open(&path).unwrap();
        let img = ar.import(&store, Some("busybox:latest"), &p).unwrap();
        assert_eq!(img.manifest_descriptor.digest.to_string(), manifest_digest, "original manifest kept");
        // Only in manifest.json's RepoTags: the manifest.json route (synthesized manifest).
        let img2 = ar.import(&store, Some("extra:tag"), &p).unwrap();
        assert_ne!(img2.manifest_descriptor.digest.to_string(), manifest_digest);
        assert_eq!(
            img2.layers().iter().map(|l| &l.digest).collect::<Vec<_>>(),
            img.layers().iter().map(|l| &l.digest).collect::<Vec<_>>()
        );
        unpack_from_store(&store, &img2, &tmp.path().join(format!("rootfs-{gz}")));
        // The legacy <id>/layer.tar symlinks resolve inside the archive.
        let hex = img.layers()[0].digest.hex().to_owned();
        assert!(ar.exists(&format!("{hex}/layer.tar")));
    }
}

#[test]
fn archive_without_manifests_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = TarW::new();
    t.file("repositories", b"{}", 0o644);
    let path = tmp.path().join("old.tar");
    fs::write(&path, t.finish()).unwrap();
    let store = Store::new(tmp.path().join("store")).unwrap();
    let e = DockerArchive::open(&path).unwrap().import(&store, None, &Platform::linux_amd64()).unwrap_err();
    assert!(e.to_string().contains("neither manifest.json"), "{e}");
}

/// A file that is not a tar archive is named for what it is, in printable words:
/// the tar parser's own errors quote header bytes raw ("numeric field was not a
/// number: \x7fELF...") or say "failed to read entire block".
#[test]
fn an_archive_that_is_not_a_tar_says_what_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
    elf.resize(3000, 0xaa);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("elf", elf.clone(), "the file starts with an ELF executable header"),
        (
            "text",
            b"hello, I am a text file\nsecond line\n".to_vec(),
            "the file starts with text \"hello, I am a text file\"",
        ),
        ("empty", Vec::new(), "the file is empty"),
        (
            "binary",
            vec![0x01, 0x02, 0xfe, 0x1b, 0x9b, 0x00, 0x7f, 0x80, 0x81],
            "the file starts with the bytes 01 02 fe 1b 9b 00 7f 80",
        ),
        ("gzip-text", common::gzip(b"plain words\n"), "gzip-compressed data that starts with text \"plain words\""),
        ("gzip-elf", common::gzip(&elf), "gzip-compressed data that starts with an ELF executable header"),
    ];
    for (name, data, what) in cases {
        let p = tmp.path().join(name);
        fs::write(&p, data).unwrap();
        let e = DockerArchive::open(&p).err().unwrap_or_else(|| panic!("{name}: opened"));
        assert!(matches!(e, LayoutError::NotTar { .. }), "{name}: {e:?}");
        let msg = e.to_string();
        assert_eq!(msg, format!("{}: not a tar archive ({what})", p.display()));
    }
    // A real archive cut short: the member after which it breaks, printable.
    let ls = base_layers();
    let full = classic_archive(&ls, &["busybox:latest"]);
    let p = tmp.path().join("cut.tar");
    // Cut inside the second header: the parser cannot read a whole block.
    let mut ar = tar::Archive::new(&full[..]);
    let second = ar.entries().unwrap().nth(1).unwrap().unwrap().raw_header_position() as usize;
    fs::write(&p, &full[..second + 100]).unwrap();
    let msg = DockerArchive::open(&p).err().expect("a truncated archive opened").to_string();
    assert!(msg.contains("corrupt or truncated after member"), "{msg}");
    assert!(msg.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{msg:?}");
}
