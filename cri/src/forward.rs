//! Port-forward: a TCP connection to a port of a sandbox, made from a thread that
//! joined the sandbox's network namespace (setns is per thread), handed to tokio.

use std::io;
use std::os::fd::AsRawFd;

use crate::daemon::Cri;
use crate::error::Error;

/// Why a port-forward connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The sandbox's record (not found, ...).
    #[error(transparent)]
    Sandbox(#[from] Error),
    /// No thread for the connection.
    #[error("start a thread for port-forward: {0}")]
    Thread(#[source] io::Error),
    /// The connecting thread died without an answer.
    #[error("port-forward: the connecting thread failed")]
    ThreadFailed,
    /// Nothing accepted the connection in the pod (or its netns could not be joined).
    #[error("connect to 127.0.0.1:{port} in the pod: {source}")]
    Connect {
        /// The pod's port.
        port: u16,
        /// The OS error (ECONNREFUSED: nothing listens there).
        #[source]
        source: io::Error,
    },
    /// The connection could not be handed to tokio.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A TCP connection to `port` of sandbox `id`, for tokio.
pub async fn port_forward(cri: &Cri, id: &str, port: u16) -> std::result::Result<tokio::net::TcpStream, ForwardError> {
    let rec = cri.state.sandbox(id)?;
    let netns = rec.netns_path.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("port-forward".into())
        .spawn(move || {
            let _ = tx.send(connect_in(&netns, port));
        })
        .map_err(ForwardError::Thread)?;
    let s = rx.await.map_err(|_| ForwardError::ThreadFailed)?;
    let s = s.map_err(|source| ForwardError::Connect { port, source })?;
    s.set_nonblocking(true)?;
    Ok(tokio::net::TcpStream::from_std(s)?)
}

/// A TCP connection to localhost:`port` made inside the network namespace at `netns`
/// (the calling thread joins it: call from a thread of its own).
fn connect_in(netns: &str, port: u16) -> io::Result<std::net::TcpStream> {
    if !netns.is_empty() {
        let f = std::fs::File::open(netns)?;
        // SAFETY: setns on this thread only (it ends after the connect); the fd is a netns file.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    std::net::TcpStream::connect_timeout(
        &(std::net::Ipv4Addr::LOCALHOST, port).into(),
        std::time::Duration::from_secs(10),
    )
}
