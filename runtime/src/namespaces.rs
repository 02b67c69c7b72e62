//! Which namespaces a container creates and which it joins (`linux.namespaces[].path`).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::spec::Spec;
use crate::sys::{check, SysError, SysResult};

/// The clone/unshare flag of a namespace kind.
pub fn flag(typ: &str) -> libc::c_int {
    match typ {
        "pid" => libc::CLONE_NEWPID,
        "network" => libc::CLONE_NEWNET,
        "mount" => libc::CLONE_NEWNS,
        "ipc" => libc::CLONE_NEWIPC,
        "uts" => libc::CLONE_NEWUTS,
        "user" => libc::CLONE_NEWUSER,
        "cgroup" => libc::CLONE_NEWCGROUP,
        "time" => 0x80,
        _ => 0,
    }
}

/// The `/proc/<pid>/ns/` file name of a namespace kind.
pub fn proc_name(typ: &str) -> &'static str {
    match typ {
        "pid" => "pid",
        "network" => "net",
        "mount" => "mnt",
        "ipc" => "ipc",
        "uts" => "uts",
        "user" => "user",
        "cgroup" => "cgroup",
        "time" => "time",
        _ => "",
    }
}

/// A namespace to join: its fd (opened before fork, so the path is resolved in the
/// runtime's own mount namespace) and kind.
pub struct Join {
    pub typ: String,
    pub fd: OwnedFd,
    pub path: String,
}

/// The namespace plan of a container.
#[derive(Default)]
pub struct NsPlan {
    /// Namespaces to unshare in the init, other than user, pid and cgroup.
    pub unshare: libc::c_int,
    pub new_user: bool,
    pub new_pid: bool,
    pub new_net: bool,
    pub new_cgroup: bool,
    pub new_uts: bool,
    /// Joins, user first (joining other namespaces may need its privileges).
    pub joins: Vec<Join>,
    /// A pid namespace to join: entered by the runtime itself before clone (setns on
    /// a pid namespace only affects children).
    pub join_pid: Option<Join>,
}

impl NsPlan {
    /// Whether the container joins an existing user namespace (a rootless pod's).
    pub fn joins_user(&self) -> bool {
        self.joins.iter().any(|j| j.typ == "user")
    }

    /// Whether the cloned child enters its user namespace (new, or joined with a new
    /// pid namespace) and then forks the real init: a pid namespace is owned by the
    /// user namespace of its creator, and only its root may mount the container's /proc.
    pub fn forks_init(&self) -> bool {
        self.new_user || (self.new_pid && self.joins_user())
    }

    /// Build the plan, opening every namespace path (errors name the path).
    pub fn from_spec(spec: &Spec) -> SysResult<NsPlan> {
        let mut plan = NsPlan::default();
        let Some(linux) = &spec.linux else {
            return Ok(plan);
        };
        for ns in &linux.namespaces {
            let f = flag(&ns.typ);
            if ns.typ == "time" {
                return Err(SysError::from_errno(
                    "time namespaces are not supported by this capsa version",
                    libc::EOPNOTSUPP,
                ));
            }
            match &ns.path {
                Some(p) => {
                    let fd = crate::sys::open(Path::new(p), libc::O_RDONLY, 0)
                        .map_err(|e| SysError { step: format!("open {} namespace {p}", ns.typ), ..e })?;
                    let j = Join { typ: ns.typ.clone(), fd, path: p.clone() };
                    if ns.typ == "pid" {
                        plan.join_pid = Some(j);
                    } else if ns.typ == "user" {
                        plan.joins.insert(0, j);
                    } else {
                        plan.joins.push(j);
                    }
                }
                None => match ns.typ.as_str() {
                    "user" => plan.new_user = true,
                    "pid" => plan.new_pid = true,
                    "cgroup" => plan.new_cgroup = true,
                    t => {
                        plan.unshare |= f;
                        plan.new_net |= t == "network";
                        plan.new_uts |= t == "uts";
                    }
                },
            }
        }
        // Joining a mount namespace must come last: after it, paths mean something else.
        plan.joins.sort_by_key(|j| (j.typ != "user", j.typ == "mount"));
        Ok(plan)
    }
}

/// `setns(2)` into a joined namespace.
pub fn setns(j: &Join) -> SysResult<()> {
    crate::explain::step(crate::explain::Kind::Namespace, || {
        let ns = proc_name(&j.typ);
        crate::explain::Step::new(
            format!("Join the existing {} namespace at {}: share {}", j.typ, j.path, crate::explain::ns_meaning(ns)),
            format!("setns(open({:?}), {})", j.path, crate::explain::clone_flags(flag(&j.typ)).0),
        )
        .field("joined", vec![ns])
        .field("path", j.path.as_str())
    });
    // SAFETY: setns on an fd we own.
    check(unsafe { libc::setns(j.fd.as_raw_fd(), flag(&j.typ)) }, || {
        format!("setns into the {} namespace {}", j.typ, j.path)
    })
    .map_err(|e| {
        if e.errno == libc::EINVAL {
            e.hint(format!("{} is not a {} namespace", j.path, j.typ))
        } else {
            e
        }
    })?;
    Ok(())
}

/// `unshare(2)` with a description of what is being created.
pub fn unshare(flags: libc::c_int) -> SysResult<()> {
    if flags == 0 {
        return Ok(());
    }
    // SAFETY: unshare takes only flags.
    check(unsafe { libc::unshare(flags) }, || format!("unshare({}) to create new namespaces", describe(flags)))?;
    crate::explain::step(crate::explain::Kind::Namespace, || {
        let (call, names) = crate::explain::clone_flags(flags);
        let what: Vec<String> = names.iter().map(|n| format!("{n}: {}", crate::explain::ns_meaning(n))).collect();
        let mut s = crate::explain::Step::new(
            format!("New namespaces for this process: {}", what.join("; ")),
            format!("unshare({call})"),
        );
        if flags & libc::CLONE_NEWPID != 0 {
            s = s.field("note", "a new pid namespace takes effect for the next child, which becomes its PID 1");
        }
        s.field("created", names)
    });
    Ok(())
}

/// Human names of a set of CLONE_NEW* flags.
pub fn describe(flags: libc::c_int) -> String {
    let names = [
        (libc::CLONE_NEWUSER, "user"),
        (libc::CLONE_NEWPID, "pid"),
        (libc::CLONE_NEWNS, "mount"),
        (libc::CLONE_NEWNET, "network"),
        (libc::CLONE_NEWIPC, "ipc"),
        (libc::CLONE_NEWUTS, "uts"),
        (libc::CLONE_NEWCGROUP, "cgroup"),
    ];
    names.iter().filter(|(f, _)| flags & f != 0).map(|(_, n)| *n).collect::<Vec<_>>().join("|")
}

/// Bring the loopback interface up in a new network namespace (runc does too:
/// containers expect 127.0.0.1 to work).
pub fn loopback_up() -> SysResult<()> {
    // SAFETY: creating a socket has no memory-safety requirements.
    let s = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }, || {
        "socket(AF_INET) to configure lo".into()
    })?;
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo\0".iter().enumerate() {
        ifr.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: ioctls on our socket with a valid ifreq.
    let r = unsafe {
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            -1
        } else {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr)
        }
    };
    let err =
        if r < 0 { Some(SysError::last("bring up the loopback interface lo (SIOCSIFFLAGS IFF_UP)")) } else { None };
    // SAFETY: closing our own socket.
    unsafe { libc::close(s) };
    err.map_or(Ok(()), Err)
}

/// The inode identity of `/proc/<pid>/ns/<name>`, to tell whether two processes
/// share a namespace.
pub fn ns_id(pid: &str, name: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/proc/{pid}/ns/{name}")).ok()?;
    Some((m.dev(), m.ino()))
}
