//! Files on disk as another local user sees them (root, real kernel): nothing under the
//! image store (blobs, snapshots with the images' setuid files, containers, pods) nor
//! the runtime's state can be listed, read or run by user `nobody`; a store made by an
//! older capsa (0755 directories) is narrowed when it is next opened.

mod pod_common;

use pod_common::{root_or_skip, Env};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const NOBODY: u32 = 65534;

/// What user `nobody` (uid and gid 65534, no supplementary groups) managed to do:
/// `listed DIR`, `read FILE`, `ran PROGRAM` lines (`run` are tried with the arg `true`).
/// A path `nobody` cannot even stat is neither a directory nor readable: no line.
fn as_nobody(look: &[PathBuf], run: &[PathBuf]) -> Vec<String> {
    let script = r#"
        [ "$(id -u):$(id -g):$(id -G)" = "65534:65534:65534" ] || { echo "not nobody: $(id)"; exit 1; }
        while [ "$1" != -- ]; do
            if [ -d "$1" ]; then
                ls "$1" >/dev/null 2>&1 && echo "listed $1"
            else
                cat "$1" >/dev/null 2>&1 && echo "read $1"
            fi
            shift
        done
        shift
        for p in "$@"; do "$p" true >/dev/null 2>&1 && echo "ran $p"; done
        exit 0"#;
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(script).arg("sh").args(look).arg("--").args(run);
    // std drops the supplementary groups (setgroups(0)) before setuid when run as root.
    c.uid(NOBODY).gid(NOBODY);
    let o = pod_common::run(&mut c);
    assert_eq!(o.code, 0, "as nobody: {}{}", o.stdout, o.stderr);
    o.stdout.lines().map(str::to_owned).collect()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn one_entry(dir: &Path) -> PathBuf {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap_or_else(|| panic!("{} is empty", dir.display()))
}

#[test]
fn nothing_in_the_store_or_the_state_is_open_to_other_users() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(false);
    // The test's own directory is open to all: only the store's and the state's own
    // modes may keep `nobody` out.
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    env.with_busybox();
    env.ok(&["run", "-d", "--name", "web", "-e", "SECRET=hunter2", "busybox", "sleep", "300"]);
    env.ok(&["pod", "create", "--network", "none", "p1"]);
    env.wait_state("web", "running", std::time::Duration::from_secs(10));

    let s = env.store();
    let snapshot = one_entry(&s.join("snapshots"));
    let c = s.join("containers/web");
    let state = env.root();
    let look: Vec<PathBuf> = vec![
        s.clone(),
        s.join("images.json"),
        s.join("blobs"),
        s.join("blobs/sha256"),
        one_entry(&s.join("blobs/sha256")),
        s.join("snapshots"),
        snapshot.clone(),
        snapshot.join("bin"),
        s.join("containers"),
        c.clone(),
        c.join("config.json"),
        c.join("capsa.json"),
        c.join("rootfs"),
        c.join("rootfs/bin"),
        c.join("shim"),
        c.join("shim/shim.json"),
        c.join("shim/container.log"),
        s.join("pods"),
        s.join("pods/p1"),
        s.join("pods/p1/pod.json"),
        state.clone(),
        state.join("web"),
        state.join("web/state.json"),
    ];
    for p in &look {
        assert!(fs::symlink_metadata(p).is_ok(), "{} does not exist: the test looks at the wrong place", p.display());
    }
    let run = vec![snapshot.join("bin/busybox"), c.join("rootfs/bin/busybox")];
    // Control: nobody can reach the test's directory (so a refusal below is the store's).
    let mut all = vec![env.dir.path().to_path_buf()];
    all.extend(look.iter().cloned());
    let got = as_nobody(&all, &run);
    assert_eq!(got, [format!("listed {}", env.dir.path().display())], "nobody got into the store or the state");
    for d in
        [&s, &s.join("blobs"), &s.join("blobs/sha256"), &s.join("snapshots"), &s.join("containers"), &s.join("pods")]
    {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }

    // state.json is private by its own mode (runc's 0600), whatever the caller made
    // of the --root directory: it holds the process environment.
    assert_eq!(mode(&state.join("web/state.json")), 0o600);
    fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
    let got = as_nobody(&[state.clone(), state.join("web/state.json")], &[]);
    assert_eq!(got, [format!("listed {}", state.display())], "state.json is readable by others");
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();

    // A store an older capsa made (0755 everywhere) is narrowed on the next open.
    for d in
        [&s, &s.join("blobs"), &s.join("blobs/sha256"), &s.join("snapshots"), &s.join("containers"), &s.join("pods")]
    {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert!(!as_nobody(&[s.join("snapshots")], &[]).is_empty(), "the old store should be open");
    env.ok(&["image", "ls"]);
    let got = as_nobody(&look[..20], &run);
    assert!(got.is_empty(), "still open after migration: {got:?}");
    for d in
        [&s, &s.join("blobs"), &s.join("blobs/sha256"), &s.join("snapshots"), &s.join("containers"), &s.join("pods")]
    {
        assert_eq!(mode(d), 0o700, "{} not narrowed", d.display());
    }
    env.ok(&["rm", "-f", "web"]);
    env.ok(&["pod", "rm", "-f", "p1"]);
}
