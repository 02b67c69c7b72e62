//! Lexical rules for tar entry names: normalization and whiteout names.
//!
//! A name is normalized into a reusable buffer as `a/b/c\0` (components
//! joined by `/`, a NUL at the end so the final component and, by swapping one
//! `/` for a NUL, the parent can be handed to syscalls without allocating).
//! Leading `/` are stripped (as GNU tar and Docker do), `.` and empty
//! components dropped, `..` pops a component; a `..` that would climb above
//! the root makes the whole entry refused rather than clamped.

use std::ffi::CStr;

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// A `..` climbs above the root.
    Escapes,
    /// The name contains a NUL byte.
    Nul,
}

impl PathError {
    /// Human text for error messages.
    pub fn reason(self) -> &'static str {
        match self {
            PathError::Escapes => "path escapes the root through '..'",
            PathError::Nul => "path contains a NUL byte",
        }
    }
}

/// Normalizes `raw` into `out` (cleared first) as `a/b/c\0`; the root itself
/// normalizes to a lone `\0`.
pub fn normalize_into(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    out.clear();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.is_empty() {
                    return Err(PathError::Escapes);
                }
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            c => {
                if c.contains(&0) {
                    return Err(PathError::Nul);
                }
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    out.push(0);
    Ok(())
}

/// A normalized name split into parent and final component.
///
/// `path` is the whole buffer `a/b/c\0`; `sep` is the index of the last `/`
/// (None for a top-level name).
#[derive(Debug, Clone, Copy)]
pub struct Split {
    /// Index of the `/` before the final component, if any.
    pub sep: Option<usize>,
}

impl Split {
    /// Splits the normalized buffer `path` (must end with NUL).
    pub fn of(path: &[u8]) -> Split {
        let body = &path[..path.len() - 1];
        Split { sep: body.iter().rposition(|&b| b == b'/') }
    }

    /// The parent's components without the NUL (`a/b`), empty for the root.
    pub fn parent<'a>(&self, path: &'a [u8]) -> &'a [u8] {
        match self.sep {
            Some(i) => &path[..i],
            None => &[],
        }
    }

    /// The final component, NUL-terminated.
    pub fn name<'a>(&self, path: &'a [u8]) -> &'a CStr {
        let start = self.sep.map_or(0, |i| i + 1);
        CStr::from_bytes_with_nul(&path[start..]).expect("normalized path ends with its only NUL")
    }
}

/// The normalized path without its NUL.
pub fn body(path: &[u8]) -> &[u8] {
    &path[..path.len() - 1]
}

/// Depth of a normalized body (`""` → 0, `a` → 1, `a/b` → 2).
pub fn depth(body: &[u8]) -> usize {
    if body.is_empty() {
        0
    } else {
        1 + body.iter().filter(|&&b| b == b'/').count()
    }
}

/// Parent of a normalized body (`a/b` → `a`, `a` → ``).
pub fn parent_of(body: &[u8]) -> &[u8] {
    match body.iter().rposition(|&b| b == b'/') {
        Some(i) => &body[..i],
        None => &[],
    }
}

/// The opaque-directory marker.
pub const OPAQUE: &[u8] = b".wh..wh..opq";
/// The prefix of whiteout names.
pub const WH_PREFIX: &[u8] = b".wh.";
/// The prefix of AUFS metadata names (`.wh..wh.plnk`...), ignored.
pub const WH_META_PREFIX: &[u8] = b".wh..wh.";

/// What a final component means for overlay semantics.
#[derive(Debug, PartialEq, Eq)]
pub enum NameKind<'a> {
    /// An ordinary name.
    Plain,
    /// `.wh..wh..opq`: the directory is opaque.
    Opaque,
    /// `.wh.<name>`: delete `<name>` (the slice, never empty, `.` or `..`).
    Whiteout(&'a [u8]),
    /// Other `.wh..wh.*` AUFS metadata: skip.
    AufsMeta,
    /// `.wh.`, `.wh..` or `.wh...`: a whiteout of nothing, `.` or `..`: refuse.
    BadWhiteout,
}

/// Classifies a final component (without NUL).
pub fn classify(name: &[u8]) -> NameKind<'_> {
    if name == OPAQUE {
        NameKind::Opaque
    } else if name.starts_with(WH_META_PREFIX) {
        NameKind::AufsMeta
    } else if let Some(target) = name.strip_prefix(WH_PREFIX) {
        match target {
            b"" | b"." | b".." => NameKind::BadWhiteout,
            t => NameKind::Whiteout(t),
        }
    } else {
        NameKind::Plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<String, PathError> {
        let mut v = Vec::new();
        normalize_into(s.as_bytes(), &mut v)?;
        assert_eq!(v.last(), Some(&0));
        Ok(String::from_utf8(body(&v).to_vec()).unwrap())
    }

    #[test]
    fn normalization() {
        assert_eq!(norm("a/b/c").unwrap(), "a/b/c");
        assert_eq!(norm("./a/./b/").unwrap(), "a/b");
        assert_eq!(norm("/abs/path").unwrap(), "abs/path");
        assert_eq!(norm("///abs//path//").unwrap(), "abs/path");
        assert_eq!(norm("a/../b").unwrap(), "b");
        assert_eq!(norm("a/b/../../c").unwrap(), "c");
        assert_eq!(norm(".").unwrap(), "");
        assert_eq!(norm("./").unwrap(), "");
        assert_eq!(norm("/").unwrap(), "");
        assert_eq!(norm("").unwrap(), "");
        assert_eq!(norm("a/..").unwrap(), "");
        assert_eq!(norm("...").unwrap(), "...");
        assert_eq!(norm("..a/b..").unwrap(), "..a/b..");
        assert_eq!(norm("../escape"), Err(PathError::Escapes));
        assert_eq!(norm("a/../../escape"), Err(PathError::Escapes));
        assert_eq!(norm("/../x"), Err(PathError::Escapes));
        assert_eq!(norm("./.."), Err(PathError::Escapes));
        assert_eq!(norm("a/b/../../../x"), Err(PathError::Escapes));
        assert_eq!(norm("a\0b"), Err(PathError::Nul));
    }

    #[test]
    fn buffer_is_reused_and_split_works() {
        let mut v = Vec::with_capacity(64);
        normalize_into(b"usr/lib/libc.so", &mut v).unwrap();
        let s = Split::of(&v);
        assert_eq!(s.parent(&v), b"usr/lib");
        assert_eq!(s.name(&v).to_bytes(), b"libc.so");
        normalize_into(b"top", &mut v).unwrap();
        let s = Split::of(&v);
        assert_eq!(s.parent(&v), b"");
        assert_eq!(s.name(&v).to_bytes(), b"top");
        assert_eq!(depth(b""), 0);
        assert_eq!(depth(b"a"), 1);
        assert_eq!(depth(b"a/b/c"), 3);
        assert_eq!(parent_of(b"a/b/c"), b"a/b");
        assert_eq!(parent_of(b"a"), b"");
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(classify(b"file"), NameKind::Plain);
        assert_eq!(classify(b".wh..wh..opq"), NameKind::Opaque);
        assert_eq!(classify(b".wh.foo"), NameKind::Whiteout(b"foo"));
        assert_eq!(classify(b".wh..foo"), NameKind::Whiteout(b".foo"));
        assert_eq!(classify(b".wh..wh.plnk"), NameKind::AufsMeta);
        assert_eq!(classify(b".wh."), NameKind::BadWhiteout);
        assert_eq!(classify(b".wh.."), NameKind::BadWhiteout);
        assert_eq!(classify(b".wh..."), NameKind::BadWhiteout);
        assert_eq!(classify(b".wh...."), NameKind::Whiteout(b"..."));
        assert_eq!(classify(b"x.wh.y"), NameKind::Plain);
    }
}
