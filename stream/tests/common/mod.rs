//! A test backend that runs commands on the host (pipes, or a pty for tty) and forwards ports
//! to 127.0.0.1, plus small helpers shared by the streaming server's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capsa_stream::{AttachRequest, Backend, BoxFuture, ExecRequest, StreamIo, TermSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The sandbox id the backend knows; any other is "not found".
pub const SANDBOX: &str = "sandbox-1";

/// Counts of backend calls that ended, so tests can see nothing was left hanging.
#[derive(Default)]
pub struct Stats {
    pub execs_done: AtomicUsize,
    pub attaches_done: AtomicUsize,
    pub resizes: Mutex<Vec<TermSize>>,
}

#[derive(Default)]
pub struct HostBackend {
    pub stats: Arc<Stats>,
}

impl Backend for HostBackend {
    fn exec(&self, req: ExecRequest, io: StreamIo) -> BoxFuture<Result<i32, String>> {
        let stats = self.stats.clone();
        Box::pin(async move {
            if req.container_id != "c1" {
                return Err(format!("container {:?} not found", req.container_id));
            }
            let r = if req.tty { run_pty(&req.cmd, io, &stats).await } else { run_pipes(&req.cmd, io).await };
            stats.execs_done.fetch_add(1, Ordering::SeqCst);
            r
        })
    }

    /// "Attaching" prints a banner, then echoes stdin upper-cased until it ends.
    fn attach(&self, req: AttachRequest, io: StreamIo) -> BoxFuture<Result<(), String>> {
        let stats = self.stats.clone();
        Box::pin(async move {
            // Counted when the future ends or is dropped (the client left).
            struct Done(Arc<Stats>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.attaches_done.fetch_add(1, Ordering::SeqCst);
                }
            }
            let _done = Done(stats);
            if req.container_id != "c1" {
                return Err(format!("container {:?} not found", req.container_id));
            }
            let mut out = io.stdout.ok_or("no stdout")?;
            out.write_all(b"attached\n").await.map_err(|e| e.to_string())?;
            if let Some(mut stdin) = io.stdin {
                let mut buf = [0u8; 4096];
                loop {
                    let n = stdin.read(&mut buf).await.map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(&buf[..n].to_ascii_uppercase()).await.map_err(|e| e.to_string())?;
                }
            } else {
                std::future::pending::<()>().await;
            }
            out.shutdown().await.map_err(|e| e.to_string())?;
            Ok(())
        })
    }

    fn port_forward(&self, pod_sandbox_id: String, port: u16) -> BoxFuture<Result<TcpStream, String>> {
        Box::pin(async move {
            if pod_sandbox_id != SANDBOX {
                return Err(format!("sandbox {pod_sandbox_id:?} not found"));
            }
            TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())
        })
    }
}

async fn run_pipes(cmd: &[String], io: StreamIo) -> Result<i32, String> {
    let StreamIo { stdin, stdout, stderr, .. } = io;
    let mut child = tokio::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(if stdout.is_some() { Stdio::piped() } else { Stdio::null() })
        .stderr(if stderr.is_some() { Stdio::piped() } else { Stdio::null() })
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn {:?}: {e}", cmd[0]))?;
    if let (Some(mut from), Some(mut to)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            // Dropping `to` closes the pipe: the command reads EOF.
        });
    }
    let out = match (child.stdout.take(), stdout) {
        (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
        })),
        _ => None,
    };
    let err = match (child.stderr.take(), stderr) {
        (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
        })),
        _ => None,
    };
    let status = child.wait().await.map_err(|e| e.to_string())?;
    for t in [out, err].into_iter().flatten() {
        let _ = t.await;
    }
    Ok(status.code().unwrap_or(128))
}

fn set_size(fd: i32, size: TermSize) {
    let ws = libc::winsize { ws_row: size.height, ws_col: size.width, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: fd is the pty master we own; TIOCSWINSZ reads a winsize we pass by pointer.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

/// Runs `cmd` on a new pty. The first resize is applied before the command starts (so what
/// it sees is deterministic), later ones as they come.
async fn run_pty(cmd: &[String], io: StreamIo, stats: &Stats) -> Result<i32, String> {
    let StreamIo { stdin, stdout, mut resize, .. } = io;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two fds into the integers we pass; the other arguments may be null.
    let rc =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    if rc != 0 {
        return Err(format!("openpty: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both fds were just returned by openpty and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    use std::os::fd::AsRawFd;
    if let Some(rx) = resize.as_mut() {
        if let Ok(Some(size)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            stats.resizes.lock().unwrap().push(size);
            set_size(master.as_raw_fd(), size);
        }
    }
    let mut command = tokio::process::Command::new(&cmd[0]);
    command
        .args(&cmd[1..])
        .stdin(slave.try_clone().map_err(|e| e.to_string())?)
        .stdout(slave.try_clone().map_err(|e| e.to_string())?)
        .stderr(slave.try_clone().map_err(|e| e.to_string())?)
        .kill_on_drop(true);
    // SAFETY: between fork and exec we only call async-signal-safe setsid and ioctl.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| format!("spawn {:?}: {e}", cmd[0]))?;
    // The command keeps its copies of the slave: drop ours, or the master never reads EIO.
    drop(command);
    drop(slave);
    let master_fd = master.as_raw_fd();
    if let Some(mut rx) = resize {
        tokio::spawn(async move {
            while let Some(size) = rx.recv().await {
                set_size(master_fd, size);
            }
        });
    }
    let reader = tokio::fs::File::from_std(std::fs::File::from(master.try_clone().map_err(|e| e.to_string())?));
    let writer = tokio::fs::File::from_std(std::fs::File::from(master.try_clone().map_err(|e| e.to_string())?));
    if let Some(mut from) = stdin {
        let mut to = writer;
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            let _ = to.flush().await;
        });
    }
    let out = stdout.map(|mut to| {
        let mut from = reader;
        tokio::spawn(async move {
            // Ends with EIO once the command and everything holding the slave are gone.
            let _ = tokio::io::copy(&mut from, &mut to).await;
        })
    });
    let status = child.wait().await.map_err(|e| e.to_string())?;
    if let Some(t) = out {
        let _ = t.await;
    }
    drop(master);
    Ok(status.code().unwrap_or(128))
}

/// A TCP server on 127.0.0.1 that answers each connection's first line with "echo: LINE"
/// and closes it.
pub async fn line_echo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut b = [0u8; 1];
                while s.read(&mut b).await.unwrap_or(0) == 1 {
                    got.push(b[0]);
                    if b[0] == b'\n' {
                        break;
                    }
                }
                let _ = s.write_all(b"echo: ").await;
                let _ = s.write_all(&got).await;
            });
        }
    });
    addr
}

pub fn exec_req(cmd: &[&str], stdin: bool, tty: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c1".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    }
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

pub async fn start() -> (Arc<capsa_stream::Server>, Arc<Stats>) {
    let backend = HostBackend::default();
    let stats = backend.stats.clone();
    let server = capsa_stream::Server::start("127.0.0.1:0", Arc::new(backend)).await.unwrap();
    (server, stats)
}

const GOPATH: &str = "/usr/share/gocode";

/// Builds the Go program in tests/`dir` with Debian's Go packages (GOPATH mode, offline).
/// `None` (the caller skips) when Go or a package source is missing, except under CI=true,
/// where that fails the test. `needs` are (GOPATH source dir, Debian package) pairs.
pub fn go_build(dir: &str, needs: &[(&str, &str)]) -> Option<PathBuf> {
    let src_root = Path::new(GOPATH).join("src");
    let have_go = std::process::Command::new("go").arg("version").output().is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = needs.iter().filter(|(d, _)| !src_root.join(d).is_dir()).map(|(_, p)| *p).collect();
    if !have_go || !missing.is_empty() {
        assert!(!in_ci(), "CI needs golang-go and {missing:?} for the Go interop tests");
        eprintln!("skipping: go or {missing:?} missing");
        return None;
    }
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out = tmp.join(format!("capsa-stream-{dir}"));
    let status = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join(dir))
        .env("GOPATH", GOPATH)
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", tmp.join("gocache"))
        .status()
        .expect("run go build");
    assert!(status.success(), "go build of tests/{dir} failed");
    Some(out)
}
