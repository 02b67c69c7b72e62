//! `/proc/<pid>/mountinfo`, parsed: one [`Entry`] per line, with the octal escapes of
//! its paths undone. Parsing works on text, so it is unit tested on samples.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One mount, as a line of mountinfo describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Field 1: the mount id (the one a later mount may get again).
    pub id: u64,
    /// Field 2: the id of the parent mount.
    pub parent: u64,
    /// Field 4: the directory of the filesystem shown at the mount point.
    pub root: PathBuf,
    /// Field 5: where it is mounted.
    pub mount_point: PathBuf,
    /// The filesystem type, after the ` - ` separator.
    pub fstype: &'a str,
    /// The super block options (the last field).
    pub super_opts: &'a str,
}

/// Every well-formed line of `text`; others are skipped.
pub fn parse(text: &str) -> impl Iterator<Item = Entry<'_>> {
    text.lines().filter_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let f: Vec<&str> = pre.split(' ').collect();
        let p: Vec<&str> = post.split(' ').collect();
        if f.len() < 5 || p.len() < 3 {
            return None;
        }
        Some(Entry {
            id: f[0].parse().ok()?,
            parent: f[1].parse().ok()?,
            root: unescape(f[3]),
            mount_point: unescape(f[4]),
            fstype: p[0],
            super_opts: p[2],
        })
    })
}

/// Undo mountinfo's octal escapes (`\040` for a space, `\011` tab, `\012` newline,
/// `\134` backslash); other bytes pass as they are.
pub fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = b[i + 1..i + 4].iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(unescape("/mnt/a\\040b\\134c"), PathBuf::from("/mnt/a b\\c"));
        assert_eq!(unescape("/x\\04"), PathBuf::from("/x\\04"));
        assert_eq!(unescape("/x\\040"), PathBuf::from("/x "));
        assert_eq!(unescape("/\\377"), PathBuf::from(OsString::from_vec(b"/\xff".to_vec())));
    }

    #[test]
    fn lines() {
        let t = "36 25 0:32 / /my\\040proc rw,nosuid shared:14 master:1 - proc proc rw\n\
                 garbage\n\
                 37 36 0:33 /sub /sys/x rw - sysfs sysfs rw,seclabel\n";
        let e: Vec<Entry> = parse(t).collect();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].id, e[0].parent, e[0].fstype), (36, 25, "proc"));
        assert_eq!(e[0].mount_point, PathBuf::from("/my proc"));
        assert_eq!(e[1].root, PathBuf::from("/sub"));
        assert_eq!(e[1].super_opts, "rw,seclabel");
    }
}
