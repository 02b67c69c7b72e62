//! Images end to end (root, real kernel): import from an OCI layout and both
//! `docker save` formats, run (`capsa run IMAGE CMD`), the 100th container
//! costs what the first does (overlay over shared snapshots, nothing copied),
//! unpack / bundle, whiteouts through overlay, the default seccomp profile and
//! `--security-opt`, and bad input that must leave the store as it was.
//!
//! Every test has its own store and state root in a temp dir; a guard
//! unmounts container rootfs and removes everything even when a test fails.

mod image_common;
mod syscall_helper;

use image_common::{run, sh, Out};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn capsa() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_capsa"))
}

fn root_or_skip() -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "needs root (CI=true)");
    eprintln!("skipping: needs root");
    false
}

/// A store + state root in a temp dir; unmounts and removes on drop.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env { dir: tempfile::Builder::new().prefix("capsa-image-test").tempdir().unwrap() }
    }
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    /// `capsa --root R <args...>` with `--store S` inserted after the verb(s).
    fn capsa(&self, args: &[&str]) -> Out {
        let mut c = Command::new(capsa());
        c.arg("--root").arg(self.path("state"));
        let (verb, rest) = args.split_first().unwrap();
        c.arg(verb);
        if *verb == "image" {
            c.arg("--store").arg(self.store());
            c.args(rest);
        } else {
            c.arg("--store").arg(self.store()).arg("-q");
            c.args(rest);
        }
        run(&mut c)
    }
    fn ok(&self, args: &[&str]) -> Out {
        let o = self.capsa(args);
        assert_eq!(o.code, 0, "capsa {args:?} failed: {}{}", o.stdout, o.stderr);
        o
    }
    fn count(&self, sub: &str) -> usize {
        fs::read_dir(self.store().join(sub)).map(|r| r.count()).unwrap_or(0)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(rd) = fs::read_dir(self.store().join("containers")) {
            for e in rd.flatten() {
                let p = std::ffi::CString::new(e.path().join("rootfs").as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a valid path; failure (not mounted) is fine.
                unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
            }
        }
        // Snapshot dirs may hold read-only dirs; make everything removable.
        let _ = sh(&format!("chmod -R u+rwX {} 2>/dev/null", self.dir.path().display()));
    }
}

/// Builds the busybox OCI image (rootfs-examples/make-busybox-image.sh) into `dir`.
fn busybox_image(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-examples/make-busybox-image.sh");
    let o = run(Command::new(script).arg(dir).arg("latest"));
    assert_eq!(o.code, 0, "make-busybox-image.sh: {}{}", o.stdout, o.stderr);
}

#[test]
fn oci_layout_import_and_run() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new();
    let img = env.path("bb");
    busybox_image(&img);
    let o = env.ok(&["image", "import", &format!("oci:{}:latest", img.display()), "bb:1"]);
    assert_eq!(o.stdout.trim(), "bb:1");
    assert!(env.ok(&["image", "ls"]).stdout.contains("bb:1"));
    assert_eq!(env.ok(&["run", "--rm", "bb:1", "echo", "hi"]).stdout, "hi\n");
    // Straight from the layout (imported on the way).
    assert_eq!(env.ok(&["run", "--rm", &format!("oci:{}", img.display()), "echo", "hi"]).stdout, "hi\n");
    // Again: the store holds it all, so nothing is imported (and images.json is not rewritten).
    let names = std::fs::metadata(env.store().join("images.json")).map(|m| m.modified().unwrap()).ok();
    let o = env.ok(&["run", "--rm", &format!("oci:{}", img.display()), "echo", "hi"]);
    assert!(!o.stderr.contains("importing"), "imported again: {}", o.stderr);
    let after = std::fs::metadata(env.store().join("images.json")).map(|m| m.modified().unwrap()).ok();
    assert_eq!(names, after, "images.json rewritten");
    // Exit status, env, workdir, user.
    let o = env.capsa(&["run", "--rm", "bb:1", "sh", "-c", "exit 7"]);
    assert_eq!(o.code, 7, "{}", o.stderr);
    let o = env.ok(&[
        "run",
        "--rm",
        "-e",
        "A=b",
        "-w",
        "/tmp",
        "-u",
        "1000:1000",
        "bb:1",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u)",
    ]);
    assert_eq!(o.stdout, "b /tmp 1000\n");
    let inspect: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", "bb:1"]).stdout).unwrap();
    assert_eq!(inspect["layers"][0]["unpacked"], true);
    env.ok(&["image", "rm", "bb:1"]);
    env.ok(&["image", "rm", "bb:latest"]);
    let o = env.ok(&["image", "prune"]);
    assert!(o.stdout.contains("1 snapshots"), "{}", o.stdout);
    assert_eq!(env.count("blobs/sha256"), 0);
    assert_eq!(env.count("snapshots"), 0);
}

#[test]
fn docker_archives_both_formats() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new();
    let img = env.path("bb");
    busybox_image(&img);
    // Classic (Docker < 25): skopeo writes manifest.json + <hex>.tar layers.
    let classic = env.path("classic.tar");
    let o = sh(&format!("skopeo copy -q oci:{}:latest docker-archive:{}:bb:classic", img.display(), classic.display()));
    assert_eq!(o.code, 0, "skopeo: {}", o.stderr);
    // Docker 25+: an OCI layout plus a manifest.json pointing into blobs/.
    let d25 = env.path("d25");
    let o = sh(&format!(
        r#"set -e; cp -a {img} {d25}; cd {d25}
        m=$(jq -r '.manifests[0].digest' index.json | cut -d: -f2)
        jq --arg n docker.io/library/bb:d25 '.manifests[0].annotations["io.containerd.image.name"]=$n' index.json > i && mv i index.json
        jq -c '[{{Config: ("blobs/sha256/" + (.config.digest|ltrimstr("sha256:"))), RepoTags: ["bb:d25"],
               Layers: [.layers[].digest | "blobs/sha256/" + ltrimstr("sha256:")]}}]' blobs/sha256/$m > manifest.json
        tar -cf ../d25.tar ."#,
        img = img.display(),
        d25 = d25.display()
    ));
    assert_eq!(o.code, 0, "build docker 25 archive: {}", o.stderr);
    for (r, short) in [
        (format!("docker-archive:{}", classic.display()), "bb:classic"),
        (format!("docker-archive:{}", env.path("d25.tar").display()), "bb:d25"),
    ] {
        // Named after the archive's RepoTags (skopeo and Docker write full names).
        let o = env.ok(&["image", "import", &r]);
        assert_eq!(o.stdout.trim(), format!("docker.io/library/{short}"), "{}", o.stderr);
        assert_eq!(env.ok(&["run", "--rm", short, "echo", "hi"]).stdout, "hi\n");
    }
    // One diff_id, one snapshot: both archives share the layer.
    assert_eq!(env.count("snapshots"), 1);
}

#[test]
fn hundredth_container_costs_the_same() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new();
    let img = env.path("bb");
    busybox_image(&img);
    env.ok(&["image", "import", &format!("oci:{}", img.display()), "bb"]);
    let check = "grep ' / / ' /proc/self/mountinfo | grep -q ' - overlay ' && echo overlay";
    let mut times = Vec::new();
    let snapshot_bytes = |env: &Env| sh(&format!("du -sb {}", env.store().join("snapshots").display())).stdout;
    let mut du_first = String::new();
    for i in 0..100 {
        let t = Instant::now();
        let o = env.ok(&["run", "--rm", "bb", "sh", "-c", check]);
        times.push(t.elapsed());
        assert_eq!(o.stdout, "overlay\n", "container {i}: rootfs is not an overlay mount");
        assert_eq!(env.count("snapshots"), 1, "container {i}: snapshot count changed");
        assert_eq!(env.count("containers"), 0, "container {i}: --rm left its directory");
        if i == 0 {
            du_first = snapshot_bytes(&env);
        }
    }
    assert_eq!(snapshot_bytes(&env), du_first, "snapshots grew");
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    let (early, late) = (median(&times[1..11]), median(&times[90..100]));
    eprintln!("first (unpack) {:?}, runs 2-11 median {early:?}, runs 91-100 median {late:?}", times[0]);
    assert!(late < early * 2 + Duration::from_millis(50), "containers got slower: {early:?} -> {late:?}");
}

#[test]
fn unpack_bundle_and_whiteouts() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new();
    let img = env.path("bb");
    busybox_image(&img);
    // A multi-layer image with whiteouts (umoci, as the registry harness does).
    let ml = env.path("ml");
    let o = sh(&format!(
        r#"set -e; cp -a {img} {ml}; cd {ml}/..
        umoci unpack --image ml:latest b >/dev/null
        mkdir -p b/rootfs/opt/app b/rootfs/var/lib/opaque
        echo layer2 > b/rootfs/opt/app/hello.txt; echo gone > b/rootfs/etc/deleted-me; echo old > b/rootfs/var/lib/opaque/old.txt
        umoci repack --image ml:latest b >/dev/null; rm -rf b
        umoci unpack --image ml:latest b >/dev/null
        rm b/rootfs/etc/deleted-me; rm -rf b/rootfs/var/lib/opaque; mkdir b/rootfs/var/lib/opaque; echo new > b/rootfs/var/lib/opaque/new.txt
        umoci repack --image ml:latest b >/dev/null; rm -rf b"#,
        img = img.display(),
        ml = ml.display()
    ));
    assert_eq!(o.code, 0, "umoci: {}{}", o.stdout, o.stderr);
    let r = format!("oci:{}:latest", ml.display());
    let o = env.ok(&[
        "run",
        "--rm",
        &r,
        "sh",
        "-c",
        "cat /opt/app/hello.txt; ls /var/lib/opaque; test -e /etc/deleted-me && echo still-there; true",
    ]);
    assert_eq!(o.stdout, "layer2\nnew.txt\n");
    assert_eq!(env.count("snapshots"), 3);
    // Flattened unpack agrees, and matches umoci's.
    let dest = env.path("flat");
    env.ok(&["image", "unpack", &r, dest.to_str().unwrap()]);
    assert!(!dest.join("etc/deleted-me").exists());
    assert!(!dest.join("var/lib/opaque/old.txt").exists());
    assert_eq!(fs::read_to_string(dest.join("var/lib/opaque/new.txt")).unwrap(), "new\n");
    let o = sh(&format!(
        "cd {p} && umoci raw unpack --image ml:latest umoci-flat >/dev/null && diff -r --no-dereference umoci-flat {flat}",
        p = env.path("").display(),
        flat = dest.display()
    ));
    assert_eq!(o.code, 0, "trees differ from umoci raw unpack: {}{}", o.stdout, o.stderr);
    // A bundle runs in runc mode.
    let b = env.path("bundle");
    env.ok(&["image", "bundle", &r, b.to_str().unwrap(), "cat", "/opt/app/hello.txt"]);
    let cfg: serde_json::Value = serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["args"], serde_json::json!(["cat", "/opt/app/hello.txt"]));
    assert_eq!(cfg["linux"]["cgroupsPath"], "/capsa/bundle");
    let id = format!("imgbundle-{}", std::process::id());
    let o = run(Command::new(capsa()).arg("--root").arg(env.path("state")).args(["run", "--bundle"]).arg(&b).arg(&id));
    assert_eq!((o.code, o.stdout.as_str()), (0, "layer2\n"), "{}", o.stderr);
}

#[test]
fn bad_input_leaves_the_store_untouched() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new();
    let img = env.path("bb");
    busybox_image(&img);
    let empty = |env: &Env, what: &str| {
        assert_eq!(env.count("blobs/sha256"), 0, "{what}: blobs left behind");
        assert_eq!(env.count("snapshots"), 0, "{what}: snapshots left behind");
        assert_eq!(env.count("containers"), 0, "{what}: containers left behind");
        assert_eq!(env.ok(&["image", "ls", "-q"]).stdout, "", "{what}: an image was named");
    };
    // Unknown tag, unknown local name, unknown transport.
    let o = env.capsa(&["image", "import", &format!("oci:{}:nope", img.display())]);
    assert!(o.code != 0 && o.stderr.contains("\"nope\" not found"), "{}", o.stderr);
    let o = env.capsa(&["run", "--rm", "no-such-image", "true"]);
    assert!(o.code != 0 && o.stderr.contains("not found in the local store"), "{}", o.stderr);
    let o = env.capsa(&["image", "import", "dir:/tmp"]);
    assert!(o.code != 0 && o.stderr.contains("unknown transport"), "{}", o.stderr);
    empty(&env, "unknown names");

    // Files that are not tar archives: said in words, no raw bytes on the terminal.
    let elf = env.path("not-a-tar.bin");
    fs::copy("/bin/busybox", &elf).unwrap();
    let text = env.path("notes.txt");
    fs::write(&text, "just some notes\n").unwrap();
    for (f, what) in [(&elf, "starts with an ELF executable header"), (&text, "starts with text \"just some notes\"")] {
        let r = format!("docker-archive:{}", f.display());
        let o = env.capsa(&["image", "import", "-q", &r]);
        assert_ne!(o.code, 0);
        assert_eq!(o.stderr, format!("capsa: {r}: not a tar archive (the file {what})\n"));
    }
    empty(&env, "not a tar");

    let layer = |dir: &Path| -> PathBuf {
        let m = fs::read_to_string(dir.join("index.json")).unwrap();
        let m: serde_json::Value = serde_json::from_str(&m).unwrap();
        let md = m["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned();
        let man: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(md)).unwrap()).unwrap();
        dir.join("blobs/sha256").join(man["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:"))
    };
    // Digest mismatch: one byte of the layer changed.
    let bad = env.path("bad-digest");
    sh(&format!("cp -a {} {}", img.display(), bad.display()));
    let l = layer(&bad);
    let mut data = fs::read(&l).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::set_permissions(&l, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&l, &data).unwrap();
    let o = env.capsa(&["image", "import", &format!("oci:{}", bad.display())]);
    assert!(o.code != 0 && o.stderr.contains("digest mismatch"), "{}", o.stderr);
    empty(&env, "digest mismatch");

    // Truncated layer blob: size mismatch.
    let bad = env.path("bad-size");
    sh(&format!("cp -a {} {}", img.display(), bad.display()));
    let l = layer(&bad);
    let data = fs::read(&l).unwrap();
    fs::write(&l, &data[..data.len() / 2]).unwrap();
    let o = env.capsa(&["image", "import", &format!("oci:{}", bad.display())]);
    assert!(o.code != 0 && o.stderr.contains("size mismatch"), "{}", o.stderr);
    empty(&env, "truncated blob");

    // A truncated gzip layer with matching descriptors: imports (the blob is
    // what the manifest says) but cannot be unpacked: no snapshot, no container.
    let bad = env.path("bad-gzip");
    let o = sh(&format!(
        r#"set -e; cp -a {img} {bad}; cd {bad}/blobs/sha256
        m=$(jq -r '.manifests[0].digest' ../../index.json | cut -d: -f2)
        l=$(jq -r '.layers[0].digest' $m | cut -d: -f2)
        head -c 100000 $l > t; nl=$(sha256sum t | cut -d' ' -f1); mv t $nl; rm -f $l
        jq -c --arg d sha256:$nl --argjson s 100000 '.layers[0].digest=$d | .layers[0].size=$s' $m > t
        nm=$(sha256sum t | cut -d' ' -f1); ns=$(stat -c %s t); mv t $nm; rm -f $m
        jq -c --arg d sha256:$nm --argjson s $ns '.manifests[0].digest=$d | .manifests[0].size=$s' ../../index.json > ../../i
        mv ../../i ../../index.json"#,
        img = img.display(),
        bad = bad.display()
    ));
    assert_eq!(o.code, 0, "build truncated gzip image: {}", o.stderr);
    let o = env.capsa(&["run", "--rm", "--name", "trunc", &format!("oci:{}", bad.display()), "true"]);
    assert!(o.code != 0 && o.stderr.contains("unpack layer"), "{}", o.stderr);
    assert_eq!(env.count("snapshots"), 0, "a half snapshot was left");
    assert_eq!(env.count("containers"), 0, "the container directory was left");
}

/// Image-mode containers run under the RuntimeDefault seccomp profile: ordinary
/// commands work; keyctl, add_key, unshare and mount (no CAP_SYS_ADMIN) get EPERM
/// from the filter, clone3 ENOSYS (glibc falls back to clone);
/// `--security-opt seccomp=unconfined` lifts it; `seccomp=FILE` applies that
/// file (OCI or docker format, podman's own profile included); a bad FILE is a
/// clear error before anything is made. `image bundle` writes the same profile.
#[test]
fn default_seccomp_profile_and_security_opt() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new();
    let img = env.path("bb");
    busybox_image(&img);
    env.ok(&["image", "import", &format!("oci:{}", img.display()), "bb"]);
    let helper = format!("{}:/h:ro", syscall_helper::dir().display());
    // getpid; keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING); add_key(NULL...);
    // unshare(CLONE_NEWUSER); mount(NULL...); clone3(NULL, 0).
    let calls = ["39", "250,0,-3", "248", "272,0x10000000", "165", "435"];
    let run_helper = |opts: &[&str]| {
        let mut args = vec!["run", "--rm", "-v", &helper];
        args.extend_from_slice(opts);
        args.extend(["bb", "/h/syscall"]);
        args.extend(calls);
        env.ok(&args).stdout
    };
    let (eperm, enosys, efault, einval) =
        (Some(libc::EPERM), Some(libc::ENOSYS), Some(libc::EFAULT), Some(libc::EINVAL));

    let out = run_helper(&[]);
    let r = |c| syscall_helper::result_of(&out, c);
    assert_eq!(
        [r("39"), r("250,0,-3"), r("248"), r("272,0x10000000"), r("165"), r("435")],
        [None, eperm, eperm, eperm, eperm, enosys],
        "{out}"
    );
    let o = env.ok(&[
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        "grep ^Seccomp: /proc/self/status; ls / | grep -cx bin; date -u +%Y",
    ]);
    assert!(o.stdout.starts_with("Seccomp:\t2\n1\n20"), "{}", o.stdout);

    // Unconfined: the same calls reach the kernel (which reads the NULL pointers of
    // add_key and mount: EFAULT; the user namespace needs no capability).
    let out = run_helper(&["--security-opt", "seccomp=unconfined"]);
    let r = |c| syscall_helper::result_of(&out, c);
    assert_eq!(
        [r("39"), r("250,0,-3"), r("248"), r("272,0x10000000"), r("165"), r("435")],
        [None, None, efault, None, efault, einval],
        "{out}"
    );

    // A profile file: OCI form (errno 13 for getpid), then docker's format (podman's
    // own profile allows keyctl).
    let f = env.path("deny-getpid.json");
    fs::write(
        &f,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let out = run_helper(&["--security-opt", &format!("seccomp={}", f.display())]);
    let r = |c| syscall_helper::result_of(&out, c);
    assert_eq!([r("39"), r("250,0,-3")], [Some(libc::EACCES), None], "{out}");
    let podman = Path::new("/usr/share/containers/seccomp.json");
    if podman.exists() {
        let out = run_helper(&["--security-opt", &format!("seccomp={}", podman.display())]);
        let r = |c| syscall_helper::result_of(&out, c);
        assert_eq!([r("39"), r("250,0,-3")], [None, None], "{out}");
    }

    // Bad files: clear errors, nothing made.
    fs::write(env.path("not.json"), "{oops").unwrap();
    fs::write(
        env.path("bad-action.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_EXPLODE"}]}"#,
    )
    .unwrap();
    let cases = [
        (format!("seccomp={}", env.path("not.json").display()), "not a JSON seccomp profile"),
        (format!("seccomp={}", env.path("bad-action.json").display()), "unknown action \"SCMP_ACT_EXPLODE\""),
        (format!("seccomp={}", env.path("missing.json").display()), "No such file or directory"),
        ("apparmor=unconfined".to_string(), "expected seccomp=unconfined, seccomp=FILE or no-new-privileges"),
    ];
    for (opt, want) in cases {
        for detach in [false, true] {
            let mut args = vec!["run", "--rm", "--security-opt", &opt, "bb", "true"];
            if detach {
                args[1] = "-d";
            }
            let o = env.capsa(&args);
            assert!(o.code != 0 && o.stderr.contains(want), "{opt}: {}", o.stderr);
            assert_eq!(env.count("containers"), 0, "{opt}: a container was made");
            let ids = run(Command::new(capsa()).arg("--root").arg(env.path("state")).args(["list", "-q"]));
            assert_eq!((ids.code, ids.stdout.as_str()), (0, ""), "{opt}: runtime state left");
        }
    }

    // image bundle writes the same profile; --security-opt applies there too.
    let b = env.path("bundle");
    env.ok(&["image", "bundle", "bb", b.to_str().unwrap()]);
    let cfg: serde_json::Value = serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    assert!(cfg["linux"]["seccomp"]["syscalls"][0]["names"].as_array().unwrap().len() > 300);
    let bad = format!("seccomp={}", env.path("not.json").display());
    let o = env.capsa(&["image", "bundle", "--security-opt", &bad, "bb", env.path("bundle-bad").to_str().unwrap()]);
    assert!(o.code != 0 && o.stderr.contains("not a JSON seccomp profile"), "{}", o.stderr);
    assert!(!env.path("bundle-bad").exists(), "a bad option must not leave an unpacked bundle");
    let b2 = env.path("bundle2");
    env.ok(&["image", "bundle", "--security-opt", "seccomp=unconfined", "bb", b2.to_str().unwrap()]);
    let cfg: serde_json::Value = serde_json::from_slice(&fs::read(b2.join("config.json")).unwrap()).unwrap();
    assert!(cfg["linux"].get("seccomp").is_none(), "{:#}", cfg["linux"]);
}
