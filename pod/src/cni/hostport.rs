//! Whether a port mapping's host port is free, checked by binding it in the caller's network namespace.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::attachment::PortMapping;
use super::error::{io_err, CniError, Result};

/// Checks that `pm`'s host port can be bound (to `hostIP`, or 0.0.0.0) in the caller's current network
/// namespace by binding a socket of its protocol and closing it at once.
pub fn check_host_port_free(pm: &PortMapping) -> Result<()> {
    let (ty, proto) = match pm.protocol.as_str() {
        "tcp" => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
        "udp" => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        other => {
            return Err(CniError::InvalidAttachment(format!("port mapping protocol {other:?} is not tcp or udp")));
        }
    };
    let host = pm.host_ip.as_deref().filter(|h| !h.is_empty()).unwrap_or("0.0.0.0");
    let ip: IpAddr = host
        .parse()
        .map_err(|_| CniError::InvalidAttachment(format!("port mapping hostIP {host:?} is not an IP address")))?;
    let what = format!("checking host port {}/{} on {ip}", pm.host_port, pm.protocol);
    let domain = if ip.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2) takes only integer arguments; the result is checked before use.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io_err(what)(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else; OwnedFd closes it on drop.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    if ty == libc::SOCK_STREAM {
        // Like std's TcpListener: TIME_WAIT connections must not make the port look busy (listeners still do).
        let one: libc::c_int = 1;
        // SAFETY: valid socket fd; the option value pointer and length describe a live c_int.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    let rc = match ip {
        IpAddr::V4(v4) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: pm.host_port.to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: valid socket fd; the pointer and length describe a live, initialized sockaddr_in.
            unsafe {
                libc::bind(
                    sock.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        IpAddr::V6(v6) => {
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: pm.host_port.to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v6.octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: valid socket fd; the pointer and length describe a live, initialized sockaddr_in6.
            unsafe {
                libc::bind(
                    sock.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EADDRINUSE) {
            return Err(CniError::PortInUse { port: pm.host_port, protocol: pm.protocol.clone() });
        }
        return Err(io_err(what)(e));
    }
    Ok(())
}
