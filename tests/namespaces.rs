//! Linux namespaces: creating each type, user-namespace id mapping, and
//! joining another container's namespaces by path.

mod common;

use common::{add_ns, Bundle, Rt};
use serde_json::json;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// Runs `sh -c script` in a fresh container and returns its stdout.
fn run_sh(b: Bundle) -> String {
    let rt = Rt::new();
    rt.run(&b).ok().stdout
}

/// The namespace inode link (`net:[4026...]`) of the calling test process.
fn host_ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}")).unwrap().to_string_lossy().into_owned()
}

/// For every namespace in the default spec (plus cgroup), the container's
/// `/proc/self/ns/<kind>` differs from the host's: the runtime unshared it.
#[test]
fn each_configured_namespace_is_new() {
    if !common::require_root() {
        return;
    }
    let kinds = ["pid", "mnt", "net", "ipc", "uts", "cgroup"];
    let script: String = kinds.iter().map(|k| format!("readlink /proc/self/ns/{k}; ")).collect();
    let b = Bundle::sh("ns-all", &script).edit(|c| add_ns(c, json!({"type": "cgroup"})));
    let out = run_sh(b);
    let inside: Vec<&str> = out.lines().collect();
    assert_eq!(inside.len(), kinds.len(), "{out}");
    for (k, link) in kinds.iter().zip(inside) {
        assert!(link.starts_with(&format!("{k}:[")), "{link}");
        assert_ne!(link, host_ns(k), "{k} namespace is the host's");
    }
}

/// A namespace type left out of the spec is shared with the runtime's caller.
#[test]
fn omitted_namespace_is_shared_with_host() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("ns-omit", "readlink /proc/self/ns/net")
        .edit(|c| c["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "network"));
    assert_eq!(run_sh(b).trim(), host_ns("net"));
}

#[test]
fn pid_namespace_makes_process_pid_1() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("ns-pid", "echo $$; ls -d /proc/[0-9]* | wc -l");
    let out = run_sh(b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1");
    // Only the shell and `ls` are visible in the new pid namespace's /proc
    // (`wc` runs in a pipeline too, so allow up to 3).
    let n: usize = lines[1].trim().parse().unwrap();
    assert!((1..=3).contains(&n), "{out}");
}

#[test]
fn mount_namespace_isolates_mounts() {
    if !common::require_root() {
        return;
    }
    // A tmpfs mounted inside must not appear on the host.
    let b = Bundle::sh(
        "ns-mnt",
        "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && grep -c ' /tmp/m ' /proc/self/mountinfo",
    )
    .edit(|c| common::add_caps(c, &["CAP_SYS_ADMIN"]));
    let rootfs = b.rootfs();
    assert_eq!(run_sh(b).trim(), "1");
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(rootfs.to_str().unwrap()), "{mi}");
}

#[test]
fn network_namespace_has_only_loopback_and_it_is_up() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("ns-net", "ls /sys/class/net; ip link show lo");
    let out = run_sh(b);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("lo"), "{out}");
    let lo = lines.next().unwrap_or("");
    assert!(lo.contains("lo:"), "{out}");
    // Flags look like <LOOPBACK,UP,LOWER_UP>: the runtime brought lo up.
    let flags = lo.split(['<', '>']).nth(1).unwrap_or("");
    assert!(flags.split(',').any(|f| f == "UP"), "lo is down: {out}");
}

/// A System V shared memory segment created on the host is invisible in a
/// new IPC namespace.
#[test]
fn ipc_namespace_hides_host_sysv_objects() {
    if !common::require_root() {
        return;
    }
    let key: libc::key_t = 0x4341_0000 | (std::process::id() as libc::key_t & 0xffff);
    // SAFETY: shmget takes integer arguments only.
    let shmid = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o600) };
    assert!(shmid >= 0, "shmget: {}", std::io::Error::last_os_error());
    struct Rm(i32);
    impl Drop for Rm {
        fn drop(&mut self) {
            // SAFETY: IPC_RMID of the segment created above; the null buf is allowed for IPC_RMID.
            unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
    let _rm = Rm(shmid);
    let has_key = |table: &str| table.lines().skip(1).any(|l| l.split_whitespace().next() == Some(&key.to_string()));
    assert!(has_key(&fs::read_to_string("/proc/sysvipc/shm").unwrap()));
    let inside = run_sh(Bundle::sh("ns-ipc", "cat /proc/sysvipc/shm"));
    assert!(!has_key(&inside), "host segment visible inside: {inside}");
}

#[test]
fn uts_namespace_sets_spec_hostname() {
    if !common::require_root() {
        return;
    }
    let before = host("hostname");
    let b =
        Bundle::sh("ns-uts", "hostname; cat /proc/sys/kernel/hostname").edit(|c| c["hostname"] = json!("capsa-uts"));
    assert_eq!(run_sh(b), "capsa-uts\ncapsa-uts\n");
    assert_eq!(host("hostname"), before, "host hostname changed");
}

fn host(prog: &str) -> String {
    common::host(prog, &[]).ok().stdout
}

#[test]
fn cgroup_namespace_roots_proc_self_cgroup() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("ns-cgroup", "cat /proc/self/cgroup").edit(|c| add_ns(c, json!({"type": "cgroup"})));
    let out = run_sh(b);
    assert!(!out.is_empty());
    for line in out.lines() {
        // hierarchy-id:controllers:path — the container's cgroup is its root.
        assert!(line.ends_with(":/"), "{out}");
    }
}

#[test]
fn without_cgroup_namespace_proc_self_cgroup_shows_full_path() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("ns-nocgroup", "cat /proc/self/cgroup");
    let want = format!(":/{}/{}", common::CGROUP_PARENT, b.id);
    let out = run_sh(b);
    assert!(out.lines().any(|l| l.ends_with(&want)), "{out}");
}

#[test]
fn user_namespace_maps_root_to_host_100000() {
    if !common::require_root() {
        return;
    }
    let host = common::host_dir();
    let b = Bundle::sh("ns-user", "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /h/created")
        .edit(|c| {
            add_ns(c, json!({"type": "user"}));
            let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["uidMappings"] = map.clone();
            c["linux"]["gidMappings"] = map;
        })
        .bind(host.path(), "/h", &[]);
    // The runtime creates mount points as the mapped root, so it must own the rootfs.
    common::host("chown", &["-hR", "100000:100000", b.rootfs().to_str().unwrap()]).ok();
    let out = run_sh(b);
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[1], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[2], ["0"], "{out}");
    let md = fs::metadata(host.path().join("created")).unwrap();
    assert_eq!((md.uid(), md.gid()), (100000, 100000));
}

/// Bind sources below a 0700 root-owned directory work in a user namespace: the
/// runtime opens them with its own credentials before the init enters the user
/// namespace, as runc does (the mapped root could not traverse the directory).
#[test]
fn user_namespace_binds_sources_below_0700_dirs() {
    if !common::require_root() {
        return;
    }
    let private = tempfile::Builder::new().prefix("capsa-0700-").tempdir().unwrap();
    fs::set_permissions(private.path(), fs::Permissions::from_mode(0o700)).unwrap();
    fs::create_dir(private.path().join("dir")).unwrap();
    fs::write(private.path().join("dir/f"), "in-dir\n").unwrap();
    fs::write(private.path().join("file"), "a-file\n").unwrap();
    let b = Bundle::sh("ns-user-0700", "cat /d/f /f; touch /d/x 2>/dev/null || echo ro")
        .edit(|c| {
            add_ns(c, json!({"type": "user"}));
            let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["uidMappings"] = map.clone();
            c["linux"]["gidMappings"] = map;
        })
        .bind(&private.path().join("dir"), "/d", &["ro"])
        .mount(json!({"destination": "/f", "type": "bind",
                      "source": private.path().join("file").to_str().unwrap(), "options": ["bind"]}));
    common::host("chown", &["-hR", "100000:100000", b.rootfs().to_str().unwrap()]).ok();
    assert_eq!(run_sh(b), "in-dir\na-file\nro\n");
}

/// The same in a user namespace: a missing source is still an error naming it.
#[test]
fn user_namespace_missing_bind_source_is_an_error() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("ns-user-nosrc", &["true"])
        .edit(|c| {
            add_ns(c, json!({"type": "user"}));
            let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["uidMappings"] = map.clone();
            c["linux"]["gidMappings"] = map;
        })
        .mount(json!({"destination": "/x", "type": "bind", "source": "/nonexistent/capsa-src", "options": ["bind"]}));
    common::host("chown", &["-hR", "100000:100000", b.rootfs().to_str().unwrap()]).ok();
    let (out, _c) = rt.try_create(&b, &[]);
    let out = out.failed();
    assert!(out.stderr.contains("/nonexistent/capsa-src"), "{out:?}");
    common::assert_no_leftovers(&rt, &b);
}

/// A bundle without a mount namespace (nor masked or read-only paths), running `args`.
fn no_mount_ns(prefix: &str, args: &[&str]) -> Bundle {
    Bundle::new(prefix, args).edit(|c| {
        common::without_ns(c, "mount");
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
    })
}

/// Without a mount namespace the container shares the runtime's (the spec allows it;
/// runc runs it): the spec's mounts are made there and the process is chrooted into
/// the rootfs. Unlike runc, delete removes those mounts again.
#[test]
fn no_mount_namespace_chroots_into_the_rootfs() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::sh("ns-nomnt", "ls /marker; readlink /proc/self/ns/mnt; grep -c ' /proc ' /proc/self/mountinfo")
        .edit(|c| {
            common::without_ns(c, "mount");
            c["linux"]["maskedPaths"] = json!([]);
            c["linux"]["readonlyPaths"] = json!([]);
        });
    fs::write(b.rootfs().join("marker"), "").unwrap();
    let _detach = common::UnmountAt(b.rootfs());
    let out = rt.run(&b).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "/marker", "{out}");
    assert_eq!(lines[1], host_ns("mnt"), "{out}");
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(b.path_str()), "mounts left on the host: {mi}");
}

/// Without a mount namespace, masked and read-only paths cannot be applied (they
/// would change the host): refused up front, with runc's message.
#[test]
fn no_mount_namespace_refuses_masked_paths() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("ns-nomnt-mask", &["true"]).edit(|c| common::without_ns(c, "mount"));
    let (out, _c) = rt.try_create(&b, &[]);
    let out = out.failed();
    assert!(out.stderr.contains("unable to restrict sys entries without a private MNT namespace"), "{out:?}");
    common::assert_no_leftovers(&rt, &b);
}

/// A create without a mount namespace that fails after some mounts were made in the
/// runtime's namespace leaves none of them behind.
#[test]
fn no_mount_namespace_failed_create_leaves_no_mounts() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = no_mount_ns("ns-nomnt-fail", &["true"])
        .mount(json!({"destination": "/x", "type": "bind", "source": "/nonexistent/capsa-src", "options": ["bind"]}));
    let _detach = common::UnmountAt(b.rootfs());
    let (out, _c) = rt.try_create(&b, &[]);
    out.failed();
    common::assert_no_leftovers(&rt, &b);
}

fn mounts_at(p: &std::path::Path) -> usize {
    fs::read_to_string("/proc/self/mountinfo").unwrap().matches(&format!(" {} ", p.display())).count()
}

/// Without a mount namespace `delete` detaches only what the container mounted: a
/// mount that has taken the place of its rootfs bind since (the bind detached by
/// someone, another mount made there) is left alone.
#[test]
fn no_mount_namespace_delete_leaves_other_mounts_alone() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let b = no_mount_ns("ns-nomnt-other", &["sleep", "30"]);
    let rootfs = b.rootfs();
    let _detach = common::UnmountAt(rootfs.clone());
    let _c = rt.create(&b);
    let r = rootfs.to_str().unwrap();
    common::host("umount", &["-l", r]).ok();
    common::host("mount", &["-t", "tmpfs", "capsa-test-other", r]).ok();
    rt.cmd(&["delete", "--force", &b.id]).ok();
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(mi.contains(&format!(" {r} rw,relatime - tmpfs capsa-test-other ")), "the other mount went: {mi}");
    assert_eq!(mounts_at(&rootfs), 1, "{mi}");
}

/// A mount over "/" of a container without a mount namespace stacks on its rootfs
/// bind in the runtime's namespace: `delete` detaches both (runc leaves its mounts).
#[test]
fn no_mount_namespace_mount_over_root_is_removed() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let rt = Rt::new();
    let b = no_mount_ns("ns-nomnt-over", &["sleep", "30"]);
    let rootfs = b.rootfs();
    let b = b.mount(json!({"destination": "/", "type": "bind", "source": rootfs, "options": ["bind"]}));
    let _detach = common::UnmountAt(rootfs.clone());
    let _c = rt.create(&b);
    assert_eq!(mounts_at(&rootfs), 2, "the rootfs bind and the mount over /");
    rt.cmd(&["delete", "--force", &b.id]).ok();
    assert_eq!(mounts_at(&rootfs), 0);
}

/// Container B joins A's network, IPC and UTS namespaces by path: it sees
/// A's hostname and can connect to A's listening socket on 127.0.0.1.
#[test]
fn join_namespaces_by_path() {
    if !common::require_root() {
        return;
    }
    let rt = Rt::new();
    let host = common::host_dir();
    // The listener's stdin stays open (a pipe from sleep): busybox nc -l with an
    // empty stdin may close the connection before it reads what B sent.
    let a = Bundle::sh("join-a", "sleep 30 | nc -l -p 9000 > /h/got; sleep 30")
        .edit(|c| c["hostname"] = json!("capsa-a"))
        .bind(host.path(), "/h", &[]);
    let _ca = rt.start_new(&a);
    let pid_a = rt.pid(&a.id);

    let b = Bundle::sh(
        "join-b",
        "hostname; for n in net ipc uts; do readlink /proc/self/ns/$n; done; \
         for i in $(seq 100); do echo ping | nc 127.0.0.1 9000 && exit 0; sleep 0.1; done; exit 9",
    )
    .edit(|c| {
        // A joined UTS namespace keeps its owner's hostname.
        c.as_object_mut().unwrap().remove("hostname");
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            let ty = n["type"].as_str().unwrap().to_string();
            let file = match ty.as_str() {
                "network" => "net",
                "ipc" | "uts" => &ty,
                _ => continue,
            };
            n["path"] = json!(format!("/proc/{pid_a}/ns/{file}"));
        }
    });
    let out = rt.run(&b).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "capsa-a", "{out}");
    let ns_a = |k: &str| fs::read_link(format!("/proc/{pid_a}/ns/{k}")).unwrap().to_string_lossy().into_owned();
    assert_eq!(lines[1], ns_a("net"));
    assert_eq!(lines[2], ns_a("ipc"));
    assert_eq!(lines[3], ns_a("uts"));
    assert!(common::wait_until(std::time::Duration::from_secs(5), || {
        fs::read_to_string(host.path().join("got")).unwrap_or_default() == "ping\n"
    }));
}
