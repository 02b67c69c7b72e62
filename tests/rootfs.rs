//! Root filesystem setup: read-only root, spec mounts and their flags,
//! propagation, /dev population, masked and read-only paths, hostname,
//! domainname and sysctls.

mod common;

use common::{Bundle, Rt};
use serde_json::json;
use std::fs;
use std::path::Path;
use std::process::Command;

/// Runs the bundle to completion, returning stdout (must exit 0).
fn run(b: &Bundle) -> String {
    Rt::new().run(b).ok().stdout
}

/// Options (4th field) of the last /proc/mounts entry mounted at `target`.
fn mount_opts(proc_mounts: &str, target: &str) -> Vec<String> {
    proc_mounts
        .lines()
        .rev()
        .find(|l| l.split_whitespace().nth(1) == Some(target))
        .unwrap_or_else(|| panic!("{target} not mounted:\n{proc_mounts}"))
        .split_whitespace()
        .nth(3)
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect()
}

fn has(opts: &[String], o: &str) -> bool {
    opts.iter().any(|x| x == o)
}

/// Prints "ok" or "fail" for a shell command inside the container.
fn probe(cmd: &str) -> String {
    format!("if {cmd} 2>/dev/null; then echo ok; else echo fail; fi; ")
}

#[test]
fn readonly_root_rejects_writes() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("ro-root", &format!("{}cat /proc/mounts", probe("touch /probe")))
        .edit(|c| c["root"]["readonly"] = json!(true));
    let out = run(&b);
    assert!(out.starts_with("fail\n"), "{out}");
    assert!(has(&mount_opts(&out, "/"), "ro"), "{out}");
}

#[test]
fn writable_root_accepts_writes() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("rw-root", &probe("touch /probe"));
    let rootfs = b.rootfs();
    assert_eq!(run(&b), "ok\n");
    assert!(rootfs.join("probe").exists());
}

/// tmpfs honours size=: the kernel refuses writes beyond it (ENOSPC).
#[test]
fn tmpfs_mount_with_size_limit() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh(
        "tmpfs-size",
        &format!("{}cat /proc/mounts", probe("dd if=/dev/zero of=/mnt/t/f bs=1024 count=2048")),
    )
    .mount(json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
                  "options": ["size=1m", "mode=750"]}));
    let out = run(&b);
    assert!(out.starts_with("fail\n"), "2 MiB fitted into a 1 MiB tmpfs: {out}");
    let opts = mount_opts(&out, "/mnt/t");
    assert!(has(&opts, "size=1024k"), "{opts:?}");
    assert!(has(&opts, "mode=750"), "{opts:?}");
}

#[test]
fn bind_mount_read_only() {
    if !common::require_root() {
        return;
    }
    let host = common::host_dir();
    fs::write(host.path().join("in"), "from-host\n").unwrap();
    let b = Bundle::sh("bind-ro", &format!("cat /h/in; {}", probe("touch /h/new"))).bind(host.path(), "/h", &["ro"]);
    assert_eq!(run(&b), "from-host\nfail\n");
    assert!(!host.path().join("new").exists());
}

#[test]
fn bind_mount_read_write() {
    if !common::require_root() {
        return;
    }
    let host = common::host_dir();
    let b = Bundle::sh("bind-rw", "echo from-container > /h/out").bind(host.path(), "/h", &[]);
    run(&b);
    assert_eq!(fs::read_to_string(host.path().join("out")).unwrap(), "from-container\n");
}

/// nosuid/nodev/noexec end up as mount flags, and noexec really stops exec.
#[test]
fn mount_flags_nosuid_nodev_noexec() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("mnt-flags", &format!("cp /bin/busybox /mnt/x/bb; {}cat /proc/mounts", probe("/mnt/x/bb true")))
        .mount(json!({"destination": "/mnt/x", "type": "tmpfs", "source": "tmpfs",
                  "options": ["nosuid", "nodev", "noexec"]}));
    let out = run(&b);
    assert!(out.starts_with("fail\n"), "exec on noexec mount worked: {out}");
    let opts = mount_opts(&out, "/mnt/x");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(has(&opts, o), "{o} missing: {opts:?}");
    }
}

/// A tmpfs mounted on a host path for the duration of a test.
struct HostMount(std::path::PathBuf);

impl HostMount {
    fn tmpfs(at: &Path) -> HostMount {
        fs::create_dir_all(at).unwrap();
        common::host("mount", &["-t", "tmpfs", "capsa-sub", at.to_str().unwrap()]).ok();
        HostMount(at.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// "rbind" carries submounts of the source along; plain "bind" does not.
#[test]
fn rbind_includes_submounts_bind_does_not() {
    if !common::require_root() {
        return;
    }
    let host = common::host_dir();
    let _sub = HostMount::tmpfs(&host.path().join("sub"));
    fs::write(host.path().join("sub/marker"), "sub\n").unwrap();
    let b = Bundle::sh("rbind", &format!("{}{}", probe("test -f /r/sub/marker"), probe("test -f /b/sub/marker")))
        .bind(host.path(), "/r", &[])
        .mount(json!({"destination": "/b", "type": "bind",
                  "source": host.path().to_str().unwrap(), "options": ["bind"]}));
    assert_eq!(run(&b), "ok\nfail\n");
}

#[test]
fn default_special_mounts() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("special", &format!("{}cat /proc/mounts", probe("touch /sys/probe")));
    let out = run(&b);
    assert!(out.starts_with("fail\n"), "sysfs writable: {out}");
    let mounts: Vec<Vec<&str>> =
        out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).filter(|f| f.len() > 3).collect();
    let fstype = |t: &str| mounts.iter().rev().find(|f| f[1] == t).map(|f| f[2].to_string()).unwrap_or_default();
    assert_eq!(fstype("/proc"), "proc");
    assert_eq!(fstype("/dev"), "tmpfs");
    assert_eq!(fstype("/dev/mqueue"), "mqueue");
    assert_eq!(fstype("/dev/shm"), "tmpfs");
    assert_eq!(fstype("/sys"), "sysfs");
    assert!(has(&mount_opts(&out, "/sys"), "ro"));
    assert_eq!(fstype("/dev/pts"), "devpts");
    let pts = mount_opts(&out, "/dev/pts");
    for o in ["ptmxmode=666", "mode=620", "gid=5", "nosuid", "noexec"] {
        assert!(has(&pts, o), "{o} missing from devpts: {pts:?}");
    }
    // Some cgroup filesystem is mounted at or below /sys/fs/cgroup.
    assert!(
        mounts.iter().any(|f| f[1].starts_with("/sys/fs/cgroup") && f[2].starts_with("cgroup")),
        "no cgroup mount: {out}"
    );
}

/// On a v1 host the container's own memory cgroup is what appears at
/// /sys/fs/cgroup/memory (read-only).
#[test]
fn cgroup_mount_shows_container_cgroup() {
    if !common::require_root() {
        return;
    }
    if !Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        eprintln!("skipping: no cgroup v1 memory controller");
        return;
    }
    let b = Bundle::sh(
        "cg-mount",
        &format!("cat /sys/fs/cgroup/memory/memory.limit_in_bytes; {}", probe("mkdir /sys/fs/cgroup/memory/x")),
    )
    .edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 33554432}));
    assert_eq!(run(&b), "33554432\nfail\n");
}

/// Makes a host directory a shared mount (bind onto itself + make-shared),
/// so propagation into the container can be observed.
fn shared_host_dir(dir: &Path) -> HostMount {
    let p = dir.to_str().unwrap();
    common::host("mount", &["--bind", p, p]).ok();
    let m = HostMount(dir.to_path_buf());
    common::host("mount", &["--make-shared", p]).ok();
    m
}

/// What crossed the boundary between a shared host directory bound at /h
/// and the container.
#[derive(Debug, PartialEq)]
struct Propagation {
    host_to_container: bool,
    container_to_host: bool,
}

/// Binds a shared host dir at /h in a container with the given
/// rootfsPropagation (None = unset), mounts a tmpfs under it from inside the
/// container and another from the host after start, and reports which
/// mount events propagated.
fn propagation(rootfs_propagation: Option<&str>) -> Propagation {
    let rt = Rt::new();
    let host = common::host_dir();
    let _shared = shared_host_dir(host.path());
    fs::create_dir(host.path().join("late")).unwrap();
    fs::create_dir(host.path().join("inner")).unwrap();
    let b = Bundle::sh("propagation", "mount -t tmpfs capsa-inner /h/inner && touch /tmp/mounted; sleep 30")
        .edit(|c| {
            if let Some(p) = rootfs_propagation {
                c["linux"]["rootfsPropagation"] = json!(p);
            }
            common::add_caps(c, &["CAP_SYS_ADMIN"]);
        })
        .bind(host.path(), "/h", &[]);
    let _c = rt.start_new(&b);
    // Unmounts the container's tmpfs on the host too, should it have leaked.
    let _inner = HostMount(host.path().join("inner"));
    assert!(
        common::wait_until(std::time::Duration::from_secs(5), || b.rootfs().join("tmp/mounted").exists()),
        "mount inside the container failed"
    );
    let _late = HostMount::tmpfs(&host.path().join("late"));
    let inside = rt.exec(&b.id, &[], &["cat", "/proc/self/mounts"]).ok().stdout;
    let on_host = fs::read_to_string("/proc/self/mounts").unwrap();
    let inner = host.path().join("inner");
    Propagation {
        host_to_container: inside.lines().any(|l| l.split_whitespace().nth(1) == Some("/h/late")),
        container_to_host: on_host.lines().any(|l| l.split_whitespace().nth(1) == inner.to_str()),
    }
}

/// Unset rootfsPropagation means rslave: host mount events flow into the
/// container, the container's own mounts never reach the host.
#[test]
fn rootfs_propagation_default_is_rslave() {
    if !common::require_root() {
        return;
    }
    assert_eq!(propagation(None), Propagation { host_to_container: true, container_to_host: false });
}

#[test]
fn rootfs_propagation_rslave() {
    if !common::require_root() {
        return;
    }
    assert_eq!(propagation(Some("rslave")), Propagation { host_to_container: true, container_to_host: false });
}

/// rprivate cuts the container's mounts off from the host in both directions.
#[test]
fn rootfs_propagation_rprivate() {
    if !common::require_root() {
        return;
    }
    assert_eq!(propagation(Some("rprivate")), Propagation { host_to_container: false, container_to_host: false });
}

/// The optional fields of the container's / in its mountinfo, with rootfsPropagation `p`.
fn root_propagation(p: &str) -> String {
    let out = run(&Bundle::sh("prop-root", "awk '$5 == \"/\"' /proc/self/mountinfo")
        .edit(|c| c["linux"]["rootfsPropagation"] = json!(p)));
    out.split(" - ").next().unwrap_or("").split(' ').skip(6).collect::<Vec<_>>().join(" ")
}

/// rootfsPropagation "shared" (pivot_root refuses a new root under a shared mount:
/// the rootfs's parent is made private first, as runc does) and "rshared": mount
/// events cross both ways through a shared host directory bound inside, and the
/// container's / is shared (runc 1.1.5 leaves it private; later runc and crun share it).
#[test]
fn rootfs_propagation_shared() {
    if !common::require_root() {
        return;
    }
    for p in ["shared", "rshared"] {
        assert_eq!(propagation(Some(p)), Propagation { host_to_container: true, container_to_host: true }, "{p}");
        if common::is_capsa() {
            assert!(root_propagation(p).starts_with("shared:"), "{p}: {}", root_propagation(p));
        }
    }
}

/// rootfsPropagation "unbindable" and "runbindable" (runc 1.1.5 fails both, crun
/// runs them): the container's / is unbindable. The non-recursive variant changes the
/// root mount only, so a shared host directory bound inside stays a peer of the
/// host's (as with "shared"); the recursive one makes every mount private first.
#[test]
fn rootfs_propagation_unbindable() {
    if !common::require_root() {
        return;
    }
    let both = Propagation { host_to_container: true, container_to_host: true };
    let none = Propagation { host_to_container: false, container_to_host: false };
    for (p, want) in [("unbindable", both), ("runbindable", none)] {
        assert_eq!(propagation(Some(p)), want, "{p}");
        assert_eq!(root_propagation(p), "unbindable", "{p}");
        // With a terminal, /dev/console is bound from an (unbindable) /dev/pts.
        // (`run` with a terminal and no tty on stdin: capsa only; runc wants a tty.)
        if common::is_capsa() {
            let b = Bundle::sh("prop-tty", "tty").edit(|c| {
                c["linux"]["rootfsPropagation"] = json!(p);
                c["process"]["terminal"] = json!(true);
            });
            assert_eq!(run(&b), "/dev/pts/0\r\n", "{p}");
        }
    }
}

/// A read-only /dev is populated first and made read-only last, as runc does: the
/// devices, the /dev symlinks and the /dev/pts, /dev/shm and /dev/mqueue mounts are
/// all there, and /dev itself refuses writes.
#[test]
fn read_only_dev_is_populated_then_made_read_only() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh(
        "dev-ro",
        &format!(
            "{}{}grep -c -E ' /dev/(pts|shm|mqueue) ' /proc/mounts; cat /proc/mounts",
            probe("touch /dev/x"),
            probe("test -c /dev/null -a -c /dev/pts/ptmx -a -L /dev/fd -a -L /dev/ptmx")
        ),
    )
    .edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                m["options"].as_array_mut().unwrap().push(json!("ro"));
            }
        }
    });
    let out = run(&b);
    assert!(out.starts_with("fail\nok\n3\n"), "{out}");
    assert!(has(&mount_opts(&out, "/dev"), "ro"), "{out}");
}

/// readonlyPaths and maskedPaths entries that do not resolve (here a dangling
/// symlink) are skipped, as runc does; the others still apply.
#[test]
fn dangling_protected_paths_are_skipped() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("ro-dangling", &probe("touch /etc/rodir/x")).edit(|c| {
        c["linux"]["readonlyPaths"] = json!(["/etc/dangling", "/etc/rodir"]);
        c["linux"]["maskedPaths"].as_array_mut().unwrap().push(json!("/etc/dangling-too"));
    });
    fs::create_dir(b.rootfs().join("etc/rodir")).unwrap();
    std::os::unix::fs::symlink("/nowhere", b.rootfs().join("etc/dangling")).unwrap();
    std::os::unix::fs::symlink("/nowhere", b.rootfs().join("etc/dangling-too")).unwrap();
    assert_eq!(run(&b), "fail\n");
}

/// The runtime creates the standard character devices with the right numbers.
#[test]
fn default_devices_exist() {
    if !common::require_root() {
        return;
    }
    let devs =
        [("null", "1:3"), ("zero", "1:5"), ("full", "1:7"), ("random", "1:8"), ("urandom", "1:9"), ("tty", "5:0")];
    let script: String = devs.iter().map(|(d, _)| format!("stat -c '%n %F %t:%T %a' /dev/{d}; ")).collect();
    let out = run(&Bundle::sh("devices", &script));
    let lines: Vec<&str> = out.lines().collect();
    for ((d, nums), line) in devs.iter().zip(&lines) {
        // stat %t/%T print major/minor in hex; all of these are < 10.
        assert_eq!(*line, format!("/dev/{d} character special file {nums} 666"), "{out}");
    }
    assert_eq!(lines.len(), devs.len());
}

#[test]
fn default_dev_symlinks() {
    if !common::require_root() {
        return;
    }
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ];
    let script: String = links.iter().map(|(l, _)| format!("readlink /dev/{l}; ")).collect();
    let out = run(&Bundle::sh("dev-links", &script));
    let got: Vec<&str> = out.lines().collect();
    let want: Vec<&str> = links.iter().map(|(_, t)| *t).collect();
    assert_eq!(got, want);
}

/// linux.devices creates a device node with the given type, numbers, mode
/// and owner.
#[test]
fn spec_device_is_created() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("spec-dev", "stat -c '%F %t:%T %a %u:%g' /dev/fuse").edit(|c| {
        c["linux"]["devices"] = json!([{
            "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
            "fileMode": 0o666, "uid": 1000, "gid": 1000
        }]);
    });
    // 10:229 in hex is a:e5.
    assert_eq!(run(&b), "character special file a:e5 666 1000:1000\n");
}

/// A fifo in linux.devices is created as a fifo (and gets no device-cgroup rule).
#[test]
fn spec_fifo_is_created() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("spec-fifo", "stat -c '%F %a' /dev/myfifo").edit(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/myfifo", "type": "p", "fileMode": 0o600}]);
    });
    assert_eq!(run(&b), "fifo 600\n");
}

/// The device cgroup (default deny) blocks opening a node that is not allowed.
#[test]
fn device_cgroup_denies_unlisted_device() {
    if !common::require_root() {
        return;
    }
    // v1: the devices controller; v2: capsa's eBPF device filter.
    // /dev/kmsg (1:11) is created by mknod but not allowed by the cgroup.
    let b = Bundle::sh("dev-deny", &format!("mknod /tmp/kmsg c 1 11; {}", probe("head -c1 /tmp/kmsg")))
        .edit(|c| common::add_caps(c, &["CAP_MKNOD"]));
    assert_eq!(run(&b), "fail\n");
}

/// maskedPaths: files read as empty (bound over by /dev/null), directories
/// are empty (read-only tmpfs), paths that do not exist are ignored.
#[test]
fn masked_paths() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh(
        "masked",
        &format!(
            "wc -c < /etc/secret; ls -A /etc/secretdir | wc -l; wc -c < /proc/keys; \
             ls -A /proc/acpi | wc -l; {}",
            probe("touch /etc/secretdir/x")
        ),
    )
    .edit(|c| {
        let m = c["linux"]["maskedPaths"].as_array_mut().unwrap();
        m.push(json!("/etc/secret"));
        m.push(json!("/etc/secretdir"));
        m.push(json!("/no/such/path"));
    });
    fs::write(b.rootfs().join("etc/secret"), "top secret\n").unwrap();
    fs::create_dir(b.rootfs().join("etc/secretdir")).unwrap();
    fs::write(b.rootfs().join("etc/secretdir/file"), "x").unwrap();
    let host_has_acpi = Path::new("/proc/acpi").is_dir();
    let out = run(&b);
    let nums: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(nums[0], "0", "masked file readable: {out}");
    assert_eq!(nums[1], "0", "masked dir not empty: {out}");
    assert_eq!(nums[2], "0", "/proc/keys not masked: {out}");
    if host_has_acpi {
        assert_eq!(nums[3], "0", "/proc/acpi not masked: {out}");
    }
    assert_eq!(nums[4], "fail", "masked dir writable: {out}");
}

/// readonlyPaths: /proc/sys and a rootfs path become read-only bind mounts.
#[test]
fn readonly_paths() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh(
        "ro-paths",
        &format!(
            "{}{}{}",
            // The container has its own UTS namespace, so this write would
            // otherwise be harmless and succeed.
            probe("echo x > /proc/sys/kernel/domainname"),
            probe("touch /etc/rodir/x"),
            probe("touch /etc/x")
        ),
    )
    .edit(|c| c["linux"]["readonlyPaths"].as_array_mut().unwrap().push(json!("/etc/rodir")));
    fs::create_dir(b.rootfs().join("etc/rodir")).unwrap();
    assert_eq!(run(&b), "fail\nfail\nok\n");
}

#[test]
fn hostname_from_spec() {
    if !common::require_root() {
        return;
    }
    let b = Bundle::sh("hostname", "hostname").edit(|c| c["hostname"] = json!("capsa-host"));
    assert_eq!(run(&b), "capsa-host\n");
}

/// spec.domainname sets the NIS domain name of the new UTS namespace.
/// capsa-only: runc 1.1.5 ignores spec.domainname (prints "(none)").
#[test]
fn domainname_from_spec() {
    if !common::require_root() || !common::is_capsa() {
        return;
    }
    let b =
        Bundle::sh("domainname", "cat /proc/sys/kernel/domainname").edit(|c| c["domainname"] = json!("capsa.domain"));
    assert_eq!(run(&b), "capsa.domain\n");
}

/// linux.sysctl is applied inside the container's network namespace and
/// leaves the host's value alone.
#[test]
fn sysctl_applies_in_container_netns() {
    if !common::require_root() {
        return;
    }
    let host_before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let b = Bundle::sh("sysctl", "cat /proc/sys/net/ipv4/ip_forward")
        .edit(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"}));
    assert_eq!(run(&b), "1\n");
    assert_eq!(fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(), host_before);
}
