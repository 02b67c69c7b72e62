//! capsa-stream: the CRI streaming server.
//!
//! The CRI `Exec`, `Attach` and `PortForward` RPCs answer with a URL; the client (kubelet,
//! crictl) then connects to that URL and upgrades the HTTP connection to SPDY/3.1 or a
//! websocket to carry the process's stdio, terminal resizes and forwarded ports. This crate is
//! that server, as kubelet's `pkg/kubelet/cri/streaming` package is for Go runtimes. It knows
//! nothing of containers: it asks the runtime through the [`Backend`] trait.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

mod http;
mod pipe;
mod portforward;
mod remotecommand;
mod resize;
pub mod spdy;
mod status;
mod token;
mod ws;

use remotecommand::Command;
use token::{Claim, TokenCache};

/// What the CRI `Exec` RPC asked for; kept behind the URL's token until the client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub container_id: String,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    /// Ignored (treated as false) with `tty`: a terminal has one output stream (and
    /// [`ExecRequest::validate`] refuses both).
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

impl ExecRequest {
    /// The checks kubelet's streaming server makes before handing out a URL (the CRI service
    /// answers a failure with `InvalidArgument` and this message).
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.container_id.is_empty() {
            return Err("missing required container_id");
        }
        if self.cmd.is_empty() {
            return Err("cmd must not be empty");
        }
        validate_streams(self.tty, self.stdin, self.stdout, self.stderr)
    }
}

impl AttachRequest {
    /// As [`ExecRequest::validate`].
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.container_id.is_empty() {
            return Err("missing required container_id");
        }
        validate_streams(self.tty, self.stdin, self.stdout, self.stderr)
    }
}

fn validate_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<(), &'static str> {
    if tty && stderr {
        // A terminal has one output stream: kubelet refuses to multiplex.
        return Err("tty and stderr cannot both be true");
    }
    if !stdin && !stdout && !stderr {
        return Err("one of stdin, stdout, or stderr must be set");
    }
    Ok(())
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
///
/// The server calls these once the client's streams exist, with the streams the request asked
/// for. When the call resolves the server finishes stdout and stderr (data written after that
/// is dropped), sends the outcome on the error channel and closes the connection. If the client
/// leaves first, `stdin` reads EOF, writes to `stdout`/`stderr` fail with `BrokenPipe` and
/// `resize` ends; an `exec` future is still awaited to its end (as containerd lets an orphaned
/// exec run: kill it on EPIPE if that is wanted), an `attach` future is dropped.
pub trait Backend: Send + Sync + 'static {
    /// Run the command; resolve with its exit code once it ended and output is flushed.
    /// `Err` is reported to the client as an internal error ("error executing command in
    /// container: ERR"); a non-zero code as kubelet's `NonZeroExitCode` status.
    fn exec(&self, req: ExecRequest, io: StreamIo) -> BoxFuture<Result<i32, String>>;
    /// Attach to the container's stdio until it exits or the client leaves.
    fn attach(&self, req: AttachRequest, io: StreamIo) -> BoxFuture<Result<(), String>>;
    /// Connect to `port` inside the sandbox's network namespace. Called once per forwarded
    /// connection; `Err` goes back to the client as "error forwarding port P to pod ID, uid : ERR".
    fn port_forward(&self, pod_sandbox_id: String, port: u16) -> BoxFuture<Result<tokio::net::TcpStream, String>>;
}

/// Settings of the streaming server (kubelet's `streaming.Config` defaults).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind, e.g. "127.0.0.1:0". Tokens are the only authentication, so the default
    /// is loopback: kubelet connects from the same node.
    pub addr: String,
    /// Scheme and authority of the URLs handed out (e.g. "http://10.0.0.5:10010"); by default
    /// the bound address (a wildcard bind is named by its loopback address).
    pub base_url: Option<String>,
    /// How long a URL stays valid (kubelet: one minute).
    pub token_ttl: Duration,
    /// How long the client has to create its streams after the upgrade (kubelet: 30 s).
    pub stream_creation_timeout: Duration,
    /// How long the client has to send its request head.
    pub request_timeout: Duration,
    /// How long a finished session waits for the client to close the connection.
    pub linger: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: "127.0.0.1:0".into(),
            base_url: None,
            token_ttl: Duration::from_secs(60),
            stream_creation_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            linger: Duration::from_secs(5),
        }
    }
}

/// What a token stands for.
#[derive(Debug, Clone)]
enum Pending {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward { pod_sandbox_id: String, ports: Vec<i32> },
}

/// The streaming server: an HTTP listener serving single-use URLs.
pub struct Server {
    addr: SocketAddr,
    base_url: String,
    tokens: TokenCache<Pending>,
    accept_loop: tokio::task::AbortHandle,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl Server {
    /// Bind (e.g. "127.0.0.1:0"), spawn the accept loop on the current tokio runtime.
    pub async fn start(addr: &str, backend: Arc<dyn Backend>) -> std::io::Result<Arc<Server>> {
        Self::start_with(Config { addr: addr.to_string(), ..Config::default() }, backend).await
    }

    /// [`Server::start`] with every setting. The accept loop stops when the last `Arc` of the
    /// server is dropped (sessions already upgraded run to their end).
    pub async fn start_with(config: Config, backend: Arc<dyn Backend>) -> std::io::Result<Arc<Server>> {
        let listener = TcpListener::bind(&config.addr).await?;
        let addr = listener.local_addr()?;
        let base_url = match &config.base_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let mut shown = addr;
                if shown.ip().is_unspecified() {
                    shown.set_ip(match shown.ip() {
                        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    });
                }
                format!("http://{shown}")
            }
        };
        let config = Arc::new(config);
        let server = Arc::new_cyclic(|weak: &std::sync::Weak<Server>| {
            let task = tokio::spawn(accept_loop(listener, weak.clone(), backend, config.clone()));
            Server { addr, base_url, tokens: TokenCache::new(config.token_ttl), accept_loop: task.abort_handle() }
        });
        Ok(server)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A single-use, expiring URL for a CRI `ExecResponse`.
    pub fn exec_url(&self, req: ExecRequest) -> String {
        self.url("exec", Pending::Exec(req))
    }

    /// A single-use, expiring URL for a CRI `AttachResponse`.
    pub fn attach_url(&self, req: AttachRequest) -> String {
        self.url("attach", Pending::Attach(req))
    }

    /// A single-use, expiring URL for a CRI `PortForwardResponse`. Over SPDY the client names
    /// the port of each forwarded connection; over websocket the `port` query parameters do,
    /// and `ports` is the default when the client gives none.
    pub fn port_forward_url(&self, pod_sandbox_id: String, ports: Vec<i32>) -> String {
        self.url("portforward", Pending::PortForward { pod_sandbox_id, ports })
    }

    fn url(&self, kind: &str, pending: Pending) -> String {
        let token = self.tokens.insert(pending);
        format!("{}/{kind}/{token}", self.base_url)
    }
}

async fn accept_loop(
    listener: TcpListener,
    server: std::sync::Weak<Server>,
    backend: Arc<dyn Backend>,
    config: Arc<Config>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("streaming server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // A client that vanishes without closing (host down, network cut) is noticed by the
        // kernel within minutes and its session torn down, instead of holding a backend call.
        let keepalive =
            socket2::TcpKeepalive::new().with_time(Duration::from_secs(60)).with_interval(Duration::from_secs(15));
        let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        let server = server.clone();
        let backend = backend.clone();
        let config = config.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(tcp, server, backend, config).await {
                tracing::debug!("streaming server: connection from {peer}: {e}");
            }
        });
    }
}

async fn serve_connection(
    mut tcp: TcpStream,
    server: std::sync::Weak<Server>,
    backend: Arc<dyn Backend>,
    config: Arc<Config>,
) -> Result<(), http::HeadError> {
    let (req, leftover) = match http::read_head(&mut tcp, config.request_timeout).await {
        Ok(r) => r,
        Err(e @ http::HeadError::Malformed(_)) | Err(e @ http::HeadError::TooLarge) => {
            let _ = http::respond(&mut tcp, 400, &[], "malformed HTTP request").await;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let mut parts = req.path.trim_start_matches('/').splitn(2, '/');
    let (kind, token) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !matches!(kind, "exec" | "attach" | "portforward") || token.is_empty() || token.contains('/') {
        let _ = http::respond(&mut tcp, 404, &[], "404 page not found\n").await;
        return Ok(());
    }
    if req.method != "GET" && req.method != "POST" {
        let _ = http::respond(&mut tcp, 405, &[("Allow", "GET, POST")], "405: Method Not Allowed").await;
        return Ok(());
    }
    let pending = server.upgrade().and_then(|s| s.tokens.peek(token));
    let claim = {
        let token = token.to_string();
        Claim::new(move || server.upgrade().is_some_and(|s| s.tokens.consume(&token).is_some()))
    };
    let websocket = req.is_upgrade_to("websocket");
    let session = Session { req: &req, leftover, claim, backend, config: &config };
    match (kind, pending) {
        ("exec", Some(Pending::Exec(r))) => serve_command(session, tcp, Command::Exec(r), websocket).await,
        ("attach", Some(Pending::Attach(r))) => serve_command(session, tcp, Command::Attach(r), websocket).await,
        ("portforward", Some(Pending::PortForward { pod_sandbox_id, ports })) => {
            if websocket {
                ws::serve_port_forward(session, tcp, pod_sandbox_id, ports).await
            } else {
                portforward::serve_spdy(session, tcp, pod_sandbox_id).await
            }
        }
        _ => {
            let _ = http::respond(&mut tcp, 404, &[], "404 page not found\n").await;
        }
    }
    Ok(())
}

/// What every session handler gets: the request, the bytes read past its head, the right to
/// spend its token, the backend and the settings.
struct Session<'a> {
    req: &'a http::Request,
    leftover: Vec<u8>,
    claim: Claim,
    backend: Arc<dyn Backend>,
    config: &'a Config,
}

impl Session<'_> {
    /// Spends the token right before the upgrade; answers 404 if it was spent meanwhile.
    async fn claim(self, tcp: &mut TcpStream) -> Option<(Vec<u8>, Arc<dyn Backend>)> {
        if self.claim.take() {
            Some((self.leftover, self.backend))
        } else {
            let _ = http::respond(tcp, 404, &[], "404 page not found\n").await;
            None
        }
    }
}

async fn serve_command(session: Session<'_>, tcp: TcpStream, cmd: Command, websocket: bool) {
    if websocket {
        ws::serve_command(session, tcp, cmd).await
    } else {
        remotecommand::serve_spdy(session, tcp, cmd).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated_as_kubelet_does() {
        let ok = ExecRequest {
            container_id: "c".into(),
            cmd: vec!["sh".into()],
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        };
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ExecRequest { tty: true, ..ok.clone() }.validate(), Err("tty and stderr cannot both be true"));
        assert_eq!(
            ExecRequest { stdout: false, stderr: false, ..ok.clone() }.validate(),
            Err("one of stdin, stdout, or stderr must be set")
        );
        assert_eq!(
            ExecRequest { container_id: String::new(), ..ok.clone() }.validate(),
            Err("missing required container_id")
        );
        assert_eq!(ExecRequest { cmd: vec![], ..ok }.validate(), Err("cmd must not be empty"));
        let attach = AttachRequest { container_id: "c".into(), tty: true, stdin: true, stdout: true, stderr: false };
        assert_eq!(attach.validate(), Ok(()));
        assert!(AttachRequest { stderr: true, ..attach }.validate().is_err());
    }
}
