//! capsa-stream: the CRI streaming server.
//!
//! The CRI `Exec`, `Attach` and `PortForward` RPCs answer with a URL; the client (kubelet,
//! crictl) then connects to that URL and upgrades the HTTP connection to SPDY/3.1 or a
//! websocket to carry the process's stdio, terminal resizes and forwarded ports. This crate is
//! that server, as kubelet's `pkg/kubelet/cri/streaming` package is for Go runtimes. It knows
//! nothing of containers: it asks the runtime through the [`Backend`] trait.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// What the CRI `Exec` RPC asked for; kept behind the URL's token until the client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub container_id: String,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    /// Ignored (treated as false) with `tty`: a terminal has one output stream.
    pub stderr: bool,
}

/// What the CRI `Attach` RPC asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    pub container_id: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    /// Ignored (treated as false) with `tty`.
    pub stderr: bool,
}

/// A terminal size the client asked for (columns × rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub width: u16,
    pub height: u16,
}

/// The client's streams, as the server received them.
///
/// Dropping a half tells the client that side is done: the backend drops `stdout`/`stderr` (or
/// lets the server drop them when its future resolves). `stdin` reads EOF when the client
/// closed its stdin (or left); `resize` ends when the client left.
pub struct StreamIo {
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// `None` with a tty.
    pub stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Terminal sizes, with a tty and a protocol that carries them.
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

impl std::fmt::Debug for StreamIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamIo")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("resize", &self.resize.is_some())
            .finish()
    }
}

/// A boxed, sendable future (the [`Backend`] methods return one).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Implemented by capsa-cri: what the streaming server asks of the runtime.
pub trait Backend: Send + Sync + 'static {
    /// Run the command; resolve with its exit code once it ended and output is flushed.
    fn exec(&self, req: ExecRequest, io: StreamIo) -> BoxFuture<Result<i32, String>>;
    /// Attach to the container's stdio until it exits or the client leaves.
    fn attach(&self, req: AttachRequest, io: StreamIo) -> BoxFuture<Result<(), String>>;
    /// Connect to `port` inside the sandbox's network namespace.
    fn port_forward(&self, pod_sandbox_id: String, port: u16) -> BoxFuture<Result<tokio::net::TcpStream, String>>;
}

/// The streaming server: an HTTP listener serving single-use URLs.
pub struct Server {
    addr: SocketAddr,
    #[allow(dead_code)]
    backend: Arc<dyn Backend>,
}

impl Server {
    /// Bind (e.g. "127.0.0.1:0"), spawn the accept loop on the current tokio runtime.
    pub async fn start(addr: &str, backend: Arc<dyn Backend>) -> std::io::Result<Arc<Server>> {
        let _ = (addr, backend);
        Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "streaming server not implemented yet"))
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A single-use, expiring URL for a CRI `ExecResponse`.
    pub fn exec_url(&self, req: ExecRequest) -> String {
        let _ = req;
        String::new()
    }

    /// A single-use, expiring URL for a CRI `AttachResponse`.
    pub fn attach_url(&self, req: AttachRequest) -> String {
        let _ = req;
        String::new()
    }

    /// A single-use, expiring URL for a CRI `PortForwardResponse`. `ports` is informational
    /// (kubelet ignores it too): the client names the port of each forwarded connection.
    pub fn port_forward_url(&self, pod_sandbox_id: String, ports: Vec<i32>) -> String {
        let _ = (pod_sandbox_id, ports);
        String::new()
    }
}
