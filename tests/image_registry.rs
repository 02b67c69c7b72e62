//! Pulling from a real registry (root): Debian's docker-registry on
//! 127.0.0.1, started by the shared harness (`../shared/harness/registry/
//! start.sh`), with skopeo pushes of an OCI and a Docker schema 2 busybox and
//! a three-layer image with whiteouts. capsa pulls each (plain http: loopback)
//! and runs it; a missing repository or tag and an unreachable registry give
//! clear errors and leave the store empty. The registry is stopped and every
//! directory removed even when a test fails.

mod image_common;

use image_common::{run, Out};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/harness/registry")
}

/// The registry and a store; stops and cleans up on drop.
struct Registry {
    dir: tempfile::TempDir,
    addr: String,
}

impl Registry {
    fn start() -> Option<Registry> {
        let ci = std::env::var("CI").as_deref() == Ok("true");
        // SAFETY: geteuid cannot fail.
        let missing = if unsafe { libc::geteuid() } != 0 {
            Some("root")
        } else if !harness().join("start.sh").exists() {
            Some("the shared registry harness")
        } else if run(
            Command::new("sh").args(["-c", "command -v docker-registry && command -v skopeo && command -v umoci"])
        )
        .code
            != 0
        {
            Some("docker-registry, skopeo and umoci (apt-get install docker-registry skopeo umoci)")
        } else {
            None
        };
        if let Some(m) = missing {
            assert!(!ci, "needs {m} (CI=true)");
            eprintln!("skipping: needs {m}");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("capsa-registry-test").tempdir().unwrap();
        let mut reg = Registry { dir, addr: String::new() };
        let o = run(Command::new(harness().join("start.sh"))
            .arg(reg.dir.path().join("reg"))
            .env("HARNESS_IMG_DIR", reg.dir.path().join("img")));
        assert_eq!(o.code, 0, "start.sh: {}{}", o.stdout, o.stderr);
        reg.addr = o.stdout.lines().last().unwrap().trim().to_owned();
        Some(reg)
    }

    fn capsa(&self, verb: &[&str], args: &[&str]) -> Out {
        let mut c = Command::new(env!("CARGO_BIN_EXE_capsa"));
        c.arg("--root").arg(self.dir.path().join("state")).args(verb);
        c.arg("--store").arg(self.dir.path().join("store")).args(args);
        run(&mut c)
    }

    fn count(&self, sub: &str) -> usize {
        fs::read_dir(self.dir.path().join("store").join(sub)).map(|r| r.count()).unwrap_or(0)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = run(Command::new(harness().join("stop.sh")).arg(self.dir.path().join("reg")));
        if let Ok(rd) = fs::read_dir(self.dir.path().join("store/containers")) {
            for e in rd.flatten() {
                let p = std::ffi::CString::new(e.path().join("rootfs").as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a valid path; failure (not mounted) is fine.
                unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

#[test]
fn pull_oci_schema2_multilayer_and_run() {
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    for tag in ["busybox:latest", "busybox:v2s2", "multilayer:latest"] {
        let o = reg.capsa(&["image", "pull"], &[&format!("docker://{a}/{tag}")]);
        assert_eq!(o.code, 0, "pull {tag}: {}", o.stderr);
        assert_eq!(o.stdout.trim(), format!("{a}/{tag}"));
        if tag == "busybox:latest" {
            // Unpacked while it downloaded: the snapshot is there before any run.
            assert!(o.stderr.contains("unpacked 1 layer(s) while downloading"), "{}", o.stderr);
            assert_eq!(reg.count("snapshots"), 1);
        }
        let o = reg.capsa(&["run"], &["--rm", "-q", &format!("{a}/{tag}"), "echo", "hi"]);
        assert_eq!((o.code, o.stdout.as_str()), (0, "hi\n"), "run {tag}: {}", o.stderr);
    }
    // Both busybox manifests share the layer; multilayer adds two.
    assert_eq!(reg.count("snapshots"), 3);
    // The image's own Cmd and its whiteouts.
    let o = reg.capsa(&["run"], &["--rm", "-q", &format!("{a}/multilayer")]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "layer2\n"), "{}", o.stderr);
    let o = reg.capsa(
        &["run"],
        &["--rm", "-q", &format!("docker://{a}/multilayer"), "sh", "-c", "ls /var/lib/opaque; ls /etc/deleted-me 2>&1"],
    );
    assert!(o.stdout.starts_with("new.txt\n") && o.stdout.contains("No such file"), "{}{}", o.stdout, o.stderr);
    // By digest.
    let ls = reg.capsa(&["image", "ls"], &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
    let d = v[0]["digest"].as_str().unwrap().to_owned();
    let o = reg.capsa(&["image", "pull"], &[&format!("docker://{a}/busybox@{d}")]);
    assert_eq!(o.code, 0, "pull by digest: {}", o.stderr);
}

#[test]
fn registry_errors_leave_the_store_empty() {
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    for (r, want) in [
        (format!("docker://{a}/nope:latest"), "404"),
        (format!("docker://{a}/busybox:nope"), "manifest unknown"),
        (format!("docker://{a}/busybox@sha256:{}", "0".repeat(64)), "404"),
        ("docker://127.0.0.1:1/busybox".to_owned(), "Connection refused"),
    ] {
        let o = reg.capsa(&["image", "pull"], &[&r]);
        assert!(o.code != 0 && o.stderr.contains(want), "{r}: {}", o.stderr);
    }
    assert_eq!(reg.count("blobs/sha256"), 0);
    assert_eq!(reg.capsa(&["image", "ls"], &["-q"]).stdout, "");
}

/// A tiny in-test registry (HTTP/1.1 on 127.0.0.1, one thread per
/// connection, `Connection: close`) serving one image `x:latest`: it can cut
/// the first layer download after half the bytes, honour or ignore `Range`,
/// and require Bearer-token auth (token endpoint behind basic auth).
mod fake {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use capsa_image::digest::Digest;

    pub const FILE: &str = "hello.txt";

    pub struct Opts {
        pub cut_first_layer: bool,
        pub honour_range: bool,
        pub auth: bool,
        /// Serve the layer gzipped, with its header's mtime changed: the same tar
        /// inside (the diff_id holds) but not the blob the manifest names.
        pub tamper_gzip: bool,
    }

    struct State {
        opts: Opts,
        port: u16,
        manifest: Vec<u8>,
        blobs: Vec<(Digest, Vec<u8>, bool)>,
        cut_done: AtomicBool,
        log: Mutex<Vec<String>>,
    }

    pub struct Fake {
        pub addr: String,
        pub content: Vec<u8>,
        state: Arc<State>,
    }

    impl Fake {
        pub fn start(opts: Opts) -> Fake {
            // The layer: an uncompressed tar of one 256 kB file (diff_id = digest).
            let dir = tempfile::tempdir().unwrap();
            let content: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(dir.path().join(FILE), &content).unwrap();
            let tar = dir.path().join("layer.tar");
            let st = std::process::Command::new("tar")
                .arg("-cf")
                .arg(&tar)
                .arg("-C")
                .arg(dir.path())
                .arg(FILE)
                .status()
                .unwrap();
            assert!(st.success());
            let mut layer = std::fs::read(&tar).unwrap();
            let diff_id = Digest::sha256_of(&layer);
            let mut media_type = "application/vnd.oci.image.layer.v1.tar";
            if opts.tamper_gzip {
                let gz = std::process::Command::new("gzip").args(["-n", "-c"]).arg(&tar).output().unwrap();
                assert!(gz.status.success());
                layer = gz.stdout;
                media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
            }
            let ld = Digest::sha256_of(&layer);
            if opts.tamper_gzip {
                layer[4] ^= 1;
            }
            let arch = capsa_image::oci::Platform::host().architecture;
            let config = serde_json::to_vec(&serde_json::json!({
                "architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/true"]},
                "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]}
            }))
            .unwrap();
            let cd = Digest::sha256_of(&config);
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cd.to_string(), "size": config.len()},
                "layers": [{"mediaType": media_type, "digest": ld.to_string(), "size": layer.len()}]
            }))
            .unwrap();
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let state = Arc::new(State {
                opts,
                port,
                manifest,
                blobs: vec![(cd, config, false), (ld, layer, true)],
                cut_done: AtomicBool::new(false),
                log: Mutex::new(Vec::new()),
            });
            let s = state.clone();
            std::thread::spawn(move || {
                for c in l.incoming().flatten() {
                    let s = s.clone();
                    std::thread::spawn(move || serve(&s, c));
                }
            });
            Fake { addr: format!("127.0.0.1:{port}"), content, state }
        }

        /// One line per request: `PATH range=... auth=...`.
        pub fn log(&self) -> Vec<String> {
            self.state.log.lock().unwrap().clone()
        }

        pub fn layer_size(&self) -> usize {
            self.state.blobs[1].1.len()
        }
    }

    fn respond(c: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
        let mut h = format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str("\r\n");
        let _ = c.write_all(h.as_bytes());
        let _ = c.write_all(body);
    }

    fn serve(s: &State, mut c: TcpStream) {
        let mut rd = BufReader::new(c.try_clone().unwrap());
        let mut line = String::new();
        if rd.read_line(&mut line).is_err() {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let (mut range, mut authz) = (None, None);
        loop {
            let mut h = String::new();
            if rd.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((&h, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(v.trim().to_owned()),
                "authorization" => authz = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        s.log.lock().unwrap().push(format!("{path} range={range:?} auth={authz:?}"));
        if path.starts_with("/token") {
            // base64("user:pass")
            if authz.as_deref() == Some("Basic dXNlcjpwYXNz") {
                respond(&mut c, "200 OK", &[("Content-Type", "application/json".into())], br#"{"token":"t"}"#);
            } else {
                respond(&mut c, "401 Unauthorized", &[], b"bad credentials");
            }
            return;
        }
        if s.opts.auth && authz.as_deref() != Some("Bearer t") {
            let ch =
                format!(r#"Bearer realm="http://127.0.0.1:{}/token",service="test",scope="repository:x:pull""#, s.port);
            let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
            respond(&mut c, "401 Unauthorized", &[("WWW-Authenticate", ch)], body);
            return;
        }
        if path == "/v2/x/manifests/latest" {
            let ct = ("Content-Type", "application/vnd.oci.image.manifest.v1+json".to_owned());
            respond(&mut c, "200 OK", &[ct], &s.manifest);
            return;
        }
        let Some((_, blob, is_layer)) =
            s.blobs.iter().find(|(d, _, _)| path.strip_prefix("/v2/x/blobs/") == Some(&d.to_string()))
        else {
            respond(&mut c, "404 Not Found", &[], br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}"#);
            return;
        };
        if *is_layer && s.opts.cut_first_layer && !s.cut_done.swap(true, Ordering::SeqCst) {
            // Announce the whole blob, send half, hang up.
            let h = format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", blob.len());
            let _ = c.write_all(h.as_bytes());
            let _ = c.write_all(&blob[..blob.len() / 2]);
            let _ = c.flush();
            let _ = c.shutdown(std::net::Shutdown::Both);
            return;
        }
        let from = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|r| r.parse::<usize>().ok());
        match from {
            Some(n) if s.opts.honour_range && n < blob.len() => {
                let cr = ("Content-Range", format!("bytes {n}-{}/{}", blob.len() - 1, blob.len()));
                respond(&mut c, "206 Partial Content", &[cr], &blob[n..]);
            }
            _ => respond(&mut c, "200 OK", &[], blob),
        }
    }
}

/// A store and state dir for the fake registry's tests.
struct Local(tempfile::TempDir);

impl Local {
    fn new() -> Local {
        Local(tempfile::Builder::new().prefix("capsa-fake-registry").tempdir().unwrap())
    }

    fn capsa(&self, verb: &[&str], args: &[&str]) -> Out {
        let mut c = Command::new(env!("CARGO_BIN_EXE_capsa"));
        c.arg("--root").arg(self.0.path().join("state")).args(verb);
        c.arg("--store").arg(self.0.path().join("store")).args(args);
        run(&mut c)
    }

    /// Every blob hashes to its name; returns how many there are.
    fn verify_blobs(&self) -> usize {
        let Ok(rd) = fs::read_dir(self.0.path().join("store/blobs/sha256")) else { return 0 };
        let mut n = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with('.'), "left-over temp file {name}");
            let d = capsa_image::digest::Digest::sha256_of(&fs::read(e.path()).unwrap());
            assert_eq!(d.hex(), name, "blob {name} does not verify");
            n += 1;
        }
        n
    }

    /// Unpacks the pulled image (diff_ids checked) and compares the file.
    /// The pull unpacked the one layer into its snapshot as it downloaded (across
    /// broken connections too), leaving no temp directory.
    fn snapshot_matches(&self, want: &[u8]) {
        let snaps: Vec<_> =
            fs::read_dir(self.0.path().join("store/snapshots")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(snaps.len(), 1, "snapshots after the pull: {snaps:?}");
        assert!(fs::read(snaps[0].join(fake::FILE)).unwrap() == want, "snapshot file differs");
    }

    fn unpack_matches(&self, addr: &str, want: &[u8]) {
        let dest = self.0.path().join("rootfs");
        let o = self.capsa(&["image", "unpack"], &["-q", &format!("{addr}/x:latest"), dest.to_str().unwrap()]);
        assert_eq!(o.code, 0, "unpack: {}", o.stderr);
        assert!(fs::read(dest.join(fake::FILE)).unwrap() == want, "unpacked file differs");
    }
}

#[test]
fn pull_resumes_a_broken_layer_download_with_range() {
    let f =
        fake::Fake::start(fake::Opts { cut_first_layer: true, honour_range: true, auth: false, tamper_gzip: false });
    let l = Local::new();
    let o = l.capsa(&["image", "pull"], &[&format!("docker://{}/x:latest", f.addr)]);
    assert_eq!(o.code, 0, "pull: {}\nlog: {:#?}", o.stderr, f.log());
    let want = format!("range=Some(\"bytes={}-\")", f.layer_size() / 2);
    assert!(f.log().iter().any(|r| r.contains(&want)), "no resume request: {:#?}", f.log());
    assert_eq!(l.verify_blobs(), 3);
    l.snapshot_matches(&f.content);
    l.unpack_matches(&f.addr, &f.content);
}

#[test]
fn a_tampered_layer_leaves_neither_blob_nor_snapshot() {
    // The tar inside is the right one, so it unpacks (while downloading) and its
    // diff_id verifies; the blob's digest does not: the pull fails and the
    // snapshot made meanwhile goes with it.
    let f =
        fake::Fake::start(fake::Opts { cut_first_layer: false, honour_range: true, auth: false, tamper_gzip: true });
    let l = Local::new();
    let o = l.capsa(&["image", "pull"], &[&format!("docker://{}/x:latest", f.addr)]);
    assert!(o.code != 0 && o.stderr.contains("digest mismatch"), "pull: {}", o.stderr);
    assert_eq!(l.verify_blobs(), 0);
    let snaps = fs::read_dir(l.0.path().join("store/snapshots")).unwrap().count();
    assert_eq!(snaps, 0, "snapshots left behind");
}

#[test]
fn pull_restarts_when_the_server_ignores_range() {
    let f =
        fake::Fake::start(fake::Opts { cut_first_layer: true, honour_range: false, auth: false, tamper_gzip: false });
    let l = Local::new();
    let o = l.capsa(&["image", "pull"], &[&format!("docker://{}/x:latest", f.addr)]);
    assert_eq!(o.code, 0, "pull: {}\nlog: {:#?}", o.stderr, f.log());
    assert!(f.log().iter().any(|r| r.contains("range=Some(\"bytes=")), "no resume request: {:#?}", f.log());
    assert_eq!(l.verify_blobs(), 3);
    l.snapshot_matches(&f.content);
    l.unpack_matches(&f.addr, &f.content);
}

#[test]
fn pull_with_bearer_token_and_basic_auth() {
    let f =
        fake::Fake::start(fake::Opts { cut_first_layer: false, honour_range: true, auth: true, tamper_gzip: false });
    let r = format!("docker://{}/x:latest", f.addr);
    // Wrong or no credentials: a clear error, nothing stored.
    for creds in [Some("user:wrong"), None] {
        let l = Local::new();
        let mut args = vec![r.as_str()];
        if let Some(c) = creds {
            args = vec!["--creds", c, &r];
        }
        let o = l.capsa(&["image", "pull"], &args);
        let want = if creds.is_some() { "refused the credentials" } else { "wants credentials" };
        assert!(o.code != 0 && o.stderr.contains("401") && o.stderr.contains(want), "{creds:?}: {}", o.stderr);
        assert_eq!(l.verify_blobs(), 0);
        assert_eq!(l.capsa(&["image", "ls"], &["-q"]).stdout, "");
    }
    // The right ones: a token from the realm (basic auth), then Bearer.
    let l = Local::new();
    let o = l.capsa(&["image", "pull"], &["--creds", "user:pass", &r]);
    assert_eq!(o.code, 0, "pull: {}\nlog: {:#?}", o.stderr, f.log());
    let log = f.log();
    assert!(
        log.iter().any(|x| x.starts_with("/token?service=test&scope=repository%3Ax%3Apull ")
            && x.contains("auth=Some(\"Basic dXNlcjpwYXNz\")")),
        "{log:#?}"
    );
    assert!(log.iter().any(|x| x.starts_with("/v2/x/blobs/") && x.contains("auth=Some(\"Bearer t\")")), "{log:#?}");
    assert_eq!(l.verify_blobs(), 3);
    l.unpack_matches(&f.addr, &f.content);
}

#[test]
fn progress_bars_on_a_terminal_plain_lines_otherwise() {
    if run(Command::new("sh").args(["-c", "command -v script"])).code != 0 {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "needs script (util-linux) (CI=true)");
        eprintln!("skipping: needs script (util-linux)");
        return;
    }
    let f =
        fake::Fake::start(fake::Opts { cut_first_layer: false, honour_range: true, auth: false, tamper_gzip: false });
    let r = format!("docker://{}/x:latest", f.addr);
    let bar = "download 1/1 ";
    // Not a terminal: the plain lines, no bars.
    let l = Local::new();
    let o = l.capsa(&["image", "pull"], &[&r]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("capsa: downloading layer 1/1") && !o.stderr.contains(bar), "{}", o.stderr);
    // A terminal (script's pty): a bar per layer, the lines above them;
    // --quiet: neither.
    for quiet in [false, true] {
        let l = Local::new();
        let cmd = format!(
            "{} --root {} image --store {} pull {} {r}",
            env!("CARGO_BIN_EXE_capsa"),
            l.0.path().join("state").display(),
            l.0.path().join("store").display(),
            if quiet { "-q" } else { "" },
        );
        let o = run(Command::new("script").args(["-qefc", &cmd, "/dev/null"]));
        assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
        let out = o.stdout.clone();
        if quiet {
            assert!(!out.contains(bar) && !out.contains("capsa: "), "{out}");
        } else {
            assert!(out.contains(bar) && out.contains("capsa: downloading layer 1/1"), "{out}");
        }
        // Unpack bars too.
        let dest = l.0.path().join("rootfs");
        let cmd = format!(
            "{} image --store {} unpack {} {}/x:latest {}",
            env!("CARGO_BIN_EXE_capsa"),
            l.0.path().join("store").display(),
            if quiet { "-q" } else { "" },
            f.addr,
            dest.display()
        );
        let o = run(Command::new("script").args(["-qefc", &cmd, "/dev/null"]));
        assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
        assert_eq!(o.stdout.contains("unpack   1/1 "), !quiet, "{}", o.stdout);
    }
}
