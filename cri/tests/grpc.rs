//! capsa-cri through a real gRPC client (tonic), for what crictl does not call and for
//! bad input: GetContainerEvents, UpdateRuntimeConfig, ReopenContainerLog,
//! ListPodSandboxStats, filters and label selectors; status codes (InvalidArgument,
//! AlreadyExists, NotFound, DeadlineExceeded), a CNI plugin failing in the middle of
//! RunPodSandbox (nothing left), 100 concurrent calls, a killed shim.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use capsa_cri::proto::image_service_client::ImageServiceClient;
use capsa_cri::proto::runtime_service_client::RuntimeServiceClient;
use capsa_cri::proto::*;
use common::{root_or_skip, Cri};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

async fn channel(sock: std::path::PathBuf) -> Channel {
    Endpoint::try_from("http://localhost")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let p = sock.clone();
            async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(p).await?)) }
        }))
        .await
        .expect("connect to capsa-cri")
}

fn sandbox_config(c: &Cri, name: &str, labels: &[(&str, &str)]) -> PodSandboxConfig {
    let mut v = c.pod_config(name);
    v["labels"] =
        serde_json::to_value(labels.iter().map(|(k, x)| (k.to_string(), x.to_string())).collect::<HashMap<_, _>>())
            .unwrap();
    serde_json::from_value(v).unwrap()
}

fn container_config(c: &Cri, name: &str, script: &str, labels: &[(&str, &str)]) -> ContainerConfig {
    let mut v = c.container_config(name, script);
    v["labels"] =
        serde_json::to_value(labels.iter().map(|(k, x)| (k.to_string(), x.to_string())).collect::<HashMap<_, _>>())
            .unwrap();
    serde_json::from_value(v).unwrap()
}

fn labels(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn wait_for<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn grpc_client_events_filters_logs_stats_and_bad_input() {
    if !root_or_skip() {
        return;
    }
    let mut c = Cri::new(true, true);
    // A CNI plugin that fails its ADD, for the RunPodSandbox failure below.
    let bin = c.path("cni-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fail = bin.join("failing");
    std::fs::write(&fail, "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"boom\"}'; exit 1; fi\necho '{}'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fail, std::fs::Permissions::from_mode(0o755)).unwrap();
    c.start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let ch = channel(c.socket()).await;
        let mut rs = RuntimeServiceClient::new(ch.clone());
        let mut is = ImageServiceClient::new(ch.clone());
        let image = format!("{}/busybox:latest", c.registry.as_ref().unwrap().addr);
        let pulled = is.pull_image(PullImageRequest { image: Some(ImageSpec { image: image.clone(), ..Default::default() }), ..Default::default() }).await.unwrap().into_inner();
        assert!(pulled.image_ref.starts_with("sha256:"));
        let e = is.pull_image(PullImageRequest { image: Some(ImageSpec { image: format!("{}/nope:1", c.registry.as_ref().unwrap().addr), ..Default::default() }), ..Default::default() }).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{e:?}");
        // An image that is not there: an empty status, no error.
        let st = is.image_status(ImageStatusRequest { image: Some(ImageSpec { image: "not/there:1".into(), ..Default::default() }), verbose: false }).await.unwrap().into_inner();
        assert!(st.image.is_none());

        // Events: a subscriber from the start.
        let mut events = rs.get_container_events(GetEventsRequest {}).await.unwrap().into_inner();

        // UpdateRuntimeConfig: the pod CIDR shows in Status.
        rs.update_runtime_config(UpdateRuntimeConfigRequest { runtime_config: Some(RuntimeConfig { network_config: Some(NetworkConfig { pod_cidr: "10.66.0.0/16".into() }) }) }).await.unwrap();
        let st = rs.status(StatusRequest { verbose: true }).await.unwrap().into_inner();
        assert!(st.info["config"].contains("\"podCIDR\":\"10.66.0.0/16\""), "{:?}", st.info);
        let rc = rs.runtime_config(RuntimeConfigRequest {}).await.unwrap().into_inner();
        assert_eq!(rc.linux.unwrap().cgroup_driver, CgroupDriver::Cgroupfs as i32);

        // Bad input: missing metadata, a duplicate sandbox, unknown ids.
        let e = rs.run_pod_sandbox(RunPodSandboxRequest { config: Some(PodSandboxConfig::default()), ..Default::default() }).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        let a = rs.run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config(&c, "a", &[("app", "a")])), ..Default::default() }).await.unwrap().into_inner().pod_sandbox_id;
        let e = rs.run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config(&c, "a", &[("app", "a")])), ..Default::default() }).await.unwrap_err();
        assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
        let b = rs.run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config(&c, "b", &[("app", "b")])), ..Default::default() }).await.unwrap().into_inner().pod_sandbox_id;
        let unknown = "0".repeat(64);
        assert_eq!(rs.container_status(ContainerStatusRequest { container_id: unknown.clone(), verbose: false }).await.unwrap_err().code(), Code::NotFound);
        assert_eq!(rs.pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: unknown.clone(), verbose: false }).await.unwrap_err().code(), Code::NotFound);
        assert_eq!(rs.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: unknown.clone() }).await.unwrap_err().code(), Code::NotFound);
        assert_eq!(rs.start_container(StartContainerRequest { container_id: unknown.clone() }).await.unwrap_err().code(), Code::NotFound);
        // Removing what is not there is not an error (kubelet relies on it).
        rs.remove_container(RemoveContainerRequest { container_id: unknown.clone() }).await.unwrap();
        rs.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: unknown.clone() }).await.unwrap();
        let mut nope = container_config(&c, "nope", "true", &[]);
        nope.image = Some(ImageSpec { image: "not/there:1".into(), ..Default::default() });
        let e = rs.create_container(CreateContainerRequest { pod_sandbox_id: a.clone(), config: Some(nope), sandbox_config: None }).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{e:?}");

        // Filters: label selectors, id prefixes, states.
        let rs_l = rs.clone();
        let list = move |f: PodSandboxFilter| {
            let mut rs = rs_l.clone();
            async move { rs.list_pod_sandbox(ListPodSandboxRequest { filter: Some(f) }).await.unwrap().into_inner().items }
        };
        let only_a = list(PodSandboxFilter { label_selector: labels(&[("app", "a")]), ..Default::default() }).await;
        assert_eq!(only_a.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![a.as_str()]);
        assert_eq!(list(PodSandboxFilter { id: b[..10].into(), ..Default::default() }).await.len(), 1);
        let ready = Some(PodSandboxStateValue { state: PodSandboxState::SandboxReady as i32 });
        assert_eq!(list(PodSandboxFilter { state: ready, ..Default::default() }).await.len(), 2);

        // A container writing a line every 0.2 s; created and started events.
        let cfg = container_config(&c, "ticker", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done", &[("role", "ticker")]);
        let t = rs.create_container(CreateContainerRequest { pod_sandbox_id: a.clone(), config: Some(cfg), sandbox_config: None }).await.unwrap().into_inner().container_id;
        rs.start_container(StartContainerRequest { container_id: t.clone() }).await.unwrap();
        let cfg = container_config(&c, "other", "sleep 1000", &[("role", "other")]);
        let o = rs.create_container(CreateContainerRequest { pod_sandbox_id: b.clone(), config: Some(cfg), sandbox_config: None }).await.unwrap().into_inner().container_id;
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let ev = tokio::time::timeout(Duration::from_secs(30), events.message()).await.expect("an event").unwrap().unwrap();
            seen.push((ev.container_id.clone(), ev.container_event_type));
            assert!(ev.pod_sandbox_status.is_some() && !ev.containers_statuses.is_empty());
        }
        assert_eq!(seen, vec![
            (t.clone(), ContainerEventType::ContainerCreatedEvent as i32),
            (t.clone(), ContainerEventType::ContainerStartedEvent as i32),
            (o.clone(), ContainerEventType::ContainerCreatedEvent as i32),
        ]);
        let rs_c = rs.clone();
        let lc = move |f: ContainerFilter| {
            let mut rs = rs_c.clone();
            async move { rs.list_containers(ListContainersRequest { filter: Some(f) }).await.unwrap().into_inner().containers }
        };
        assert_eq!(lc(ContainerFilter { label_selector: labels(&[("role", "ticker")]), ..Default::default() }).await.len(), 1);
        assert_eq!(lc(ContainerFilter { pod_sandbox_id: b[..12].into(), ..Default::default() }).await[0].id, o);
        let created = Some(ContainerStateValue { state: ContainerState::ContainerCreated as i32 });
        assert_eq!(lc(ContainerFilter { state: created, ..Default::default() }).await.iter().map(|x| x.id.clone()).collect::<Vec<_>>(), vec![o.clone()]);

        // ReopenContainerLog: after kubelet's rename, new lines go to a new file.
        let log = c.path("logs/a/ticker.log");
        wait_for("ticker output", || { let l = log.clone(); async move { std::fs::read_to_string(&l).unwrap_or_default().contains("tick 2") } }).await;
        let rotated = c.path("logs/a/ticker.log.1");
        std::fs::rename(&log, &rotated).unwrap();
        rs.reopen_container_log(ReopenContainerLogRequest { container_id: t.clone() }).await.unwrap();
        wait_for("a new log file", || { let l = log.clone(); async move { std::fs::read_to_string(&l).unwrap_or_default().contains(" stdout F tick") } }).await;
        assert!(std::fs::read_to_string(&rotated).unwrap().contains("tick 1"));
        let e = rs.reopen_container_log(ReopenContainerLogRequest { container_id: o.clone() }).await.unwrap_err();
        assert_eq!(e.code(), Code::Unknown, "a container that does not run: {e:?}");

        // ListPodSandboxStats with filters.
        let st = rs.list_pod_sandbox_stats(ListPodSandboxStatsRequest { filter: Some(PodSandboxStatsFilter { label_selector: labels(&[("app", "a")]), ..Default::default() }) }).await.unwrap().into_inner().stats;
        assert_eq!(st.len(), 1);
        let linux = st[0].linux.as_ref().unwrap();
        assert_eq!(linux.containers.len(), 1);
        assert!(linux.process.as_ref().unwrap().process_count.as_ref().unwrap().value >= 1);
        assert!(linux.network.as_ref().unwrap().default_interface.is_some());
        let st = rs.list_pod_sandbox_stats(ListPodSandboxStatsRequest { filter: Some(PodSandboxStatsFilter { id: b.clone(), ..Default::default() }) }).await.unwrap().into_inner().stats;
        assert_eq!(st.len(), 1);
        assert!(st[0].linux.as_ref().unwrap().containers.is_empty(), "o is only created");

        // ExecSync: output, exit code, and a timeout that leaves nothing running.
        let r = rs.exec_sync(ExecSyncRequest { container_id: t.clone(), cmd: vec!["sh".into(), "-c".into(), "echo o; echo e >&2; exit 5".into()], timeout: 0 }).await.unwrap().into_inner();
        assert_eq!((r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code), (&b"o\n"[..], &b"e\n"[..], 5));
        let e = rs.exec_sync(ExecSyncRequest { container_id: t.clone(), cmd: vec!["sleep".into(), "77".into()], timeout: 1 }).await.unwrap_err();
        assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
        let ps = rs.exec_sync(ExecSyncRequest { container_id: t.clone(), cmd: vec!["ps".into(), "-o".into(), "args".into()], timeout: 0 }).await.unwrap().into_inner();
        assert!(!String::from_utf8_lossy(&ps.stdout).contains("sleep 77"), "{}", String::from_utf8_lossy(&ps.stdout));
        let e = rs.exec_sync(ExecSyncRequest { container_id: o.clone(), cmd: vec!["true".into()], timeout: 0 }).await.unwrap_err();
        assert_eq!(e.code(), Code::Unknown, "exec in a container that does not run: {e:?}");

        // 100 concurrent calls.
        let mut tasks = Vec::new();
        for i in 0..100 {
            let mut rs = rs.clone();
            let (t, a) = (t.clone(), a.clone());
            tasks.push(tokio::spawn(async move {
                match i % 4 {
                    0 => rs.container_status(ContainerStatusRequest { container_id: t, verbose: true }).await.map(|_| ()),
                    1 => rs.list_containers(ListContainersRequest { filter: None }).await.map(|_| ()),
                    2 => rs.pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: a, verbose: false }).await.map(|_| ()),
                    _ => rs.container_stats(ContainerStatsRequest { container_id: t }).await.map(|_| ()),
                }
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }

        // A killed shim: the container is reported exited and can be removed.
        let st = rs.container_status(ContainerStatusRequest { container_id: t.clone(), verbose: false }).await.unwrap().into_inner().status.unwrap();
        assert_eq!(st.state, ContainerState::ContainerRunning as i32);
        let shim: serde_json::Value = serde_json::from_slice(&std::fs::read(c.path(&format!("store/containers/{t}/shim/shim.json"))).unwrap()).unwrap();
        // SAFETY: kill(2) of the shim this test's daemon started.
        unsafe { libc::kill(shim["pid"].as_i64().unwrap() as i32, libc::SIGKILL) };
        let (rs_k, t_k) = (rs.clone(), t.clone());
        wait_for("the killed shim's container to be reported exited", move || {
            let mut rs = rs_k.clone();
            let t = t_k.clone();
            async move {
                let s = rs.container_status(ContainerStatusRequest { container_id: t, verbose: false }).await.unwrap().into_inner().status.unwrap();
                s.state == ContainerState::ContainerExited as i32 && s.exit_code == 255
            }
        }).await;
        let ev = loop {
            let ev = tokio::time::timeout(Duration::from_secs(30), events.message()).await.expect("a STOPPED event").unwrap().unwrap();
            if ev.container_id == t {
                break ev;
            }
        };
        assert_eq!(ev.container_event_type, ContainerEventType::ContainerStoppedEvent as i32);
        rs.remove_container(RemoveContainerRequest { container_id: t.clone() }).await.unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(30), events.message()).await.unwrap().unwrap().unwrap();
        assert_eq!((ev.container_id.as_str(), ev.container_event_type), (t.as_str(), ContainerEventType::ContainerDeletedEvent as i32));

        // A CNI plugin failing in the middle of RunPodSandbox (after the bridge's ADD):
        // an error, and nothing left (pins, leases, veths, records, cgroups).
        let links_before = c.ns.links();
        let leases = |c: &Cri| std::fs::read_dir(c.path("cni/leases/crinet")).map(|rd| rd.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("10.")).count()).unwrap_or(0);
        let leases_before = leases(&c);
        let mounts_before = c.mounts().len();
        let cfg = common::conflist("crinet", "crit0", "10.66.0.0/16", &c.path("cni/leases")).replace(
            r#"{"type":"portmap","capabilities":{"portMappings":true},"snat":true}"#,
            r#"{"type":"failing"}"#,
        );
        assert!(cfg.contains("failing"));
        std::fs::write(c.path("net.d/00-failing.conflist"), cfg).unwrap();
        let e = rs.run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config(&c, "f", &[])), ..Default::default() }).await.unwrap_err();
        assert!(e.message().contains("boom"), "{e:?}");
        std::fs::remove_file(c.path("net.d/00-failing.conflist")).unwrap();
        assert_eq!(c.ns.links(), links_before);
        assert_eq!(leases(&c), leases_before);
        assert_eq!(c.mounts().len(), mounts_before);
        assert_eq!(list(PodSandboxFilter::default()).await.len(), 2);
        // The name is free again.
        let f = rs.run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config(&c, "f", &[])), ..Default::default() }).await.unwrap().into_inner().pod_sandbox_id;

        for id in [a, b, f] {
            rs.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id.clone() }).await.unwrap();
            rs.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id.clone() }).await.unwrap();
            rs.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id }).await.unwrap();
        }
        let ev = tokio::time::timeout(Duration::from_secs(30), events.message()).await.unwrap().unwrap().unwrap();
        assert_eq!(ev.container_id, o, "the other container's removal with its sandbox is an event too");
    });
    assert_eq!(c.mounts(), Vec::<String>::new());
    assert_eq!(c.leftover_cgroups(), Vec::<std::path::PathBuf>::new());
}
