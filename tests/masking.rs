//! Masked and read-only paths and /dev/console: they cannot be undone from inside,
//! an image that controls /dev or /proc cannot redirect them, and they work on
//! kernels without `mount_setattr` (before 5.12, emulated with strace's syscall
//! fault injection; needs `strace`).

mod common;

use common::{Bundle, Rt};
use serde_json::json;
use std::fs;
use std::os::unix::fs::symlink;
use std::process::Command;

/// Without CAP_SYS_ADMIN (default spec) the process cannot mount, so it
/// cannot undo masked or read-only paths.
#[test]
fn cannot_unmask_without_cap_sys_admin() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh(
        "unmask",
        "umount /proc/keys 2>/dev/null && echo umounted; \
         mount -o remount,rw /proc/sys 2>/dev/null && echo remounted; \
         wc -c < /proc/keys",
    );
    let out = Rt::new().run(&b).ok().stdout;
    assert_eq!(out.trim(), "0");
}

/// A host directory that the test bundle binds as its /dev, standing for an image
/// that controls /dev (no tmpfs there): `pts/` for devpts, `ptmx -> pts/ptmx`, and
/// `null` made by `make_null`.
fn image_dev(make_null: impl FnOnce(&std::path::Path)) -> tempfile::TempDir {
    let d = common::host_dir();
    fs::create_dir(d.path().join("pts")).unwrap();
    symlink("pts/ptmx", d.path().join("ptmx")).unwrap();
    make_null(&d.path().join("null"));
    d
}

fn real_null(p: &std::path::Path) {
    common::host("mknod", &["-m", "666", p.to_str().unwrap(), "c", "1", "3"]).ok();
}

/// `b` with its /dev tmpfs replaced by a bind of `dev`, a masked file /etc/secret,
/// the default masked and read-only paths, and a terminal.
fn hostile_dev_bundle(prefix: &str, script: &str, dev: &std::path::Path) -> Bundle {
    let b = Bundle::sh(prefix, script).edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                *m = json!({"destination": "/dev", "type": "bind", "source": dev.to_str().unwrap(),
                            "options": ["rbind"]});
            }
        }
        c["linux"]["maskedPaths"].as_array_mut().unwrap().push(json!("/etc/secret"));
        c["process"]["terminal"] = json!(true);
    });
    fs::write(b.rootfs().join("etc/secret"), "top secret\n").unwrap();
    b
}

/// Runs a hostile bundle, which must fail without changing the host (runc
/// CVE-2025-31133 class: runc < 1.2.8 binds whatever /dev/null is over masked paths,
/// e.g. a writable core_pattern).
fn assert_refused(b: &Bundle, what: &str) {
    let core = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let rt = Rt::new();
    let out = rt.run(b);
    assert!(!out.success(), "hostile {what} was used: {out:?}");
    assert!(out.stderr.contains(what), "the error does not name {what}: {out:?}");
    assert_eq!(fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(), core);
    common::assert_no_leftovers(&rt, b);
}

/// An image whose /dev/null is a symlink to /proc/sys/kernel/core_pattern: masking a
/// file would bind a writable core_pattern into the container. Refused.
#[test]
fn dev_null_symlink_is_not_bound_over_masked_paths() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let dev = image_dev(|p| symlink("/proc/sys/kernel/core_pattern", p).unwrap());
    let b = hostile_dev_bundle(
        "null-link",
        "cat /etc/secret /proc/keys; grep core_pattern /proc/self/mountinfo",
        dev.path(),
    );
    assert_refused(&b, "/dev/null");
}

/// An image whose /dev/null is a regular file (readable, writable, persistent):
/// masked files would show and keep whatever it holds. Refused.
#[test]
fn dev_null_regular_file_is_refused() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let dev = image_dev(|p| fs::write(p, "not the null device\n").unwrap());
    let b = hostile_dev_bundle("null-file", "cat /etc/secret", dev.path());
    assert_refused(&b, "/dev/null");
}

/// An image whose /dev/console is a symlink to /proc/sys/kernel/core_pattern: the
/// terminal would be bound over core_pattern (runc CVE-2025-52565). Refused.
#[test]
fn dev_console_symlink_is_refused() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let dev = image_dev(real_null);
    symlink("/proc/sys/kernel/core_pattern", dev.path().join("console")).unwrap();
    let b = hostile_dev_bundle("console-link", "grep core_pattern /proc/self/mountinfo", dev.path());
    assert_refused(&b, "/dev/console");
}

/// The same image-controlled /dev with a real null device works: files are masked
/// with it, read-only paths apply and /dev/console is the terminal.
#[test]
fn image_dev_with_real_null_masks_and_binds_console() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let dev = image_dev(real_null);
    let b = hostile_dev_bundle(
        "null-real",
        "wc -c < /etc/secret; stat -c '%t' /dev/console; (echo x > /proc/sys/kernel/domainname) 2>/dev/null || echo ro",
        dev.path(),
    );
    let out = Rt::new().run(&b).ok().stdout;
    // The pty turns "\n" into "\r\n"; pty slaves have major 136 (0x88).
    assert_eq!(out.replace('\r', ""), "0\n88\nro\n");
}

/// `b` with a terminal and no /proc mount: the container's /proc is the image's
/// directory.
fn terminal_without_proc(prefix: &str) -> Bundle {
    Bundle::sh(prefix, "tty").edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["mounts"].as_array_mut().unwrap().retain(|m| m["destination"] != "/proc");
    })
}

/// /dev/console is set up after pivot_root without a path through the container's
/// /proc: a container with a terminal and no /proc mount runs. (`run` with a terminal
/// and no tty on stdin: capsa only; runc wants a tty.)
#[test]
fn terminal_without_a_proc_mount() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let b = terminal_without_proc("tty-noproc");
    assert_eq!(Rt::new().run(&b).ok().stdout, "/dev/pts/0\r\n");
}

/// An image whose /proc (not mounted over) holds `self/fd/N -> /decoy` symlinks
/// cannot send the creation of /dev/console into a directory of its choice.
#[test]
fn image_proc_cannot_redirect_the_console() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let b = terminal_without_proc("tty-fakeproc");
    let fds = b.rootfs().join("proc/self/fd");
    fs::create_dir_all(&fds).unwrap();
    fs::create_dir(b.rootfs().join("decoy")).unwrap();
    for n in 0..512 {
        symlink("/decoy", fds.join(n.to_string())).unwrap();
    }
    let out = Rt::new().run(&b);
    assert!(!b.rootfs().join("decoy/console").exists(), "/dev/console went to the image's choice: {out:?}");
    assert_eq!(out.ok().stdout, "/dev/pts/0\r\n");
}

/// `RT --root R ARGS...` under strace, every process of it with `inject` (e.g.
/// `mount_setattr:error=ENOSYS`): a kernel without that syscall. None when strace
/// is missing (an error in CI).
fn under_strace(rt: &Rt, inject: &str, args: &[&str]) -> Option<common::Output> {
    if Command::new("strace").arg("-V").output().is_err() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "strace is not installed");
        eprintln!("skipping: strace is not installed");
        return None;
    }
    let mut c = Command::new("strace");
    c.args(["-f", "-qq", "-o", "/dev/null", "-e", &format!("inject={inject}")]);
    c.arg(common::runtime()).arg("--root").arg(rt.root()).args(args);
    Some(common::run_cmd(c, common::TIMEOUT))
}

/// Per-mount options (mountinfo field 6) of the last mount at `target`.
fn mount_opts(mountinfo: &str, target: &str) -> String {
    let line = mountinfo.lines().rev().find(|l| l.split(' ').nth(4) == Some(target));
    line.unwrap_or_else(|| panic!("{target} is not a mount point:\n{mountinfo}")).split(' ').nth(5).unwrap().into()
}

/// Without mount_setattr (kernels before 5.12) read-only mounts are bind remounts,
/// as runc makes them: root.readonly, a read-only /dev, readonlyPaths of
/// directories and of files.
#[test]
fn read_only_mounts_without_mount_setattr() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::sh("ro-no-setattr", "cat /proc/self/mountinfo; touch /probe /etc/passwd 2>/dev/null || echo ro")
        .edit(|c| {
            c["root"]["readonly"] = json!(true);
            c["linux"]["readonlyPaths"].as_array_mut().unwrap().extend([json!("/etc/passwd"), json!("/bin")]);
            for m in c["mounts"].as_array_mut().unwrap() {
                if m["destination"] == "/dev" {
                    m["options"].as_array_mut().unwrap().push(json!("ro"));
                }
            }
        });
    let _guard = rt.guard(&b);
    let run = ["run", "--bundle", b.path_str(), &b.id];
    let Some(out) = under_strace(&rt, "mount_setattr:error=ENOSYS", &run) else { return };
    let out = out.ok().stdout;
    assert!(out.ends_with("ro\n"), "{out}");
    for target in ["/", "/dev", "/proc/sys", "/etc/passwd", "/bin"] {
        let opts = mount_opts(&out, target);
        assert!(opts.split(',').any(|o| o == "ro"), "{target}: {opts}");
    }
    // The flags the mounts had are kept (a bind remount must repeat them).
    assert!(mount_opts(&out, "/dev").contains("nosuid"), "{out}");
}

/// A kernel older than capsa needs (no openat2: before 5.6) is named before anything
/// is made.
#[test]
fn kernel_without_openat2_is_refused_up_front() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("no-openat2", &["true"]);
    let _guard = rt.guard(&b);
    let Some(out) = under_strace(&rt, "openat2:error=ENOSYS", &["create", "--bundle", b.path_str(), &b.id]) else {
        return;
    };
    let out = out.failed();
    assert!(out.stderr.contains("openat2") && out.stderr.contains("Linux 5.6 (capsa needs 5.8)"), "{out:?}");
    common::assert_no_leftovers(&rt, &b);
}
