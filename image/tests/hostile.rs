//! The hostile corpus: layers built to escape the target directory.
//!
//! Each case applies its layers into `<sandbox>/root`, next to a `victim`
//! directory and a `victim-file`, then checks that nothing outside the root
//! changed (the sandbox minus `root/`, and the listings of `/` and `/etc`) and
//! that the result is the expected refusal or containment.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use capsa_image::apply::{apply_layer, ApplyError, ApplyOptions};
use common::{snapshot, Node, TarW, E};
use tar::EntryType;

struct Sandbox {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    victim: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::Builder::new().prefix("capsa-hostile-").tempdir_in("/tmp").unwrap();
        let base = tmp.path().to_owned();
        let root = base.join("root");
        let victim = base.join("victim");
        fs::create_dir(&root).unwrap();
        fs::create_dir_all(victim.join("sub")).unwrap();
        fs::write(victim.join("secret"), "victim data").unwrap();
        fs::write(victim.join("sub/file"), "deeper").unwrap();
        fs::set_permissions(victim.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(base.join("victim-file"), "precious").unwrap();
        Sandbox { _tmp: tmp, base, root, victim }
    }

    /// Everything in the sandbox outside `root/`, including mtimes and modes.
    fn outside(&self) -> BTreeMap<String, Node> {
        snapshot(&self.base).into_iter().filter(|(k, _)| k != "root" && !k.starts_with("root/")).collect()
    }

    fn root_tree(&self) -> BTreeMap<String, Node> {
        snapshot(&self.root)
    }
}

fn list(dir: &str) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn dir_meta(p: &Path) -> (u32, u32, i64) {
    let m = fs::metadata(p).unwrap();
    (m.mode(), m.uid(), m.mtime())
}

/// Applies the layers made by `make` in order (stopping at the first error),
/// checks nothing outside the root changed, returns the sandbox and result.
fn run(make: impl FnOnce(&Sandbox) -> Vec<Vec<u8>>) -> (Sandbox, Result<(), ApplyError>) {
    let sb = Sandbox::new();
    let layers = make(&sb);
    let before = sb.outside();
    let base_meta = dir_meta(&sb.base);
    let (slash, etc) = (list("/"), list("/etc"));
    let passwd = fs::metadata("/etc/passwd").unwrap();
    let mut res = Ok(());
    for l in &layers {
        if let Err(e) = apply_layer(&l[..], &sb.root, &ApplyOptions::default()) {
            res = Err(e);
            break;
        }
    }
    let after = sb.outside();
    assert_eq!(common::diff(&before, &after), Vec::<String>::new(), "outside the root changed");
    assert_eq!(dir_meta(&sb.base), base_meta, "sandbox dir metadata changed");
    assert_eq!(list("/"), slash, "/ changed");
    assert_eq!(list("/etc"), etc, "/etc changed");
    let passwd2 = fs::metadata("/etc/passwd").unwrap();
    assert_eq!(
        (passwd.nlink(), passwd.mode(), passwd.uid(), passwd.mtime()),
        (passwd2.nlink(), passwd2.mode(), passwd2.uid(), passwd2.mtime())
    );
    (sb, res)
}

fn one(build: impl FnOnce(&mut TarW)) -> Vec<Vec<u8>> {
    let mut t = TarW::new();
    build(&mut t);
    vec![t.finish()]
}

fn assert_refused(res: Result<(), ApplyError>, entry: &str, why: &str) {
    match res {
        Err(ApplyError::Refused { entry: e, reason }) => {
            assert_eq!(e, entry);
            assert!(reason.contains(why), "reason {reason:?} lacks {why:?}");
        }
        other => panic!("expected refusal of {entry:?}, got {other:?}"),
    }
}

#[test]
fn dotdot_escape_is_refused() {
    let (sb, res) = run(|_| {
        one(|t| {
            t.file("../escape", b"x", 0o644);
        })
    });
    assert_refused(res, "../escape", "escapes the root");
    assert!(!sb.base.join("escape").exists());
}

#[test]
fn dotdot_inside_name_is_refused() {
    let (_, res) = run(|_| {
        one(|t| {
            t.file("a/../../escape", b"x", 0o644);
        })
    });
    assert_refused(res, "a/../../escape", "escapes the root");
}

#[test]
fn dotdot_that_stays_inside_is_normalized() {
    let (sb, res) = run(|_| {
        one(|t| {
            t.file("a/b/../../c", b"x", 0o644);
        })
    });
    res.unwrap();
    assert_eq!(fs::read(sb.root.join("c")).unwrap(), b"x");
}

#[test]
fn absolute_name_is_contained() {
    let (sb, res) = run(|sb| {
        let victim = format!("{}/secret", sb.victim.display());
        one(|t| {
            t.file("/abs/path", b"x", 0o644);
            t.file(&victim, b"overwritten?", 0o644);
        })
    });
    res.unwrap();
    assert_eq!(fs::read(sb.root.join("abs/path")).unwrap(), b"x");
    let inside = sb.root.join(sb.victim.strip_prefix("/").unwrap()).join("secret");
    assert_eq!(fs::read(inside).unwrap(), b"overwritten?");
}

#[test]
fn long_pax_name_with_dotdot_is_refused() {
    let name = format!("{}/../../../../pax-escape", "d/".repeat(60).trim_end_matches('/'));
    let name2 = format!("{}{}", "../".repeat(70), "pax-escape");
    let (_, res) = run(|_| {
        one(|t| {
            t.file(&name, b"fine: stays inside", 0o644);
            t.file(&name2, b"x", 0o644);
        })
    });
    assert_refused(res, &name2, "escapes the root");
}

#[test]
fn write_through_symlink_to_slash_is_contained() {
    let (sb, res) = run(|sb| {
        let victim = sb.victim.display().to_string();
        let inner = sb.victim.strip_prefix("/").unwrap().display().to_string();
        one(|t| {
            t.symlink("evil", "/");
            t.file("evil/etc/capsa-hostile-test", b"x", 0o644);
            t.dir(&inner, 0o755);
            t.symlink("v", &victim);
            t.file("v/secret", b"pwned", 0o644);
        })
    });
    res.unwrap();
    assert_eq!(fs::read(sb.root.join("etc/capsa-hostile-test")).unwrap(), b"x");
    assert!(!Path::new("/etc/capsa-hostile-test").exists());
    let inside = sb.root.join(sb.victim.strip_prefix("/").unwrap()).join("secret");
    assert_eq!(fs::read(inside).unwrap(), b"pwned");
    assert_eq!(fs::read_link(sb.root.join("evil")).unwrap(), Path::new("/"));
}

#[test]
fn write_through_symlink_to_a_path_missing_in_the_root_is_refused() {
    let (sb, res) = run(|sb| {
        let victim = sb.victim.display().to_string();
        one(|t| {
            t.symlink("v", &victim);
            t.file("v/secret", b"pwned", 0o644);
        })
    });
    // Resolved inside the root, the symlink dangles: refused, not created.
    assert_refused(res, "v/secret", "dangling symlink");
    assert_eq!(sb.root_tree().len(), 1);
    let (_, res) = run(|_| {
        one(|t| {
            t.symlink("v", "../victim");
            t.file("v/sub/file", b"pwned", 0o644);
        })
    });
    assert_refused(res, "v/sub/file", "dangling symlink");
}

#[test]
fn write_through_relative_escaping_symlink_is_contained() {
    let (sb, res) = run(|_| {
        one(|t| {
            t.symlink("evil", "../../..");
            t.file("evil/capsa-file", b"x", 0o644);
            t.dir("victim", 0o755);
            t.symlink("v", "../victim");
            t.file("v/secret", b"pwned", 0o644);
        })
    });
    res.unwrap();
    assert_eq!(fs::read(sb.root.join("capsa-file")).unwrap(), b"x");
    assert_eq!(fs::read(sb.root.join("victim/secret")).unwrap(), b"pwned");
}

#[test]
fn symlink_chain_is_contained_or_refused() {
    let (sb, res) = run(|sb| {
        let victim = sb.victim.display().to_string();
        one(|t| {
            t.symlink("a", "b");
            t.symlink("b", &victim);
            t.file("a/secret", b"pwned", 0o644);
        })
    });
    // b points at a path that does not exist inside the root: refused.
    assert_refused(res, "a/secret", "dangling symlink");
    assert_eq!(fs::read_link(sb.root.join("a")).unwrap(), Path::new("b"));

    // The same chain, when the target exists inside the root: contained.
    let (sb, res) = run(|sb| {
        let inner = sb.victim.strip_prefix("/").unwrap().display().to_string();
        let victim = sb.victim.display().to_string();
        one(|t| {
            t.dir(&inner, 0o755);
            t.symlink("a", "b");
            t.symlink("b", &victim);
            t.file("a/secret", b"pwned", 0o644);
        })
    });
    res.unwrap();
    let inside = sb.root.join(sb.victim.strip_prefix("/").unwrap()).join("secret");
    assert_eq!(fs::read(inside).unwrap(), b"pwned");
}

#[test]
fn symlink_loop_is_an_error_not_an_escape() {
    let (_, res) = run(|_| {
        one(|t| {
            t.symlink("loop", "loop");
            t.file("loop/x", b"x", 0o644);
        })
    });
    match res {
        Err(ApplyError::Sys { entry, errno, .. }) => {
            assert_eq!(entry, "loop/x");
            assert_eq!(errno.0, libc::ELOOP);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn symlink_planted_by_an_earlier_layer_is_contained() {
    let (sb, res) = run(|sb| {
        let victim = sb.victim.display().to_string();
        let inner = sb.victim.strip_prefix("/").unwrap().display().to_string();
        let mut l1 = TarW::new();
        l1.dir("victim", 0o755).dir(&inner, 0o755);
        l1.symlink("lib", "../victim").symlink("abs", &victim).symlink("up", "/..");
        let mut l2 = TarW::new();
        l2.file("lib/secret", b"pwned", 0o644).file("abs/sub/file", b"pwned", 0o644).file("up/capsa-up", b"x", 0o644);
        vec![l1.finish(), l2.finish()]
    });
    res.unwrap();
    assert_eq!(fs::read(sb.root.join("victim/secret")).unwrap(), b"pwned");
    let inside = sb.root.join(sb.victim.strip_prefix("/").unwrap()).join("sub/file");
    assert_eq!(fs::read(inside).unwrap(), b"pwned");
    assert_eq!(fs::read(sb.root.join("capsa-up")).unwrap(), b"x");
}

#[test]
fn entry_replacing_a_planted_symlink_does_not_follow_it() {
    let (sb, res) = run(|sb| {
        let secret = format!("{}/secret", sb.victim.display());
        let mut l1 = TarW::new();
        l1.symlink("f", &secret).symlink("d", "../victim").symlink("n", "../victim-file");
        let mut l2 = TarW::new();
        // A regular file, a directory and a fifo over the symlinks: each
        // replaces the symlink itself.
        l2.file("f", b"new", 0o600).dir("d", 0o777);
        l2.node("n", EntryType::Fifo, 0, 0, 0o666);
        vec![l1.finish(), l2.finish()]
    });
    res.unwrap();
    let t = sb.root_tree();
    assert_eq!(t["f"].kind, "file");
    assert_eq!(t["d"].kind, "dir");
    assert_eq!(t["d"].mode, 0o777);
    assert_eq!(t["n"].kind, "fifo");
}

#[test]
fn dir_metadata_is_not_applied_through_a_later_symlink() {
    let (sb, res) = run(|_| {
        one(|t| {
            t.dir("x", 0o777);
            t.symlink("x", "../victim"); // replaces the directory
            let mut e = E::new("y", EntryType::Directory);
            e.mode = 0o700;
            e.uid = 1234;
            t.entry(e);
            t.symlink("y", "/");
        })
    });
    res.unwrap();
    let t = sb.root_tree();
    assert_eq!(t["x"].kind, "symlink");
    assert_eq!(t["y"].kind, "symlink");
    // The root itself kept its metadata (y -> / was not followed).
    assert_ne!(fs::metadata(&sb.root).unwrap().uid(), 1234);
}

#[test]
fn hardlink_to_host_passwd_is_refused() {
    let (_, res) = run(|_| {
        one(|t| {
            t.hardlink("pw", "/etc/passwd");
        })
    });
    assert_refused(res, "pw", "does not exist in the root");
}

#[test]
fn hardlink_to_absolute_name_resolves_inside_the_root() {
    let (sb, res) = run(|_| {
        one(|t| {
            t.file("etc/passwd", b"root:x:0:0::/:/bin/sh\n", 0o644);
            t.hardlink("pw", "/etc/passwd");
        })
    });
    res.unwrap();
    let m = fs::metadata(sb.root.join("pw")).unwrap();
    assert_eq!(m.nlink(), 2);
    assert_eq!(m.ino(), fs::metadata(sb.root.join("etc/passwd")).unwrap().ino());
}

#[test]
fn hardlink_with_dotdot_is_refused() {
    let (_, res) = run(|_| {
        one(|t| {
            t.hardlink("h", "../../x");
        })
    });
    assert_refused(res, "h", "escapes the root");
    let (_, res) = run(|_| {
        one(|t| {
            t.hardlink("h", "../victim-file");
        })
    });
    assert_refused(res, "h", "escapes the root");
}

#[test]
fn hardlink_through_symlinked_dir_stays_inside() {
    let (_, res) = run(|_| {
        one(|t| {
            t.symlink("e", "/etc");
            t.hardlink("pw", "e/passwd");
        })
    });
    assert_refused(res, "pw", "does not exist in the root");
    // etc -> /etc inside the root points at itself: a loop, an error.
    let (_, res) = run(|_| {
        one(|t| {
            t.symlink("etc", "/etc");
            t.hardlink("pw", "etc/passwd");
        })
    });
    match res {
        Err(ApplyError::Sys { entry, errno, .. }) => {
            assert_eq!((entry.as_str(), errno.0), ("pw", libc::ELOOP));
        }
        other => panic!("{other:?}"),
    }
    let (_, res) = run(|sb| {
        let victim = sb.victim.display().to_string();
        one(|t| {
            t.symlink("v", &victim);
            t.hardlink("s", "v/secret");
        })
    });
    assert_refused(res, "s", "does not exist in the root");
}

#[test]
fn hardlink_to_symlink_or_dir_is_refused() {
    let (_, res) = run(|_| {
        one(|t| {
            t.symlink("s", "/etc/passwd");
            t.hardlink("h", "s");
        })
    });
    assert_refused(res, "h", "not a regular file");
    let (_, res) = run(|_| {
        one(|t| {
            t.dir("d", 0o755);
            t.hardlink("h", "d");
        })
    });
    assert_refused(res, "h", "not a regular file");
    let (_, res) = run(|_| {
        one(|t| {
            t.hardlink("h", ".");
        })
    });
    assert_refused(res, "h", "root directory");
}

#[test]
fn whiteout_with_dotdot_is_refused() {
    let (_, res) = run(|_| {
        one(|t| {
            t.whiteout("../.wh.victim");
        })
    });
    assert_refused(res, "../.wh.victim", "escapes the root");
    for bad in [".wh..", ".wh...", ".wh.", "sub/.wh.."] {
        let (_, res) = run(|_| {
            one(|t| {
                t.whiteout(bad);
            })
        });
        assert_refused(res, bad, "whiteout of an empty name");
    }
}

#[test]
fn whiteout_through_symlinked_dir_deletes_only_inside() {
    // The directory the whiteout names resolves inside the root: the host
    // victim is untouched; a same-named tree inside the root is what goes.
    let (sb, res) = run(|sb| {
        let victim = sb.victim.display().to_string();
        let inner = sb.victim.strip_prefix("/").unwrap().display().to_string();
        let mut l1 = TarW::new();
        l1.symlink("rel", "../victim").symlink("abs", &victim);
        l1.file(&format!("{inner}/secret"), b"inside copy", 0o644);
        let mut l2 = TarW::new();
        l2.whiteout("rel/.wh.secret").whiteout("abs/.wh.secret").whiteout("abs/.wh.sub");
        vec![l1.finish(), l2.finish()]
    });
    res.unwrap();
    let inside = sb.root.join(sb.victim.strip_prefix("/").unwrap());
    assert!(!inside.join("secret").exists());
    assert!(inside.is_dir());
}

#[test]
fn whiteout_of_a_symlink_removes_only_the_link() {
    let (sb, res) = run(|_| {
        let mut l1 = TarW::new();
        l1.symlink("link", "../victim").symlink("flink", "../victim-file");
        let mut l2 = TarW::new();
        l2.whiteout(".wh.link").whiteout(".wh.flink");
        vec![l1.finish(), l2.finish()]
    });
    res.unwrap();
    assert!(sb.root_tree().is_empty());
}

#[test]
fn opaque_marker_through_symlinked_dir_stays_inside() {
    let (sb, res) = run(|sb| {
        let victim = sb.victim.display().to_string();
        let mut l1 = TarW::new();
        l1.symlink("d", &victim).symlink("r", "../victim").file("keep", b"k", 0o644);
        let mut l2 = TarW::new();
        l2.whiteout("d/.wh..wh..opq").whiteout("r/.wh..wh..opq");
        vec![l1.finish(), l2.finish()]
    });
    res.unwrap();
    // Both resolved to directories that do not exist in the root: no-ops.
    assert_eq!(fs::read(sb.root.join("keep")).unwrap(), b"k");

    // A symlink to "/" makes the marker apply to the root itself: still only
    // inside (it clears the lower layers' content of the root).
    let (sb, res) = run(|_| {
        let mut l1 = TarW::new();
        l1.symlink("d", "/").file("lower", b"l", 0o644);
        let mut l2 = TarW::new();
        l2.whiteout("d/.wh..wh..opq").file("upper", b"u", 0o644);
        vec![l1.finish(), l2.finish()]
    });
    res.unwrap();
    let t = sb.root_tree();
    assert_eq!(t.keys().collect::<Vec<_>>(), ["upper"]);
}

#[test]
fn entries_replacing_the_root_are_refused() {
    for (name, kind) in [
        (".", EntryType::Symlink),
        ("./", EntryType::Regular),
        ("/", EntryType::Regular),
        ("", EntryType::Fifo),
        ("a/..", EntryType::Symlink),
        (".", EntryType::Link),
    ] {
        let (sb, res) = run(|_| {
            one(|t| {
                let mut e = E::new(name, kind);
                e.link = Some(b"/");
                t.entry(e);
            })
        });
        assert_refused(res, name, "replace the root directory");
        assert!(sb.root.is_dir() && !sb.root.is_symlink());
    }
}

#[test]
fn root_dir_entry_only_updates_metadata() {
    let (sb, res) = run(|_| {
        one(|t| {
            let mut e = E::new("./", EntryType::Directory);
            e.mode = 0o750;
            e.uid = 4242;
            e.gid = 4243;
            t.entry(e);
            t.file("./f", b"x", 0o644);
        })
    });
    res.unwrap();
    let m = fs::metadata(&sb.root).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o750, 4242, 4243));
    assert_eq!(m.mtime(), common::MTIME as i64);
}

#[test]
fn device_node_and_fifo_are_created_as_such() {
    let (sb, res) = run(|_| {
        one(|t| {
            t.node("dev/null", EntryType::Char, 1, 3, 0o666);
            t.node("dev/loop9", EntryType::Block, 7, 9, 0o660);
            t.node("fifo", EntryType::Fifo, 0, 0, 0o640);
        })
    });
    res.unwrap();
    let m = fs::symlink_metadata(sb.root.join("dev/null")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!((libc::major(m.rdev()), libc::minor(m.rdev())), (1, 3));
    assert_eq!(m.mode() & 0o7777, 0o666);
    let m = fs::symlink_metadata(sb.root.join("dev/loop9")).unwrap();
    assert!(m.file_type().is_block_device());
    let m = fs::symlink_metadata(sb.root.join("fifo")).unwrap();
    assert!(m.file_type().is_fifo());
    assert_eq!(m.mode() & 0o7777, 0o640);
}

#[test]
fn overlay_xattrs_from_the_layer_are_dropped() {
    let (sb, res) = run(|_| {
        one(|t| {
            let mut e = E::new("f", EntryType::Regular);
            e.pax = vec![
                ("SCHILY.xattr.trusted.overlay.redirect", b"/etc".as_slice()),
                ("SCHILY.xattr.trusted.overlay.opaque", b"y".as_slice()),
            ];
            t.entry(e);
        })
    });
    res.unwrap();
    let mut buf = [0u8; 64];
    let p = std::ffi::CString::new(sb.root.join("f").to_str().unwrap()).unwrap();
    // SAFETY: valid C strings and buffer.
    let n = unsafe {
        libc::lgetxattr(p.as_ptr(), c"trusted.overlay.redirect".as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    };
    assert_eq!(n, -1);
}

#[test]
fn file_under_an_existing_file_is_an_error() {
    let (_, res) = run(|_| {
        one(|t| {
            t.file("f", b"x", 0o644);
            t.file("f/g", b"y", 0o644);
        })
    });
    match res {
        Err(ApplyError::Sys { entry, errno, .. }) => {
            assert_eq!(entry, "f/g");
            assert_eq!(errno.0, libc::ENOTDIR);
        }
        other => panic!("{other:?}"),
    }
}
