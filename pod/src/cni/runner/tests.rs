use super::super::cache::base64_encode;
use super::super::PortMapping;
use super::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

/// A directory of shell-script plugins that log their env, stdin and calls to `log`.
struct FakePlugins {
    dir: tempfile::TempDir,
}

impl FakePlugins {
    fn new() -> FakePlugins {
        let f = FakePlugins { dir: tempfile::tempdir().unwrap() };
        fs::create_dir(f.dir.path().join("bin")).unwrap();
        fs::create_dir(f.dir.path().join("log")).unwrap();
        let log = f.dir.path().join("log").display().to_string();
        let common = format!(
            "#!/bin/sh\nn=$(basename \"$0\")\nenv > \"{log}/$CNI_COMMAND.$n.env\"\ncat > \"{log}/$CNI_COMMAND.$n.stdin\"\n\
             echo \"$CNI_COMMAND $n\" >> \"{log}/calls\"\n"
        );
        let ok = format!(
            "{common}[ \"$CNI_COMMAND\" = ADD ] && printf '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.1.2.3/24\",\"gateway\":\"10.1.2.1\"}}],\"by\":\"%s\"}}' \"$n\"\nexit 0\n"
        );
        let fail = format!(
            "{common}if [ \"$CNI_COMMAND\" = ADD ]; then echo 'boom on stderr' >&2; \
             printf '{{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"failed to frob\",\"details\":\"no frobs left\"}}'; exit 1; fi\n"
        );
        f.script("fake-a", &ok);
        f.script("fake-b", &ok);
        f.script("fake-fail", &fail);
        f.script("fake-garbage", &format!("{common}echo not-json\n"));
        f.script("fake-sleep", "#!/bin/sh\necho started >&2\nexec sleep 5\n");
        f
    }

    fn script(&self, name: &str, text: &str) {
        let p = self.dir.path().join("bin").join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn cni(&self) -> Cni {
        Cni {
            plugin_dirs: vec![self.dir.path().join("nothing-here"), self.dir.path().join("bin")],
            cache_dir: self.dir.path().join("cache"),
            timeout: Duration::from_secs(20),
        }
    }

    fn log(&self, file: &str) -> String {
        fs::read_to_string(self.dir.path().join("log").join(file)).unwrap_or_default()
    }

    fn net(&self, plugins: &[&str]) -> NetworkList {
        let p: Vec<Value> =
            plugins.iter().map(|t| json!({"type": t, "capabilities": {"portMappings": *t == "fake-b"}})).collect();
        let raw = serde_json::to_vec(&json!({"cniVersion":"1.0.0","name":"fakenet","plugins":p})).unwrap();
        NetworkList::parse(&raw, "fake").unwrap()
    }
}

fn attachment() -> Attachment {
    Attachment {
        port_mappings: vec![PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: None }],
        args: vec![("K8S_POD_NAME".into(), "web".into())],
        ..Attachment::new("c1", "/run/netns/nonexistent-fake")
    }
}

#[test]
fn fake_plugins_get_spec_env_stdin_and_cache() {
    let f = FakePlugins::new();
    let cni = f.cni();
    let net = f.net(&["fake-a", "fake-b"]);
    let a = attachment();
    let res = cni.add(&net, &a).unwrap();
    assert_eq!(res.raw["by"], "fake-b");
    assert_eq!(res.ip().as_deref(), Some("10.1.2.3"));
    let env: Vec<String> = f.log("ADD.fake-a.env").lines().map(String::from).collect();
    let cni_path = format!("{}:{}", cni.plugin_dirs[0].display(), cni.plugin_dirs[1].display());
    for want in [
        "CNI_COMMAND=ADD".to_string(),
        "CNI_CONTAINERID=c1".into(),
        "CNI_NETNS=/run/netns/nonexistent-fake".into(),
        "CNI_IFNAME=eth0".into(),
        format!("CNI_PATH={cni_path}"),
        "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=web".into(),
    ] {
        assert!(env.contains(&want), "missing {want} in {env:?}");
    }
    assert!(env.iter().any(|l| l.starts_with("PATH=") && l.contains("/usr/sbin")));
    let extra: Vec<&String> = env
        .iter()
        .filter(|l| {
            !l.starts_with("CNI_")
                && !l.starts_with("PATH=")
                && !l.starts_with("PWD=")
                && !l.starts_with("SHLVL=")
                && !l.starts_with("_=")
        })
        .collect();
    assert!(extra.is_empty(), "unexpected env {extra:?}");
    let a_in: Value = serde_json::from_str(&f.log("ADD.fake-a.stdin")).unwrap();
    assert!(a_in.get("prevResult").is_none() && a_in.get("runtimeConfig").is_none());
    assert_eq!((a_in["name"].as_str(), a_in["cniVersion"].as_str()), (Some("fakenet"), Some("1.0.0")));
    let b_in: Value = serde_json::from_str(&f.log("ADD.fake-b.stdin")).unwrap();
    assert_eq!(b_in["prevResult"]["by"], "fake-a");
    assert_eq!(b_in["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);

    let cache_file = cni.cache_path("fakenet", "c1", "eth0");
    let cache: Value = serde_json::from_slice(&fs::read(&cache_file).unwrap()).unwrap();
    assert_eq!(cache["kind"], "cniCacheV1");
    assert_eq!((cache["containerId"].as_str(), cache["ifName"].as_str()), (Some("c1"), Some("eth0")));
    assert_eq!(cache["networkName"], "fakenet");
    assert_eq!(cache["config"], base64_encode(&net.raw));
    assert_eq!(cache["cniArgs"], json!([["K8S_POD_NAME", "web"]]));
    assert_eq!(cache["capabilityArgs"]["portMappings"][0]["containerPort"], 80);
    assert_eq!(cache["result"]["by"], "fake-b");
    assert_eq!(cni.cached_result("fakenet", "c1", "eth0").unwrap().raw, res.raw);

    cni.check(&net, &a).unwrap();
    let c_in: Value = serde_json::from_str(&f.log("CHECK.fake-a.stdin")).unwrap();
    assert_eq!(c_in["prevResult"]["by"], "fake-b");

    // DEL without port mappings still hands portmap-like plugins the cached capability args.
    let bare = Attachment { port_mappings: vec![], args: vec![], ..a.clone() };
    cni.del(&net, &bare).unwrap();
    let d_in: Value = serde_json::from_str(&f.log("DEL.fake-b.stdin")).unwrap();
    assert_eq!(d_in["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
    assert_eq!(d_in["prevResult"]["by"], "fake-b");
    assert!(!f.log("DEL.fake-b.env").contains("CNI_ARGS"));
    assert!(!cache_file.exists());
    assert_eq!(f.log("calls"), "ADD fake-a\nADD fake-b\nCHECK fake-a\nCHECK fake-b\nDEL fake-b\nDEL fake-a\n");
    // Idempotent: no cache, DEL still runs the plugins and succeeds.
    cni.del(&net, &bare).unwrap();
    let d_in: Value = serde_json::from_str(&f.log("DEL.fake-b.stdin")).unwrap();
    assert!(d_in.get("prevResult").is_none() && d_in.get("runtimeConfig").is_none());
    let e = cni.check(&net, &a).unwrap_err();
    assert!(matches!(e, CniError::NoCachedResult { .. }), "{e}");
}

#[test]
fn failed_add_rolls_back_in_reverse_and_reports_plugin_error() {
    let f = FakePlugins::new();
    let cni = f.cni();
    let net = f.net(&["fake-a", "fake-fail", "fake-b"]);
    let e = cni.add(&net, &attachment()).unwrap_err();
    let msg = e.to_string();
    assert_eq!(
        msg,
        "CNI ADD of plugin \"fake-fail\" (network \"fakenet\", container \"c1\"): failed to frob: no frobs left \
         (code 11); stderr: boom on stderr"
    );
    assert_eq!(f.log("calls"), "ADD fake-a\nADD fake-fail\nDEL fake-fail\nDEL fake-a\n");
    let d_in: Value = serde_json::from_str(&f.log("DEL.fake-a.stdin")).unwrap();
    assert_eq!(d_in["prevResult"]["by"], "fake-a");
    assert!(!cni.cache_path("fakenet", "c1", "eth0").exists());

    let missing = f.net(&["fake-a", "capsa-no-such-plugin"]);
    let msg = cni.add(&missing, &attachment()).unwrap_err().to_string();
    assert!(msg.starts_with("CNI ADD of plugin \"capsa-no-such-plugin\" (network \"fakenet\", container \"c1\"): plugin binary not found in "), "{msg}");

    let garbage = f.net(&["fake-garbage"]);
    let msg = cni.add(&garbage, &attachment()).unwrap_err().to_string();
    assert!(msg.contains("invalid result") && msg.contains("not-json"), "{msg}");
}

#[test]
fn plugin_timeout_kills_it() {
    let f = FakePlugins::new();
    let cni = Cni { timeout: Duration::from_secs(1), ..f.cni() };
    let start = Instant::now();
    let e = cni.add(&f.net(&["fake-sleep"]), &attachment()).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(4), "took {:?}", start.elapsed());
    let msg = e.to_string();
    assert!(msg.contains("no answer within 1s") && msg.contains("stderr: started"), "{msg}");
}

#[test]
fn check_needs_0_4_0() {
    let f = FakePlugins::new();
    let net = NetworkList::parse(br#"{"cniVersion":"0.3.1","name":"old","plugins":[{"type":"fake-a"}]}"#, "o").unwrap();
    assert!(matches!(f.cni().check(&net, &attachment()), Err(CniError::CheckUnsupported { .. })));
}

#[test]
fn cni_new_defaults() {
    let c = Cni::new();
    assert_eq!(c.cache_dir, PathBuf::from("/var/lib/cni"));
    assert_eq!(c.timeout, DEFAULT_PLUGIN_TIMEOUT);
    if std::env::var_os("CNI_PATH").is_none() {
        assert_eq!(c.plugin_dirs, vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")]);
    }
}
