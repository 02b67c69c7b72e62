//! A rootless pod's namespaces and network.
//!
//! Root pins a pod's namespaces with bind mounts; an unprivileged user cannot
//! mount on the host, so a rootless pod's namespaces are held by a process:
//! `capsa-shim --pause` (which only waits for a signal), started in a new user
//! namespace (the store's mappings) and in new net, ipc and uts namespaces. The
//! pod's containers join `/proc/PID/ns/{user,net,ipc,uts}` (the user namespace
//! first: only inside it may they join the others), after checking the holder
//! is the process recorded (pid and start time).
//!
//! The network is pasta's (Debian's `passt` package): a tap device in the pod's
//! namespace, addresses copied from the host, outbound traffic through pasta's
//! sockets, the gateway address standing for the host's loopback, and each
//! published port bound by pasta on the host's 127.0.0.1. Root's CNI bridges
//! need root; `--network none` keeps loopback only.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use capsa_image::rootless::Rootless;
use serde::{Deserialize, Serialize};

use crate::cni::PortMapping;
use crate::error::{PodError, Result};
use crate::pidns::Holder;

/// What holds a rootless pod's namespaces and network (in `pod.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNet {
    /// `capsa-shim --pause` in the pod's user, net, ipc and uts namespaces.
    pub holder: Holder,
    /// pasta, for `--network pasta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pasta: Option<Holder>,
}

impl PodNet {
    /// The namespaces a member joins: (config.json type, path), the user one first.
    pub fn namespaces(&self, pod: &str) -> Result<Vec<(String, PathBuf)>> {
        if !self.holder.alive() {
            return Err(PodError::msg(format!(
                "pod {pod}: the process holding its namespaces (pid {}) is gone: remove and re-create the pod",
                self.holder.pid
            )));
        }
        let p = |k: &str| PathBuf::from(format!("/proc/{}/ns/{k}", self.holder.pid));
        Ok(vec![
            ("user".into(), p("user")),
            ("network".into(), p("net")),
            ("ipc".into(), p("ipc")),
            ("uts".into(), p("uts")),
        ])
    }

    /// Stops pasta and the holder (the namespaces go when their last member does).
    pub fn stop(&self) {
        if let Some(p) = &self.pasta {
            p.kill();
        }
        self.holder.kill();
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    capsa_image::rootless::pipe().map_err(|source| PodError::Sys { op: "pipe".into(), source })
}

/// Starts `shim --pause` in new user (mapped as the store's), net, ipc and uts
/// namespaces, loopback up and `hostname` set; detached (its own session), its
/// stdio on /dev/null. On error nothing is left running.
pub fn start_holder(r: &Rootless, shim: &Path, hostname: &str) -> Result<Holder> {
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let host = CString::new(hostname).map_err(|_| PodError::msg("hostname holds a NUL byte"))?;
    let (ready_w_fd, go_r_fd) = (ready_w.as_raw_fd(), go_r.as_raw_fd());
    let user = r.clone();
    // The maps are written from a thread while `spawn` waits for the exec.
    let mapper = std::thread::spawn(move || -> std::result::Result<i32, String> {
        let mut b = [0u8; 4];
        std::fs::File::from(ready_r).read_exact(&mut b).map_err(|_| String::new())?;
        let pid = i32::from_ne_bytes(b);
        let r = user.write_maps(pid);
        if r.is_ok() {
            let _ = std::fs::File::from(go_w).write_all(b"1");
        }
        r.map(|()| pid)
    });
    let mut c = Command::new(shim);
    c.arg("--pause").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only async-signal-safe syscalls on memory prepared before the fork.
    unsafe {
        c.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if libc::setsid() < 0 || libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return fail();
            }
            let pid = libc::getpid().to_ne_bytes();
            if libc::write(ready_w_fd, pid.as_ptr().cast(), 4) != 4 {
                return fail();
            }
            let mut b = 0u8;
            if libc::read(go_r_fd, (&mut b as *mut u8).cast(), 1) != 1 {
                return Err(std::io::Error::other("the id maps were not written"));
            }
            if libc::setresgid(0, 0, 0) != 0
                || libc::setresuid(0, 0, 0) != 0
                || libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS) != 0
                || libc::sethostname(host.as_ptr(), host.as_bytes().len()) != 0
            {
                return fail();
            }
            loopback_up()
        });
    }
    let spawned = c.spawn();
    drop(c); // closes this side's copies of the child's pipe ends
    drop((ready_w, go_r));
    let mapped = mapper.join().unwrap_or_else(|_| Err("map thread panicked".into()));
    match (spawned, mapped) {
        (Ok(child), Ok(pid)) => {
            let h = Holder { pid, start_time: crate::pidns::start_time(pid).unwrap_or(0) };
            debug_assert_eq!(child.id() as i32, pid);
            Ok(h)
        }
        (Ok(child), Err(m)) => {
            let h =
                Holder { pid: child.id() as i32, start_time: crate::pidns::start_time(child.id() as i32).unwrap_or(0) };
            h.kill();
            Err(PodError::msg(format!("pod namespaces: id maps: {m}")))
        }
        (Err(e), Err(m)) if !m.is_empty() => Err(PodError::msg(format!("pod namespaces: id maps: {m} ({e})"))),
        (Err(e), _) => Err(PodError::Command {
            cmd: format!("{} --pause (the holder of a rootless pod's namespaces)", shim.display()),
            msg: e.to_string(),
        }),
    }
}

/// `ip link set lo up`, async-signal-safe (runs between fork and exec).
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a socket and two ioctls on a zeroed ifreq we own.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        let mut r = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr);
        if r == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            r = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
        }
        let e = std::io::Error::last_os_error();
        libc::close(s);
        if r != 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// pasta's `-t`/`-u` arguments for `ports`: bound on the host's 127.0.0.1 unless a
/// host address is given.
pub fn pasta_port_args(ports: &[PortMapping]) -> Vec<String> {
    let mut v = Vec::new();
    for p in ports {
        let flag = if p.protocol == "udp" { "-u" } else { "-t" };
        let addr = p.host_ip.as_deref().filter(|a| !a.is_empty()).unwrap_or("127.0.0.1");
        v.push(flag.to_owned());
        v.push(format!("{addr}/{}:{}", p.host_port, p.container_port));
    }
    v
}

/// Starts pasta for the pod held by `holder` (it forks into the background once the
/// namespace's interface is configured); `dir`: where its pid file goes.
pub fn start_pasta(holder: &Holder, ports: &[PortMapping], dir: &Path) -> Result<Holder> {
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun") {
        return Err(PodError::msg(format!(
            "rootless pod network: pasta needs /dev/net/tun, which you cannot open ({e}); a standard install \
             makes it mode 0666 (as root: chmod 0666 /dev/net/tun), or use --network none"
        )));
    }
    let pidfile = dir.join("pasta.pid");
    let mut c = Command::new("pasta");
    c.args(["--config-net", "--quiet", "--pid"]).arg(&pidfile);
    c.args(pasta_port_args(ports));
    c.arg(holder.pid.to_string());
    tracing::debug!("start the pod's network: {c:?}");
    let out =
        match c.stdin(Stdio::null()).output() {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(PodError::msg(
                "rootless pod network: pasta not found (Debian/Ubuntu: apt-get install passt), or use --network none",
            )),
            Err(e) => return Err(PodError::Command { cmd: "pasta".into(), msg: e.to_string() }),
        };
    let pid = std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse::<i32>().ok());
    match (out.status.success(), pid) {
        (true, Some(pid)) => Ok(Holder { pid, start_time: crate::pidns::start_time(pid).unwrap_or(0) }),
        _ => {
            let err: Vec<&str> = std::str::from_utf8(&out.stderr)
                .unwrap_or("")
                .lines()
                .filter(|l| !l.contains("syslog") && !l.trim().is_empty())
                .collect();
            Err(PodError::Command { cmd: format!("{c:?}"), msg: format!("{} ({})", err.join("; "), out.status) })
        }
    }
}

/// The `capsa-shim` next to this binary.
pub fn shim_beside_self() -> Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").map_err(crate::error::io("read", Path::new("/proc/self/exe")))?;
    Ok(exe.with_file_name("capsa-shim"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_bind_loopback_by_default() {
        let pm = |h, c, proto: &str, ip: Option<&str>| PortMapping {
            host_port: h,
            container_port: c,
            protocol: proto.into(),
            host_ip: ip.map(Into::into),
        };
        assert_eq!(
            pasta_port_args(&[pm(8080, 80, "tcp", None), pm(5353, 53, "udp", Some("127.0.0.2"))]),
            ["-t", "127.0.0.1/8080:80", "-u", "127.0.0.2/5353:53"]
        );
    }
}
