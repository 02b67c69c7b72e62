//! What a file that should be a tar archive is, said in words a user can read:
//! whether its first block is a tar header, and otherwise what it starts with
//! (a known format, a line of text, or a few bytes in hex), never raw bytes.

/// Size of a tar block (every header is one).
pub const TAR_BLOCK: usize = 512;

/// Whether `block` (the first [`TAR_BLOCK`] bytes of a file) is a tar header: its
/// checksum field matches the sum of its bytes (the test tar(1) applies), or it is
/// all zeros (the end marker: an empty archive).
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < TAR_BLOCK {
        return false;
    }
    let block = &block[..TAR_BLOCK];
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    // The checksum: octal, padded with spaces or NULs, computed with its own
    // field taken as 8 spaces; some old tars summed signed bytes.
    let field = &block[148..156];
    let digits: Vec<u8> =
        field.iter().copied().skip_while(|&b| b == b' ' || b == 0).take_while(u8::is_ascii_digit).collect();
    let Some(want) = std::str::from_utf8(&digits).ok().and_then(|s| u32::from_str_radix(s, 8).ok()) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u32, 0i32);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u32::from(b);
        signed += i32::from(b as i8);
    }
    want == unsigned || i64::from(want) == i64::from(signed)
}

/// "starts with an ELF executable header", "starts with text \"hello\"", "starts with
/// the bytes 00 01 02 ...", "is empty": what `head` (the start of a file) looks like,
/// for an error saying what the file is instead of a tar archive.
pub fn describe_start(head: &[u8]) -> String {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x7fELF", "an ELF executable header"),
        (b"PK\x03\x04", "a zip archive header"),
        (b"BZh", "a bzip2 header; capsa reads plain, gzip and zstd tar archives"),
        (b"\xfd7zXZ\x00", "an xz header; capsa reads plain, gzip and zstd tar archives"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive header"),
        (b"\x89PNG", "a PNG image header"),
        (b"%PDF", "a PDF document header"),
    ];
    if head.is_empty() {
        return "is empty".into();
    }
    if let Some((_, what)) = MAGIC.iter().find(|(m, _)| head.starts_with(m)) {
        return format!("starts with {what}");
    }
    // Text: the first line (as far as it is valid UTF-8 without control characters).
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = match std::str::from_utf8(line) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&line[..e.valid_up_to()]).unwrap_or_default(),
    };
    let printable = |s: &str| s.chars().all(|c| !c.is_control() || c == '\t' || c == '\r');
    if text.len() >= line.len().min(16) && !text.is_empty() && printable(text) {
        let shown: String = text.trim_end_matches('\r').chars().take(40).collect();
        let more = if shown.len() < text.trim_end_matches('\r').len() { "..." } else { "" };
        // {:?} escapes whatever a terminal could take for a control sequence.
        return format!("starts with text {shown:?}{more}");
    }
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("starts with the bytes {}", hex.join(" "))
}

/// A message from a tar parser made printable: the `tar` crate quotes header bytes
/// as they are (a binary file gives raw bytes); control and non-ASCII characters
/// are escaped and the text is cut at 160 characters.
pub fn printable(msg: &str) -> String {
    let mut out = String::new();
    for c in msg.chars() {
        if out.len() >= 160 {
            out.push_str("...");
            break;
        }
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str) -> Vec<u8> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(0);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    #[test]
    fn tar_headers() {
        assert!(is_tar_header(&header("manifest.json")));
        assert!(is_tar_header(&[0u8; 512]), "an empty archive");
        let mut h = header("a");
        h[0] ^= 1;
        assert!(!is_tar_header(&h), "checksum mismatch");
        assert!(!is_tar_header(&h[..100]), "short");
        assert!(!is_tar_header(&[b'x'; 512]));
        let mut gnu = tar::Header::new_gnu();
        gnu.set_path("x").unwrap();
        gnu.set_cksum();
        assert!(is_tar_header(gnu.as_bytes()));
    }

    #[test]
    fn descriptions_are_printable() {
        assert_eq!(describe_start(b""), "is empty");
        assert_eq!(describe_start(b"\x7fELF\x02\x01\x01\x00\x00"), "starts with an ELF executable header");
        assert_eq!(describe_start(b"hello this is text\nmore"), "starts with text \"hello this is text\"");
        let d = describe_start("word ".repeat(20).as_bytes());
        assert!(d.starts_with("starts with text \"word word") && d.ends_with("\"..."), "{d}");
        assert_eq!(
            describe_start(b"\x00\x01\x02\xff\xfe\x10\x11\x12\x13"),
            "starts with the bytes 00 01 02 ff fe 10 11 12"
        );
        assert!(describe_start(b"\xfd7zXZ\x00\x00").contains("xz"));
        for s in [&b"\x1b[31mred"[..], b"ab\x07cd\xff", b"\xc3\xa9t\xc3\xa9 caf\xc3\xa9 with accents, long enough"] {
            let d = describe_start(s);
            assert!(d.chars().all(|c| !c.is_control()), "{d:?}");
        }
        assert_eq!(printable("bad \u{7f}ELF\u{2}\u{fffd}"), "bad \\u{7f}ELF\\u{2}\\u{fffd}");
    }
}
