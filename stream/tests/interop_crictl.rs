//! crictl v1.26.1 (client-go's SPDY executor and port-forwarder, the real client) against the
//! streaming server. crictl needs a CRI endpoint to get its URLs: tests/fakecri answers
//! Version and Exec/Attach/PortForward with a URL the test minted. Needs `go`, Debian's
//! golang-google-grpc-dev and `shared/tools/crictl` beside the repository; without them the
//! tests skip, except under CI=true, where they fail.

mod common;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use capsa_stream::AttachRequest;
use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

fn fakecri() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| go_build("fakecri", &[("google.golang.org/grpc", "golang-google-grpc-dev")])).clone()
}

/// `shared/tools/crictl`, found beside the repository (or a worktree's parent).
fn crictl() -> Option<PathBuf> {
    let found =
        Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().map(|a| a.join("shared/tools/crictl")).find(|p| p.is_file());
    if found.is_none() {
        assert!(!in_ci(), "shared/tools/crictl not found beside the repository");
        eprintln!("skipping: shared/tools/crictl not found");
    }
    found
}

/// A fake CRI endpoint on a private socket; killed and removed on drop.
struct Cri {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Cri {
    fn start() -> Option<Cri> {
        let bin = fakecri()?;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("cri.sock");
        let endpoint = format!("unix://{}", socket.display());
        let config = format!("runtime-endpoint: {endpoint}\nimage-endpoint: {endpoint}\ntimeout: 20\n");
        std::fs::write(dir.path().join("crictl.yaml"), config).unwrap();
        let child = std::process::Command::new(bin)
            .arg(&socket)
            .arg(dir.path().join("url"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        while !socket.exists() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Some(Cri { dir, child })
    }

    /// The URL the next Exec/Attach/PortForward returns.
    fn set_url(&self, url: &str) {
        std::fs::write(self.dir.path().join("url"), url).unwrap();
    }

    /// A crictl command on this endpoint.
    fn crictl(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(crictl().expect("checked"));
        c.args(["--config", &self.dir.path().join("crictl.yaml").display().to_string()]).args(args).kill_on_drop(true);
        c
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

macro_rules! setup {
    () => {{
        if crictl().is_none() {
            return;
        }
        let Some(cri) = Cri::start() else { return };
        let (server, stats) = start().await;
        (cri, server, stats)
    }};
}

#[tokio::test]
async fn crictl_exec_with_stdin_and_exit_code() {
    let (cri, server, _stats) = setup!();
    let cmd = ["sh", "-c", "cat; echo err >&2; exit 3"];
    cri.set_url(&server.exec_url(exec_req(&cmd, true, false)));
    let mut child = cri
        .crictl(&["exec", "-i", "c1", "sh", "-c", "cat; echo err >&2; exit 3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello from crictl\n").await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from crictl\n", "{stderr}");
    assert!(stderr.contains("err\n"), "{stderr}");
    // crictl 1.26 exits 1 and names the code client-go decoded from the v4 status (as with
    // containerd).
    assert!(stderr.contains("command terminated with exit code 3"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

/// Opens a pty of the given size; returns (master, slave).
fn pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty writes two fds into the integers and reads the winsize we pass.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just returned by openpty and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

#[tokio::test]
async fn crictl_exec_it_on_a_terminal_sends_its_size_and_keys() {
    let (cri, server, stats) = setup!();
    let script = "stty size; read x; echo got:$x";
    cri.set_url(&server.exec_url(exec_req(&["sh", "-c", script], true, true)));
    let (master, slave) = pty(33, 77);
    let mut cmd = cri.crictl(&["exec", "-it", "c1", "sh", "-c", script]);
    cmd.stdin(slave.try_clone().unwrap()).stdout(slave.try_clone().unwrap()).stderr(slave.try_clone().unwrap());
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    drop(slave);
    let mut term = std::fs::File::from(master);
    let mut writer = term.try_clone().unwrap();
    // Everything crictl prints, until the terminal closes (EIO) when crictl exits.
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match term.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    // Type once the backend got crictl's terminal size (the command starts after it).
    let status = {
        let wait = child.wait();
        tokio::pin!(wait);
        let mut typed = false;
        loop {
            tokio::select! {
                s = &mut wait => break s.unwrap(),
                () = tokio::time::sleep(std::time::Duration::from_millis(50)), if !typed => {
                    if !stats.resizes.lock().unwrap().is_empty() {
                        writer.write_all(b"hi\r").unwrap();
                        typed = true;
                    }
                }
            }
        }
    };
    let output = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{output:?}");
    assert!(output.contains("33 77"), "{output:?}");
    assert!(output.contains("got:hi"), "{output:?}");
    assert_eq!(stats.resizes.lock().unwrap()[0], capsa_stream::TermSize { width: 77, height: 33 });
}

#[tokio::test]
async fn crictl_attach_carries_stdin_and_stdout() {
    let (cri, server, _stats) = setup!();
    let req = AttachRequest { container_id: "c1".into(), tty: false, stdin: true, stdout: true, stderr: true };
    cri.set_url(&server.attach_url(req));
    let mut child = cri
        .crictl(&["attach", "-i", "c1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hey\n").await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "attached\nHEY\n", "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[tokio::test]
async fn crictl_port_forward_carries_connections() {
    let (cri, server, _stats) = setup!();
    let target = line_echo_server().await;
    cri.set_url(&server.port_forward_url(SANDBOX.into(), vec![target.port() as i32]));
    let mut child = cri
        .crictl(&["port-forward", SANDBOX, &format!("0:{}", target.port())])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // "Forwarding from 127.0.0.1:PORT -> REMOTE"
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let local = loop {
        let line = lines.next_line().await.unwrap().expect("crictl printed where it listens");
        if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
            break rest.split_whitespace().next().unwrap().parse::<u16>().unwrap();
        }
    };
    for i in 0..3 {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", local)).await.unwrap();
        c.write_all(format!("request {i}\n").as_bytes()).await.unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).await.unwrap();
        assert_eq!(reply, format!("echo: request {i}\n"));
    }
    child.kill().await.unwrap();
}
