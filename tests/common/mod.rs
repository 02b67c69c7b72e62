//! Shared helpers for the capsa integration suite.
//!
//! The suite drives a runc-compatible runtime binary: capsa itself (cargo sets
//! `CARGO_BIN_EXE_capsa`) or whatever `CAPSA_TEST_RUNTIME` points at (e.g.
//! `/usr/sbin/runc`, against which the suite is validated). Every test gets its
//! own state directory (`--root`), bundle, container id and absolute cgroup
//! path under `/capsa-test/`, and guards that clean up even when an assertion
//! panics.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Default limit for one runtime invocation; a hung runtime fails the test.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Parent of every test cgroup (absolute, so the caller's cgroup is never touched).
pub const CGROUP_PARENT: &str = "capsa-test";

/// Path of the runtime binary under test.
pub fn runtime() -> PathBuf {
    if let Some(p) = std::env::var_os("CAPSA_TEST_RUNTIME") {
        return PathBuf::from(p);
    }
    match option_env!("CARGO_BIN_EXE_capsa") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "no runtime to test: set CAPSA_TEST_RUNTIME=/path/to/runtime \
             (e.g. /usr/sbin/runc) or run inside the capsa package"
        ),
    }
}

/// True when the runtime under test is capsa (capsa-only assertions are guarded by this).
pub fn is_capsa() -> bool {
    runtime().file_name().map(|n| n.to_string_lossy().starts_with("capsa")).unwrap_or(false)
}

/// Containers need root. Outside CI a non-root run skips; in CI it is an error.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("needs root (CI=true)");
    }
    eprintln!("skipping: this test needs root");
    false
}

/// A container id unique across tests and concurrent test processes.
pub fn unique_id(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

// ---------------------------------------------------------------- processes

/// Captured result of one command. `code` is the exit code, or 128+signal.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Panics with the captured output unless the command exited 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success(), "command failed: {self:?}");
        self
    }

    /// Panics unless the command failed.
    #[track_caller]
    pub fn failed(self) -> Self {
        assert!(!self.success(), "command unexpectedly succeeded: {self:?}");
        self
    }
}

pub fn exit_code(s: ExitStatus) -> i32 {
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr captured in
/// anonymous files (not pipes: a detached container inherits the runtime's
/// stdio, and a pipe would then never reach EOF). Kills the command and
/// panics when it exceeds `timeout`.
pub fn run_cmd(cmd: Command, timeout: Duration) -> Output {
    run_cmd_stdin(cmd, Stdio::null(), timeout)
}

/// Like `run_cmd` with the given stdin.
pub fn run_cmd_stdin(mut cmd: Command, stdin: impl Into<Stdio>, timeout: Duration) -> Output {
    let mut out = tempfile::tempfile().expect("tempfile");
    let mut err = tempfile::tempfile().expect("tempfile");
    cmd.stdin(stdin).stdout(out.try_clone().unwrap()).stderr(err.try_clone().unwrap());
    let desc = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let status = wait_timeout(&mut child, timeout);
    let read = |f: &mut fs::File| {
        let mut s = String::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    };
    let stdout = read(&mut out);
    let stderr = read(&mut err);
    match status {
        Some(st) => Output { code: exit_code(st), stdout, stderr },
        None => panic!("timed out after {timeout:?}: {desc}\nstdout: {stdout}\nstderr: {stderr}"),
    }
}

/// Waits for `child` at most `timeout`; on expiry kills it (it is our own
/// child) and returns None.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        sleep(Duration::from_millis(10));
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
}

/// Runs a host command (not the runtime) and captures its output.
pub fn host(prog: &str, args: &[&str]) -> Output {
    let mut c = Command::new(prog);
    c.args(args);
    run_cmd(c, TIMEOUT)
}

// ------------------------------------------------------------------ runtime

/// Number of live `Rt`s in this test binary; the last one to go removes the
/// (then empty) `/sys/fs/cgroup/*/capsa-test` parents. Creating an `Rt`
/// happens before any container of it exists, so a parent is never removed
/// under a runtime that is about to populate it.
static LIVE: Mutex<usize> = Mutex::new(0);

/// One test's view of the runtime: a private `--root` state directory.
pub struct Rt {
    root: TempDir,
}

impl Default for Rt {
    fn default() -> Self {
        Self::new()
    }
}

impl Rt {
    pub fn new() -> Rt {
        *LIVE.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Rt { root: tempfile::Builder::new().prefix("capsa-state-").tempdir().expect("state tempdir") }
    }

    /// The `--root` directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `RT --root R <args>` as a Command, for callers that need to customise it.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(runtime());
        c.arg("--root").arg(self.root()).args(args);
        c
    }

    /// Runs `RT --root R <args>` with the default timeout.
    pub fn cmd<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        run_cmd(self.command(args), TIMEOUT)
    }

    /// `run --bundle B ID` in the foreground; the container is force-deleted
    /// afterwards whatever happens.
    pub fn run(&self, b: &Bundle) -> Output {
        self.run_with(b, &[])
    }

    /// `run` with extra flags placed before the id.
    pub fn run_with(&self, b: &Bundle, extra: &[&str]) -> Output {
        let _guard = self.guard(b);
        let mut args: Vec<&str> = vec!["run", "--bundle", b.path_str()];
        args.extend_from_slice(extra);
        args.push(&b.id);
        self.cmd(&args)
    }

    /// Cleanup guard for `b`'s container without creating it.
    pub fn guard(&self, b: &Bundle) -> Container {
        Container { id: b.id.clone(), root: self.root().to_path_buf() }
    }

    /// `create --bundle B ID`, which must succeed. The container's stdio is
    /// /dev/null.
    #[track_caller]
    pub fn create(&self, b: &Bundle) -> Container {
        let (out, c) = self.try_create(b, &[]);
        out.ok();
        c
    }

    /// `create` with extra flags; returns the output and a cleanup guard.
    pub fn try_create(&self, b: &Bundle, extra: &[&str]) -> (Output, Container) {
        let guard = self.guard(b);
        let mut args: Vec<&str> = vec!["create", "--bundle", b.path_str()];
        args.extend_from_slice(extra);
        args.push(&b.id);
        (self.cmd(&args), guard)
    }

    /// create + start; the container's process keeps running (use e.g. `sleep 30`).
    #[track_caller]
    pub fn start_new(&self, b: &Bundle) -> Container {
        let c = self.create(b);
        self.cmd(&["start", &b.id]).ok();
        c
    }

    /// `state ID` parsed, or None when the runtime fails.
    pub fn try_state(&self, id: &str) -> Option<Value> {
        let out = self.cmd(&["state", id]);
        if !out.success() {
            return None;
        }
        Some(
            serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {:?}", out.stdout)),
        )
    }

    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        self.try_state(id).unwrap_or_else(|| panic!("state {id} failed"))
    }

    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("").to_string()
    }

    /// The container's init pid from `state`.
    #[track_caller]
    pub fn pid(&self, id: &str) -> i32 {
        let pid = self.state(id)["pid"].as_i64().unwrap_or(0) as i32;
        assert!(pid > 0, "state has no pid for {id}");
        pid
    }

    /// Waits for `state` to report `status`.
    #[track_caller]
    pub fn wait_status(&self, id: &str, status: &str) {
        let ok =
            wait_until(Duration::from_secs(10), || self.try_state(id).map(|s| s["status"] == status).unwrap_or(false));
        assert!(ok, "{id} never became {status}: {:?}", self.try_state(id));
    }

    /// `exec ID args...` with extra flags before the id.
    pub fn exec(&self, id: &str, flags: &[&str], args: &[&str]) -> Output {
        let mut v: Vec<&str> = vec!["exec"];
        v.extend_from_slice(flags);
        v.push(id);
        v.extend_from_slice(args);
        self.cmd(&v)
    }

    /// Ids printed by `list -q`.
    pub fn list_ids(&self) -> Vec<String> {
        self.cmd(&["list", "-q"]).ok().stdout.lines().map(str::to_string).collect()
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        *live -= 1;
        if *live == 0 {
            remove_cgroup_parents();
        }
    }
}

/// rmdir (never rm -rf) the shared `capsa-test` parent in every hierarchy if empty.
pub fn remove_cgroup_parents() {
    for dir in cgroup_hierarchies() {
        let _ = fs::remove_dir(dir.join(CGROUP_PARENT));
    }
}

/// Mounted cgroup hierarchies under /sys/fs/cgroup (v1 controllers and the
/// v2 "unified" tree), or /sys/fs/cgroup itself on a pure v2 host.
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    let mut v: Vec<PathBuf> = fs::read_dir(base)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir() && !p.is_symlink()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Cgroup dirs of container `id` that still exist, in any hierarchy.
pub fn leftover_cgroups(id: &str) -> Vec<PathBuf> {
    cgroup_hierarchies().into_iter().map(|h| h.join(CGROUP_PARENT).join(id)).filter(|p| p.exists()).collect()
}

/// Force-deletes its container on drop, so a panicking test still cleans up.
pub struct Container {
    pub id: String,
    root: PathBuf,
}

impl Drop for Container {
    fn drop(&mut self) {
        let mut c = Command::new(runtime());
        c.arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Ok(mut child) = c.spawn() {
            wait_timeout(&mut child, TIMEOUT);
        }
        // Safety net for a runtime that leaks (empty) cgroups: rmdir only,
        // which fails harmlessly if tasks remain. Tests assert on cgroups
        // before this runs.
        for dir in leftover_cgroups(&self.id) {
            let _ = fs::remove_dir(dir);
        }
    }
}

// ------------------------------------------------------------------- bundle

/// A bundle directory: busybox rootfs plus a config.json generated by
/// `RT spec` and edited through `edit`. Written to disk by `write` (all
/// runtime helpers take a written bundle; `Bundle::new` writes once).
pub struct Bundle {
    dir: TempDir,
    pub id: String,
    pub config: Value,
    path_str: String,
}

impl Bundle {
    /// Bundle for a new container `<prefix>-<pid>-<n>` running `args`.
    pub fn new(prefix: &str, args: &[&str]) -> Bundle {
        let id = unique_id(prefix);
        let dir = tempfile::Builder::new().prefix("capsa-bundle-").tempdir().expect("bundle tempdir");
        // Tempdirs are 0700; other uids (user namespaces, `--user`) must be
        // able to traverse to the rootfs.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        make_rootfs(&dir.path().join("rootfs"));

        // The runtime's own `spec` produces the base config.
        let mut spec = Command::new(runtime());
        spec.arg("spec").current_dir(dir.path());
        run_cmd(spec, TIMEOUT).ok();
        let text = fs::read_to_string(dir.path().join("config.json")).unwrap();
        let mut config: Value = serde_json::from_str(&text).expect("spec config.json");

        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        // Tests that need a read-only root say so; most want a writable /tmp.
        config["root"]["readonly"] = json!(false);
        config["linux"]["cgroupsPath"] = json!(format!("/{CGROUP_PARENT}/{id}"));

        let path_str = dir.path().to_str().unwrap().to_string();
        let b = Bundle { dir, id, config, path_str };
        b.write();
        b
    }

    /// Bundle running `sh -c script`.
    pub fn sh(prefix: &str, script: &str) -> Bundle {
        Bundle::new(prefix, &["sh", "-c", script])
    }

    /// Edits the config JSON and rewrites config.json.
    pub fn edit(mut self, f: impl FnOnce(&mut Value)) -> Self {
        f(&mut self.config);
        self.write();
        self
    }

    /// Appends a mount to the config.
    pub fn mount(self, m: Value) -> Self {
        self.edit(|c| c["mounts"].as_array_mut().unwrap().push(m))
    }

    /// Bind-mounts host `src` at `dest` (rw unless "ro" in options).
    pub fn bind(self, src: &Path, dest: &str, opts: &[&str]) -> Self {
        let mut o: Vec<&str> = vec!["rbind"];
        o.extend_from_slice(opts);
        self.mount(json!({
            "destination": dest, "type": "bind",
            "source": src.to_str().unwrap(), "options": o
        }))
    }

    pub fn write(&self) {
        fs::write(self.dir.path().join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> &str {
        &self.path_str
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

/// A world-readable host directory for bind mounts and hook output.
pub fn host_dir() -> TempDir {
    let d = tempfile::Builder::new().prefix("capsa-host-").tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).unwrap();
    d
}

/// Unmounts (lazily, top first) whatever is mounted at a path in our mount namespace
/// when dropped: mounts a test made on the host, or that a runtime left at a bundle's
/// rootfs (runc leaves those of a container without a mount namespace behind).
pub struct UnmountAt(pub PathBuf);

impl Drop for UnmountAt {
    fn drop(&mut self) {
        let at = format!(" {} ", self.0.display());
        for _ in 0..16 {
            if !fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().contains(&at) {
                return;
            }
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Busybox rootfs: /bin/busybox + every applet as a symlink, passwd/group
/// with root, nobody and user(1000), /tmp 1777.
pub fn make_rootfs(root: &Path) {
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "root"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy /bin/busybox");
    let list = Command::new("/bin/busybox").arg("--list-full").output().expect("busybox --list-full");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let p = root.join(applet.trim_start_matches('/'));
        if p.exists() || p.is_symlink() {
            continue;
        }
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink("/bin/busybox", &p).unwrap();
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         user:x:1000:1000:user:/tmp:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\ntty:x:5:\nuser:x:1000:\nnobody:x:65534:\n").unwrap();
    let tmp = root.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).unwrap();
}

/// Adds capabilities to the bounding, effective and permitted sets.
pub fn add_caps(c: &mut Value, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        let v = c["process"]["capabilities"][set].as_array_mut().expect("capability set");
        v.extend(caps.iter().map(|s| json!(s)));
    }
}

/// Replaces all five capability sets with `caps`.
pub fn set_caps(c: &mut Value, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted", "inheritable", "ambient"] {
        c["process"]["capabilities"][set] = json!(caps);
    }
}

/// Removes a namespace type from the spec.
pub fn without_ns(c: &mut Value, ty: &str) {
    c["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != ty);
}

/// Adds a namespace entry (`{"type": ...}` with optional "path").
pub fn add_ns(c: &mut Value, ns: Value) {
    c["linux"]["namespaces"].as_array_mut().unwrap().push(ns);
}

// ------------------------------------------------------------------ checks

/// Processes (pid, root link) whose root directory is inside `rootfs`.
pub fn processes_rooted_in(rootfs: &Path) -> Vec<(String, PathBuf)> {
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(r) = fs::read_link(e.path().join("root")) {
            if r.starts_with(rootfs) {
                v.push((name, r));
            }
        }
    }
    v
}

/// Host pids of processes whose cgroup path (any hierarchy) is the
/// container's `/capsa-test/<id>`.
pub fn processes_in_cgroup(id: &str) -> Vec<String> {
    let want = format!(":/{CGROUP_PARENT}/{id}");
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cg) = fs::read_to_string(e.path().join("cgroup")) {
            if cg.lines().any(|l| l.ends_with(&want)) {
                v.push(name);
            }
        }
    }
    v
}

/// Asserts a failed create left nothing behind: no listed container, no
/// state entry, no cgroup, no host mount of the bundle, no process in the
/// rootfs or the container's cgroup.
#[track_caller]
pub fn assert_no_leftovers(rt: &Rt, b: &Bundle) {
    let ids = rt.list_ids();
    assert!(ids.is_empty(), "list -q after failure: {ids:?}");
    assert!(!rt.root().join(&b.id).exists(), "state dir {} left behind", rt.root().join(&b.id).display());
    let cg = leftover_cgroups(&b.id);
    assert!(cg.is_empty(), "cgroups left behind: {cg:?}");
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(b.path_str()), "host mountinfo mentions the bundle: {mi}");
    // Processes may take a moment to be reaped after the runtime exits.
    let rootfs = b.rootfs();
    let gone = wait_until(Duration::from_secs(5), || {
        processes_rooted_in(&rootfs).is_empty() && processes_in_cgroup(&b.id).is_empty()
    });
    assert!(
        gone,
        "processes left: rooted in the bundle {:?}, in the cgroup {:?}",
        processes_rooted_in(&rootfs),
        processes_in_cgroup(&b.id)
    );
}

/// Spawns `cmd` after dup2()ing `fd` onto `target` in the child only, so the
/// extra descriptor (without FD_CLOEXEC) exists in the runtime process but
/// never leaks into other tests running in parallel threads.
pub fn with_inherited_fd(cmd: &mut Command, fd: i32, target: i32) {
    // SAFETY: between fork and exec the closure only calls fcntl/dup2 (async-signal-safe)
    // and builds an io::Error from errno, which does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep FD_CLOEXEC; clear it explicitly.
            let ok = if fd == target { libc::fcntl(fd, libc::F_SETFD, 0) >= 0 } else { libc::dup2(fd, target) >= 0 };
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
