//! Seccomp user notification: `linux.seccomp.listenerPath`, SCMP_ACT_NOTIFY and
//! the seccomp agent protocol as runc implements it. The agent here is a unix
//! listener in the test: it receives the container process state (JSON) with
//! the notification fd (SCM_RIGHTS) and answers every notified syscall with a
//! fake success (the syscall returns 0 without the kernel running it).

mod common;

use common::{Bundle, Rt};
use serde_json::{json, Value};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// `struct seccomp_notif` (linux/seccomp.h).
#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp).
const NOTIF_RECV: u64 = 0xc050_2100;
const NOTIF_SEND: u64 = 0xc018_2101;

/// A seccomp agent on a unix socket. Every process state it received is kept
/// (with the syscall numbers it was notified of); it stops on drop.
struct Agent {
    path: PathBuf,
    _dir: tempfile::TempDir,
    states: Arc<Mutex<Vec<Value>>>,
    notified: Arc<Mutex<Vec<i32>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let states = Arc::new(Mutex::new(Vec::new()));
        let notified = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, no, sp) = (states.clone(), notified.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut handlers = Vec::new();
            while !sp.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let (state, fd) = recv_state(&conn);
                        st.lock().unwrap().push(state);
                        let (no, sp) = (no.clone(), sp.clone());
                        handlers.push(std::thread::spawn(move || serve(fd, &no, &sp)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for h in handlers {
                let _ = h.join();
            }
        });
        Agent { path, _dir: dir, states, notified, stop, thread: Some(thread) }
    }

    fn states(&self) -> Vec<Value> {
        self.states.lock().unwrap().clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One message: the JSON state and one fd.
fn recv_state(conn: &UnixStream) -> (Value, OwnedFd) {
    let mut buf = vec![0u8; 65536];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut cmsg = [0u64; 16];
    // SAFETY: msghdr is plain C data: all-zero (null pointers, zero lengths) is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg);
    // SAFETY: `msg` points to `iov` (over `buf`) and to `cmsg` with their true lengths, all live locals.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n > 0, "recvmsg from the runtime: {}", std::io::Error::last_os_error());
    // SAFETY: `msg` describes the live `cmsg`; `c` is checked non-null and SCM_RIGHTS before its data
    // (one int, inside `cmsg`) is read unaligned; the received fd is new and owned by nothing else.
    let fd = unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        assert!(!c.is_null() && (*c).cmsg_type == libc::SCM_RIGHTS, "no fd with the process state");
        OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const i32))
    };
    let state = serde_json::from_slice(&buf[..n as usize]).expect("the process state is JSON");
    (state, fd)
}

/// Answer notifications with a fake success until the filter has no process left.
fn serve(fd: OwnedFd, notified: &Mutex<Vec<i32>>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `pfd` is one live local pollfd, the count passed.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            continue;
        }
        if pfd.revents & libc::POLLIN == 0 {
            return; // POLLHUP: every process of the filter is gone
        }
        let mut req = Notif::default();
        // SAFETY: NOTIF_RECV writes one seccomp_notif into `req`, a live #[repr(C)] Notif of that layout (80 bytes).
        if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV as _, &mut req) } < 0 {
            continue; // the process died or was interrupted meanwhile
        }
        notified.lock().unwrap().push(req.nr);
        let resp = NotifResp { id: req.id, val: 0, error: 0, flags: 0 };
        // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from `resp`, a live #[repr(C)] NotifResp of that layout.
        unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND as _, &resp) };
    }
}

/// Notify mkdir/mkdirat to the agent at `listener`.
fn notify_mkdir(c: &mut Value, listener: &Path, nnp: bool) {
    c["process"]["noNewPrivileges"] = json!(nnp);
    c["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": listener.to_str().unwrap(),
        "listenerMetadata": "test-metadata",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
}

/// What a fake-successful mkdir looks like from inside: it "worked", yet the
/// directory does not exist.
const MKDIR: &str = "mkdir /tmp/made && echo mkdir-ok; test -d /tmp/made || echo absent";

/// The init's filter notifies the agent (with no_new_privs off and on): the
/// agent gets runc's process state (ociVersion, fds ["seccompFd"], pid,
/// metadata, state of the container being created) and the fd during
/// `create`, and answers the container's mkdir.
#[test]
fn init_notifies_the_agent() {
    if !common::require_root() {
        return;
    }
    for nnp in [false, true] {
        let rt = Rt::new();
        let agent = Agent::start();
        let b = Bundle::sh("notify", MKDIR).edit(|c| notify_mkdir(c, &agent.path, nnp));
        let _c = rt.create(&b);
        let pid = rt.pid(&b.id);
        // Sent during `create` (the agent thread may still be reading it).
        common::wait_until(Duration::from_secs(5), || !agent.states().is_empty());
        let states = agent.states();
        assert_eq!(states.len(), 1, "nnp={nnp}: the runtime sent the fd during create: {states:?}");
        let s = &states[0];
        assert!(s["ociVersion"].is_string(), "{s}");
        assert_eq!(s["fds"], json!(["seccompFd"]), "{s}");
        assert_eq!(s["pid"], pid, "{s}");
        assert_eq!(s["metadata"], "test-metadata", "{s}");
        assert_eq!(s["state"]["id"], b.id.as_str(), "{s}");
        assert_eq!(s["state"]["pid"], pid, "{s}");
        assert_eq!(s["state"]["status"], "creating", "{s}");
        assert_eq!(s["state"]["bundle"], b.path_str(), "{s}");
        rt.cmd(&["start", &b.id]).ok();
        rt.wait_status(&b.id, "stopped");
        rt.cmd(&["delete", &b.id]).ok();
        assert!(!b.rootfs().join("tmp/made").exists());
        let run = rt.run(&b).ok();
        assert_eq!(run.stdout, "mkdir-ok\nabsent\n", "nnp={nnp}: {run:?}");
        assert!(!agent.notified.lock().unwrap().is_empty());
    }
}

/// An `exec`'d process gets the container's filter, and its own notification
/// fd goes to the agent with its pid and the container's running state.
#[test]
fn exec_notifies_the_agent() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let agent = Agent::start();
    let b = Bundle::new("notify-exec", &["sleep", "30"]).edit(|c| notify_mkdir(c, &agent.path, false));
    let _c = rt.start_new(&b);
    let init = rt.pid(&b.id);
    let out = rt.exec(&b.id, &[], &["sh", "-c", MKDIR]).ok();
    assert_eq!(out.stdout, "mkdir-ok\nabsent\n", "{out:?}");
    common::wait_until(Duration::from_secs(5), || agent.states().len() == 2);
    let states = agent.states();
    assert_eq!(states.len(), 2, "{states:?}");
    let s = &states[1];
    assert_eq!(s["fds"], json!(["seccompFd"]), "{s}");
    assert!(s["pid"].as_i64().is_some_and(|p| p > 0 && p != init as i64), "{s}");
    assert_eq!(s["metadata"], "test-metadata", "{s}");
    assert_eq!(s["state"]["status"], "running", "{s}");
    assert_eq!(s["state"]["pid"], init, "{s}");
}

/// An agent that cannot be reached fails `create`, naming the socket, and
/// leaves nothing behind; so do SCMP_ACT_NOTIFY without a listenerPath and on
/// `write` (which the runtime needs before the agent has the fd), as in runc.
#[test]
fn notify_errors_fail_create() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-agent.sock");
    let b = Bundle::new("notify-noagent", &["true"]).edit(|c| notify_mkdir(c, &missing, false));
    let (out, _c) = rt.try_create(&b, &[]);
    let out = out.failed();
    assert!(out.stderr.contains(missing.to_str().unwrap()), "{out:?}");
    common::assert_no_leftovers(&rt, &b);

    let b = Bundle::new("notify-nopath", &["true"]).edit(|c| {
        notify_mkdir(c, &missing, false);
        c["linux"]["seccomp"].as_object_mut().unwrap().remove("listenerPath");
    });
    let (out, _c) = rt.try_create(&b, &[]);
    let out = out.failed();
    assert!(out.stderr.contains("listenerPath"), "{out:?}");
    common::assert_no_leftovers(&rt, &b);

    let b = Bundle::new("notify-write", &["true"]).edit(|c| {
        notify_mkdir(c, &missing, false);
        c["linux"]["seccomp"]["syscalls"][0]["names"] = json!(["write"]);
    });
    let (out, _c) = rt.try_create(&b, &[]);
    let out = out.failed();
    assert!(out.stderr.contains("write"), "{out:?}");
    common::assert_no_leftovers(&rt, &b);
}
