use super::*;
use std::collections::BTreeSet;

fn caps(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

fn docker_caps() -> Vec<String> {
    caps(crate::bundle::DEFAULT_CAPS)
}

/// Names allowed by a rule with action ALLOW (with or without argument conditions).
fn allowed(p: &Value) -> BTreeSet<String> {
    p["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|c| c["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()))
        .collect()
}

fn rules_for<'a>(p: &'a Value, name: &str) -> Vec<&'a Value> {
    p["syscalls"].as_array().unwrap().iter().filter(|c| c["names"].as_array().unwrap().contains(&json!(name))).collect()
}

#[test]
fn default_profile_blocks_what_docker_blocks() {
    let p = profile_for("amd64", &docker_caps());
    assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(p["defaultErrnoRet"], 1);
    assert_eq!(p["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
    let a = allowed(&p);
    for ok in ["read", "openat", "execve", "arch_prctl", "modify_ldt", "ptrace", "chroot", "faccessat2", "statx"] {
        assert!(a.contains(ok), "{ok} should be allowed");
    }
    // Without CAP_SYS_ADMIN & co; keys have no namespace at all.
    for blocked in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "keyctl",
        "add_key",
        "request_key",
        "reboot",
        "init_module",
        "bpf",
        "perf_event_open",
        "kexec_load",
        "open_by_handle_at",
        "pivot_root",
        "swapon",
        "userfaultfd",
        "kcmp",
        "settimeofday",
        "acct",
        "syslog",
        "clone3",
        "s390_runtime_instr",
        "set_tls",
    ] {
        assert!(!a.contains(blocked), "{blocked} should not be allowed");
    }
    // clone without namespace flags; clone3 answers ENOSYS (glibc falls back to clone).
    let clone = rules_for(&p, "clone");
    assert_eq!(clone.len(), 1);
    assert_eq!(
        clone[0]["args"],
        json!([{"index": 0, "value": 0x7E02_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}])
    );
    assert_eq!(
        rules_for(&p, "clone3"),
        vec![&json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})]
    );
    // personality: five values; socket: anything but AF_VSOCK.
    let pers: Vec<u64> = rules_for(&p, "personality").iter().map(|r| r["args"][0]["value"].as_u64().unwrap()).collect();
    assert_eq!(pers, vec![0, 8, 0x20000, 0x20008, 0xffff_ffff]);
    assert_eq!(rules_for(&p, "socket")[0]["args"], json!([{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]));
}

#[test]
fn capabilities_unlock_their_syscalls() {
    let mut c = docker_caps();
    c.extend(caps(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME", "CAP_SYS_BOOT"]));
    let p = profile_for("amd64", &c);
    let a = allowed(&p);
    for ok in
        ["mount", "umount2", "unshare", "setns", "clone", "clone3", "kcmp", "pidfd_getfd", "settimeofday", "reboot"]
    {
        assert!(a.contains(ok), "{ok} should be allowed with its capability");
    }
    // With CAP_SYS_ADMIN clone is unconditional: no masked rule, no clone3 errno.
    assert_eq!(rules_for(&p, "clone").len(), 1);
    assert!(rules_for(&p, "clone")[0].get("args").is_none());
    assert!(rules_for(&p, "clone3").iter().all(|r| r["action"] == "SCMP_ACT_ALLOW"));
    assert!(!a.contains("keyctl"));
}

#[test]
fn per_architecture_rules() {
    let arm = profile_for("arm64", &docker_caps());
    assert_eq!(arm["architectures"], json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]));
    assert!(allowed(&arm).contains("set_tls") && !allowed(&arm).contains("arch_prctl"));
    let s390 = profile_for("s390x", &docker_caps());
    assert_eq!(rules_for(&s390, "clone")[0]["args"][0]["index"], 1, "s390 passes clone's flags second");
    assert!(allowed(&s390).contains("s390_runtime_instr"));
    assert_eq!(profile_for("sparc64", &docker_caps())["architectures"], json!([]));
}

/// The profile docker's way: archMap, includes/excludes by arch, caps, kernel.
const DOCKER_STYLE: &str = r#"{
  "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
  "archMap": [
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
  ],
  "syscalls": [
    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "ignored"},
    {"name": "getpid", "action": "SCMP_ACT_ALLOW"},
    {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
    {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
    {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
     "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390x"]}},
    {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
    {"names": ["landlock_create_ruleset"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.1"}},
    {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
  ]
}"#;

#[test]
fn docker_format_is_converted() {
    let v: Value = serde_json::from_str(DOCKER_STYLE).unwrap();
    let p = from_profile_for(&v, &docker_caps(), "amd64", Some((6, 1))).unwrap();
    assert_eq!(p["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
    assert_eq!((&p["defaultAction"], &p["defaultErrnoRet"]), (&json!("SCMP_ACT_ERRNO"), &json!(1)));
    let names: Vec<&Value> = p["syscalls"].as_array().unwrap().iter().map(|c| &c["names"]).collect();
    assert_eq!(
        names,
        [
            json!(["read", "write"]),
            json!(["getpid"]),
            json!(["arch_prctl"]),
            json!(["clone"]),
            json!(["ptrace"]),
            json!(["clone3"])
        ]
        .iter()
        .collect::<Vec<_>>()
    );
    assert!(p["syscalls"][0].get("comment").is_none());
    assert_eq!(p["syscalls"][3]["args"][0]["value"], 2114060288u64);
    assert_eq!(p["syscalls"][5]["errnoRet"], 38);

    let mut admin = docker_caps();
    admin.push("CAP_SYS_ADMIN".into());
    let p = from_profile_for(&v, &admin, "arm64", Some((4, 4))).unwrap();
    assert_eq!(p["architectures"], json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]));
    let names: BTreeSet<String> = allowed(&p);
    assert_eq!(names, ["getpid", "mount", "read", "set_tls", "write"].iter().map(|s| s.to_string()).collect());

    // A plain OCI linux.seccomp object passes through.
    let oci = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                     "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]});
    assert_eq!(from_profile_for(&oci, &[], "amd64", None).unwrap(), oci);
}

#[test]
fn bad_profiles_are_clear_errors() {
    let cases = [
        (json!([1]), "not a JSON object"),
        (json!({"syscalls": []}), "defaultAction: missing (a profile needs a default action)"),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "archMap": []}),
            "both architectures and archMap are given; use one of them",
        ),
        (json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}}), "syscalls: expected a list"),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}),
            "syscalls[0].names: missing or empty",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}),
            "syscalls[0]: both name and names are given; use one of them",
        ),
        (json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}), "syscalls[0].action: missing"),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [1], "action": "SCMP_ACT_ALLOW"}]}),
            "syscalls[0].names: 1 is not a string",
        ),
    ];
    for (v, want) in cases {
        assert_eq!(
            from_profile_for(&v, &[], "amd64", None).unwrap_err().to_string(),
            format!("seccomp profile: {want}")
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.json");
    std::fs::write(&f, "{not json").unwrap();
    let e = read_file(&f).unwrap_err().to_string();
    assert!(e.starts_with(&format!("seccomp profile: {}: not a JSON seccomp profile: ", f.display())), "{e}");
    std::fs::write(&f, r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}"#).unwrap();
    let e = read_file(&f).unwrap_err().to_string();
    assert_eq!(e, format!("seccomp profile: {}: syscalls[0].action: missing", f.display()));
    let e = read_file(&dir.path().join("missing.json")).unwrap_err().to_string();
    assert!(e.contains("missing.json: No such file or directory"), "{e}");
}

/// Our profile against podman's (containers/common) as installed with podman 4.3,
/// converted for docker's default capabilities on amd64: the allowed sets differ
/// only where we follow docker/containerd, on purpose. Update the lists when the
/// profile changes (or podman's file does); each entry says why it differs.
#[test]
fn differs_from_podmans_profile_only_as_documented() {
    let path = std::path::Path::new("/usr/share/containers/seccomp.json");
    if !path.exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{} missing (CI installs podman)", path.display());
        eprintln!("skipping: {} not installed (podman)", path.display());
        return;
    }
    let file: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let podman = from_profile_for(&file, &docker_caps(), "amd64", Some((6, 1))).unwrap();
    let ours = allowed(&profile_for("amd64", &docker_caps()));
    let theirs = allowed(&podman);
    // Allowed by us, not by podman's file.
    let only_ours: BTreeSet<&str> = [
        // Newer than podman 4.3's file (docker allows them); unknown to libseccomp 2.5.4
        // (answered ENOSYS until it knows them).
        "cachestat",
        "fchmodat2",
        "futex_requeue",
        "futex_wait",
        "futex_wake",
        "map_shadow_stack",
        "mseal",
        // Docker/containerd allow these; podman's file leaves them out.
        "futex_waitv",
        "io_pgetevents",
        "io_pgetevents_time64",
        "io_uring_enter",
        "io_uring_register",
        "io_uring_setup",
        "vmsplice",
    ]
    .into();
    // Allowed by podman's file, not by us.
    let only_podman: BTreeSet<&str> = [
        // Podman relies on capabilities alone for these; docker and containerd allow
        // them only with CAP_SYS_ADMIN (we do too), so a container without it gets
        // EPERM from seccomp rather than from the capability check.
        "mount",
        "umount",
        "umount2",
        "unshare",
        "setns",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "mount_setattr",
        "move_mount",
        "open_tree",
        "pivot_root",
        "syslog",
        // Docker: ENOSYS without CAP_SYS_ADMIN (glibc falls back to clone, whose
        // namespace flags seccomp can check); podman allows it.
        "clone3",
        // Keyrings are not namespaced: docker blocks keyctl (podman allows it).
        "keyctl",
        // Docker: only with CAP_SYS_BOOT / CAP_SYS_NICE / CAP_SYS_PTRACE.
        "reboot",
        "get_mempolicy",
        "mbind",
        "set_mempolicy",
        "pidfd_getfd",
        // Old multiplexed or 32-bit-only names docker does not list.
        "readdir",
        "sigaction",
        "signal",
        "sigpending",
        "sigsuspend",
        "syscall",
        "timerfd",
    ]
    .into();
    let got_ours: BTreeSet<&str> = ours.difference(&theirs).map(String::as_str).collect();
    let got_podman: BTreeSet<&str> = theirs.difference(&ours).map(String::as_str).collect();
    assert_eq!(got_ours, only_ours, "allowed only by capsa's default profile");
    assert_eq!(got_podman, only_podman, "allowed only by podman's {}", path.display());
}
