//! The daemon: the unix socket, the gRPC server, the event watcher, and a clean
//! stop on SIGTERM/SIGINT that leaves every container running in its shim.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;

use crate::daemon::Cri;
use crate::proto::image_service_server::ImageServiceServer;
use crate::proto::runtime_service_server::RuntimeServiceServer;
use crate::service::Service;
use crate::start_error::{io, StartError};

/// kubelet's gRPC message size limit (16 MiB), both ways.
pub const MAX_MESSAGE: usize = 16 << 20;
/// After SIGTERM, how long open calls (and kubelet's event streams) get to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A gid from a group name or number.
fn group_id(g: &str) -> Result<u32, StartError> {
    if let Ok(n) = g.parse() {
        return Ok(n);
    }
    let groups = std::fs::read_to_string("/etc/group").map_err(io("read", Path::new("/etc/group")))?;
    groups
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[0] == g).then(|| f[2].parse().ok()).flatten()
        })
        .ok_or_else(|| StartError::NoGroup(g.to_owned()))
}

/// Binds the socket: a stale socket file (no daemon answering) is replaced; one that
/// answers means another daemon is running there.
pub fn bind(path: &Path, group: &str) -> Result<UnixListener, StartError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io("create", d))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(StartError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io("remove stale socket", path))?;
    }
    let l = UnixListener::bind(path).map_err(io("listen on", path))?;
    let mode = if group.is_empty() {
        0o600
    } else {
        let gid = group_id(group)?;
        std::os::unix::fs::chown(path, Some(0), Some(gid)).map_err(io("chown", path))?;
        0o660
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io("chmod", path))?;
    Ok(l)
}

/// SIGTERM or SIGINT.
async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot watch SIGTERM/SIGINT");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping (containers keep running in their shims)"),
        _ = int.recv() => tracing::info!("SIGINT: stopping (containers keep running in their shims)"),
    }
}

/// Serves until SIGTERM/SIGINT.
pub async fn serve(cri: Arc<Cri>, listener: UnixListener) -> Result<(), StartError> {
    let path = cri.cfg.listen_path();
    let c = cri.clone();
    tokio::task::spawn_blocking(move || c.events.load(&c)).await.map_err(StartError::Load)?;
    tokio::spawn(crate::events::monitor(cri.clone()));
    crate::streaming::start(&cri).await?;
    let svc = Service { cri: cri.clone() };
    let runtime = RuntimeServiceServer::new(svc.clone())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let images =
        ImageServiceServer::new(svc).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE);
    use tokio_stream::StreamExt;
    let incoming =
        tokio_stream::wrappers::UnixListenerStream::new(listener).map(|c| c.map(crate::authority::FixAuthority::new));
    tracing::info!("capsa-cri {} serving runtime.v1 on {}", env!("CARGO_PKG_VERSION"), path.display());
    let stop = Arc::new(tokio::sync::Notify::new());
    let stop2 = stop.clone();
    let server = tonic::transport::Server::builder()
        .add_service(runtime)
        .add_service(images)
        .serve_with_incoming_shutdown(incoming, async move {
            terminated().await;
            stop2.notify_one();
        });
    let r = tokio::select! {
        r = server => r.map_err(StartError::Grpc),
        _ = async { stop.notified().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => Ok(()),
    };
    let _ = std::fs::remove_file(&path);
    r
}
