//! Content store: verification, atomicity, no leftovers.

use std::fs;
use std::io::{self, Read};

use capsa_image::store::StoreError;
use capsa_image::{Digest, Store};

fn blob_dir_names(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn put_open_has_list_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::new(tmp.path()).unwrap();
    let d = s.put(&b"hello"[..], None, None).unwrap();
    assert_eq!(d, Digest::sha256_of(b"hello"));
    assert!(s.has(&d));
    let mut out = String::new();
    s.open(&d).unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(out, "hello");
    assert_eq!(s.size(&d).unwrap(), 5);
    assert_eq!(s.read_bytes(&d, 100).unwrap(), b"hello");
    assert!(s.read_bytes(&d, 3).is_err());
    // Same content again, with its digest: a no-op.
    assert_eq!(s.put(&b"hello"[..], Some(&d), Some(5)).unwrap(), d);
    let d2 = s.put_bytes(b"world", None).unwrap();
    assert_eq!(s.list().unwrap(), {
        let mut v = vec![d.clone(), d2.clone()];
        v.sort();
        v
    });
    assert!(s.remove(&d).unwrap());
    assert!(!s.remove(&d).unwrap());
    assert!(!s.has(&d));
    assert!(matches!(s.open(&d), Err(StoreError::NotFound(_))));
    assert_eq!(blob_dir_names(&s), [d2.hex().to_owned()]);
}

#[test]
fn digest_mismatch_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::new(tmp.path()).unwrap();
    let expected = Digest::sha256_of(b"the real content");
    let e = s.put(&b"forged content!!"[..], Some(&expected), None).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&expected.to_string()), "{msg}");
    assert!(msg.contains(&Digest::sha256_of(b"forged content!!").to_string()), "{msg}");
    assert!(blob_dir_names(&s).is_empty());
    assert!(!s.has(&expected));
}

#[test]
fn size_mismatch_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::new(tmp.path()).unwrap();
    let d = Digest::sha256_of(b"12345");
    let e = s.put(&b"12345"[..], Some(&d), Some(4)).unwrap_err();
    assert!(e.to_string().contains("size mismatch"), "{e}");
    let e = s.put(&b"12345"[..], Some(&d), Some(6)).unwrap_err();
    assert!(e.to_string().contains("size mismatch"), "{e}");
    // Without an expected digest, size alone is checked too.
    assert!(s.put(&b"12345"[..], None, Some(3)).is_err());
    assert!(blob_dir_names(&s).is_empty());
}

#[test]
fn endless_stream_is_cut_at_the_expected_size() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::new(tmp.path()).unwrap();
    let d = Digest::sha256_of(b"x");
    // io::repeat never ends: put must stop one byte past the declared size.
    let e = s.put(io::repeat(b'a'), Some(&d), Some(1 << 20)).unwrap_err();
    assert!(e.to_string().contains("size mismatch"), "{e}");
    assert!(blob_dir_names(&s).is_empty());
}

struct FailAfter(usize);
impl Read for FailAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0 == 0 {
            return Err(io::Error::other("network went away"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(b'z');
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn failed_source_leaves_no_partial_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::new(tmp.path()).unwrap();
    let e = s.put(FailAfter(3 << 20), None, None).unwrap_err();
    assert!(matches!(e, StoreError::Source(_)), "{e:?}");
    assert!(blob_dir_names(&s).is_empty());
}

#[test]
fn concurrent_puts_of_the_same_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::new(tmp.path()).unwrap();
    let data = vec![42u8; 5 << 20];
    let d = Digest::sha256_of(&data);
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| s.put(&data[..], Some(&d), Some(data.len() as u64)).unwrap());
        }
    });
    assert_eq!(blob_dir_names(&s), [d.hex().to_owned()]);
    assert_eq!(fs::read(s.path(&d)).unwrap(), data);
}

#[test]
fn list_ignores_stray_files() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::new(tmp.path()).unwrap();
    fs::write(tmp.path().join("blobs/sha256/.tmp-1-2-3"), b"partial").unwrap();
    fs::write(tmp.path().join("blobs/sha256/not-a-digest"), b"x").unwrap();
    assert!(s.list().unwrap().is_empty());
}

/// Image content (setuid files, device nodes) and bundles are root's alone: every
/// directory of the store is 0700, and a store an older version left at 0755 is
/// narrowed when opened.
#[test]
fn store_directories_are_private_and_old_ones_are_narrowed() {
    use capsa_image::images::ImageStore;
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let dirs = ["", "blobs", "blobs/sha256", "snapshots", "containers"];
    ImageStore::open(&root).unwrap();
    for d in dirs {
        assert_eq!(mode(&root.join(d)), 0o700, "new store: {d:?}");
    }
    fs::create_dir(root.join("pods")).unwrap();
    for d in dirs.iter().chain(&["pods"]) {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let s = ImageStore::open(&root).unwrap();
    for d in dirs.iter().chain(&["pods"]) {
        assert_eq!(mode(&root.join(d)), 0o700, "old store: {d:?} not narrowed");
    }
    // Blobs land in the private directory, complete, with no temp file left.
    let d = s.blobs().put_bytes(b"layer", None).unwrap();
    assert_eq!(blob_dir_names(s.blobs()), [d.hex().to_owned()]);
}
