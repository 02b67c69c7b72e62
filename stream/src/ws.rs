//! placeholder
use crate::http::Request;
use crate::remotecommand::Command;
use crate::{Backend, Config};
use std::sync::Arc;
use tokio::net::TcpStream;

pub async fn serve_command(
    _req: &Request,
    _tcp: TcpStream,
    _leftover: Vec<u8>,
    _cmd: Command,
    _backend: Arc<dyn Backend>,
    _cfg: &Config,
) {
}
#[allow(clippy::too_many_arguments)]
pub async fn serve_port_forward(
    _req: &Request,
    _tcp: TcpStream,
    _leftover: Vec<u8>,
    _id: String,
    _ports: Vec<i32>,
    _backend: Arc<dyn Backend>,
    _cfg: &Config,
) {
}
