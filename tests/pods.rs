//! Pods end to end (root, real kernel, real CNI plugins from /usr/lib/cni), every
//! one inside a network namespace the test makes: its "host" side (bridge, veths,
//! iptables rules, published ports) never touches the machine's own network.
//!
//! - the example manifest (busybox httpd + an init container + a sidecar that
//!   fetches http://localhost:8080) works, a second pod reaches it by pod IP, the
//!   published port answers from the host, and `pod rm` leaves the host as it was
//!   (links, iptables rules, mounts, cgroups, host-local leases, CNI cache);
//! - bad input (missing image, duplicate container name, a taken port, a CNI
//!   plugin failing halfway, rm while containers run) changes nothing.

mod pod_common;

use pod_common::{root_or_skip, wait_until, Env, Netns};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-examples/pods").join(name)
}

fn lease(ip: &str) -> PathBuf {
    Path::new("/var/lib/cni/networks/capsa").join(ip)
}

/// A snapshot of what pods may touch on the (test's) host.
#[derive(Debug, PartialEq)]
struct HostState {
    links: Vec<String>,
    rules: Vec<String>,
    mounts: Vec<String>,
}

fn host_state(env: &Env) -> HostState {
    let ns = env.net.as_ref().unwrap();
    HostState { links: ns.links(), rules: ns.rules(), mounts: env.mounts() }
}

#[test]
fn sidecar_reaches_app_on_localhost_pods_reach_each_other_and_rm_leaves_nothing() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(true);
    env.with_busybox();
    let ns = env.net.as_ref().unwrap();
    let before = host_state(&env);

    let o = env.ok(&["pod", "apply", "-f", example("pod-web-sidecar.yaml").to_str().unwrap()]);
    assert!(o.stdout.contains("pod/web created"), "{}", o.stdout);
    assert!(o.stderr.contains("init container init-www completed"), "{}", o.stderr);
    let pod: serde_json::Value = serde_json::from_str(&env.ok(&["pod", "inspect", "web"]).stdout).unwrap();
    let ip = pod["pod"]["ip"].as_str().unwrap().to_owned();
    assert!(ip.starts_with("10.99."), "{pod:#}");
    assert!(lease(&ip).exists(), "no host-local lease for {ip}");
    let cache =
        Path::new("/var/lib/cni/results").join(format!("capsa-{}-eth0", pod["pod"]["cni_id"].as_str().unwrap()));
    assert!(cache.exists(), "no cached CNI result at {}", cache.display());
    for k in ["net", "ipc", "uts"] {
        assert!(pod["namespaces"][k].is_string(), "{pod:#}");
    }

    // The sidecar fetched the app over localhost (shared network namespace).
    let ok = wait_until(Duration::from_secs(10), || {
        env.ok(&["pod", "logs", "-c", "probe", "web"]).stdout.contains("hello from capsa")
    });
    assert!(ok, "sidecar log: {}", env.ok(&["pod", "logs", "web"]).stdout);
    // Both containers share the pod's net/ipc/uts namespaces, not their pid namespaces.
    let a = env.inspect("web-httpd");
    let b = env.inspect("web-probe");
    for k in ["net", "ipc", "uts"] {
        assert_eq!(a["namespaces"][k], b["namespaces"][k], "{k}");
    }
    assert_ne!(a["namespaces"]["pid"], b["namespaces"]["pid"]);
    assert_eq!(a["ip"], ip.as_str());
    let host = env.ok(&["exec", "web-probe", "hostname"]).stdout;
    assert_eq!(host.trim(), "web");

    // CNI CHECK passes (a broken pod network is shown below, with the second pod).
    env.ok(&["pod", "check", "web"]);
    // Outbound NAT for the network: one rule, capsa's.
    assert!(ns.rules().iter().any(|r| r.contains("capsa: masquerade network capsa")), "{:?}", ns.rules());
    // The published port answers from the host (the test's namespace).
    for url in ["http://127.0.0.1:18080/".to_string(), format!("http://{ip}:8080/")] {
        let o = ns.run("curl", &["-s", "-m", "5", &url]);
        assert_eq!(o.stdout, "hello from capsa\n", "{url}: {}", o.stderr);
    }

    // A second pod reaches the first by its pod IP.
    env.ok(&["pod", "create", "client"]);
    let o = env.ok(&["run", "--rm", "--pod", "client", "busybox", "wget", "-q", "-O-", &format!("http://{ip}:8080/")]);
    assert_eq!(o.stdout, "hello from capsa\n");
    let ls: serde_json::Value = serde_json::from_str(&env.ok(&["pod", "ls", "--format", "json"]).stdout).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 2, "{ls:#}");
    let client_ip = ls[0]["ip"].as_str().unwrap().to_owned();
    assert_ne!(client_ip, ip);

    // CHECK notices a pod whose interface vanished; rm still cleans up after it.
    env.ok(&["pod", "check", "client"]);
    let pin = env.store().join("pods/client/ns/net");
    let o = pod_common::run(
        std::process::Command::new("nsenter")
            .arg(format!("--net={}", pin.display()))
            .args(["ip", "link", "del", "eth0"]),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = env.fails(&["pod", "check", "client"]);
    assert!(o.stderr.contains("CHECK"), "{}", o.stderr);

    // rm refuses while containers run; -f removes everything.
    let o = env.fails(&["pod", "rm", "web"]);
    assert!(o.stderr.contains("stop the pod first"), "{}", o.stderr);
    env.ok(&["pod", "stop", "-t", "1", "web"]);
    env.ok(&["pod", "rm", "web", "client"]);
    assert_eq!(host_state(&env), before);
    assert!(!lease(&ip).exists() && !lease(&client_ip).exists(), "leases left");
    assert!(!cache.exists(), "cached CNI result left: {}", cache.display());
    assert!(env.leftover_cgroups().is_empty(), "{:?}", env.leftover_cgroups());
    assert_eq!(env.ok(&["ps", "-a", "-q"]).stdout, "");
    assert_eq!(env.ok(&["pod", "ls", "-q"]).stdout, "");
}

#[test]
fn bad_pod_input_leaves_nothing_behind() {
    if !root_or_skip() {
        return;
    }
    let mut env = Env::new(true);
    env.with_busybox();
    let before = host_state(&env);
    let manifest = |name: &str, body: &str| {
        let p = env.path(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    let pod = |containers: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n{containers}")
    };

    // A missing image: refused before anything is made.
    let m = manifest("a.yaml", &pod("    - name: a\n      image: no-such-image\n"));
    let o = env.fails(&["pod", "apply", "-f", &m]);
    assert!(o.stderr.contains("no-such-image"), "{}", o.stderr);
    // A duplicate container name, a container without an image: clear errors naming the field.
    let m = manifest("b.yaml", &pod("    - name: a\n      image: busybox\n    - name: a\n      image: busybox\n"));
    let o = env.fails(&["pod", "apply", "-f", &m]);
    assert!(o.stderr.contains("spec.containers[1].name"), "{}", o.stderr);
    let m = manifest("c.yaml", &pod("    - name: a\n"));
    let o = env.fails(&["pod", "apply", "-f", &m]);
    assert!(o.stderr.contains("spec.containers[0].image"), "{}", o.stderr);
    // Unknown fields are warnings that name them.
    let m = manifest(
        "d.yaml",
        &pod("    - name: a\n      image: busybox\n      command: [\"true\"]\n      livenessProbe: {}\n"),
    );
    let o = env.ok(&["pod", "apply", "-f", &m]);
    assert!(o.stderr.contains("warning") && o.stderr.contains("livenessProbe"), "{}", o.stderr);
    env.ok(&["pod", "delete", "-f", &m]);

    // A port already taken on the host: refused, nothing made.
    let ns = env.net.as_ref().unwrap();
    let mut holder = ns.command("busybox", &["nc", "-l", "-p", "18081"]).spawn().unwrap();
    assert!(wait_until(Duration::from_secs(5), || ns.run("ss", &["-ltn"]).stdout.contains(":18081")));
    let o = env.fails(&["pod", "create", "-p", "18081:80", "taken"]);
    assert!(o.stderr.contains("18081/tcp is already in use"), "{}", o.stderr);
    let _ = holder.kill();
    let _ = holder.wait();

    // A CNI plugin that fails halfway: the bridge plugin's work is undone.
    let conf = env.path("net.d");
    std::fs::create_dir_all(&conf).unwrap();
    let data = env.path("cni-data");
    let conflist = serde_json::json!({"cniVersion": "1.0.0", "name": "broken", "plugins": [
        {"type": "bridge", "bridge": "capsabrk0", "isGateway": true,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.98.7.0/24"}]], "dataDir": data}},
        {"type": "capsa-no-such-plugin"}]});
    std::fs::write(conf.join("broken.conflist"), conflist.to_string()).unwrap();
    env.vars.push(("CAPSA_CNI_CONF_DIR".into(), conf.display().to_string()));
    let o = env.fails(&["pod", "create", "--network", "broken", "halfway"]);
    assert!(o.stderr.contains("capsa-no-such-plugin"), "{}", o.stderr);
    let leases: Vec<_> = std::fs::read_dir(data.join("broken"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(!leases.is_empty(), "host-local never ran: the test proves nothing");
    assert!(leases.iter().all(|l| l == "lock" || l.starts_with("last_reserved_ip")), "{leases:?}");

    assert_eq!(env.ok(&["pod", "ls", "-q"]).stdout, "");
    assert_eq!(env.ok(&["ps", "-a", "-q"]).stdout, "");
    assert_eq!(host_state(&env), before);
    assert!(env.leftover_cgroups().is_empty(), "{:?}", env.leftover_cgroups());
}

/// `pod delete -f FILE` (kubectl's `-f`: the manifest) keeps the grace period for a
/// container that handles the stop signal or ignores it on purpose (it may finish its
/// work meanwhile), and kills at once one whose init leaves it at the default action (a
/// pid-namespace init: the kernel discards the signal, so waiting only delayed the
/// SIGKILL; the example pod's delete took 10 s where `pod rm -f` took 0.4 s).
#[test]
fn delete_kills_at_once_only_inits_that_never_see_the_stop_signal() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(false);
    env.with_busybox();
    let out = env.path("out");
    std::fs::create_dir(&out).unwrap();
    let m = env.path("grace.yaml");
    let polite = "trap 'sleep 1; echo bye > /out/bye; exit 0' TERM; echo ready > /out/ready; \
                  while true; do sleep 0.1; done";
    // Ignores SIGTERM to finish its work: done once polite has said bye.
    let busy = "trap '' TERM; echo ready > /out/busy-ready; \
                while [ ! -e /out/bye ]; do sleep 0.1; done; echo done > /out/done";
    std::fs::write(
        &m,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: grace\nspec:\n  hostNetwork: true\n  volumes:\n  \
             - name: out\n    hostPath: {{path: {}, type: Directory}}\n  containers:\n  \
             - name: deaf\n    image: busybox\n    command: [sh, -c, 'while true; do sleep 0.1; done']\n  \
             - name: polite\n    image: busybox\n    command: [sh, -c, {polite:?}]\n    \
             volumeMounts: [{{name: out, mountPath: /out}}]\n  \
             - name: busy\n    image: busybox\n    command: [sh, -c, {busy:?}]\n    \
             volumeMounts: [{{name: out, mountPath: /out}}]\n",
            out.display()
        ),
    )
    .unwrap();
    let m = m.display().to_string();
    env.ok(&["pod", "apply", "-f", &m]);
    assert!(
        wait_until(Duration::from_secs(10), || out.join("ready").exists() && out.join("busy-ready").exists()),
        "polite or busy never started"
    );
    let mut c = std::process::Command::new(pod_common::capsa_bin());
    c.arg("--debug").arg("--root").arg(env.root()).args(["pod", "delete", "--store"]).arg(env.store());
    c.args(["-f", &m]).env("CAPSA_CGROUP_PARENT", &env.cgroup_parent);
    let o = pod_common::run(&mut c);
    assert_eq!((o.code, o.stdout.as_str()), (0, "pod/grace deleted\n"), "{}", o.stderr);
    let killed_at_once = |n: &str| o.stderr.lines().any(|l| l.contains(&format!("stop {n}: its init")));
    assert!(killed_at_once("grace-deaf"), "the deaf container waited the grace period:\n{}", o.stderr);
    assert!(!killed_at_once("grace-polite") && !killed_at_once("grace-busy"), "{}", o.stderr);
    // The handler ran to its end: the grace period was honoured.
    assert_eq!(std::fs::read_to_string(out.join("bye")).unwrap_or_default(), "bye\n", "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(out.join("done")).unwrap_or_default(), "done\n", "{}", o.stderr);
    assert_eq!(env.ok(&["pod", "ls", "-q"]).stdout, "");
    assert_eq!(env.ok(&["ps", "-a", "-q"]).stdout, "");
}

/// Pod containers run under the RuntimeDefault seccomp profile unless the manifest
/// says otherwise: `securityContext.seccompProfile` of the pod, overridden by the
/// container's; `Localhost` profiles come from `<store>/seccomp/`. A missing
/// Localhost profile is refused before anything is made.
#[test]
fn pod_seccomp_profiles() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(true);
    env.with_busybox();
    let dir = env.store().join("seccomp/profiles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let report = "grep ^Seccomp: /proc/self/status; mkdir /tmp/d 2>&1 && echo mkdir-ok; sleep 300";
    let container = |name: &str, sc: &str| {
        format!(
            "  - name: {name}\n    image: busybox\n    command: [sh, -c, \"{report}\"]\n    securityContext: {sc}\n"
        )
    };
    let pod = |name: &str, sc: &str, containers: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  hostNetwork: true\n  \
             securityContext: {sc}\n  containers:\n{containers}"
        )
    };
    let m1 = env.path("p1.yaml");
    std::fs::write(&m1, pod("p1", "{}", &container("plain", "{}"))).unwrap();
    let m2 = env.path("p2.yaml");
    let containers = [
        container("inherits", "{}"),
        container("default", "{seccompProfile: {type: RuntimeDefault}}"),
        container("local", "{seccompProfile: {type: Localhost, localhostProfile: profiles/no-mkdir.json}}"),
    ]
    .concat();
    std::fs::write(&m2, pod("p2", "{seccompProfile: {type: Unconfined}}", &containers)).unwrap();
    env.ok(&["pod", "apply", "-f", m1.to_str().unwrap()]);
    env.ok(&["pod", "apply", "-f", m2.to_str().unwrap()]);
    for (name, want) in [
        ("p1-plain", "Seccomp:\t2\nmkdir-ok\n"),
        ("p2-inherits", "Seccomp:\t0\nmkdir-ok\n"),
        ("p2-default", "Seccomp:\t2\nmkdir-ok\n"),
        ("p2-local", "Seccomp:\t2\nmkdir: can't create directory '/tmp/d': Operation not permitted\n"),
    ] {
        let mut got = String::new();
        let ok = wait_until(Duration::from_secs(10), || {
            got = env.ok(&["logs", name]).stdout;
            got.lines().count() >= 2
        });
        assert!(ok && got == want, "{name}: {got:?}");
    }
    env.ok(&["pod", "rm", "-f", "p1", "p2"]);

    let m3 = env.path("p3.yaml");
    let c = container("x", "{seccompProfile: {type: Localhost, localhostProfile: missing.json}}");
    std::fs::write(&m3, pod("p3", "{}", &c)).unwrap();
    let o = env.fails(&["pod", "apply", "-f", m3.to_str().unwrap()]);
    assert!(o.stderr.contains("spec.containers \"x\"") && o.stderr.contains("seccomp/missing.json"), "{}", o.stderr);
    assert_eq!(env.ok(&["pod", "ls", "-q"]).stdout, "");
    assert_eq!(env.ok(&["ps", "-a", "-q"]).stdout, "");
    assert!(env.leftover_cgroups().is_empty(), "{:?}", env.leftover_cgroups());
}

/// Pods carry labels (`pod create -l`, a manifest's metadata.labels), which the
/// manifest's containers get too; `pod ls --filter` and `ps --filter` select by them
/// (label=KEY, label=KEY=VALUE, all must match; name=SUBSTR); a filter `pod ls` does
/// not take is an error.
#[test]
fn pod_labels_and_filters() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(true);
    env.with_busybox();
    env.ok(&["pod", "create", "--network", "none", "-l", "app=web", "-l", "env=prod", "front"]);
    env.ok(&["pod", "create", "--network", "none", "--label", "app=web", "--label", "env=staging", "front-next"]);
    env.ok(&["pod", "create", "--network", "none", "-l", "app=db", "store"]);
    let m = env.path("labelled.yaml");
    std::fs::write(
        &m,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: batch\n  labels: {app: batch, env: prod}\nspec:\n  \
         hostNetwork: true\n  containers:\n  - name: work\n    image: busybox\n    command: [sleep, '300']\n",
    )
    .unwrap();
    env.ok(&["pod", "apply", "-f", m.to_str().unwrap()]);
    env.ok(&["run", "-d", "--pod", "front", "--name", "front-app", "-l", "role=server", "busybox", "sleep", "300"]);

    let pods = |filters: &[&str]| -> Vec<String> {
        let mut args = vec!["pod", "ls", "-q"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        env.ok(&args).stdout.lines().map(str::to_owned).collect()
    };
    assert_eq!(pods(&["label=app=web"]), ["front", "front-next"]);
    assert_eq!(pods(&["label=env"]), ["batch", "front", "front-next"]);
    assert_eq!(pods(&["label=env=prod"]), ["batch", "front"]);
    assert_eq!(pods(&["label=app=web", "label=env=prod"]), ["front"]);
    assert_eq!(pods(&["label=app=web", "name=next"]), ["front-next"]);
    assert!(pods(&["label=app=cache"]).is_empty());
    assert!(pods(&["label=tier"]).is_empty());
    let ls: serde_json::Value =
        serde_json::from_str(&env.ok(&["pod", "ls", "--format", "json", "--filter", "label=app=db"]).stdout).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 1, "{ls:#}");
    assert_eq!(ls[0]["labels"], serde_json::json!({"app": "db"}));

    // The manifest's container has the pod's labels; a container run into a pod has its own.
    assert_eq!(env.inspect("batch-work")["labels"], serde_json::json!({"app": "batch", "env": "prod"}));
    assert_eq!(env.inspect("front-app")["labels"], serde_json::json!({"role": "server"}));
    let o = env.ok(&["ps", "-q", "--filter", "label=env=prod"]);
    assert_eq!(o.stdout, "batch-work\n");

    for (f, says) in [
        (
            "status=running",
            "pod ls --filter \"status=running\": unknown filter \"status\" (this command takes label, name)",
        ),
        ("app=web", "unknown filter \"app\""),
        ("label=", "expected label=KEY or label=KEY=VALUE"),
    ] {
        let o = env.fails(&["pod", "ls", "--filter", f]);
        assert!(o.stderr.contains(says), "{f}: {}", o.stderr);
    }
    env.ok(&["pod", "rm", "-f", "front", "front-next", "store", "batch"]);
    assert_eq!(env.ok(&["pod", "ls", "-q"]).stdout, "");
    assert_eq!(env.ok(&["ps", "-a", "-q"]).stdout, "");
    assert!(env.leftover_cgroups().is_empty(), "{:?}", env.leftover_cgroups());
}

/// One store, pods attached from two network namespaces (as the labs' tests and a
/// host's netns-per-tenant setups do): a network's bridge and masquerade rule live in
/// the netns the pods were attached from, so removing the last pod of one netns
/// removes them there, whatever pods of the other netns remain; and removing a pod
/// from another netns than its own never strips the caller's bridge.
#[test]
fn a_bridge_belongs_to_the_netns_its_pods_were_attached_from() {
    if !root_or_skip() {
        return;
    }
    let mut env = Env::new(true);
    let first_before = host_state(&env);
    env.ok(&["pod", "create", "first"]);
    let first = env.net.replace(Netns::new()).unwrap();
    let second_before = host_state(&env);
    env.ok(&["pod", "create", "second"]);
    let bridge = |ns: &Netns| ns.links().iter().any(|l| l == "capsa0");
    assert!(bridge(&first) && bridge(env.net.as_ref().unwrap()), "each netns has its bridge");
    // `second`, removed from the first netns: the first's bridge stays (its pod is there).
    let second = env.net.replace(first).unwrap();
    env.ok(&["pod", "rm", "-f", "second"]);
    assert!(bridge(env.net.as_ref().unwrap()), "the caller's bridge is left to its own pod");
    // `first`, from its own netns: its bridge and rule go, though no other pod holds it.
    env.ok(&["pod", "rm", "-f", "first"]);
    assert_eq!(host_state(&env), first_before, "the first netns is as before");
    // The second netns still has what `second` left (it was removed from elsewhere):
    // a pod created and removed there again tidies it.
    let first = env.net.replace(second).unwrap();
    env.ok(&["pod", "create", "third"]);
    env.ok(&["pod", "rm", "-f", "third"]);
    let after = host_state(&env);
    assert_eq!((after.links, after.rules), (second_before.links, second_before.rules), "the second netns is as before");
    assert_eq!(after.mounts, Vec::<String>::new(), "no pod's pins are left");
    drop(first);
}
