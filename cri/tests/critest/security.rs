//! critest's Security Context, Container Mount Propagation and Container OOM specs
//! (pkg/validate/{security_context,security_context_linux,container_linux}.go),
//! ported to crictl. Namespace modes: POD 0, CONTAINER 1, NODE 2; propagation:
//! PRIVATE 0, HOST_TO_CONTAINER 1, BIDIRECTIONAL 2; seccomp profile types:
//! RuntimeDefault 0, Unconfined 1, Localhost 2.

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::ctx::{ensure, Ctx, R};
use crate::cricmp::wait_until;

// ---- NamespaceOption ---------------------------------------------------------------

/// A pod and a container (of `image`, `command`) with the same namespace options.
fn ns_pod_container(c: &mut Ctx, ns: Value, image: &str, command: &[&str]) -> R<(String, String, String)> {
    let cfg = c.pod_config("nsopt", json!({"linux": {"security_context": {"namespace_options": ns.clone()}}}));
    let (pod, p) = c.run_pod(&cfg)?;
    let ccfg =
        c.container_config("nsopt", image, command, json!({"linux": {"security_context": {"namespace_options": ns}}}));
    let id = c.create(&pod, &p, &ccfg)?;
    c.start_running(&id)?;
    Ok((pod, p, id))
}

pub fn host_pid(c: &mut Ctx) -> R {
    let ns = json!({"pid": 2, "ipc": 0, "network": 0});
    let (pod, p, web) = ns_pod_container(c, ns.clone(), &c.image("webserver:1"), &[])?;
    let pid = c.exec_ok(
        &web,
        &["sh", "-c", "while [ ! -f /var/run/nginx.pid ]; do sleep 1; done && cat /var/run/nginx.pid"],
    )?;
    let cfg = c.container_config(
        "hostpid",
        &c.busybox(),
        &["sh", "-c", "sleep 1000"],
        json!({"linux": {"security_context": {"namespace_options": ns}}}),
    );
    let id = c.create(&pod, &p, &cfg)?;
    c.start_running(&id)?;
    let pids = c.exec_ok(&id, &["pidof", "nginx"])?;
    ensure!(pids.split_whitespace().any(|x| x == pid.trim()), "nginx pid {} not in {pids:?}", pid.trim());
    Ok(())
}

/// The shmids of /proc/sysvipc/shm in a container.
fn shm_ids(c: &Ctx, id: &str) -> R<Vec<String>> {
    let out = c.exec_ok(id, &["cat", "/proc/sysvipc/shm"])?;
    Ok(out.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned)).collect())
}

fn host_ipc(c: &mut Ctx, mode: u8) -> R {
    let seg = c.host_shm()?;
    let (_, _, id) =
        ns_pod_container(c, json!({"pid": 0, "ipc": mode, "network": 0}), &c.busybox(), &["sh", "-c", "top"])?;
    let ids = shm_ids(c, &id)?;
    ensure!(ids.contains(&seg) == (mode == 2), "segment {seg}, container sees {ids:?}");
    Ok(())
}

pub fn host_ipc_true(c: &mut Ctx) -> R {
    host_ipc(c, 2)
}

pub fn host_ipc_false(c: &mut Ctx) -> R {
    host_ipc(c, 0)
}

pub fn pod_pid(c: &mut Ctx) -> R {
    let (_, _, id) = ns_pod_container(c, json!({"pid": 0}), &c.image("webserver:1"), &[])?;
    std::thread::sleep(Duration::from_secs(1));
    let out = c.exec_ok(&id, &["cat", "/proc/1/cmdline"])?;
    ensure!(!out.contains("master process"), "pid 1 is the web server: {out:?}");
    Ok(())
}

pub fn container_pid(c: &mut Ctx) -> R {
    let (_, _, id) = ns_pod_container(c, json!({"pid": 1}), &c.image("webserver:1"), &[])?;
    let ok = wait_until(Duration::from_secs(20), || {
        c.exec(&id, &["cat", "/proc/1/cmdline"]).stdout.contains("master process")
    });
    ensure!(ok, "pid 1 is not the web server");
    Ok(())
}

fn host_network(c: &mut Ctx, host: bool) -> R {
    // a port the "host" (the daemon's namespace) listens on: the registry's
    let port = c.e.registry().addr.rsplit(':').next().unwrap().to_owned();
    let ns = json!({"pid": 0, "ipc": 0, "network": if host { 2 } else { 0 }});
    let (pod, p, dir) = c.pod_with_logs(json!({"linux": {"security_context": {"namespace_options": ns.clone()}}}))?;
    let mut cfg = c.container_config(
        "hostnet",
        &c.busybox(),
        &["sh", "-c", "netstat -ln"],
        json!({"linux": {"security_context": {"namespace_options": ns}}}),
    );
    let log = format!("{}.log", cfg["metadata"]["name"].as_str().unwrap());
    cfg["log_path"] = json!(log);
    let id = c.create(&pod, &p, &cfg)?;
    c.start(&id)?;
    c.wait_state(&id, "CONTAINER_EXITED")?;
    let lines = c.log_lines(&dir.join(&log));
    ensure!(!lines.is_empty(), "no netstat output");
    let seen = lines.iter().any(|(_, l)| l.contains(&format!(":{port} ")));
    ensure!(seen == host, "host port {port} seen: {seen}: {lines:?}");
    Ok(())
}

pub fn host_network_true(c: &mut Ctx) -> R {
    host_network(c, true)
}

pub fn host_network_false(c: &mut Ctx) -> R {
    host_network(c, false)
}

// ---- bucket ------------------------------------------------------------------------

/// A default pod and a running busybox `sh -c top` with `sc` as its security context.
fn sc_container(c: &mut Ctx, sc: Value) -> R<String> {
    let (pod, p) = c.default_pod()?;
    let cfg = c.container_config("sc", &c.busybox(), &["sh", "-c", "top"], json!({"linux": {"security_context": sc}}));
    let id = c.create(&pod, &p, &cfg)?;
    c.start_running(&id)?;
    Ok(id)
}

pub fn supplemental_groups(c: &mut Ctx) -> R {
    let id = sc_container(c, json!({"supplemental_groups": [1234, 5678]}))?;
    let out = c.exec_ok(&id, &["id", "-G"])?;
    let g: Vec<&str> = out.split_whitespace().collect();
    ensure!(g.contains(&"1234") && g.contains(&"5678"), "id -G: {out:?}");
    Ok(())
}

pub fn run_as_user(c: &mut Ctx) -> R {
    let id = sc_container(c, json!({"run_as_user": {"value": 1001}}))?;
    let out = c.exec_ok(&id, &["id", "-u"])?;
    ensure!(out == "1001\n", "{out:?}");
    Ok(())
}

pub fn run_as_username(c: &mut Ctx) -> R {
    let id = sc_container(c, json!({"run_as_username": "nobody"}))?;
    let out = c.exec_ok(&id, &["id", "-nu"])?;
    ensure!(out == "nobody\n", "{out:?}");
    Ok(())
}

/// A container with a log in a pod with a log directory, run to its end; the log file.
fn logged_run(c: &mut Ctx, image: &str, command: &[&str], extra: Value) -> R<std::path::PathBuf> {
    let (pod, p, dir) = c.pod_with_logs(json!({}))?;
    let mut cfg = c.container_config("logged", image, command, extra);
    let log = format!("{}.log", cfg["metadata"]["name"].as_str().unwrap());
    cfg["log_path"] = json!(log);
    let id = c.create(&pod, &p, &cfg)?;
    c.start(&id)?;
    c.wait_state(&id, "CONTAINER_EXITED")?;
    Ok(dir.join(log))
}

pub fn run_as_group(c: &mut Ctx) -> R {
    let sc = json!({"linux": {"security_context": {"run_as_user": {"value": 1001}, "run_as_group": {"value": 1002}}}});
    let log = logged_run(c, &c.busybox(), &["sh", "-c", "echo $(id -u):$(id -g)"], sc)?;
    c.expect_log(&log, "stdout", "1001:1002")
}

pub fn run_as_group_without_user(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let cfg = c.container_config(
        "badgroup",
        &c.busybox(),
        &["sh", "-c", "echo $(id -u):$(id -g)"],
        json!({"linux": {"security_context": {"run_as_group": {"value": 1002}}}}),
    );
    c.create_fails(&pod, &p, &cfg).map(|_| ())
}

fn readonly_rootfs(c: &mut Ctx, ro: bool) -> R {
    let sc = json!({"linux": {"security_context": {"readonly_rootfs": ro}}});
    let log = logged_run(c, &c.busybox(), &["sh", "-c", "touch test.go && [ -f test.go ] && echo 'Found'"], sc)?;
    if ro {
        c.expect_log(&log, "stderr", "touch: test.go: Read-only file system")
    } else {
        c.expect_log(&log, "stdout", "Found")
    }
}

pub fn readonly_rootfs_false(c: &mut Ctx) -> R {
    readonly_rootfs(c, false)
}

pub fn readonly_rootfs_true(c: &mut Ctx) -> R {
    readonly_rootfs(c, true)
}

/// critest's checkNetworkManagement: `brctl addbr foobar` works or not.
fn net_admin(c: &Ctx, id: &str, allowed: bool) -> R {
    let o = c.exec(id, &["brctl", "addbr", "foobar"]);
    ensure!((o.code == 0) == allowed, "brctl addbr: rc={} {}", o.code, o.stderr.trim());
    Ok(())
}

fn privileged(c: &mut Ctx, on: bool) -> R {
    let cfg = c.pod_config("priv", json!({"linux": {"security_context": {"privileged": on}}}));
    let (pod, p) = c.run_pod(&cfg)?;
    let ccfg = c.container_config(
        "priv",
        &c.busybox(),
        &["sh", "-c", "top"],
        json!({"linux": {"security_context": {"privileged": on}}}),
    );
    let id = c.create(&pod, &p, &ccfg)?;
    c.start_running(&id)?;
    net_admin(c, &id, on)
}

pub fn privileged_true(c: &mut Ctx) -> R {
    privileged(c, true)
}

pub fn privileged_false(c: &mut Ctx) -> R {
    privileged(c, false)
}

pub fn add_capability(c: &mut Ctx) -> R {
    let id = sc_container(c, json!({"capabilities": {"add_capabilities": ["NET_ADMIN"]}}))?;
    net_admin(c, &id, true)?;
    let plain = sc_container(c, json!({}))?;
    net_admin(c, &plain, false)
}

pub fn drop_capability(c: &mut Ctx) -> R {
    let id = sc_container(c, json!({"capabilities": {"drop_capabilities": ["NET_RAW"]}}))?;
    // (crictl prints no stdout for a failing ExecSync: the shell reports for ping)
    let out = c.exec_ok(&id, &["sh", "-c", "ping -c 1 -W 1 127.0.0.1 2>&1; echo rc=$?"])?;
    ensure!(out.to_lowercase().contains("permission denied") && !out.contains("rc=0"), "{out:?}");
    Ok(())
}

fn cap_bnd(c: &Ctx, id: &str) -> R<String> {
    let out = c.exec_ok(id, &["cat", "/proc/self/status"])?;
    Ok(out.lines().find_map(|l| l.strip_prefix("CapBnd:")).unwrap_or("").trim().to_owned())
}

pub fn add_all_capabilities(c: &mut Ctx) -> R {
    let id = sc_container(c, json!({"capabilities": {"add_capabilities": ["ALL"]}}))?;
    let b = cap_bnd(c, &id)?;
    ensure!(!b.is_empty() && b != "0000000000000000", "CapBnd {b}");
    Ok(())
}

pub fn drop_all_capabilities(c: &mut Ctx) -> R {
    let id = sc_container(c, json!({"capabilities": {"drop_capabilities": ["ALL"]}}))?;
    let b = cap_bnd(c, &id)?;
    ensure!(b == "0000000000000000", "CapBnd {b}");
    Ok(())
}

/// (Debian's busybox sh runs `ls` as a built-in applet: the path is named to exec it)
pub fn masked_paths(c: &mut Ctx) -> R {
    let id = sc_container(c, json!({"masked_paths": ["/bin/ls"]}))?;
    let o = c.exec(&id, &["/bin/sh", "-c", "/bin/ls"]);
    ensure!(o.code != 0 && o.stderr.contains("/bin/sh: /bin/ls: Permission denied"), "{o:?}");
    Ok(())
}

pub fn readonly_paths(c: &mut Ctx) -> R {
    let id = sc_container(c, json!({"readonly_paths": ["/tmp"]}))?;
    let o = c.exec(&id, &["touch", "/tmp/test"]);
    ensure!(o.code != 0 && o.stderr.contains("touch: /tmp/test: Read-only file system"), "{o:?}");
    Ok(())
}

// ---- seccomp -----------------------------------------------------------------------

const BLOCK_HOSTNAME: &str =
    r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}"#;
const BLOCK_CHMOD: &str = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO"}]}"#;

/// Writes a profile in a temp dir of the spec; its path.
fn profile(c: &mut Ctx, text: &str) -> String {
    let d = c.host_dir("seccomp");
    let p = d.join("profile.json");
    fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// How a security context names a profile: the deprecated `seccomp_profile_path`
/// string, or the `seccomp` SecurityProfile.
#[derive(Clone, Copy)]
pub enum Field {
    Path,
    Profile,
}

/// `kind`: "unconfined", "default" (docker/default, RuntimeDefault), "localhost"
/// (with `path`), "" (unset), "bare" (a path without localhost/: must fail).
fn seccomp_sc(field: Field, kind: &str, path: &str) -> Value {
    match field {
        Field::Path => {
            let v = match kind {
                "unconfined" => "unconfined".to_owned(),
                "default" => "docker/default".to_owned(),
                "localhost" => format!("localhost/{path}"),
                "bare" => path.to_owned(),
                _ => String::new(),
            };
            json!({"seccomp_profile_path": v})
        }
        Field::Profile => match kind {
            "unconfined" => json!({"seccomp": {"profile_type": 1}}),
            "default" => json!({"seccomp": {"profile_type": 0}}),
            "localhost" => json!({"seccomp": {"profile_type": 2, "localhost_ref": path}}),
            _ => json!({}),
        },
    }
}

/// seccompTestContainer: pod and container with the profile; the container id.
fn seccomp_container(c: &mut Ctx, field: Field, kind: &str, path: &str) -> R<String> {
    let sc = seccomp_sc(field, kind, path);
    let cfg = c.pod_config("seccomp", json!({"linux": {"security_context": sc.clone()}}));
    let (pod, p) = c.run_pod(&cfg)?;
    let ccfg =
        c.container_config("seccomp", &c.busybox(), &["sh", "-c", "top"], json!({"linux": {"security_context": sc}}));
    let id = c.create(&pod, &p, &ccfg)?;
    c.start_running(&id)?;
    Ok(id)
}

fn seccomp_mode(c: &Ctx, id: &str) -> R<String> {
    let out = c.exec_ok(id, &["grep", "Seccomp:", "/proc/self/status"])?;
    Ok(out.split_whitespace().nth(1).unwrap_or("").to_owned())
}

pub fn seccomp_mode_is(c: &mut Ctx, field: Field, kind: &str, want: &str) -> R {
    let id = seccomp_container(c, field, kind, "")?;
    let m = seccomp_mode(c, &id)?;
    ensure!(m == want, "Seccomp: {m} (want {want})");
    Ok(())
}

pub fn seccomp_localhost(c: &mut Ctx, field: Field) -> R {
    let path = profile(c, BLOCK_CHMOD);
    let id = seccomp_container(c, field, "localhost", &path)?;
    let o = c.exec(&id, &["chmod", "400", "/"]);
    ensure!(o.code != 0 && o.stderr.contains("Operation not permitted"), "{o:?}");
    Ok(())
}

/// createSeccompContainer + checkSetHostname.
fn sethostname(
    c: &mut Ctx,
    field: Field,
    kind: &str,
    blocking: bool,
    caps: &[&str],
    privileged: bool,
    allowed: bool,
) -> R {
    let path = if blocking { profile(c, BLOCK_HOSTNAME) } else { String::new() };
    let cfg = c.pod_config("sethost", json!({"linux": {"security_context": {"privileged": privileged}}}));
    let (pod, p) = c.run_pod(&cfg)?;
    let mut sc = seccomp_sc(field, kind, &path);
    sc["privileged"] = json!(privileged);
    sc["capabilities"] = json!({"add_capabilities": caps});
    let ccfg =
        c.container_config("sethost", &c.busybox(), &["sleep", "60"], json!({"linux": {"security_context": sc}}));
    let id = c.create(&pod, &p, &ccfg)?;
    c.start_running(&id)?;
    let o = c.exec(&id, &["hostname", "ANewHostName"]);
    ensure!((o.code == 0) == allowed, "hostname ANewHostName: rc={} {}", o.code, o.stderr.trim());
    Ok(())
}

pub fn unconfined_sys_admin_sets_hostname(c: &mut Ctx, field: Field) -> R {
    sethostname(c, field, "unconfined", false, &["SYS_ADMIN"], false, true)
}

pub fn profile_blocks_hostname(c: &mut Ctx, field: Field) -> R {
    sethostname(c, field, "localhost", true, &["SYS_ADMIN"], false, false)
}

pub fn privileged_ignores_profile(c: &mut Ctx, field: Field) -> R {
    sethostname(c, field, "localhost", true, &[], true, true)
}

pub fn default_sys_admin_sets_hostname(c: &mut Ctx) -> R {
    sethostname(c, Field::Path, "default", false, &["SYS_ADMIN"], false, true)
}

pub fn default_blocks_hostname(c: &mut Ctx) -> R {
    sethostname(c, Field::Path, "default", false, &[], false, false)
}

pub fn profile_without_localhost_prefix(c: &mut Ctx) -> R {
    let path = profile(c, BLOCK_HOSTNAME);
    let (pod, p) = c.default_pod()?;
    let sc = seccomp_sc(Field::Path, "bare", &path);
    let ccfg = c.container_config("bare", &c.busybox(), &["sleep", "60"], json!({"linux": {"security_context": sc}}));
    c.create_fails(&pod, &p, &ccfg).map(|_| ())
}

// ---- NoNewPrivs --------------------------------------------------------------------

fn no_new_privs(c: &mut Ctx, on: bool, want: &str) -> R {
    let sc = json!({"linux": {"security_context": {"no_new_privs": on, "run_as_user": {"value": 1000}}}});
    let log = logged_run(c, &c.image("nonewprivs:1"), &[], sc)?;
    c.expect_log(&log, "stdout", want)
}

pub fn no_new_privs_true(c: &mut Ctx) -> R {
    no_new_privs(c, true, "Effective uid: 1000")
}

pub fn no_new_privs_false(c: &mut Ctx) -> R {
    no_new_privs(c, false, "Effective uid: 0")
}

// ---- Container Mount Propagation -----------------------------------------------------

fn propagation(c: &mut Ctx, mode: u8) -> R {
    let cfg = c.pod_config("prop", json!({"linux": {"security_context": {"privileged": true}}}));
    let (pod, p) = c.run_pod(&cfg)?;
    let host = c.host_dir("prop");
    let src = host.join("mnt");
    let point = src.join("propagationMnt");
    let flagdir = host.join("propagationSrcDir");
    fs::create_dir_all(&point).unwrap();
    fs::create_dir_all(&flagdir).unwrap();
    fs::write(flagdir.join("flagFile"), "").unwrap();
    c.mount(&src, &src, "bind", libc::MS_BIND | libc::MS_REC)?;
    let prop = if mode == 0 { libc::MS_PRIVATE } else { libc::MS_SHARED };
    c.mount(Path::new("none"), &src, "", prop | libc::MS_REC)?;
    let s = src.display().to_string();
    let ccfg = c.container_config(
        "prop",
        &c.busybox(),
        &["sh", "-c", "top"],
        json!({"linux": {"security_context": {"privileged": true}},
               "mounts": [{"host_path": s, "container_path": s, "propagation": mode}]}),
    );
    let id = c.create(&pod, &p, &ccfg)?;
    let st = c.status(&id)?;
    let m = &st["mounts"][0];
    let want = ["PROPAGATION_PRIVATE", "PROPAGATION_HOST_TO_CONTAINER", "PROPAGATION_BIDIRECTIONAL"][mode as usize];
    ensure!(m["containerPath"] == s.as_str() && m["hostPath"] == s.as_str(), "status mounts {}", st["mounts"]);
    ensure!(m["readonly"] != true && m["propagation"] == want, "status mount {m}");
    c.start_running(&id)?;
    c.mount(&flagdir, &point, "bind", libc::MS_BIND | libc::MS_REC)?;
    let out = c.exec_ok(&id, &["ls", "-A", &point.display().to_string()])?;
    ensure!(out.is_empty() == (mode == 0), "host mount seen in the container: {out:?}");
    let inner = src.join("containerMntPoint");
    let inner_s = inner.display().to_string();
    c.exec_ok(&id, &["sh", "-c", &format!("mkdir -p {inner_s}")])?;
    c.exec_ok(&id, &["sh", "-c", &format!("mount --bind /etc {inner_s}")])?;
    let seen = fs::read_dir(&inner).map(|d| d.count()).unwrap_or(0) > 0;
    c.track_mount(&inner);
    ensure!(seen == (mode == 2), "container mount seen on the host: {seen}");
    Ok(())
}

pub fn propagation_private(c: &mut Ctx) -> R {
    propagation(c, 0)
}

pub fn propagation_bidirectional(c: &mut Ctx) -> R {
    propagation(c, 2)
}

pub fn propagation_host_to_container(c: &mut Ctx) -> R {
    propagation(c, 1)
}

// ---- Container OOM -----------------------------------------------------------------

pub fn oom_killed(c: &mut Ctx) -> R {
    let cfg = c.pod_config("oom", json!({"linux": {"security_context": {"privileged": true}}}));
    let (pod, p) = c.run_pod(&cfg)?;
    let ccfg = c.container_config(
        "oom",
        &c.busybox(),
        &["sh", "-c", "dd if=/dev/zero of=/dev/null bs=20M"],
        json!({"linux": {"resources": {"memory_limit_in_bytes": 15728640, "memory_swap_limit_in_bytes": 15728640}}}),
    );
    let id = c.create(&pod, &p, &ccfg)?;
    c.start(&id)?;
    c.wait_state(&id, "CONTAINER_EXITED")?;
    let st = c.status(&id)?;
    ensure!(st["exitCode"] == 137 && st["reason"] == "OOMKilled", "exit {} reason {}", st["exitCode"], st["reason"]);
    Ok(())
}
