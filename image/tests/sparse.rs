//! Sparse bombs: a layer of a few KB whose GNU sparse entry declares a huge
//! file. The applier leaves holes for all-zero blocks, so such an entry (and
//! any zero-filled file) takes no disk space for its zeros.

use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};

use capsa_image::apply::{apply_layer, ApplyOptions};
use tar::{EntryType, Header};

const GIB: u64 = 1 << 30;
/// Allocated bytes allowed for a file whose data is a few KB.
const ALLOWED: u64 = 4 << 20;

/// A tar with one GNU sparse entry `big` of `real_size` bytes holding the
/// `(offset, data)` chunks, and a plain file `after` behind it.
fn sparse_layer(real_size: u64, chunks: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut h = header(chunks.iter().map(|(_, d)| d.len() as u64).sum());
    h.set_path("big").unwrap();
    h.set_entry_type(EntryType::GNUSparse);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.set_real_size(real_size);
    for (slot, (off, data)) in gnu.sparse.iter_mut().zip(chunks) {
        slot.set_offset(*off);
        slot.set_length(data.len() as u64);
    }
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    for (_, d) in chunks {
        out.extend_from_slice(d);
    }
    out.resize(out.len().next_multiple_of(512), 0);

    let mut b = tar::Builder::new(out);
    b.append_data(&mut header(5), "after", &b"after"[..]).unwrap();
    b.into_inner().unwrap()
}

/// A GNU header for a 0644 regular file of `size` bytes owned by root.
fn header(size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

fn allocated(p: &std::path::Path) -> u64 {
    fs::metadata(p).unwrap().blocks() * 512
}

fn read_at(f: &File, off: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0xaa; len];
    f.read_exact_at(&mut buf, off).unwrap();
    buf
}

#[test]
fn gnu_sparse_entry_of_one_gib_takes_no_space_for_its_holes() {
    // Chunk lengths are multiples of 512 (tar's rule); `x` starts unaligned in the file.
    let (x_off, x_len) = (4096 * 1000 + 100, 5120);
    let y_off = 512 << 20;
    // The map ends at the real size with an empty chunk, as GNU tar writes a trailing hole.
    let chunks = vec![(x_off, vec![b'x'; x_len]), (y_off, vec![b'y'; 4096]), (GIB, Vec::new())];
    let layer = sparse_layer(GIB, &chunks);
    assert!(layer.len() < 16 << 10, "layer is {} bytes", layer.len());

    let tmp = tempfile::tempdir().unwrap();
    apply_layer(&layer[..], tmp.path(), &ApplyOptions::default()).unwrap();
    let p = tmp.path().join("big");
    assert_eq!(fs::metadata(&p).unwrap().len(), GIB, "apparent size");
    let used = allocated(&p);
    assert!(used < ALLOWED, "{used} bytes allocated for a 1 GiB sparse entry");

    let f = File::open(&p).unwrap();
    assert_eq!(read_at(&f, 0, 8192), vec![0; 8192]);
    assert_eq!(read_at(&f, x_off - 100, 100), vec![0; 100]);
    assert_eq!(read_at(&f, x_off, x_len), vec![b'x'; x_len]);
    assert_eq!(read_at(&f, x_off + x_len as u64, 3000), vec![0; 3000]);
    assert_eq!(read_at(&f, y_off - 4096, 4096), vec![0; 4096]);
    assert_eq!(read_at(&f, y_off, 4096), vec![b'y'; 4096]);
    assert_eq!(read_at(&f, y_off + 4096, 4096), vec![0; 4096]);
    assert_eq!(read_at(&f, GIB - 4096, 4096), vec![0; 4096], "the trailing hole");
    assert_eq!(fs::read(tmp.path().join("after")).unwrap(), b"after");
}

#[test]
fn zero_filled_regular_file_is_written_sparse_with_its_content_intact() {
    let mut data = vec![0u8; 8 << 20];
    data[3 << 20] = 1;
    data[(5 << 20) + 4095] = 2; // last byte of a block
    let last = data.len() - 1;
    data[last] = 3; // the file ends with data
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header(data.len() as u64), "zeros", &data[..]).unwrap();
    b.append_data(&mut header(1 << 20), "all-zero", &vec![0u8; 1 << 20][..]).unwrap();
    let layer = b.into_inner().unwrap();

    let tmp = tempfile::tempdir().unwrap();
    apply_layer(&layer[..], tmp.path(), &ApplyOptions::default()).unwrap();
    let p = tmp.path().join("zeros");
    assert_eq!(fs::read(&p).unwrap(), data);
    let used = allocated(&p);
    assert!(used < 1 << 20, "{used} bytes allocated for 3 non-zero blocks");
    let z = tmp.path().join("all-zero");
    assert_eq!(fs::read(&z).unwrap(), vec![0u8; 1 << 20]);
    assert_eq!(allocated(&z), 0);
}
