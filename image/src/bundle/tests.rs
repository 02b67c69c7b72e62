use super::*;
use crate::oci::ContainerConfig;

fn image(cc: ContainerConfig) -> ImageConfiguration {
    ImageConfiguration { config: Some(cc), ..Default::default() }
}

fn base() -> Value {
    json!({"process": {"terminal": true, "args": ["sh"], "env": []}, "root": {"path": "rootfs", "readonly": true},
           "mounts": [], "linux": {"resources": {"devices": []}}})
}

fn rootfs() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("etc")).unwrap();
    std::fs::write(
        t.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\nbad line\n",
    )
    .unwrap();
    std::fs::write(t.path().join("etc/group"), "root:x:0:\nwwwg:x:34:\nstaff:x:50:www,other\naudio:x:29:www\n")
        .unwrap();
    t
}

#[test]
fn args_env_cwd() {
    let img = image(ContainerConfig {
        entrypoint: Some(vec!["/ep".into()]),
        cmd: Some(vec!["a".into()]),
        env: Some(vec!["A=1".into(), "PATH=/x".into()]),
        working_dir: Some("/w".into()),
        labels: Some([("l".to_string(), "v".to_string())].into()),
        stop_signal: Some("SIGINT".into()),
        ..Default::default()
    });
    let r = rootfs();
    let o = RunOptions { id: "c1".into(), ..Default::default() };
    let s = make_spec(base(), &img, &o, &[r.path()]).unwrap();
    assert_eq!(s["process"]["args"], json!(["/ep", "a"]));
    assert_eq!(s["process"]["env"], json!(["A=1", "PATH=/x", "HOSTNAME=c1"]));
    assert_eq!(s["process"]["cwd"], "/w");
    assert_eq!(s["process"]["terminal"], false);
    assert_eq!(s["root"]["readonly"], false);
    assert_eq!(s["linux"]["cgroupsPath"], "/capsa/c1");
    assert_eq!(s["annotations"]["l"], "v");
    assert_eq!(s["annotations"][ANNOTATION_STOP_SIGNAL], "SIGINT");
    assert_eq!(s["process"]["user"], json!({"uid": 0, "gid": 0}));

    let o = RunOptions { id: "c1".into(), cmd: vec!["b".into()], env: vec!["A=2".into()], ..Default::default() };
    let s = make_spec(base(), &img, &o, &[r.path()]).unwrap();
    assert_eq!(s["process"]["args"], json!(["/ep", "b"]));
    assert_eq!(s["process"]["env"][2], "A=2");

    let o = RunOptions { id: "c".into(), entrypoint: Some("/bin/x".into()), ..Default::default() };
    assert_eq!(make_spec(base(), &img, &o, &[r.path()]).unwrap()["process"]["args"], json!(["/bin/x"]));
    let o =
        RunOptions { id: "c".into(), entrypoint: Some(String::new()), cmd: vec!["ls".into()], ..Default::default() };
    assert_eq!(make_spec(base(), &img, &o, &[r.path()]).unwrap()["process"]["args"], json!(["ls"]));
    let o = RunOptions { id: "c".into(), entrypoint: Some(String::new()), ..Default::default() };
    assert!(make_spec(base(), &img, &o, &[r.path()]).is_err());

    let plain = image(ContainerConfig { cmd: Some(vec!["sh".into()]), ..Default::default() });
    let o = RunOptions {
        id: "c".into(),
        terminal: true,
        workdir: Some("rel".into()),
        memory: Some(1 << 20),
        cpus: Some(1.5),
        pids_limit: Some(10),
        volumes: vec![Volume::parse("/tmp:/data:ro").unwrap()],
        ..Default::default()
    };
    let s = make_spec(base(), &plain, &o, &[r.path()]).unwrap();
    assert_eq!(s["process"]["env"], json!([DEFAULT_PATH, "HOSTNAME=c", "TERM=xterm"]));
    assert_eq!(s["process"]["cwd"], "/rel");
    assert_eq!(s["linux"]["resources"]["memory"]["limit"], 1 << 20);
    assert_eq!(s["linux"]["resources"]["cpu"], json!({"quota": 150000, "period": 100000}));
    assert_eq!(s["linux"]["resources"]["pids"]["limit"], 10);
    assert_eq!(s["mounts"][0]["options"], json!(["rbind", "rprivate", "ro"]));
    assert!(s.get("annotations").is_none());
}

#[test]
fn seccomp_and_security_opts() {
    let r = rootfs();
    let img = image(ContainerConfig { cmd: Some(vec!["sh".into()]), ..Default::default() });
    let spec = |o: &RunOptions| make_spec(base(), &img, o, &[r.path()]).unwrap();
    let mut o = RunOptions { id: "c".into(), ..Default::default() };
    let s = spec(&o);
    assert_eq!(
        s["linux"]["seccomp"],
        crate::seccomp::default_profile(&DEFAULT_CAPS.iter().map(|c| c.to_string()).collect::<Vec<_>>())
    );
    assert!(s["process"].get("noNewPrivileges").is_none());

    apply_security_opt(&mut o, "seccomp=unconfined").unwrap();
    apply_security_opt(&mut o, "no-new-privileges").unwrap();
    let mut with_filter = base();
    with_filter["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"});
    let s = make_spec(with_filter, &img, &o, &[r.path()]).unwrap();
    assert!(s["linux"].get("seccomp").is_none(), "unconfined removes any filter");
    assert_eq!(s["process"]["noNewPrivileges"], true);

    let f = r.path().join("profile.json");
    std::fs::write(
        &f,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO",
            "includes": {"caps": ["CAP_SYS_ADMIN"]}}, {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    apply_security_opt(&mut o, &format!("seccomp={}", f.display())).unwrap();
    assert_eq!(
        spec(&o)["linux"]["seccomp"],
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}]})
    );
    apply_security_opt(&mut o, "no-new-privileges=false").unwrap();
    assert!(!o.no_new_privileges);

    for bad in ["seccomp=", "apparmor=unconfined", "label=disable", "no-new-privileges=maybe"] {
        let e = apply_security_opt(&mut o, bad).unwrap_err().to_string();
        assert!(e.starts_with(&format!("--security-opt {bad:?}: expected seccomp=unconfined")), "{e}");
    }
    let e = apply_security_opt(&mut o, "seccomp=/nonexistent/p.json").unwrap_err().to_string();
    assert!(e.contains("read /nonexistent/p.json: No such file or directory"), "{e}");
    // A bad file leaves the options as they were.
    assert!(matches!(o.seccomp, Seccomp::Profile(_)));
}

#[test]
fn users() {
    let r = rootfs();
    let p = r.path();
    assert_eq!(resolve_user("www", &[p]).unwrap(), json!({"uid": 33, "gid": 34, "additionalGids": [29, 50]}));
    assert_eq!(resolve_user("33", &[p]).unwrap()["gid"], 34);
    assert_eq!(resolve_user("1000", &[p]).unwrap(), json!({"uid": 1000, "gid": 0}));
    assert_eq!(resolve_user("1000:7", &[p]).unwrap(), json!({"uid": 1000, "gid": 7}));
    assert_eq!(resolve_user("www:staff", &[p]).unwrap(), json!({"uid": 33, "gid": 50}));
    assert_eq!(resolve_user("0:wwwg", &[p]).unwrap(), json!({"uid": 0, "gid": 34}));
    for bad in ["nobody", "www:nogroup", ":1", "1:"] {
        assert!(resolve_user(bad, &[p]).is_err(), "{bad}");
    }
    // /etc/passwd as a symlink out of the rootfs is resolved inside it.
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", t.path().join("etc/passwd")).unwrap();
    assert!(resolve_user("root", &[t.path()]).is_err());
}

#[test]
fn users_from_layers_top_first() {
    let (top, mid, base) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), rootfs());
    std::fs::create_dir(mid.path().join("etc")).unwrap();
    std::fs::write(mid.path().join("etc/group"), "wwwg:x:77:\n").unwrap();
    let layers = [top.path(), mid.path(), base.path()];
    // passwd from the base, group from the layer above it.
    assert_eq!(resolve_user("www:wwwg", &layers).unwrap(), json!({"uid": 33, "gid": 77}));
    // A whiteout (0:0 character device, made by an unprivileged user too) hides the base's.
    std::fs::create_dir(top.path().join("etc")).unwrap();
    let wh = std::ffi::CString::new(top.path().join("etc/passwd").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR | 0o600, 0) }, 0);
    assert!(resolve_user("www", &layers).is_err(), "whited-out /etc/passwd still read");
}

#[test]
fn parsing() {
    assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
    assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
    assert_eq!(parse_memory("4096").unwrap(), 4096);
    for bad in ["", "x", "-1m", "0"] {
        assert!(parse_memory(bad).is_err(), "{bad}");
    }
    let v = Volume::parse("/a:/b").unwrap();
    assert_eq!((v.source.to_str().unwrap(), v.destination.as_str(), v.readonly), ("/a", "/b", false));
    for bad in ["/a", "vol:/b", "/a:b", "/a:/b:rx", "/a:/b:ro:x"] {
        assert!(Volume::parse(bad).is_err(), "{bad}");
    }
}
