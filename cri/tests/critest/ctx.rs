//! What a ported critest spec works with: the runtime (crictl, a gRPC client), the
//! pods and host-side things it made (removed after the spec, pass or fail), and the
//! helpers of critest's framework (default pod, default container, wait for a state,
//! exec, container logs).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::cricmp::{self, grpc::Grpc, wait_until, Env, Out};

pub type R<T = ()> = Result<T, String>;

/// Fails the spec with a message unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}
pub(crate) use ensure;

pub struct Ctx<'a> {
    pub e: &'a Env,
    pub grpc: Grpc,
    pods: Vec<String>,
    mounts: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    shm: Vec<String>,
    n: usize,
}

impl<'a> Ctx<'a> {
    pub fn new(e: &'a Env) -> Ctx<'a> {
        Ctx {
            e,
            grpc: Grpc::connect(&e.socket()),
            pods: Vec::new(),
            mounts: Vec::new(),
            dirs: Vec::new(),
            shm: Vec::new(),
            n: 0,
        }
    }

    /// A name unique in this run.
    pub fn uniq(&mut self, prefix: &str) -> String {
        self.n += 1;
        format!("{prefix}{}", self.n)
    }

    pub fn image(&self, name: &str) -> String {
        self.e.image(name)
    }

    /// The default test image (critest: registry.k8s.io/e2e-test-images/busybox).
    pub fn busybox(&self) -> String {
        self.e.image("e2e-busybox:1")
    }

    /// `crictl ARGS`.
    pub fn crictl(&self, args: &[&str]) -> Out {
        self.e.crictl(args)
    }

    /// `crictl ARGS` that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> R<String> {
        let o = self.e.crictl(args);
        ensure!(o.code == 0, "crictl {args:?}: rc={} {}{}", o.code, o.stdout, o.stderr.trim());
        Ok(o.stdout)
    }

    pub fn json(&self, args: &[&str]) -> R<Value> {
        let s = self.ok(args)?;
        serde_json::from_str(&s).map_err(|e| format!("crictl {args:?}: not JSON ({e}): {s}"))
    }

    /// Writes a JSON file; its path.
    pub fn file(&mut self, v: &Value) -> String {
        let name = self.uniq("cfg");
        self.e.file(&format!("{name}.json"), v)
    }

    /// A pod config as critest's framework builds it: unique name, uid, namespace, the
    /// test's cgroup parent; `extra` is merged in (objects merged key by key).
    pub fn pod_config(&mut self, prefix: &str, extra: Value) -> Value {
        let name = self.uniq(prefix);
        let mut v = json!({
            "metadata": {"name": name, "namespace": format!("ns-{name}"), "uid": format!("uid-{name}"), "attempt": 0},
            "linux": {"cgroup_parent": format!("{}/{name}", self.e.cgroup_parent)},
        });
        merge(&mut v, extra);
        v
    }

    /// runp; (pod id, path of its config).
    pub fn run_pod(&mut self, cfg: &Value) -> R<(String, String)> {
        let path = self.file(cfg);
        let id = self.ok(&["runp", &path])?.trim().to_owned();
        self.pods.push(id.clone());
        Ok((id, path))
    }

    /// critest's CreatePodSandboxForContainer: a default pod.
    pub fn default_pod(&mut self) -> R<(String, String)> {
        let cfg = self.pod_config("pod", json!({}));
        self.run_pod(&cfg)
    }

    /// A pod with a log directory (a temp dir of the test); (id, config path, log dir).
    pub fn pod_with_logs(&mut self, extra: Value) -> R<(String, String, PathBuf)> {
        let mut cfg = self.pod_config("logpod", extra);
        let dir = self.e.log_dir(cfg["metadata"]["name"].as_str().unwrap());
        cfg["log_directory"] = json!(dir);
        let (id, path) = self.run_pod(&cfg)?;
        Ok((id, path, dir))
    }

    /// A container config: unique name, `image`, `command`; `extra` merged in.
    pub fn container_config(&mut self, prefix: &str, image: &str, command: &[&str], extra: Value) -> Value {
        let name = self.uniq(prefix);
        let mut v = json!({"metadata": {"name": name, "attempt": 0}, "image": {"image": image}});
        if !command.is_empty() {
            v["command"] = json!(command);
        }
        merge(&mut v, extra);
        v
    }

    /// crictl create (the image pulled first when missing, as critest's framework does).
    pub fn create(&mut self, pod: &str, pod_cfg: &str, cfg: &Value) -> R<String> {
        let image = cfg["image"]["image"].as_str().unwrap_or("").to_owned();
        if self.crictl(&["inspecti", &image]).code != 0 {
            self.ok(&["pull", &image])?;
        }
        let path = self.file(cfg);
        Ok(self.ok(&["create", pod, &path, pod_cfg])?.trim().to_owned())
    }

    /// crictl create, which must fail.
    pub fn create_fails(&mut self, pod: &str, pod_cfg: &str, cfg: &Value) -> R<String> {
        let image = cfg["image"]["image"].as_str().unwrap_or("").to_owned();
        if self.crictl(&["inspecti", &image]).code != 0 {
            self.ok(&["pull", &image])?;
        }
        let path = self.file(cfg);
        let o = self.crictl(&["create", pod, &path, pod_cfg]);
        ensure!(o.code != 0, "create should have failed: {}", o.stdout);
        Ok(o.stderr)
    }

    /// critest's pauseCmd container (`sh -c top`) of the busybox image.
    pub fn default_container(&mut self, pod: &str, pod_cfg: &str) -> R<String> {
        let cfg = self.container_config("ctr", &self.busybox(), &["sh", "-c", "top"], json!({}));
        self.create(pod, pod_cfg, &cfg)
    }

    pub fn start(&self, id: &str) -> R {
        self.ok(&["start", id]).map(|_| ())
    }

    /// `crictl inspect` status.
    pub fn status(&self, id: &str) -> R<Value> {
        Ok(self.json(&["inspect", "-o", "json", id])?["status"].clone())
    }

    pub fn state(&self, id: &str) -> R<String> {
        Ok(self.status(id)?["state"].as_str().unwrap_or("").to_owned())
    }

    /// Waits (a minute, as critest's Eventually) for `want` (CONTAINER_RUNNING...).
    pub fn wait_state(&self, id: &str, want: &str) -> R {
        let mut last = String::new();
        let ok = wait_until(Duration::from_secs(60), || {
            last = self.state(id).unwrap_or_default();
            last == want
        });
        ensure!(ok, "container state {last}, want {want}");
        Ok(())
    }

    /// start, then wait for RUNNING.
    pub fn start_running(&self, id: &str) -> R {
        self.start(id)?;
        self.wait_state(id, "CONTAINER_RUNNING")
    }

    /// ExecSync (crictl exec -s): (exit-ok, stdout, stderr). crictl 1.26 prints stdout
    /// only on success and the command's stderr in its error.
    pub fn exec(&self, id: &str, cmd: &[&str]) -> Out {
        let mut args = vec!["exec", "-s", "--timeout", "30", id];
        args.extend(cmd);
        self.crictl(&args)
    }

    /// ExecSync that must succeed with an empty stderr; its stdout (crictl 1.26 prints
    /// the stdout and the stderr each with a newline added: both dropped here).
    pub fn exec_ok(&self, id: &str, cmd: &[&str]) -> R<String> {
        let o = self.exec(id, cmd);
        ensure!(o.code == 0, "exec {cmd:?}: rc={} {}{}", o.code, o.stdout, o.stderr.trim());
        ensure!(o.stderr.trim().is_empty(), "exec {cmd:?}: stderr {:?}", o.stderr);
        let out = o.stdout.strip_suffix("\n\n").ok_or_else(|| format!("crictl's output {:?}", o.stdout))?;
        Ok(out.to_owned())
    }

    /// The (stream, line) pairs of a CRI-format log file.
    pub fn log_lines(&self, path: &Path) -> Vec<(String, String)> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut p = l.splitn(4, ' ');
                let (_ts, stream, _tag, msg) = (p.next()?, p.next()?, p.next()?, p.next().unwrap_or(""));
                Some((stream.to_owned(), msg.to_owned()))
            })
            .collect()
    }

    /// critest's verifyLogContents: `line` on `stream` in the log (waits for it).
    pub fn expect_log(&self, path: &Path, stream: &str, line: &str) -> R {
        let mut got = Vec::new();
        let ok = wait_until(Duration::from_secs(20), || {
            got = self.log_lines(path);
            got.iter().any(|(s, l)| s == stream && l == line)
        });
        ensure!(ok, "log {}: no {stream} line {line:?} in {got:?}", path.display());
        Ok(())
    }

    /// A host temp dir removed after the spec.
    pub fn host_dir(&mut self, prefix: &str) -> PathBuf {
        let d = self.e.path(&self.uniq(prefix));
        fs::create_dir_all(&d).unwrap();
        self.dirs.push(d.clone());
        d
    }

    /// mount(2) on the host, undone after the spec.
    pub fn mount(&mut self, src: &Path, dst: &Path, fstype: &str, flags: libc::c_ulong) -> R {
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        let (s, d, t) = (c(src), c(dst), std::ffi::CString::new(fstype).unwrap());
        // SAFETY: valid C strings; a mount under the test's temp dir.
        let r = unsafe { libc::mount(s.as_ptr(), d.as_ptr(), t.as_ptr(), flags, std::ptr::null()) };
        ensure!(r == 0, "mount {} on {}: {}", src.display(), dst.display(), std::io::Error::last_os_error());
        if flags & (libc::MS_SHARED | libc::MS_PRIVATE | libc::MS_SLAVE) == 0 {
            self.mounts.push(dst.to_path_buf());
        }
        Ok(())
    }

    /// A mount that appeared on the host (propagated from a container), undone after the spec.
    pub fn track_mount(&mut self, path: &Path) {
        self.mounts.push(path.to_path_buf());
    }

    /// A System V shared memory segment in the daemon's IPC namespace (the "host" IPC
    /// of host-IPC pods); its id. Removed after the spec.
    pub fn host_shm(&mut self) -> R<String> {
        let pid = self.e.daemon_pid().ok_or("no daemon")?;
        let ipc = format!("--ipc=/proc/{pid}/ns/ipc");
        let o = cricmp::run(std::process::Command::new("nsenter").args([ipc.as_str(), "ipcmk", "-M", "1048576"]));
        ensure!(o.code == 0, "ipcmk: {}", o.stderr);
        let id = o.stdout.trim().trim_start_matches("Shared memory id: ").to_owned();
        self.shm.push(id.clone());
        Ok(id)
    }

    /// Removes what the spec made: its pods (through the runtime), mounts, dirs, shm.
    pub fn cleanup(&mut self) {
        for p in self.pods.drain(..).rev() {
            let _ = self.e.crictl(&["stopp", &p]);
            let _ = self.e.crictl(&["rmp", "-f", &p]);
        }
        for m in self.mounts.drain(..).rev() {
            let c = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a mount this spec made; failure is fine.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        for d in self.dirs.drain(..) {
            let _ = fs::remove_dir_all(d);
        }
        if let Some(pid) = self.e.daemon_pid() {
            for id in self.shm.drain(..) {
                let ipc = format!("--ipc=/proc/{pid}/ns/ipc");
                let _ = cricmp::run(std::process::Command::new("nsenter").args([ipc.as_str(), "ipcrm", "-m", &id]));
            }
        }
    }
}

/// Merges `extra` into `v` (objects key by key, anything else replaced).
pub fn merge(v: &mut Value, extra: Value) {
    match (v, extra) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, x) in b {
                merge(a.entry(k).or_insert(Value::Null), x);
            }
        }
        (a, b) => *a = b,
    }
}
