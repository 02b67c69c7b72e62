//! Exec, Attach and PortForward: the CRI calls hand out single-use URLs of the
//! streaming server (`capsa_stream`), which calls back into [`CapsaBackend`] once the
//! client (kubelet, crictl) has connected:
//!
//! - exec: `capsa exec` as a subprocess (never a fork of this multi-threaded daemon);
//!   with a tty it is given `--console-socket` and the pty master comes back over it;
//! - attach: the container's shim, over its attach socket (`capsa_shim::proto`);
//! - port-forward: a TCP connection made inside the sandbox's network namespace
//!   ([`crate::forward`]), handed to tokio.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use capsa_shim::proto as shimproto;
use capsa_stream::{Backend, BoxFuture, Server, StreamIo, TermSize};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::daemon::Cri;
use crate::error::{Error, Result};
use crate::exec::{running, ExecGuard};
use crate::proto::{AttachRequest, ExecRequest, PortForwardRequest};
use crate::start_error::StartError;

fn server(cri: &Cri) -> Result<&Arc<Server>> {
    cri.stream.get().ok_or_else(|| Error::unavailable("the streaming server is not running"))
}

/// The Exec URL.
pub async fn exec_url(cri: &Arc<Cri>, r: ExecRequest) -> Result<String> {
    let rec = {
        let id = r.container_id.clone();
        crate::daemon::blocking(cri, move |c| running(c, &id)).await?
    };
    let req = capsa_stream::ExecRequest {
        container_id: rec.id,
        cmd: r.cmd,
        tty: r.tty,
        stdin: r.stdin,
        stdout: r.stdout,
        stderr: r.stderr,
    };
    req.validate().map_err(Error::invalid)?;
    Ok(server(cri)?.exec_url(req))
}

/// The Attach URL.
pub async fn attach_url(cri: &Arc<Cri>, r: AttachRequest) -> Result<String> {
    let rec = {
        let id = r.container_id.clone();
        crate::daemon::blocking(cri, move |c| running(c, &id)).await?
    };
    let req = capsa_stream::AttachRequest {
        container_id: rec.id,
        tty: r.tty,
        stdin: r.stdin,
        stdout: r.stdout,
        stderr: r.stderr,
    };
    req.validate().map_err(Error::invalid)?;
    Ok(server(cri)?.attach_url(req))
}

/// The PortForward URL.
pub async fn port_forward_url(cri: &Arc<Cri>, r: PortForwardRequest) -> Result<String> {
    let rec = cri.state.sandbox(&r.pod_sandbox_id)?;
    if r.port.iter().any(|p| !(1..=65535).contains(p)) {
        return Err(Error::invalid(format!("port-forward: ports {:?} must be 1..65535", r.port)));
    }
    Ok(server(cri)?.port_forward_url(rec.id, r.port))
}

/// Starts the streaming server at the configured address.
pub async fn start(cri: &Arc<Cri>) -> std::result::Result<(), StartError> {
    let backend = Arc::new(CapsaBackend { cri: Arc::downgrade(cri) });
    let addr = &cri.cfg.stream.address;
    let s = Server::start(addr, backend).await.map_err(|source| StartError::Stream { addr: addr.clone(), source })?;
    tracing::info!("streaming server on {}", s.local_addr());
    let _ = cri.stream.set(s);
    Ok(())
}

/// What the streaming server asks of capsa.
pub struct CapsaBackend {
    cri: Weak<Cri>,
}

impl CapsaBackend {
    fn cri(&self) -> std::result::Result<Arc<Cri>, String> {
        self.cri.upgrade().ok_or_else(|| "capsa-cri is stopping".to_owned())
    }
}

impl Backend for CapsaBackend {
    fn exec(&self, req: capsa_stream::ExecRequest, io: StreamIo) -> BoxFuture<std::result::Result<i32, String>> {
        let cri = self.cri();
        Box::pin(async move {
            let cri = cri?;
            // capsa_stream takes the error as text: the one conversion, here.
            exec(cri, req, io).await.map_err(|e| e.to_string())
        })
    }

    fn attach(&self, req: capsa_stream::AttachRequest, io: StreamIo) -> BoxFuture<std::result::Result<(), String>> {
        let cri = self.cri();
        Box::pin(async move {
            let cri = cri?;
            attach(cri, req, io).await.map_err(|e| e.to_string())
        })
    }

    fn port_forward(&self, id: String, port: u16) -> BoxFuture<std::result::Result<tokio::net::TcpStream, String>> {
        let cri = self.cri();
        Box::pin(async move {
            let cri = cri?;
            // capsa_stream takes the error as text: the one conversion, here.
            crate::forward::port_forward(&cri, &id, port).await.map_err(|e| e.to_string())
        })
    }
}

/// Why an exec or attach session failed: its text goes to the client (kubelet,
/// crictl) over the stream, so no gRPC code is chosen for it.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The container (not found, not running) or the request.
    #[error(transparent)]
    Cri(#[from] Error),
    /// A step of the session failed.
    #[error("{what}: {source}")]
    Io {
        /// The step (`run capsa exec`, `attach: the client left`...).
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A step on a socket path failed (the exec's console socket, the shim's attach socket).
    #[error("{what} {}: {source}", .path.display())]
    Path {
        /// The step.
        what: &'static str,
        /// The socket.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// `map_err` helper: `.map_err(session("run capsa exec"))`.
fn session(what: &'static str) -> impl FnOnce(io::Error) -> SessionError {
    move |source| SessionError::Io { what, source }
}

/// Copies `r` into `w` until EOF; a failed write means the client left.
async fn pump(mut r: impl AsyncRead + Unpin, mut w: impl AsyncWrite + Unpin) -> io::Result<()> {
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
        w.flush().await?;
    }
}

async fn exec(cri: Arc<Cri>, req: capsa_stream::ExecRequest, io: StreamIo) -> Result<i32, SessionError> {
    let c = cri.clone();
    let id = req.container_id.clone();
    let rec = crate::daemon::blocking(&cri, move |cri| running(cri, &id)).await?;
    let guard = ExecGuard::new(&c);
    let mut cmd = tokio::process::Command::new(&c.tools.runtime);
    cmd.arg("--root").arg(&c.tools.root).arg("exec").arg("--pid-file").arg(&guard.pid_file);
    if req.tty {
        exec_tty(&c, cmd, &rec.id, &req.cmd, io, guard).await
    } else {
        cmd.arg(&rec.id).args(&req.cmd);
        exec_pipes(cmd, io, guard).await
    }
}

fn exit_code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

async fn exec_pipes(mut cmd: tokio::process::Command, io: StreamIo, mut guard: ExecGuard) -> Result<i32, SessionError> {
    cmd.stdin(if io.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(if io.stdout.is_some() { Stdio::piped() } else { Stdio::null() })
        .stderr(if io.stderr.is_some() { Stdio::piped() } else { Stdio::null() })
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(session("run capsa exec"))?;
    let stdin_task = match (io.stdin, child.stdin.take()) {
        (Some(from), Some(to)) => Some(tokio::spawn(async move {
            let _ = pump(from, to).await;
        })),
        _ => None,
    };
    let out = async {
        match (child.stdout.take(), io.stdout) {
            (Some(r), Some(w)) => pump(r, w).await,
            _ => Ok(()),
        }
    };
    let err = async {
        match (child.stderr.take(), io.stderr) {
            (Some(r), Some(w)) => pump(r, w).await,
            _ => Ok(()),
        }
    };
    let (o, e) = tokio::join!(out, err);
    if o.is_err() || e.is_err() {
        // The client left: the command goes too (nothing is left running).
        guard.kill();
    }
    let st = child.wait().await.map_err(session("wait for capsa exec"))?;
    guard.armed = false;
    if let Some(t) = stdin_task {
        t.abort();
    }
    Ok(exit_code(st))
}

/// A pty master as an async stream (nonblocking, through tokio's reactor).
struct Pty(AsyncFd<OwnedFd>);

impl Pty {
    fn new(fd: OwnedFd) -> io::Result<Pty> {
        // SAFETY: F_GETFL/F_SETFL on an fd we own.
        unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        // SAFETY: an OwnedFd stays open and the same file for as long as the AsyncFd owns it.
        match unsafe { AsyncFd::register(fd) } {
            Ok(a) => Ok(Pty(a)),
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }

    fn resize(&self, s: TermSize) {
        let ws = libc::winsize { ws_row: s.height, ws_col: s.width, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ with a valid winsize on our pty master.
        unsafe { libc::ioctl(self.0.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

fn raw_read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reading into a buffer we own.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        // EIO: the slave side is closed (the process ended): end of stream.
        return if e.raw_os_error() == Some(libc::EIO) { Ok(0) } else { Err(e) };
    }
    Ok(n as usize)
}

fn raw_write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: writing from a buffer we own.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl AsyncRead for &Pty {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut g = match self.0.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let unfilled = buf.initialize_unfilled();
            match g.try_io(|fd| raw_read(fd.as_raw_fd(), unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for &Pty {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut g = match self.0.poll_write_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            match g.try_io(|fd| raw_write(fd.as_raw_fd(), buf)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Receives the pty master `capsa exec --console-socket` sends.
async fn receive_master(listener: tokio::net::UnixListener) -> io::Result<OwnedFd> {
    let (conn, _) = listener.accept().await?;
    let std = conn.into_std()?;
    std.set_nonblocking(false)?;
    tokio::task::spawn_blocking(move || {
        capsa_runtime::process::console::recv_fd(std.as_raw_fd()).map_err(|e| io::Error::other(e.to_string()))
    })
    .await
    .map_err(io::Error::other)?
}

async fn exec_tty(
    cri: &Cri,
    mut cmd: tokio::process::Command,
    id: &str,
    args: &[String],
    io: StreamIo,
    mut guard: ExecGuard,
) -> Result<i32, SessionError> {
    let sock: PathBuf = guard.pid_file.with_extension("sock");
    let _ = std::fs::remove_file(&sock);
    // (state_dir/exec/<64-hex>.sock can be longer than a socket address holds)
    let listener = capsa_fsutil::sock::bind(&sock)
        .and_then(|l| {
            l.set_nonblocking(true)?;
            tokio::net::UnixListener::from_std(l)
        })
        .map_err(|source| SessionError::Path { what: "console socket", path: sock.clone(), source })?;
    let _rm = RemoveOnDrop(sock.clone());
    // As containerd: an exec with a terminal gets TERM=xterm.
    cmd.arg("-t").arg("--env").arg("TERM=xterm").arg("--console-socket").arg(&sock).arg(id).args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(session("run capsa exec"))?;
    let master = tokio::select! {
        m = receive_master(listener) => m.map_err(session("receive the exec's terminal"))?,
        st = child.wait() => {
            let mut msg = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut msg).await;
            }
            let _ = st;
            guard.armed = false;
            let msg = msg.trim().trim_start_matches("capsa: ");
            return Err(Error::unknown(format!("exec in container {id}: {msg}")).into());
        }
    };
    let pty = Pty::new(master).map_err(session("the exec's terminal"))?;
    let _ = cri;
    let StreamIo { stdin, stdout, resize, .. } = io;
    let input = async {
        if let Some(mut from) = stdin {
            let mut buf = vec![0u8; 8 << 10];
            loop {
                match from.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        // EOF on a terminal: ^D.
                        let _ = (&pty).write_all(b"\x04").await;
                        break;
                    }
                    Ok(n) => {
                        if (&pty).write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        std::future::pending::<()>().await
    };
    let sizes = async {
        if let Some(mut rx) = resize {
            while let Some(s) = rx.recv().await {
                pty.resize(s);
            }
        }
        std::future::pending::<()>().await
    };
    let output = async {
        match stdout {
            Some(w) => pump(&pty, w).await,
            None => pump(&pty, tokio::io::sink()).await,
        }
    };
    let r = tokio::select! {
        r = output => r,
        _ = input => Ok(()),
        _ = sizes => Ok(()),
    };
    if r.is_err() {
        guard.kill();
    }
    let st = child.wait().await.map_err(session("wait for capsa exec"))?;
    guard.armed = false;
    Ok(exit_code(st))
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A connection to a shim's attach socket (SOCK_SEQPACKET, nonblocking).
struct ShimConn(AsyncFd<OwnedFd>);

impl ShimConn {
    fn connect(state_dir: &Path) -> io::Result<ShimConn> {
        let c = shimproto::AttachClient::connect(state_dir)?;
        // SAFETY: dup of the client's open fd; the copy is owned right after.
        let fd = unsafe { libc::fcntl(c.fd, libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        drop(c);
        // SAFETY: a fresh fd nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: F_GETFL/F_SETFL on our fd.
        unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        // SAFETY: an OwnedFd stays open and the same file for as long as the AsyncFd owns it.
        unsafe { AsyncFd::register(fd) }.map(ShimConn).map_err(|e| io::Error::other(e.to_string()))
    }

    async fn send(&self, ty: u8, data: &[u8]) -> io::Result<()> {
        let mut pkt = Vec::with_capacity(1 + data.len());
        pkt.push(ty);
        pkt.extend_from_slice(data);
        loop {
            let mut g = self.0.writable().await?;
            match g.try_io(|fd| {
                // SAFETY: send of a buffer we own on our socket.
                let n = unsafe { libc::send(fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len(), libc::MSG_NOSIGNAL) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            }) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// One packet: Ok(None) when the shim closed the connection.
    async fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(u8, usize)>> {
        loop {
            let mut g = self.0.readable().await?;
            match g.try_io(|fd| {
                // SAFETY: recv into a buffer we own.
                let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(Ok(0)) => return Ok(None),
                Ok(Ok(n)) => return Ok(Some((buf[0], n - 1))),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

async fn attach(cri: Arc<Cri>, req: capsa_stream::AttachRequest, io: StreamIo) -> Result<(), SessionError> {
    let id = req.container_id.clone();
    let rec = crate::daemon::blocking(&cri, move |c| running(c, &id)).await?;
    if req.stdin && !rec.config.stdin {
        return Err(Error::invalid("attach: the container was not created with stdin").into());
    }
    let sd = capsa_pod::containers::shim_dir(&cri.store, &rec.id);
    let conn =
        ShimConn::connect(&sd).map_err(|source| SessionError::Path { what: "attach to", path: sd.clone(), source })?;
    let stdin_once = rec.config.stdin_once;
    let StreamIo { stdin, mut stdout, mut stderr, resize } = io;
    let input = async {
        if let Some(mut from) = stdin {
            let mut buf = vec![0u8; shimproto::MAX_PACKET - 1];
            loop {
                match from.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        // The client closed its stdin: with stdin_once the container's closes too.
                        if stdin_once {
                            let _ = conn.send(shimproto::T_CLOSE_STDIN, &[]).await;
                        }
                        break;
                    }
                    Ok(n) => {
                        if conn.send(shimproto::T_STDIN, &buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        std::future::pending::<()>().await
    };
    let sizes = async {
        if let Some(mut rx) = resize {
            while let Some(s) = rx.recv().await {
                let mut p = [0u8; 4];
                p[..2].copy_from_slice(&s.height.to_be_bytes());
                p[2..].copy_from_slice(&s.width.to_be_bytes());
                let _ = conn.send(shimproto::T_RESIZE, &p).await;
            }
        }
        std::future::pending::<()>().await
    };
    let output = async {
        let mut buf = vec![0u8; shimproto::MAX_PACKET];
        loop {
            let (ty, n) = match conn.recv(&mut buf).await {
                Ok(Some(p)) => p,
                Ok(None) | Err(_) => return Ok(()),
            };
            let data = &buf[1..1 + n];
            let w: Option<&mut Box<dyn AsyncWrite + Send + Unpin>> = match ty {
                shimproto::T_STDOUT => stdout.as_mut(),
                shimproto::T_STDERR => stderr.as_mut().or(stdout.as_mut()),
                shimproto::T_EXIT => return Ok(()),
                _ => None,
            };
            if let Some(w) = w {
                w.write_all(data).await?;
                w.flush().await?;
            }
        }
    };
    let r: io::Result<()> = tokio::select! {
        r = output => r,
        _ = input => Ok(()),
        _ = sizes => Ok(()),
    };
    r.map_err(session("attach: the client left"))
}
