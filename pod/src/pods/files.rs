//! The files a pod's containers share: /etc/hosts, /etc/resolv.conf, /etc/hostname.

use std::path::Path;

use super::PodRecord;
use crate::error::{io, Result};

/// /etc/hosts, /etc/resolv.conf and /etc/hostname for the pod's containers.
pub(crate) fn write_files(dir: &Path, rec: &PodRecord) -> Result<()> {
    let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    match &rec.ip {
        Some(ip) => hosts.push_str(&format!("{ip}\t{}\n", rec.hostname)),
        None => hosts.push_str(&format!("127.0.1.1\t{}\n", rec.hostname)),
    }
    // The host's resolvers, minus loopback ones (unreachable from the pod's
    // network namespace, e.g. systemd-resolved's 127.0.0.53 stub).
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv: String = if let Some(r) = &rec.resolv_conf {
        r.clone()
    } else {
        host.lines()
            .filter(|l| {
                let mut w = l.split_whitespace();
                !(w.next() == Some("nameserver") && w.next().is_some_and(|a| a.starts_with("127.") || a == "::1"))
                    || rec.network == "host"
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    // Rewritten in place, not replaced (same inode: the containers' bind mounts see the
    // new content), and world-readable: a container's non-root user reads them.
    for (f, data) in [("hosts", hosts), ("resolv.conf", resolv), ("hostname", format!("{}\n", rec.hostname))] {
        let p = dir.join(f);
        std::fs::write(&p, data).map_err(io("write", &p))?;
    }
    Ok(())
}
