//! capsa-cri end to end through crictl v1.26.1 (root; real kernel, real CNI plugins,
//! a local registry), each test in a network namespace of its own:
//!
//! - the whole lifecycle: version, info (NetworkReady false until a CNI config
//!   appears), pull, images, runp (DNS, hostname, hostPort, labels), create, start,
//!   ps, pods, inspect, inspectp, exec -s, logs, logs -f, stats, statsp, update, a
//!   restart of capsa-cri in the middle, stop, exit codes and reasons, rm, stopp,
//!   rmp, rmi; afterwards nothing is left (mounts, cgroups, veths, leases);
//! - the example pod of rootfs-examples/cri (a web server and a sidecar that fetches
//!   it over localhost).

mod common;

use common::{root_or_skip, wait_until, Cri};
use serde_json::json;
use std::time::Duration;

/// `crictl inspect` → (state, exitCode, reason).
fn state(c: &Cri, id: &str) -> (String, i64, String) {
    let v = c.json(&["inspect", "-o", "json", id]);
    let s = &v["status"];
    (
        s["state"].as_str().unwrap_or("").to_owned(),
        s["exitCode"].as_i64().unwrap_or(-1),
        s["reason"].as_str().unwrap_or("").to_owned(),
    )
}

fn wait_state(c: &Cri, id: &str, want: &str) -> (String, i64, String) {
    let mut last = (String::new(), 0, String::new());
    let ok = wait_until(Duration::from_secs(30), || {
        last = state(c, id);
        last.0 == want
    });
    assert!(ok, "container {id} did not become {want}: {last:?}");
    last
}

#[test]
fn crictl_lifecycle_with_a_restart_in_the_middle() {
    if !root_or_skip() {
        return;
    }
    let mut c = Cri::new(false, true);
    c.start();
    let addr = c.registry.as_ref().unwrap().addr.clone();
    let image = format!("{addr}/busybox:latest");

    // version, info: ready, but no network until a CNI config exists.
    let v = c.ok(&["version"]);
    assert!(v.contains("RuntimeName:  capsa") && v.contains("RuntimeApiVersion:  v1"), "{v}");
    let info = c.json(&["info"]);
    let net =
        info["status"]["conditions"].as_array().unwrap().iter().find(|x| x["type"] == "NetworkReady").unwrap().clone();
    assert_eq!(net["status"], false, "{info:#}");
    assert_eq!(net["reason"], "NetworkPluginNotReady");
    let pod_json = c.file("pod.json", &c.pod_config("web"));
    let e = c.fails(&["runp", &pod_json]);
    assert!(e.contains("cni config not initialized"), "{e}");
    c.write_network();
    let info = c.json(&["info"]);
    assert!(info["status"]["conditions"].as_array().unwrap().iter().all(|x| x["status"] == true), "{info:#}");

    // pull, images.
    c.ok(&["pull", &image]);
    let imgs = c.ok(&["images"]);
    assert!(imgs.contains(&format!("{addr}/busybox")) && imgs.contains("latest"), "{imgs}");
    let img = c.json(&["inspecti", "-o", "json", &image]);
    let image_id = img["status"]["id"].as_str().unwrap().to_owned();
    assert!(image_id.starts_with("sha256:"), "{img:#}");

    // runp with DNS, a published port, labels and annotations.
    let mut pod = c.pod_config("web");
    pod["dns_config"] =
        json!({"servers": ["10.96.0.10"], "searches": ["default.svc.cluster.local"], "options": ["ndots:5"]});
    pod["port_mappings"] = json!([{"protocol": 0, "container_port": 8080, "host_port": 18081}]);
    pod["labels"] = json!({"app": "web", "tier": "front"});
    pod["annotations"] = json!({"note": "kept as given"});
    let pod_json = c.file("pod.json", &pod);
    let pod_id = c.ok(&["runp", &pod_json]).trim().to_owned();
    assert_eq!(pod_id.len(), 64, "{pod_id}");
    let pods = c.ok(&["pods"]);
    assert!(pods.contains("Ready") && pods.contains("web"), "{pods}");
    let p = c.json(&["inspectp", "-o", "json", &pod_id[..12]]);
    assert_eq!(p["status"]["state"], "SANDBOX_READY");
    let ip = p["status"]["network"]["ip"].as_str().unwrap().to_owned();
    assert!(ip.starts_with("10.66."), "{p:#}");
    assert_eq!(p["status"]["labels"]["tier"], "front");
    assert_eq!(p["status"]["annotations"]["note"], "kept as given");
    assert!(p["info"]["netNamespacePath"].as_str().is_some_and(|s| !s.is_empty()), "{p:#}");

    // create, start: a web server and a sidecar fetching it over localhost.
    let web = c.container_config(
        "httpd",
        "mkdir -p /www && echo hello from capsa > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www",
    );
    let mut web = web;
    web["labels"] = json!({"role": "server"});
    web["envs"] = json!([{"key": "GREETING", "value": "hi"}]);
    let web_json = c.file("web.json", &web);
    let web_id = c.ok(&["create", &pod_id, &web_json, &pod_json]).trim().to_owned();
    assert_eq!(state(&c, &web_id).0, "CONTAINER_CREATED");
    c.ok(&["start", &web_id]);
    let side =
        c.container_config("probe", "while true; do wget -qO- http://localhost:8080/ || echo failed; sleep 1; done");
    let side_json = c.file("side.json", &side);
    let side_id = c.ok(&["create", &pod_id, &side_json, &pod_json]).trim().to_owned();
    c.ok(&["start", &side_id]);
    let ps = c.ok(&["ps"]);
    assert!(ps.contains("httpd") && ps.contains("probe") && ps.matches("Running").count() == 2, "{ps}");
    let ps_label = c.ok(&["ps", "-q", "--label", "role=server"]);
    assert_eq!(ps_label.trim(), web_id);

    // inspect: state, log path, image, labels.
    let i = c.json(&["inspect", "-o", "json", &web_id]);
    assert_eq!(i["status"]["state"], "CONTAINER_RUNNING");
    let log_path = i["status"]["logPath"].as_str().unwrap().to_owned();
    assert_eq!(log_path, c.path("logs/web/httpd.log").display().to_string());
    assert_eq!(i["status"]["image"]["image"], image.as_str());
    assert!(i["status"]["imageRef"].as_str().unwrap().contains("@sha256:"), "{i:#}");
    assert_eq!(i["status"]["labels"]["role"], "server");
    assert!(i["info"]["pid"].as_i64().unwrap() > 0, "{i:#}");

    // exec -s: the pod's DNS, hostname, environment, and a failing command's exit code.
    let resolv = c.ok(&["exec", "-s", &web_id, "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains("nameserver 10.96.0.10") && resolv.contains("search default.svc.cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("options ndots:5"), "{resolv}");
    assert_eq!(c.ok(&["exec", "-s", &web_id, "hostname"]).trim(), "web");
    assert_eq!(c.ok(&["exec", "-s", &web_id, "sh", "-c", "echo $GREETING"]).trim(), "hi");
    let o = c.crictl(&["exec", "-s", &web_id, "sh", "-c", "echo out; echo err >&2; exit 7"]);
    // crictl 1.26 reports a non-zero exit as an error naming the code and the stderr.
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("exited with 7: err"), "{o:?}");

    // logs: the server's, and the sidecar got the page over localhost.
    assert!(c.ok(&["logs", &web_id]).contains("serving"));
    let ok = wait_until(Duration::from_secs(20), || c.ok(&["logs", &side_id]).contains("hello from capsa"));
    assert!(ok, "sidecar: {}", c.ok(&["logs", &side_id]));
    // The CRI log format, where kubelet reads it.
    let raw = std::fs::read_to_string(&log_path).unwrap();
    let first = raw.lines().next().unwrap();
    assert!(first.ends_with(" stdout F serving") && first.as_bytes()[10] == b'T', "{first}");

    // The published port answers from the namespace's host side.
    let o = c.ns.run("curl", &["-s", "-m", "10", "http://127.0.0.1:18081/"]);
    assert!(o.stdout.contains("hello from capsa"), "{o:?}");

    // stats, statsp.
    let st = c.json(&["stats", "-o", "json"]);
    let names: Vec<&str> =
        st["stats"].as_array().unwrap().iter().filter_map(|s| s["attributes"]["metadata"]["name"].as_str()).collect();
    assert!(names.contains(&"httpd") && names.contains(&"probe"), "{st:#}");
    let one = st["stats"].as_array().unwrap().iter().find(|s| s["attributes"]["id"] == web_id.as_str()).unwrap();
    assert!(one["memory"]["workingSetBytes"]["value"].as_str().is_some_and(|v| v != "0"), "{one:#}");
    let sp = c.json(&["statsp", "-o", "json"]);
    assert_eq!(sp["stats"][0]["attributes"]["id"], pod_id.as_str(), "{sp:#}");
    assert!(sp["stats"][0]["linux"]["network"]["defaultInterface"]["name"] == "eth0", "{sp:#}");

    // update: the memory limit in the container's cgroup.
    c.ok(&["update", "--memory", "67108864", &web_id]);
    let cg = format!("{}/web/{web_id}", c.cgroup_parent);
    let limit = common::cgroup_hierarchies()
        .iter()
        .find_map(|h| {
            let d = h.join(cg.trim_start_matches('/'));
            std::fs::read_to_string(d.join("memory.limit_in_bytes"))
                .or_else(|_| std::fs::read_to_string(d.join("memory.max")))
                .ok()
        })
        .unwrap_or_default();
    assert_eq!(limit.trim(), "67108864");

    // A restart of capsa-cri: containers keep running in their shims, nothing is lost.
    assert_eq!(c.stop(), 0, "capsa-cri exits 0 on SIGTERM: {}", c.daemon_log());
    let before = std::fs::read_to_string(c.path("logs/web/probe.log")).unwrap().len();
    assert!(
        wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(c.path("logs/web/probe.log")).unwrap().len() > before
        }),
        "the sidecar kept running while capsa-cri was down"
    );
    c.start();
    let ps = c.ok(&["ps"]);
    assert!(ps.matches("Running").count() == 2, "{ps}");
    assert!(c.ok(&["pods"]).contains("Ready"));
    assert_eq!(c.json(&["inspectp", "-o", "json", &pod_id])["status"]["network"]["ip"], ip.as_str());
    assert_eq!(c.ok(&["exec", "-s", &web_id, "hostname"]).trim(), "web");

    // logs -f follows a container until it exits; exit codes and reasons.
    let counter = c.container_config("counter", "for i in 1 2 3; do echo line $i; sleep 1; done; exit 3");
    let counter_json = c.file("counter.json", &counter);
    let cnt = c.ok(&["create", &pod_id, &counter_json, &pod_json]).trim().to_owned();
    c.ok(&["start", &cnt]);
    let followed = c.ok(&["logs", "-f", &cnt]);
    assert_eq!(followed, "line 1\nline 2\nline 3\n");
    assert_eq!(wait_state(&c, &cnt, "CONTAINER_EXITED"), ("CONTAINER_EXITED".into(), 3, "Error".into()));
    let done = c.container_config("done", "true");
    let done_json = c.file("done.json", &done);
    let done_id = c.ok(&["create", &pod_id, &done_json, &pod_json]).trim().to_owned();
    c.ok(&["start", &done_id]);
    assert_eq!(wait_state(&c, &done_id, "CONTAINER_EXITED"), ("CONTAINER_EXITED".into(), 0, "Completed".into()));
    assert!(c.ok(&["ps", "-a", "--state", "exited", "-q"]).contains(&done_id));

    // stop: the sidecar's shell ignores SIGTERM as pid 1: SIGKILL after the timeout.
    c.ok(&["stop", "-t", "1", &side_id]);
    let (s, code, reason) = state(&c, &side_id);
    assert_eq!((s.as_str(), code, reason.as_str()), ("CONTAINER_EXITED", 137, "Error"));
    c.ok(&["rm", &side_id]);
    c.ok(&["rm", &cnt, &done_id]);
    assert!(!c.ok(&["ps", "-a"]).contains("probe"));

    // stopp: NOTREADY, containers exited, network released; rmp: all gone.
    c.ok(&["stopp", &pod_id]);
    assert!(c.ok(&["pods"]).contains("NotReady"));
    assert_eq!(state(&c, &web_id).0, "CONTAINER_EXITED");
    assert!(std::fs::read_dir(c.path("cni/leases/crinet"))
        .map_or(true, |rd| rd.flatten().all(|e| !e.file_name().to_string_lossy().starts_with("10."))));
    c.ok(&["rmp", &pod_id]);
    assert_eq!(c.ok(&["pods", "-q"]).trim(), "");
    assert_eq!(c.ok(&["ps", "-a", "-q"]).trim(), "");
    assert_eq!(c.mounts(), Vec::<String>::new());
    assert_eq!(c.leftover_cgroups(), Vec::<std::path::PathBuf>::new());
    // The veths are gone; the network's bridge stays, as containerd leaves cni0.
    assert_eq!(c.ns.links(), vec!["crit0".to_string(), "lo".to_string()], "only the bridge is left");

    // rmi.
    c.ok(&["rmi", &image]);
    assert!(!c.ok(&["images"]).contains("busybox"));
}

#[test]
fn example_pod_of_rootfs_examples_runs_through_crictl() {
    if !root_or_skip() {
        return;
    }
    let mut c = Cri::new(true, true);
    c.start();
    let addr = c.registry.as_ref().unwrap().addr.clone();
    let dir = common::repo().join("rootfs-examples/cri");
    // The examples name busybox:latest; here it comes from the test's registry.
    let load = |f: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join(f))
            .unwrap()
            .replace("docker.io/library/busybox:latest", &format!("{addr}/busybox:latest"));
        serde_json::from_str(&text).unwrap()
    };
    let mut pod = load("pod.json");
    pod["log_directory"] = json!(c.path("logs/example"));
    pod["linux"]["cgroup_parent"] = json!(format!("{}/example", c.cgroup_parent));
    let pod_json = c.file("pod.json", &pod);
    c.ok(&["pull", &format!("{addr}/busybox:latest")]);
    let pod_id = c.ok(&["runp", &pod_json]).trim().to_owned();
    let web = c.file("web.json", &load("web.json"));
    let side = c.file("sidecar.json", &load("sidecar.json"));
    let w = c.ok(&["create", &pod_id, &web, &pod_json]).trim().to_owned();
    let s = c.ok(&["create", &pod_id, &side, &pod_json]).trim().to_owned();
    c.ok(&["start", &w]);
    c.ok(&["start", &s]);
    let ok = wait_until(Duration::from_secs(30), || c.ok(&["logs", &s]).contains("hello from capsa"));
    assert!(ok, "sidecar log: {}\nweb log: {}", c.ok(&["logs", &s]), c.ok(&["logs", &w]));
    c.ok(&["stopp", &pod_id]);
    c.ok(&["rmp", &pod_id]);
    assert_eq!(c.mounts(), Vec::<String>::new());
}

/// A host restart, simulated: with capsa-cri stopped, every process of the pod dies
/// (shim and container), the pinned namespaces are unmounted and the runtime's state
/// (a tmpfs under /run) is gone. capsa-cri then reports the sandbox NOTREADY and the
/// container EXITED, and both can be removed, releasing the pod's IP lease.
#[test]
fn after_a_host_restart_sandboxes_are_notready_containers_exited_and_removable() {
    if !root_or_skip() {
        return;
    }
    let mut c = Cri::new(true, true);
    c.start();
    let addr = c.registry.as_ref().unwrap().addr.clone();
    c.ok(&["pull", &format!("{addr}/busybox:latest")]);
    let pod_json = c.file("pod.json", &c.pod_config("r"));
    let pod = c.ok(&["runp", &pod_json]).trim().to_owned();
    let cfg = c.file("c.json", &c.container_config("sleeper", "exec sleep 100000"));
    let id = c.ok(&["create", &pod, &cfg, &pod_json]).trim().to_owned();
    c.ok(&["start", &id]);
    assert_eq!(state(&c, &id).0, "CONTAINER_RUNNING");
    let leases = c.path("cni/leases/crinet");
    let lease_count = || {
        std::fs::read_dir(&leases)
            .map(|rd| rd.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("10.")).count())
            .unwrap_or(0)
    };
    assert_eq!(lease_count(), 1);
    c.stop();

    // The "reboot": processes, mounts, runtime state and cgroups go away.
    let shim: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.path(&format!("store/containers/{id}/shim/shim.json"))).unwrap())
            .unwrap();
    // SAFETY: kill(2) of the shim and the container process this test's daemon started.
    unsafe {
        libc::kill(shim["pid"].as_i64().unwrap() as i32, libc::SIGKILL);
        libc::kill(shim["container_pid"].as_i64().unwrap() as i32, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut ms = c.mounts();
    ms.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in ms.iter().filter(|m| !m.ends_with("/rootfs")) {
        let cs = std::ffi::CString::new(m.as_str()).unwrap();
        // SAFETY: unmounting the pod's pins under the test's own temp dir.
        unsafe { libc::umount2(cs.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = std::fs::remove_dir_all(c.path("root"));
    let mut cgs = c.leftover_cgroups();
    cgs.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in cgs {
        let _ = std::fs::remove_dir(p);
    }

    c.start();
    assert!(c.ok(&["pods"]).contains("NotReady"), "{}", c.ok(&["pods"]));
    let (s, code, reason) = state(&c, &id);
    assert_eq!((s.as_str(), code, reason.as_str()), ("CONTAINER_EXITED", 255, "Unknown"));
    c.ok(&["rm", &id]);
    c.ok(&["stopp", &pod]);
    c.ok(&["rmp", &pod]);
    assert_eq!(c.ok(&["pods", "-q"]).trim(), "");
    assert_eq!(lease_count(), 0, "the pod's IP was released");
    assert_eq!(c.mounts(), Vec::<String>::new());
}

/// A pod's containers share one /dev/shm (the sandbox's tmpfs, as containerd's),
/// so POSIX shared memory works across a pod as SysV IPC does; StopPodSandbox
/// unmounts it.
#[test]
fn the_containers_of_a_pod_share_its_dev_shm() {
    if !root_or_skip() {
        return;
    }
    let mut c = Cri::new(false, true);
    c.start();
    let addr = c.registry.as_ref().unwrap().addr.clone();
    c.ok(&["pull", &format!("{addr}/busybox:latest")]);
    let mut pod = c.pod_config("shm");
    // (host network: no CNI needed for this)
    pod["linux"]["security_context"]["namespace_options"]["network"] = json!(2);
    let pod_json = c.file("pod.json", &pod);
    let pod_id = c.ok(&["runp", &pod_json]).trim().to_owned();
    let mut ids = Vec::new();
    for name in ["writer", "reader"] {
        let cfg = c.file(&format!("{name}.json"), &c.container_config(name, "exec sleep 100000"));
        let id = c.ok(&["create", &pod_id, &cfg, &pod_json]).trim().to_owned();
        c.ok(&["start", &id]);
        ids.push(id);
    }
    c.ok(&["exec", "-s", &ids[0], "sh", "-c", "echo from the writer > /dev/shm/note"]);
    assert_eq!(c.ok(&["exec", "-s", &ids[1], "cat", "/dev/shm/note"]).trim(), "from the writer");
    let df = c.ok(&["exec", "-s", &ids[1], "sh", "-c", "grep ' /dev/shm ' /proc/mounts"]);
    assert!(df.contains("tmpfs") && df.contains("nosuid") && df.contains("nodev") && df.contains("noexec"), "{df}");
    let shm_mounts = || c.mounts().into_iter().filter(|m| m.ends_with("/shm")).count();
    assert_eq!(shm_mounts(), 1, "{:?}", c.mounts());
    c.ok(&["stopp", &pod_id]);
    assert_eq!(shm_mounts(), 0, "StopPodSandbox unmounts the pod's shm: {:?}", c.mounts());
    c.ok(&["rmp", &pod_id]);
    assert_eq!(c.mounts(), Vec::<String>::new());

    // A sandbox removed behind capsa-cri's back (`capsa pod rm -f` on its store): the
    // pod's teardown unmounts the shm too, and nothing of the pod is left.
    let pod_id = c.ok(&["runp", &pod_json]).trim().to_owned();
    assert_eq!(shm_mounts(), 1, "{:?}", c.mounts());
    let capsa = common::capsa_cri_bin().with_file_name("capsa");
    let o = common::run(
        std::process::Command::new(&capsa)
            .arg("--root")
            .arg(c.path("root"))
            .args(["pod", "rm", "-f", "--store"])
            .arg(c.path("store"))
            .arg(&pod_id),
    );
    assert_eq!(o.code, 0, "capsa pod rm -f: {}{}", o.stdout, o.stderr);
    assert_eq!(c.mounts(), Vec::<String>::new());
    assert!(!c.path("store/pods").join(&pod_id).exists(), "the pod's directory is gone");
}

/// `explain = "json:FILE"` in cri.toml: every sandbox and container kubelet starts is
/// narrated into FILE (the pod's namespaces and its container's clone, mounts, cgroup
/// files and execve), as `capsa --explain=json` would.
#[test]
fn the_config_key_explain_narrates_sandboxes_and_containers() {
    if !root_or_skip() {
        return;
    }
    let mut c = Cri::new(false, true);
    let file = c.path("explain/steps.jsonl");
    c.extra_config = format!("explain = \"json:{}\"", file.display());
    c.start();
    let addr = c.registry.as_ref().unwrap().addr.clone();
    c.ok(&["pull", &format!("{addr}/busybox:latest")]);
    let mut pod = c.pod_config("explained");
    pod["linux"]["security_context"]["namespace_options"]["network"] = json!(2);
    let pod_json = c.file("pod.json", &pod);
    let pod_id = c.ok(&["runp", &pod_json]).trim().to_owned();
    let cfg = c.file("ctr.json", &c.container_config("ctr", "exec sleep 100000"));
    let id = c.ok(&["create", &pod_id, &cfg, &pod_json]).trim().to_owned();
    c.ok(&["start", &id]);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let steps: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON step")).collect();
    let kinds: std::collections::BTreeSet<&str> = steps.iter().filter_map(|s| s["kind"].as_str()).collect();
    for k in ["namespace", "mount", "cgroup", "root", "capabilities", "process"] {
        assert!(kinds.contains(k), "no {k} step in {}:\n{text}", file.display());
    }
    assert!(
        steps.iter().any(|s| s["call"].as_str().is_some_and(|c| c.contains("execve(") && c.contains("sleep"))),
        "the container's execve is narrated:\n{text}"
    );
    c.ok(&["stopp", &pod_id]);
    c.ok(&["rmp", &pod_id]);
    // A malformed key is refused at start-up, naming it.
    let mut bad = Cri::new(false, false);
    bad.extra_config = "explain = \"yaml:/tmp/x\"".into();
    std::fs::write(bad.path("cri.toml"), bad.config()).unwrap();
    let o = common::run(std::process::Command::new(common::capsa_cri_bin()).arg("--config").arg(bad.path("cri.toml")));
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("explain = \"yaml:/tmp/x\""), "{}", o.stderr);
}
