//! Property-based fuzzing of `config.json` (runtime-spec) reading: [`spec::load`] and [`spec::validate`],
//! then the pure readings `create` makes of a validated spec before it touches the system (rlimits,
//! capabilities, cgroup resources and device rules, mount options, cgroupsPath, the seccomp program).
//!
//! Properties: random bytes, random JSON and valid configs mutated (values replaced, fields removed or
//! added, bytes spliced into the text) never panic and give `Ok` or `Err`, in the loader, the validator
//! and every reading after it; what is accepted keeps the rules (a resolved cgroup path never holds `..`)
//! and prints back to a config that reads the same; generated valid configs pass everything.
//!
//! Default: 256 cases per property (a few seconds in release mode). Run longer with
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --release -p capsa-runtime --test fuzz_config
//! ```
//!
//! A failing case is shrunk and its seed appended to `tests/proptest-regressions/fuzz_config.txt`, which
//! every later run replays first: commit that file (and keep a real bug's input as a named unit test).

use std::path::Path;

use capsa_runtime::cgroups::default_device_rules;
use capsa_runtime::cgroups::devfilter;
use capsa_runtime::cgroups::devices::{v1_device_writes, DeviceState};
use capsa_runtime::cgroups::path::resolve_path_with;
use capsa_runtime::rootfs::options;
use capsa_runtime::security::caps::CapSets;
use capsa_runtime::security::{rlimits, seccomp};
use capsa_runtime::spec::{self, default_spec, Spec};
use fuzz_common::{apply_splice, mutate, mutation, splice};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

#[path = "../../fuzz/common.rs"]
mod fuzz_common;

const KEYS: &[&str] = &[
    "ociVersion",
    "process",
    "terminal",
    "consoleSize",
    "height",
    "width",
    "user",
    "uid",
    "gid",
    "umask",
    "additionalGids",
    "args",
    "commandLine",
    "env",
    "cwd",
    "capabilities",
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
    "rlimits",
    "type",
    "hard",
    "soft",
    "noNewPrivileges",
    "apparmorProfile",
    "oomScoreAdj",
    "selinuxLabel",
    "ioPriority",
    "class",
    "priority",
    "root",
    "path",
    "readonly",
    "hostname",
    "domainname",
    "mounts",
    "destination",
    "source",
    "options",
    "uidMappings",
    "gidMappings",
    "containerID",
    "hostID",
    "size",
    "hooks",
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
    "timeout",
    "annotations",
    "linux",
    "sysctl",
    "resources",
    "devices",
    "allow",
    "major",
    "minor",
    "access",
    "memory",
    "limit",
    "reservation",
    "swap",
    "swappiness",
    "cpu",
    "shares",
    "quota",
    "period",
    "cpus",
    "mems",
    "pids",
    "blockIO",
    "weight",
    "weightDevice",
    "throttleReadBpsDevice",
    "rate",
    "hugepageLimits",
    "pageSize",
    "unified",
    "cgroupsPath",
    "namespaces",
    "fileMode",
    "seccomp",
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "flags",
    "listenerPath",
    "syscalls",
    "names",
    "action",
    "errnoRet",
    "index",
    "value",
    "valueTwo",
    "op",
    "rootfsPropagation",
    "maskedPaths",
    "readonlyPaths",
    "mountLabel",
    "personality",
    "",
];

const STRINGS: &[&str] = &[
    "",
    "1.0.0",
    "1.0.2-dev",
    "1.3.0",
    "1.9.9",
    "2.0.0",
    "1.0",
    "01.0.0",
    "1.0.0+x",
    "/",
    "/dev/null",
    "/dev/../etc",
    "../x",
    "rootfs",
    "sh",
    "PATH=/bin",
    "NOEQUALS",
    "pid",
    "network",
    "mount",
    "ipc",
    "uts",
    "user",
    "cgroup",
    "time",
    "bogus",
    "c",
    "b",
    "u",
    "p",
    "a",
    "rwm",
    "r",
    "x",
    "0-3",
    "0-4294967295",
    "0,1,2",
    "4294967295",
    "-1",
    "max",
    "rprivate",
    "shared",
    "nope",
    "bind",
    "rbind",
    "ro",
    "rro",
    "nosuid",
    "mode=755",
    "tmpcopyup",
    "idmap",
    "net.ipv4.ip_forward",
    "kernel.shmmax",
    "kernel.hostname",
    "fs.mqueue.msg_max",
    "vm.swappiness",
    "net/../../etc",
    "CAP_SYS_ADMIN",
    "CAP_BOGUS",
    "net_admin",
    "RLIMIT_NOFILE",
    "RLIMIT_BOGUS",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_AARCH64",
    "SCMP_CMP_EQ",
    "SCMP_CMP_MASKED_EQ",
    "SECCOMP_FILTER_FLAG_LOG",
    "write",
    "mkdir",
    "/cg/../../x",
    "a:b:c",
    "capsa/../..",
    "\u{0}",
];

const TOKENS: &[&str] =
    &["{", "}", "[", "]", ",", ":", "\"", "\\", "null", "true", "1e999", "-0", "\\u0000", "\\ud800", " ", "\n"];

/// Checks a config text all the way: load (from a file) agrees with parsing, and a parsed config
/// validates or not, and a valid one goes through every reading `create` makes before touching the
/// system. Returns whether it was valid.
fn check_config(bytes: &[u8]) -> Result<bool, TestCaseError> {
    let parsed = serde_json::from_slice::<Spec>(bytes);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, bytes).unwrap();
    let loaded = spec::load(&path);
    prop_assert_eq!(parsed.is_ok(), loaded.is_ok());
    let spec = match loaded {
        Ok(s) => s,
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            return Ok(false);
        }
    };
    // What was read prints back to a config that reads (and prints) the same.
    let printed = serde_json::to_string(&spec).unwrap();
    let again: Spec = serde_json::from_str(&printed).map_err(|e| TestCaseError::fail(format!("{e}: {printed}")))?;
    prop_assert_eq!(serde_json::to_string(&again).unwrap(), printed);
    if let Err(e) = spec::validate(&spec, &path) {
        prop_assert!(!e.to_string().is_empty());
        return Ok(false);
    }
    downstream(&spec)?;
    Ok(true)
}

/// The readings of a validated spec that `create` makes before it changes anything: none may panic.
fn downstream(spec: &Spec) -> Result<(), TestCaseError> {
    if let Some(p) = &spec.process {
        let _ = rlimits::validate(&p.rlimits);
        if let Some(c) = &p.capabilities {
            let _ = CapSets::from_spec(c);
        }
    }
    let linux = spec.linux();
    if let Some(r) = &linux.resources {
        let _ = capsa_runtime::lifecycle::check_resources(r);
    }
    let listed: Vec<&str> = linux.devices.iter().map(|d| d.path.as_str()).collect();
    let mut rules = linux.resources.as_ref().map(|r| r.devices.clone()).unwrap_or_default();
    rules.extend(default_device_rules(&listed));
    if let Ok(st) = DeviceState::from_rules(&rules) {
        let _ = devfilter::compile(&st);
        let _ = v1_device_writes(&st);
    }
    for m in &spec.mounts {
        let _ = options::parse(&m.options);
    }
    for id in ["fuzz", "", "..", "a/b"] {
        let cg = linux.cgroups_path.as_deref().unwrap_or("");
        if let Ok(p) = resolve_path_with(cg, id, "0::/user.slice/fuzz.scope\n") {
            prop_assert!(!p.path.is_empty(), "{:?} resolved to an empty path", cg);
            prop_assert!(!p.path.split('/').any(|c| c == ".." || c == "."), "{:?} (id {:?}) -> {:?}", cg, id, p.path);
            prop_assert_eq!(p.path.starts_with('/'), !p.relative, "{:?} -> {:?}", cg, p);
        }
    }
    if let Some(s) = &linux.seccomp {
        let _ = seccomp::compile(s);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Generated valid configs.
// ---------------------------------------------------------------------------------------------------

const NAMESPACES: &[&str] = &["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"];
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SYS_CHROOT",
    "CAP_SYS_ADMIN",
    "CAP_AUDIT_WRITE",
    "CAP_MKNOD",
    "net_admin",
    "SYS_PTRACE",
];
const RLIMITS: &[&str] =
    &["RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_STACK", "RLIMIT_AS", "RLIMIT_MEMLOCK"];
const SYSCALLS: &[&str] =
    &["read", "write", "openat", "mkdir", "mount", "ptrace", "clone", "clone3", "kexec_load", "not_a_syscall"];
const ACTIONS: &[&str] = &["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_LOG", "SCMP_ACT_TRAP"];
const OPS: &[&str] =
    &["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"];
const MOUNT_OPTIONS: &[&str] = &[
    "ro",
    "rw",
    "nosuid",
    "nodev",
    "noexec",
    "bind",
    "rbind",
    "rprivate",
    "shared",
    "rro",
    "rnosuid",
    "strictatime",
    "mode=755",
    "size=65536k",
    "tmpcopyup",
    "relatime",
    "noatime",
];

fn seccomp_json() -> impl Strategy<Value = Value> {
    let arg = (0u32..6, any::<u64>(), prop::option::of(any::<u64>()), prop::sample::select(OPS)).prop_map(
        |(index, value, two, op)| match two {
            Some(t) => json!({"index": index, "value": value, "valueTwo": t, "op": op}),
            None => json!({"index": index, "value": value, "op": op}),
        },
    );
    let call = (
        prop::sample::subsequence(SYSCALLS, 1..4),
        prop::sample::select(ACTIONS),
        // errnoRet of SCMP_ACT_ERRNO: libseccomp takes 0..=4094, validate refuses the rest.
        prop::option::of(prop_oneof![4 => 0u32..200, 1 => 4000u32..=65535]),
        prop::collection::vec(arg, 0..3),
    )
        .prop_map(|(names, action, errno, args)| {
            let mut o = Map::new();
            o.insert("names".into(), json!(names));
            o.insert("action".into(), json!(action));
            if action == "SCMP_ACT_ERRNO" {
                if let Some(e) = errno {
                    o.insert("errnoRet".into(), json!(e));
                }
            }
            if !args.is_empty() {
                o.insert("args".into(), Value::Array(args));
            }
            Value::Object(o)
        });
    (
        prop::sample::select(ACTIONS),
        prop::sample::subsequence(&["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"][..], 0..3),
        prop::sample::subsequence(&["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"][..], 0..2),
        prop::collection::vec(call, 0..6),
    )
        .prop_map(|(default, arches, flags, calls)| {
            json!({"defaultAction": default, "architectures": arches, "flags": flags, "syscalls": calls})
        })
}

fn resources_json() -> impl Strategy<Value = Value> {
    let rule = (
        any::<bool>(),
        prop::option::of(prop::sample::select(&["a", "c", "b"][..])),
        prop::option::of(-1i64..300),
        prop::option::of(-1i64..300),
        prop::option::of("[rwm]{1,3}"),
    )
        .prop_map(|(allow, ty, major, minor, access)| {
            json!({"allow": allow, "type": ty, "major": major, "minor": minor, "access": access})
        });
    (
        prop::collection::vec(rule, 0..4),
        prop::option::of(prop_oneof![Just(-1i64), 1i64..i64::MAX]),
        prop::option::of((prop_oneof![Just(-1i64), 1i64..10_000_000], 1000u64..=1_000_000)),
        prop::option::of(prop_oneof![Just(-1i64), 1i64..100_000]),
    )
        .prop_map(|(devices, mem, cpu, pids)| {
            let mut o = Map::new();
            // A deny-all first, as runc specs have: a later narrower deny of a wildcard allow is refused.
            let mut devs = vec![json!({"allow": false, "access": "rwm"})];
            devs.extend(devices.into_iter().filter(|d| d["allow"] == true || d["type"] == "a"));
            o.insert("devices".into(), Value::Array(devs));
            if let Some(m) = mem {
                o.insert("memory".into(), json!({"limit": m}));
            }
            if let Some((quota, period)) = cpu {
                o.insert("cpu".into(), json!({"quota": quota, "period": period, "cpus": "0"}));
            }
            if let Some(p) = pids {
                o.insert("pids".into(), json!({"limit": p}));
            }
            Value::Object(o)
        })
}

fn valid_config() -> impl Strategy<Value = Value> {
    let process = (
        prop::collection::vec("[ -~]{1,10}", 1..4),
        prop::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,8}", "[ -~]{0,10}"), 0..4),
        "/[a-z0-9/]{0,12}",
        (any::<u32>(), any::<u32>()),
        prop::option::of(prop::sample::subsequence(CAPS, 0..6)),
        prop::sample::subsequence(RLIMITS, 0..4),
        (any::<u64>(), any::<u64>()),
    )
        .prop_map(|(args, env, cwd, (uid, gid), caps, rlimits, (a, b))| {
            let env: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            let rlimits: Vec<Value> =
                rlimits.iter().map(|t| json!({"type": t, "soft": a.min(b), "hard": a.max(b)})).collect();
            let mut p = json!({"args": args, "env": env, "cwd": cwd, "user": {"uid": uid, "gid": gid},
                "rlimits": rlimits, "noNewPrivileges": true});
            if let Some(c) = caps {
                p["capabilities"] = json!({"bounding": c, "effective": c, "permitted": c, "ambient": c});
            }
            p
        });
    let mounts = prop::collection::vec(
        (
            "/[a-z0-9/]{1,12}",
            prop::sample::select(&["proc", "tmpfs", "bind", "sysfs", "devpts", "none"][..]),
            prop::sample::subsequence(MOUNT_OPTIONS, 0..5),
        )
            .prop_map(|(dest, ty, opts)| json!({"destination": dest, "type": ty, "source": ty, "options": opts})),
        0..5,
    );
    let devices = prop::collection::vec(
        ("/dev/[a-z]{1,8}", prop::sample::select(&["c", "b", "u", "p"][..]), 0i64..300, 0i64..300)
            .prop_map(|(path, ty, major, minor)| json!({"path": path, "type": ty, "major": major, "minor": minor})),
        0..3,
    );
    (
        (0u32..4, 0u32..10, prop::sample::select(&["", "-dev", "-rc.1", "+build"][..])),
        process,
        prop::sample::subsequence(NAMESPACES, 0..8),
        prop::collection::vec(prop::option::of("/[a-z0-9/]{1,12}"), 8),
        (mounts, devices),
        prop::option::of(prop::sample::select(&["private", "rprivate", "shared", "rslave", "unbindable"][..])),
        prop::option::of(seccomp_json()),
        prop::option::of(resources_json()),
        prop::option::of("/?[a-z0-9]{1,8}(/[a-z0-9.]{1,8}){0,2}"),
        prop::collection::vec(("/[a-z/]{1,10}", prop::option::of(1i64..100)), 0..3),
    )
        .prop_map(
            |((minor, patch, pre), process, ns, ns_paths, (mounts, devices), prop, seccomp, resources, cg, hooks)| {
                let namespaces: Vec<Value> = ns
                    .iter()
                    .zip(&ns_paths)
                    .map(|(t, p)| match p {
                        Some(p) if *t != "user" => json!({"type": t, "path": p}),
                        _ => json!({"type": t}),
                    })
                    .collect();
                let mut linux = Map::new();
                linux.insert("namespaces".into(), Value::Array(namespaces));
                if ns.contains(&"user") {
                    let m = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                    linux.insert("uidMappings".into(), m.clone());
                    linux.insert("gidMappings".into(), m);
                }
                if ns.contains(&"mount") {
                    linux.insert("maskedPaths".into(), json!(["/proc/kcore", "/sys/firmware"]));
                    linux.insert("readonlyPaths".into(), json!(["/proc/sys"]));
                }
                let mut sysctl = Map::new();
                if ns.contains(&"ipc") {
                    sysctl.insert("kernel.shmmax".into(), json!("65536"));
                }
                if ns.contains(&"network") {
                    sysctl.insert("net.ipv4.ip_forward".into(), json!("1"));
                }
                if ns.contains(&"uts") {
                    sysctl.insert("kernel.domainname".into(), json!("example"));
                }
                linux.insert("sysctl".into(), Value::Object(sysctl));
                linux.insert("devices".into(), Value::Array(devices));
                if let Some(p) = prop {
                    linux.insert("rootfsPropagation".into(), json!(p));
                }
                if let Some(s) = seccomp {
                    linux.insert("seccomp".into(), s);
                }
                if let Some(r) = resources {
                    linux.insert("resources".into(), r);
                }
                if let Some(c) = cg {
                    linux.insert("cgroupsPath".into(), json!(c));
                }
                let hooks: Vec<Value> = hooks
                    .into_iter()
                    .map(|(path, t)| match t {
                        Some(t) => json!({"path": path, "timeout": t}),
                        None => json!({"path": path}),
                    })
                    .collect();
                let mut spec = json!({
                    "ociVersion": format!("1.{minor}.{patch}{pre}"),
                    "process": process,
                    "root": {"path": "rootfs", "readonly": true},
                    "mounts": mounts,
                    "hooks": {"prestart": hooks.clone(), "createRuntime": hooks.clone(), "poststop": hooks},
                    "linux": linux,
                });
                if ns.contains(&"uts") {
                    spec["hostname"] = json!("fuzz");
                }
                spec
            },
        )
}

/// Seeds for mutation: generated valid configs, `capsa spec`'s default, and its rootless form.
fn seed_config() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => valid_config(),
        1 => Just(default_spec()),
        1 => Just({
            let mut s = default_spec();
            spec::make_rootless(&mut s);
            s
        }),
    ]
}

/// A kernel cpu list ("0-2,4"), well-formed or nearly, with ranges of any size.
fn cpu_list() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        4 => (any::<u32>(), any::<u32>()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        2 => (0u32..8, 0u32..8).prop_map(|(a, b)| format!("{a}-{b}")),
        2 => (0u32..8).prop_map(|a| a.to_string()),
        1 => "[-0-9, ]{0,6}",
    ];
    prop::collection::vec(part, 1..4).prop_map(|p| p.join(","))
}

proptest! {
    #![proptest_config(fuzz_common::config(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/proptest-regressions/fuzz_config.txt"
    )))]

    /// Random bytes: no panic.
    #[test]
    fn any_bytes_never_panic(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        "[{}\\[\\]\",:0-9a-zA-Z./ \\\\-]{0,160}".prop_map(String::into_bytes),
    ]) {
        check_config(&bytes)?;
    }

    /// Random JSON, alone and as each section of a config: no panic.
    #[test]
    fn any_json_never_panics(v in fuzz_common::weird_value(KEYS, STRINGS), at in prop::sample::select(
        &["", "process", "root", "mounts", "hooks", "linux", "annotations"][..])) {
        let doc = if at.is_empty() {
            v
        } else {
            let mut doc = json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"}});
            doc[at] = v;
            doc
        };
        check_config(&serde_json::to_vec(&doc).unwrap())?;
    }

    /// Generated valid configs: load, validate, and every reading after validation succeeds. (The one
    /// invalid thing generated, an errnoRet libseccomp refuses, must be refused by validate.)
    #[test]
    fn valid_configs_pass(v in valid_config()) {
        let bytes = serde_json::to_vec_pretty(&v).unwrap();
        let path = Path::new("config.json");
        let s: Spec = serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {v}")))?;
        let errno_too_big = v["linux"]["seccomp"]["syscalls"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["errnoRet"].as_u64().is_some_and(|e| e >= 4095));
        if errno_too_big {
            let e = spec::validate(&s, path).err().map(|e| e.to_string()).unwrap_or_default();
            prop_assert!(e.contains("out of range for SCMP_ACT_ERRNO (max 4094)"), "{}: {}", e, v);
            return Ok(());
        }
        spec::validate(&s, path).map_err(|e| TestCaseError::fail(format!("{e}: {v}")))?;
        let p = s.process.as_ref().unwrap();
        rlimits::validate(&p.rlimits).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Some(c) = &p.capabilities {
            CapSets::from_spec(c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let linux = s.linux();
        if let Some(r) = &linux.resources {
            capsa_runtime::lifecycle::check_resources(r).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut rules = r.devices.clone();
            rules.extend(default_device_rules(&[]));
            DeviceState::from_rules(&rules).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        if let Some(sc) = &linux.seccomp {
            seccomp::compile(sc).map_err(|e| TestCaseError::fail(format!("{e}: {}", v["linux"]["seccomp"])))?;
        }
        prop_assert!(check_config(&bytes)?);
    }

    /// cpu and memory-node lists: checked against the host's without listing their members (a huge
    /// range once made check_resources allocate 16 GiB and abort).
    #[test]
    fn cpu_lists_are_checked_cheaply(list in cpu_list(), mems in any::<bool>()) {
        let cpu = if mems { json!({"mems": list}) } else { json!({"cpus": list}) };
        let res = serde_json::from_value(json!({"cpu": cpu})).unwrap();
        if let Err(e) = capsa_runtime::lifecycle::check_resources(&res) {
            prop_assert!(e.to_string().contains(&format!("{list:?}")), "{}", e);
        }
    }

    /// Valid configs mutated in their tree and text: no panic anywhere, and accepted ones keep the rules.
    #[test]
    fn mutated_configs_never_panic(
        seed in seed_config(),
        mutations in prop::collection::vec(mutation(KEYS, STRINGS), 1..6),
        splices in prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(splice(TOKENS), 1..4)],
    ) {
        let mut v = seed;
        for m in &mutations {
            mutate(&mut v, m);
        }
        let mut text = serde_json::to_string(&v).unwrap();
        for s in &splices {
            apply_splice(&mut text, s);
        }
        check_config(text.as_bytes())?;
    }
}
