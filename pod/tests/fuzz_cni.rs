//! Property-based fuzzing of what capsa reads from CNI plugins and files: a plugin's ADD result
//! ([`CniResult::from_plugin_output`] and its readers), a failed plugin's error output
//! ([`PluginFailure::from_failed_output`]), network configuration lists ([`NetworkList::parse`]) and the
//! libcni-format result cache ([`Cni::cached_result`]).
//!
//! Properties: random bytes, random JSON and valid documents mutated (values replaced, fields removed or
//! added, bytes spliced into the text) never panic and give `Ok` or `Err`; what is accepted keeps the
//! rules (a result is a JSON object and prints back to itself, `ip()` is one of `ips()`, a network has a
//! valid name, a supported `cniVersion` and typed plugins); generated valid results, error objects,
//! network lists and cache files read back exactly.
//!
//! Default: 256 cases per property (a few seconds in release mode: cache files go to a temp dir). Run
//! longer with
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --release -p capsa-pod --test fuzz_cni
//! ```
//!
//! A failing case is shrunk and its seed appended to `tests/proptest-regressions/fuzz_cni.txt`, which every
//! later run replays first: commit that file (and keep a real bug's input as a named unit test).

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use capsa_pod::cni::{Cni, CniInterface, CniResult, NetworkList, PluginFailure, MAX_CNI_VERSION, MIN_CNI_VERSION};
use fuzz_common::{apply_splice, mutate, mutation, splice};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

#[path = "../../fuzz/common.rs"]
mod fuzz_common;

const KEYS: &[&str] = &[
    "cniVersion",
    "interfaces",
    "ips",
    "address",
    "gateway",
    "interface",
    "routes",
    "dst",
    "gw",
    "dns",
    "nameservers",
    "name",
    "mac",
    "sandbox",
    "code",
    "msg",
    "details",
    "plugins",
    "type",
    "capsaMasquerade",
    "ipam",
    "ranges",
    "subnet",
    "capabilities",
    "portMappings",
    "result",
    "capabilityArgs",
    "kind",
    "",
];

const STRINGS: &[&str] = &[
    "",
    "1.0.0",
    "0.4.0",
    "0.3.0",
    "0.3.1",
    "0.2.0",
    "1.1.0",
    "2.0.0",
    "1.0",
    "1.0.0.0",
    "-1.0.0",
    "10.99.0.5/16",
    "10.99.0.1",
    "fd00::5/64",
    "fd00::1",
    "999.1.1.1/8",
    "/16",
    "10.0.0.1/",
    "::ffff:10.0.0.1",
    "bridge",
    "portmap",
    "host-local",
    "../bin/sh",
    "a/b",
    ".",
    "..",
    "capsa",
    "-bad",
    "aa:bb:cc:dd:ee:ff",
    "/run/netns/p",
    "10.99.0.0/16",
];

const TOKENS: &[&str] = &[
    "{", "}", "[", "]", ",", ":", "\"", "\\", "null", "true", "1e999", "-0", "\u{0}", "\\u0000", "\\ud800", " ", "\n",
    "//",
];

fn exit(code: i32) -> ExitStatus {
    ExitStatus::from_raw(code << 8)
}

// ---------------------------------------------------------------------------------------------------
// Results.
// ---------------------------------------------------------------------------------------------------

/// Checks what any accepted result must satisfy; runs every reader.
fn check_result(input: &[u8]) -> Result<(), TestCaseError> {
    let parsed = CniResult::from_plugin_output(input);
    let json_object = matches!(serde_json::from_slice::<Value>(input), Ok(Value::Object(_)));
    prop_assert_eq!(parsed.is_ok(), json_object);
    let r = match parsed {
        Ok(r) => r,
        Err(why) => {
            prop_assert!(!why.is_empty());
            return Ok(());
        }
    };
    let ips = r.ips();
    if let Some(ip) = r.ip() {
        prop_assert!(ip.parse::<Ipv4Addr>().is_ok(), "ip() {:?}", ip);
        prop_assert!(ips.iter().any(|a| a.split('/').next() == Some(ip.as_str())), "ip() {:?} not in {:?}", ip, ips);
    }
    if let Some(gw) = r.gateway() {
        let all: Vec<&str> =
            r.raw["ips"].as_array().into_iter().flatten().filter_map(|e| e.get("gateway")?.as_str()).collect();
        prop_assert!(all.contains(&gw.as_str()), "gateway() {:?} not among {:?}", gw, all);
    }
    for i in r.interfaces() {
        prop_assert!(!i.name.is_empty());
        prop_assert!(i.mac.as_deref() != Some("") && i.sandbox.as_deref() != Some(""));
    }
    let _ = r.cni_version();
    let printed = r.to_string();
    let reread = serde_json::from_str::<Value>(&printed).unwrap();
    prop_assert!(same_json(&reread, &r.raw), "{} reads back as {}", printed, reread);
    Ok(())
}

/// Equal JSON, but floats only to within their last bits (serde_json's default float parsing is not
/// correctly rounded: a printed float may read back one ulp away).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[derive(Debug, Clone)]
struct IpM {
    address: IpAddr,
    prefix: u8,
    gateway: Option<IpAddr>,
    interface: Option<u64>,
}

#[derive(Debug, Clone)]
struct ResultM {
    version: &'static str,
    interfaces: Vec<(String, Option<String>, Option<String>)>,
    ips: Vec<IpM>,
}

fn result_model() -> impl Strategy<Value = ResultM> {
    let iface = (
        "[a-z][a-z0-9]{0,14}",
        prop::option::of("([0-9a-f]{2}:){5}[0-9a-f]{2}"),
        prop::option::of("/run/netns/[a-z0-9-]{1,12}"),
    );
    let ip = (any::<IpAddr>(), any::<u8>(), prop::option::of(any::<IpAddr>()), prop::option::of(0u64..4)).prop_map(
        |(address, p, gateway, interface)| {
            let prefix = p % if address.is_ipv4() { 33 } else { 129 };
            IpM { address, prefix, gateway, interface }
        },
    );
    (
        prop::sample::select(&["0.3.0", "0.3.1", "0.4.0", "1.0.0"][..]),
        prop::collection::vec(iface, 0..4),
        prop::collection::vec(ip, 0..4),
    )
        .prop_map(|(version, interfaces, ips)| ResultM { version, interfaces, ips })
}

fn result_json(m: &ResultM) -> Value {
    let interfaces: Vec<Value> = m
        .interfaces
        .iter()
        .map(|(name, mac, sandbox)| {
            let mut o = Map::new();
            o.insert("name".into(), json!(name));
            if let Some(mac) = mac {
                o.insert("mac".into(), json!(mac));
            }
            if let Some(s) = sandbox {
                o.insert("sandbox".into(), json!(s));
            }
            Value::Object(o)
        })
        .collect();
    let ips: Vec<Value> = m
        .ips
        .iter()
        .map(|ip| {
            let mut o = Map::new();
            o.insert("address".into(), json!(format!("{}/{}", ip.address, ip.prefix)));
            if let Some(g) = ip.gateway {
                o.insert("gateway".into(), json!(g.to_string()));
            }
            if let Some(i) = ip.interface {
                o.insert("interface".into(), json!(i));
            }
            Value::Object(o)
        })
        .collect();
    json!({
        "cniVersion": m.version,
        "interfaces": interfaces,
        "ips": ips,
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.99.0.1"]},
    })
}

// ---------------------------------------------------------------------------------------------------
// Network lists.
// ---------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct NetM {
    name: String,
    version: &'static str,
    masquerade: Option<bool>,
    subnet: Option<String>,
    plugins: Vec<String>,
    /// A single plugin config (a `.conf`) instead of a list.
    single: bool,
}

fn net_model() -> impl Strategy<Value = NetM> {
    (
        "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,15}",
        prop::sample::select(&["0.3.0", "0.3.1", "0.4.0", "1.0.0"][..]),
        prop::option::of(any::<bool>()),
        prop::option::of((any::<Ipv4Addr>(), 8u8..31).prop_map(|(a, p)| format!("{a}/{p}"))),
        prop::collection::vec("[a-z][a-z0-9-]{0,10}", 1..4),
        any::<bool>(),
    )
        .prop_map(|(name, version, masquerade, subnet, plugins, single)| NetM {
            name,
            version,
            masquerade,
            subnet,
            plugins,
            single,
        })
}

fn net_json(m: &NetM) -> Value {
    let plugins: Vec<Value> = m
        .plugins
        .iter()
        .enumerate()
        .map(|(i, t)| match (&m.subnet, i) {
            (Some(s), 0) => json!({"type": t, "ipam": {"type": "host-local", "ranges": [[{"subnet": s}]]}}),
            _ => json!({"type": t}),
        })
        .collect();
    let mut o = Map::new();
    o.insert("cniVersion".into(), json!(m.version));
    o.insert("name".into(), json!(m.name));
    if let Some(b) = m.masquerade {
        o.insert("capsaMasquerade".into(), json!(b));
    }
    if m.single {
        if let Value::Object(p) = &plugins[0] {
            o.extend(p.clone());
        }
    } else {
        o.insert("plugins".into(), Value::Array(plugins));
    }
    Value::Object(o)
}

fn version(v: &str) -> Option<(u32, u32, u32)> {
    let p: Vec<u32> = v.split('.').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    (p.len() == 3).then(|| (p[0], p[1], p[2]))
}

/// Checks what any accepted network list must satisfy.
fn check_net(bytes: &[u8]) -> Result<(), TestCaseError> {
    match NetworkList::parse(bytes, "fuzz.conflist") {
        Ok(n) => {
            let mut chars = n.name.chars();
            prop_assert!(chars.next().is_some_and(|c| c.is_ascii_alphanumeric()), "name {:?}", n.name);
            prop_assert!(chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')), "name {:?}", n.name);
            let v = version(&n.cni_version);
            prop_assert!(
                v.is_some_and(|v| v >= version(MIN_CNI_VERSION).unwrap() && v <= version(MAX_CNI_VERSION).unwrap()),
                "cniVersion {:?}",
                n.cni_version
            );
            prop_assert!(!n.plugins.is_empty());
            for p in &n.plugins {
                let t = p.get("type").and_then(Value::as_str).unwrap_or("");
                prop_assert!(!t.is_empty() && !t.contains('/') && t != "." && t != "..", "plugin type {:?}", t);
            }
            prop_assert!(serde_json::from_slice::<Value>(&n.raw).is_ok());
            let _ = n.masquerade_subnet();
        }
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// The result cache.
// ---------------------------------------------------------------------------------------------------

/// Writes `bytes` as the cache file of one attachment and reads it back with [`Cni::cached_result`].
fn cached(bytes: &[u8]) -> Option<CniResult> {
    let dir = tempfile::tempdir().unwrap();
    let cni = Cni { cache_dir: dir.path().to_owned(), ..Cni::new() };
    let path = cni.cache_path("net", "ctr", "eth0");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    cni.cached_result("net", "ctr", "eth0")
}

proptest! {
    #![proptest_config(fuzz_common::config(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/proptest-regressions/fuzz_cni.txt"
    )))]

    /// Random bytes, as a result, an error output, a network list and a cache file: no panic.
    #[test]
    fn any_bytes_never_panic(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        "[{}\\[\\]\",:0-9a-z. \\\\-]{0,120}".prop_map(String::into_bytes),
    ]) {
        check_result(&bytes)?;
        let failure = PluginFailure::from_failed_output(&bytes, exit(1), String::from_utf8_lossy(&bytes).into());
        let failed = matches!(failure, PluginFailure::Failed { .. });
        prop_assert!(failed && !failure.to_string().is_empty(), "{:?}", failure);
        check_net(&bytes)?;
        if let Some(r) = cached(&bytes) {
            prop_assert!(r.raw.is_object());
        }
    }

    /// Random JSON values, as a result, an error output and a network list: no panic.
    #[test]
    fn any_json_never_panics(v in fuzz_common::weird_value(KEYS, STRINGS)) {
        let bytes = serde_json::to_vec(&v).unwrap();
        check_result(&bytes)?;
        let _ = PluginFailure::from_failed_output(&bytes, exit(2), String::new()).to_string();
        check_net(&bytes)?;
        let cache = serde_json::to_vec(&json!({"kind": "cniCacheV1", "result": v})).unwrap();
        let back = cached(&cache).map(|r| r.raw);
        prop_assert_eq!(back.is_some(), v.is_object());
        prop_assert!(back.is_none_or(|b| same_json(&b, &v)));
    }

    /// Generated valid results read back: addresses, the first IPv4 address, the gateway (IPv4 first),
    /// the interfaces; also through the cache.
    #[test]
    fn valid_results_read_back(m in result_model()) {
        let v = result_json(&m);
        let bytes = serde_json::to_vec_pretty(&v).unwrap();
        check_result(&bytes)?;
        let r = CniResult::from_plugin_output(&bytes).unwrap();
        let ips: Vec<String> = m.ips.iter().map(|ip| format!("{}/{}", ip.address, ip.prefix)).collect();
        prop_assert_eq!(r.ips(), ips);
        prop_assert_eq!(r.ip(), m.ips.iter().find(|ip| ip.address.is_ipv4()).map(|ip| ip.address.to_string()));
        let gws: Vec<IpAddr> = m.ips.iter().filter_map(|ip| ip.gateway).collect();
        let gw = gws.iter().find(|g| g.is_ipv4()).or(gws.first()).map(|g| g.to_string());
        prop_assert_eq!(r.gateway(), gw);
        let ifs: Vec<CniInterface> = m
            .interfaces
            .iter()
            .map(|(name, mac, sandbox)| CniInterface { name: name.clone(), mac: mac.clone(), sandbox: sandbox.clone() })
            .collect();
        prop_assert_eq!(r.interfaces(), ifs);
        prop_assert_eq!(r.cni_version(), Some(m.version));
        let cache = serde_json::to_vec(&json!({"kind": "cniCacheV1", "containerId": "ctr", "result": v})).unwrap();
        prop_assert_eq!(cached(&cache), Some(r));
    }

    /// Valid results mutated in their tree and text: no panic, and the rules of an accepted result hold.
    #[test]
    fn mutated_results_never_panic(
        m in result_model(),
        mutations in prop::collection::vec(mutation(KEYS, STRINGS), 1..5),
        splices in prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(splice(TOKENS), 1..4)],
    ) {
        let mut v = result_json(&m);
        for mu in &mutations {
            mutate(&mut v, mu);
        }
        let mut text = serde_json::to_string(&v).unwrap();
        for s in &splices {
            apply_splice(&mut text, s);
        }
        check_result(text.as_bytes())?;
        let _ = cached(text.as_bytes());
    }

    /// A plugin's error object gives its code, message and details; an empty or missing message a
    /// generic one naming the exit status.
    #[test]
    fn error_objects_read_back(
        code in prop::option::of(any::<u64>()),
        msg in prop::option::of(any::<String>()),
        details in prop::option::of(any::<String>()),
        status in 1i32..256,
        stderr in any::<String>(),
    ) {
        let mut o = Map::new();
        o.insert("cniVersion".into(), json!("1.0.0"));
        if let Some(c) = code {
            o.insert("code".into(), json!(c));
        }
        if let Some(m) = &msg {
            o.insert("msg".into(), json!(m));
        }
        if let Some(d) = &details {
            o.insert("details".into(), json!(d));
        }
        let stdout = serde_json::to_vec(&Value::Object(o)).unwrap();
        let f = PluginFailure::from_failed_output(&stdout, exit(status), stderr.clone());
        let PluginFailure::Failed { code: c, msg: m, details: d, stderr: s } = &f else {
            return Err(TestCaseError::fail(format!("not Failed: {f:?}")));
        };
        prop_assert_eq!(&s, &&stderr);
        if code.is_some() || msg.is_some() {
            prop_assert_eq!(*c, code);
            match msg.filter(|m| !m.is_empty()) {
                Some(want) => prop_assert_eq!(m, &want),
                None => prop_assert!(m.contains(&status.to_string()), "{:?}", m),
            }
            prop_assert_eq!(d, &details.unwrap_or_default());
        } else {
            prop_assert_eq!(*c, None);
        }
        prop_assert!(!f.to_string().is_empty());
    }

    /// Generated valid network lists (and single plugin configs) parse to what they say; the masquerade
    /// subnet is the first plugin's first range when asked for.
    #[test]
    fn valid_networks_parse(m in net_model()) {
        let bytes = serde_json::to_vec_pretty(&net_json(&m)).unwrap();
        check_net(&bytes)?;
        let n = NetworkList::parse(&bytes, "fuzz.conflist").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&n.name, &m.name);
        prop_assert_eq!(n.cni_version.as_str(), m.version);
        let types: Vec<&str> = n.plugins.iter().filter_map(|p| p.get("type")?.as_str()).collect();
        let want: Vec<&str> = if m.single { vec![m.plugins[0].as_str()] } else { m.plugins.iter().map(String::as_str).collect() };
        prop_assert_eq!(types, want);
        // A single plugin config is wrapped into a synthesized list, which keeps capsa's own
        // list-level key (and takes it from the plugin).
        let subnet = m.subnet.clone().filter(|_| m.masquerade == Some(true));
        prop_assert_eq!(n.masquerade_subnet(), subnet);
        prop_assert!(n.plugins.iter().all(|p| p.get("capsaMasquerade").is_none()));
    }

    /// Valid network lists mutated in their tree and text: no panic, and the rules of an accepted list hold.
    #[test]
    fn mutated_networks_never_panic(
        m in net_model(),
        mutations in prop::collection::vec(mutation(KEYS, STRINGS), 1..5),
        splices in prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(splice(TOKENS), 1..4)],
    ) {
        let mut v = net_json(&m);
        for mu in &mutations {
            mutate(&mut v, mu);
        }
        let mut text = serde_json::to_string(&v).unwrap();
        for s in &splices {
            apply_splice(&mut text, s);
        }
        check_net(text.as_bytes())?;
    }
}
