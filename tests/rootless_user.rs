//! Rootless, as a real user: images, managed containers, pods and podman, run by
//! the unprivileged account `capsa-rootless` (CI adds it with `useradd`, which gives
//! it a /etc/subuid and /etc/subgid range). Each test has its own home (store under
//! `$XDG_DATA_HOME/capsa`, state under `$XDG_RUNTIME_DIR/capsa`), removed at the end.
//!
//! - an image whose files have many owners arrives shifted into the user's range
//!   (uid 33 in the image is uid 33 in the container, subuid+32 on the host), its
//!   device node skipped with a note, its whiteouts and opaque directory honoured;
//!   `image rm` + `prune` remove it all, although the user cannot own those files;
//! - run -d / logs / exec / ps / stop / rm, and nothing left (no process, no mount,
//!   no state); a pull from a registry on 127.0.0.1 and a run of it;
//! - another user's store is refused before anything is written;
//! - a uid without a range gets one id, a note, and a clear refusal of other users;
//! - a pod in a test-made network namespace: two containers over localhost, a port
//!   published on 127.0.0.1 (pasta), outbound through pasta to the host;
//! - podman 4.3 with `--runtime capsa` as the user: run, exit code, run -d, exec,
//!   logs, stop, rm, and a pod over localhost.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;

const USER: &str = "capsa-rootless";

/// The test user, or `None` (skip) outside CI when it does not exist.
fn lookup() -> Option<(u32, u32)> {
    if !common::require_root() || !common::is_capsa() {
        return None;
    }
    let id = |flag: &str| {
        let o = Command::new("id").args([flag, USER]).output().ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().ok()
    };
    match (id("-u"), id("-g")) {
        (Some(u), Some(g)) => Some((u, g)),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("user {USER} is missing: .ci/run adds it (useradd --create-home {USER})")
        }
        _ => {
            eprintln!("skipping: no user {USER} (useradd --create-home {USER} adds it)");
            None
        }
    }
}

/// One test's user session: a home of its own (0700, the user's).
struct Session {
    uid: u32,
    gid: u32,
    home: tempfile::TempDir,
    /// A network namespace to run in (entered by root before dropping privileges).
    netns: Option<PathBuf>,
    /// Run as this uid instead (no passwd entry, no range).
    bare: bool,
    /// `PATH` for the commands.
    path: &'static str,
}

impl Session {
    fn new() -> Option<Session> {
        let (uid, gid) = lookup()?;
        Some(Session::with(uid, gid, false))
    }

    fn with(uid: u32, gid: u32, bare: bool) -> Session {
        let home = tempfile::Builder::new().prefix("capsa-rl-home-").tempdir().unwrap();
        fs::create_dir(home.path().join("run")).unwrap();
        let st = Command::new("chown").args(["-R", &format!("{uid}:{gid}")]).arg(home.path()).status().unwrap();
        assert!(st.success());
        fs::set_permissions(home.path().join("run"), fs::Permissions::from_mode(0o700)).unwrap();
        Session { uid, gid, home, netns: None, bare, path: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" }
    }

    fn store(&self) -> PathBuf {
        self.home.path().join("data/capsa")
    }

    fn state(&self) -> PathBuf {
        self.home.path().join("run/capsa")
    }

    /// `PROG ARGS` as the user, in its home.
    fn cmd(&self, prog: &Path, args: &[&str]) -> common::Output {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(prog);
        c.args(args).current_dir(self.home.path()).env_clear();
        c.env("HOME", self.home.path())
            .env("XDG_DATA_HOME", self.home.path().join("data"))
            .env("XDG_RUNTIME_DIR", self.home.path().join("run"))
            .env("PATH", self.path)
            .env("USER", if self.bare { "nobody-in-particular" } else { USER });
        let ns = self.netns.as_ref().map(|p| fs::File::open(p).expect("netns"));
        let nsfd = ns.as_ref().map(|f| f.as_raw_fd());
        let (uid, gid) = (self.uid, self.gid);
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            c.pre_exec(move || {
                if let Some(fd) = nsfd {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                let groups = [gid];
                if libc::setgroups(1, groups.as_ptr()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = common::run_cmd(c, Duration::from_secs(120));
        drop(ns);
        out
    }

    fn capsa(&self, args: &[&str]) -> common::Output {
        self.cmd(&common::runtime(), args)
    }

    /// Files under the home owned by a uid other than the user's (the shifted ones).
    fn foreign_files(&self) -> usize {
        walk(self.home.path()).iter().filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.uid() != self.uid)).count()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // (The test's network namespace may be gone already: removal needs none.)
        self.netns = None;
        // Whatever a failed test left: its containers and pods, as the user.
        let ps = self.capsa(&["ps", "-aq"]);
        for n in ps.stdout.lines() {
            self.capsa(&["rm", "-f", n]);
        }
        let pods = self.capsa(&["pod", "ls", "-q"]);
        for p in pods.stdout.lines() {
            self.capsa(&["pod", "rm", "-f", p]);
        }
    }
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&path));
            }
            out.push(path);
        }
    }
    out
}

/// The test images (busybox; owned, see tests/helpers/owned-image.py), built in the
/// session's home and handed to the user.
fn images(s: &Session) -> PathBuf {
    let d = s.home.path().join("images");
    if d.join("owned").exists() {
        return d;
    }
    fs::create_dir_all(&d).unwrap();
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = here.join("rootfs-examples/make-busybox-image.sh");
    let o = common::host("bash", &[script.to_str().unwrap(), d.join("busybox").to_str().unwrap()]);
    assert_eq!(o.code, 0, "make-busybox-image.sh: {o:?}");
    let py = here.join("tests/helpers/owned-image.py");
    let o = common::host("python3", &[py.to_str().unwrap(), d.join("owned").to_str().unwrap()]);
    assert_eq!(o.code, 0, "owned-image.py: {o:?}");
    let st = Command::new("chown").args(["-R", &format!("{}:{}", s.uid, s.gid)]).arg(&d).status().unwrap();
    assert!(st.success());
    d
}

fn import(s: &Session, name: &str) {
    let src = format!("oci:{}", images(s).join(name).display());
    let o = s.capsa(&["image", "import", "-q", &src, name]);
    assert!(o.success(), "import {name} as {USER}: {o:?}");
}

fn sub_start(file: &str) -> u32 {
    let t = fs::read_to_string(file).unwrap();
    t.lines()
        .find_map(|l| l.strip_prefix(&format!("{USER}:"))?.split(':').next()?.parse().ok())
        .expect("a subuid range")
}

#[test]
fn image_owners_land_in_the_subordinate_range_and_whiteouts_hold() {
    let Some(s) = Session::new() else { return };
    import(&s, "owned");
    let o = s.capsa(&[
        "run",
        "--rm",
        "owned",
        "sh",
        "-c",
        "stat -c '%u:%g %a %n' /data/www /data/setgid /data/top; ls /opq; test -e /gone && echo GONE; \
         test -e /dev/node && echo NODE; id -u",
    ]);
    assert!(o.success(), "{o:?}");
    let want = "33:33 640 /data/www\n0:33 2755 /data/setgid\n1000:1000 644 /data/top\nnew\n0\n";
    assert_eq!(o.stdout, want, "owners as the image says, opaque /opq, /gone whited out: {o:?}");
    assert!(o.stderr.contains("device node skipped"), "the skipped device is noted: {o:?}");
    // The image's user reads its 0640 file: the ids are real ids in the container.
    let o = s.capsa(&["run", "--rm", "-u", "www-data", "owned", "cat", "/data/www"]);
    assert_eq!(o.stdout, "owned by www-data\n", "{o:?}");
    // On the host: container uid 33 is subuid start + 32.
    let www: Vec<PathBuf> =
        walk(&s.store().join("snapshots")).into_iter().filter(|p| p.ends_with("data/www")).collect();
    assert_eq!(www.len(), 1, "one snapshot holds data/www: {www:?}");
    let md = fs::metadata(&www[0]).unwrap();
    let want = (sub_start("/etc/subuid") + 32, sub_start("/etc/subgid") + 32);
    assert_eq!((md.uid(), md.gid()), want, "{}", www[0].display());
    assert!(s.foreign_files() > 0);
    // Removal works although the user does not own those files.
    s.capsa(&["image", "rm", "owned"]).ok();
    s.capsa(&["image", "prune"]).ok();
    assert_eq!(fs::read_dir(s.store().join("snapshots")).unwrap().count(), 0, "snapshots left");
    assert_eq!(s.foreign_files(), 0, "files of the subordinate range left under the home");
}

#[test]
fn run_detached_logs_exec_stop_rm_as_a_user() {
    let Some(s) = Session::new() else { return };
    import(&s, "busybox");
    let o = s.capsa(&["run", "-d", "--name", "rl-web", "busybox", "sh", "-c", "echo started; exec sleep 300"]);
    assert!(o.success(), "{o:?}");
    assert!(common::wait_until(Duration::from_secs(10), || s.capsa(&["logs", "rl-web"]).stdout == "started\n"));
    let ps = s.capsa(&["ps", "--format", "json"]).ok();
    let list: serde_json::Value = serde_json::from_str(&ps.stdout).unwrap();
    let pid = list[0]["pid"].as_i64().expect("a running pid");
    assert_eq!(fs::metadata(format!("/proc/{pid}")).unwrap().uid(), s.uid, "the container runs as the user");
    let o = s.capsa(&["exec", "rl-web", "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let lines: Vec<Vec<&str>> = o.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines.first(), Some(&vec!["0"]), "{o:?}");
    assert_eq!(lines.get(1), Some(&vec!["0", &*s.uid.to_string(), "1"]), "container root is the user: {o:?}");
    assert_eq!(lines.get(2).map(|l| l[0]), Some("1"), "and 1.. the subordinate range: {o:?}");
    s.capsa(&["stop", "-t", "1", "rl-web"]).ok();
    assert!(s.capsa(&["ps", "-a"]).stdout.contains("Exited"));
    s.capsa(&["rm", "rl-web"]).ok();
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "its process is gone");
    assert_eq!(fs::read_dir(s.store().join("containers")).unwrap().count(), 0, "container dir left");
    let state: Vec<String> = fs::read_dir(s.state())
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(state.iter().all(|n| n.starts_with('.')), "runtime state left: {state:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&s.home.path().display().to_string()), "a mount under the home on the host");
}

#[test]
fn another_users_store_is_refused() {
    let Some(s) = Session::new() else { return };
    let theirs = tempfile::Builder::new().prefix("capsa-rl-roots-").tempdir().unwrap();
    fs::set_permissions(theirs.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let o = s.capsa(&["image", "ls", "--store", theirs.path().to_str().unwrap()]);
    assert!(!o.success() && o.stderr.contains("owned by uid 0"), "{o:?}");
    assert_eq!(fs::read_dir(theirs.path()).unwrap().count(), 0, "nothing written in root's store");
    // The user's own, but writable by others: refused too.
    let open = s.home.path().join("open");
    fs::create_dir(&open).unwrap();
    assert!(Command::new("chown").arg(format!("{}:{}", s.uid, s.gid)).arg(&open).status().unwrap().success());
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let o = s.capsa(&["image", "ls", "--store", open.to_str().unwrap()]);
    assert!(!o.success() && o.stderr.contains("writable by others"), "{o:?}");
}

#[test]
fn without_newuidmap_the_error_names_the_package() {
    let Some(mut s) = Session::new() else { return };
    s.path = "/nonexistent";
    import(&s, "owned");
    // The import stores blobs only; the first unpack needs the range mapped.
    let o = s.capsa(&["run", "--rm", "owned", "true"]);
    assert!(!o.success() && o.stderr.contains("newuidmap") && o.stderr.contains("uidmap"), "{o:?}");
    assert_eq!(fs::read_dir(s.store().join("snapshots")).unwrap().count(), 0, "no snapshot, no temp dir left");
    let left: Vec<PathBuf> = walk(&s.store().join("containers"));
    assert!(left.is_empty(), "container files left: {left:?}");
}

#[test]
fn a_uid_without_a_range_gets_one_id_and_a_note() {
    if lookup().is_none() {
        return;
    }
    // A uid with no passwd entry and no /etc/subuid line.
    let uid = 62000 + std::process::id() % 1000;
    let s = Session::with(uid, uid, true);
    import(&s, "owned");
    let o = s.capsa(&["run", "--rm", "owned", "sh", "-c", "stat -c %u /data/www; cat /proc/self/uid_map"]);
    assert!(o.success(), "{o:?}");
    let words: Vec<&str> = o.stdout.split_whitespace().collect();
    assert_eq!(words, ["0", "0", &uid.to_string(), "1"], "every file is the user's, one id mapped: {o:?}");
    assert!(o.stderr.contains("no subordinate id range"), "the note: {o:?}");
    let o = s.capsa(&["run", "--rm", "-u", "33", "owned", "true"]);
    assert!(!o.success() && o.stderr.contains("subordinate"), "another user cannot exist: {o:?}");
    assert_eq!(s.foreign_files(), 0);
}

/// A network namespace for the pod test, with an interface pasta can copy (both
/// ends of a veth pair inside it, test-assigned addresses, a default route); removed on drop.
struct TestNet {
    name: String,
}

impl TestNet {
    fn new() -> TestNet {
        let name = format!("capsa-rl-{}", std::process::id());
        let n = TestNet { name: name.clone() };
        let ip = |args: &str| {
            let o = common::host("ip", &args.split_whitespace().collect::<Vec<_>>());
            assert_eq!(o.code, 0, "ip {args}: {o:?}");
        };
        ip(&format!("netns add {name}"));
        ip(&format!("-n {name} link set lo up"));
        ip(&format!("-n {name} link add rl0 type veth peer name rl1"));
        ip(&format!("-n {name} addr add 10.213.0.1/24 dev rl0"));
        ip(&format!("-n {name} link set rl0 up"));
        ip(&format!("-n {name} link set rl1 up"));
        ip(&format!("-n {name} route add default via 10.213.0.254"));
        n
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ARGS` in the namespace, as root.
    fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = common::host("ip", &["netns", "del", &self.name]);
    }
}

#[test]
fn a_pod_shares_localhost_publishes_on_loopback_and_reaches_out() {
    let Some(mut s) = Session::new() else { return };
    if Command::new("pasta").arg("--version").output().is_err() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "pasta is missing (.ci/run installs passt)");
        eprintln!("skipping: pasta not installed (apt-get install passt)");
        return;
    }
    let net = TestNet::new();
    s.netns = Some(net.path());
    import(&s, "busybox");
    let port = 18000 + (std::process::id() % 1000) as u16;
    let o = s.capsa(&["pod", "create", "-p", &format!("{port}:80"), "rl-pod"]);
    if o.stderr.contains("/dev/net/tun") && std::env::var("CI").as_deref() != Ok("true") {
        eprintln!("skipping: {}", o.stderr.trim());
        return;
    }
    assert!(o.success(), "{o:?}");
    let pod: serde_json::Value = serde_json::from_str(&s.capsa(&["pod", "inspect", "rl-pod"]).ok().stdout).unwrap();
    let holder = pod["pod"]["rootless"]["holder"]["pid"].as_i64().expect("the namespace holder");
    let pasta = pod["pod"]["rootless"]["pasta"]["pid"].as_i64().expect("pasta");
    let o = s.capsa(&[
        "run",
        "-d",
        "--pod",
        "rl-pod",
        "--name",
        "rl-srv",
        "busybox",
        "sh",
        "-c",
        "while true; do echo hello-from-the-pod | nc -l -p 80; done",
    ]);
    assert!(o.success(), "{o:?}");
    // A sibling reaches it over the pod's localhost.
    let got = common::wait_until(Duration::from_secs(10), || {
        s.capsa(&["run", "--rm", "--pod", "rl-pod", "busybox", "nc", "127.0.0.1", "80"]).stdout
            == "hello-from-the-pod\n"
    });
    assert!(got, "localhost between the pod's containers");
    // The host's 127.0.0.1 (the test namespace's) reaches the published port.
    let got = common::wait_until(Duration::from_secs(10), || {
        let o = common::run_cmd(
            {
                // (timeout: through pasta a closed connection is not always seen at once)
                let mut c = net.exec(&["busybox", "timeout", "5", "busybox", "nc", "127.0.0.1", &port.to_string()]);
                c.stdin(std::process::Stdio::null());
                c
            },
            Duration::from_secs(10),
        );
        o.stdout == "hello-from-the-pod\n"
    });
    assert!(got, "the published port on 127.0.0.1:{port}");
    // Outbound: the gateway address is the host's loopback, through pasta.
    let mut listener =
        net.exec(&["busybox", "nc", "-l", "-p", &(port + 1).to_string(), "-e", "echo", "hello-from-the-host"]);
    let mut l = listener.spawn().unwrap();
    let reached = common::wait_until(Duration::from_secs(10), || {
        let p = (port + 1).to_string();
        // Under sh, not as pid 1 (which ignores timeout's SIGTERM): pasta does not always
        // pass the host side's close on at once.
        let script = format!("timeout 3 nc 10.213.0.254 {p}; true");
        let o = s.capsa(&["run", "--rm", "--pod", "rl-pod", "busybox", "sh", "-c", &script]);
        // (pasta 2023.x may deliver the host side's reply more than once before its close)
        o.stdout.lines().next() == Some("hello-from-the-host")
    });
    let _ = l.kill();
    let _ = l.wait();
    assert!(reached, "outbound through pasta");
    s.capsa(&["pod", "rm", "-f", "rl-pod"]).ok();
    let gone = |pid: i64| {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |st| st.rsplit(')').next().is_some_and(|r| r.starts_with(" Z")))
    };
    assert!(common::wait_until(Duration::from_secs(5), || gone(holder) && gone(pasta)), "holder or pasta left");
    assert_eq!(
        fs::read_dir(s.store().join("pods"))
            .unwrap()
            .filter(|e| e.as_ref().is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.')))
            .count(),
        0
    );
}

#[test]
fn podman_as_the_user_with_capsa() {
    let Some(s) = Session::new() else { return };
    let podman = PathBuf::from("/usr/bin/podman");
    if !podman.exists() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "podman is missing (.ci/run installs it)");
        return;
    }
    let h = s.home.path();
    let rt = common::runtime();
    let (root, runroot, tmp) = (h.join("pm/root"), h.join("run/pm"), h.join("pm/tmp"));
    let base = [
        "--root",
        root.to_str().unwrap(),
        "--runroot",
        runroot.to_str().unwrap(),
        "--tmpdir",
        tmp.to_str().unwrap(),
        "--runtime",
        rt.to_str().unwrap(),
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
        "--storage-driver",
        "overlay",
    ];
    let pm = |args: &[&str]| {
        let all: Vec<&str> = base.iter().copied().chain(args.iter().copied()).collect();
        s.cmd(&podman, &all)
    };
    let tar = images(&s).join("busybox.tar");
    let o = pm(&["load", "-q", "-i", tar.to_str().unwrap()]);
    assert!(o.success(), "{o:?}");
    let img = o.stdout.trim().rsplit(' ').next().unwrap_or("").to_owned();
    let o = pm(&["run", "--rm", "--network", "none", &img, "sh", "-c", "echo hi; id -u"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "hi\n0\n"), "{o:?}");
    assert_eq!(pm(&["run", "--rm", "--network", "none", &img, "sh", "-c", "exit 3"]).code, 3);
    let o = pm(&["run", "-d", "--name", "rl-pm", "--network", "none", &img, "sh", "-c", "echo up; exec sleep 300"]);
    assert!(o.success(), "{o:?}");
    let o = pm(&["exec", "rl-pm", "cat", "/proc/1/cmdline"]);
    assert!(o.stdout.starts_with("sleep"), "{o:?}");
    assert!(common::wait_until(Duration::from_secs(10), || pm(&["logs", "rl-pm"]).stdout == "up\n"));
    pm(&["stop", "-t", "1", "rl-pm"]).ok();
    pm(&["rm", "rl-pm"]).ok();
    // A pod: its own network namespace (loopback only), two containers over localhost.
    pm(&["pod", "create", "--name", "rl-pmpod", "--network", "none"]).ok();
    let o = pm(&["run", "-d", "--pod", "rl-pmpod", &img, "sh", "-c", "while true; do echo pong | nc -l -p 7000; done"]);
    assert!(o.success(), "{o:?}");
    let got = common::wait_until(Duration::from_secs(15), || {
        pm(&["run", "--rm", "--pod", "rl-pmpod", &img, "nc", "127.0.0.1", "7000"]).stdout == "pong\n"
    });
    assert!(got, "localhost in a podman pod run by capsa");
    pm(&["pod", "rm", "-f", "-t", "0", "rl-pmpod"]).ok();
    pm(&["system", "reset", "-f"]);
}

/// A registry on 127.0.0.1 for the pull test (rootfs-examples/local-registry.sh),
/// stopped and removed on drop.
struct Registry {
    env: [(String, String); 2],
}

impl Registry {
    fn start() -> Option<Registry> {
        let port = 15000 + (std::process::id() % 1000);
        let dir = std::env::temp_dir().join(format!("capsa-rl-registry-{}", std::process::id()));
        let env = [
            ("CAPSA_REGISTRY_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ("CAPSA_REGISTRY_DIR".to_owned(), dir.display().to_string()),
        ];
        let r = Registry { env };
        let o = r.script("start");
        if o.code != 0 {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "local registry: {o:?}");
            eprintln!("skipping: no local registry ({})", o.stderr.trim());
            return None;
        }
        Some(r)
    }

    fn script(&self, verb: &str) -> common::Output {
        let mut c = Command::new("bash");
        c.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rootfs-examples/local-registry.sh")).arg(verb);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        common::run_cmd(c, Duration::from_secs(120))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.script("stop");
    }
}

#[test]
fn pull_and_run_from_a_registry_as_a_user() {
    let Some(s) = Session::new() else { return };
    let Some(reg) = Registry::start() else { return };
    let image = format!("docker://{}/busybox:latest", reg.env[0].1);
    let o = s.capsa(&["run", "--rm", &image, "sh", "-c", "echo pulled; id -u"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "pulled\n0\n"), "{o:?}");
    let ls = s.capsa(&["image", "ls", "-q"]).ok();
    assert_eq!(ls.stdout.lines().count(), 1, "{ls:?}");
}
