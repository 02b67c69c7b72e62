//! Parses the example manifests shipped in `examples/`.

use capsa_pod::manifest::{parse_all, ContainerPort, RestartPolicy, VolumeMount, VolumeSource};

fn read(name: &str) -> String {
    let path = format!("{}/../rootfs-examples/pods/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn web_sidecar_example() {
    let all = parse_all(&read("pod-web-sidecar.yaml"), "pod-web-sidecar.yaml").unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].warnings.is_empty(), "{:?}", all[0].warnings);
    let pod = &all[0].pod;
    assert_eq!(pod.name, "web");
    assert_eq!(pod.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(pod.restart_policy, RestartPolicy::Always);
    assert_eq!(pod.volumes.len(), 1);
    assert_eq!(pod.volumes[0].name, "www");
    assert_eq!(pod.volumes[0].source, VolumeSource::EmptyDir { memory: false, size_limit: None });
    let www = vec![VolumeMount { name: "www".into(), mount_path: "/www".into(), read_only: false, sub_path: None }];

    let init = &pod.init_containers[..];
    assert_eq!(init.len(), 1);
    assert_eq!((init[0].name.as_str(), init[0].image.as_str()), ("init-www", "busybox"));
    assert_eq!(init[0].command, strings(&["sh", "-c", "echo hello from capsa > /www/index.html"]));
    assert_eq!(init[0].volume_mounts, www);

    let [httpd, probe] = &pod.containers[..] else { panic!("expected two containers: {:?}", pod.containers) };
    assert_eq!((httpd.name.as_str(), httpd.image.as_str()), ("httpd", "busybox"));
    assert_eq!(httpd.command, strings(&["httpd", "-f", "-p", "8080", "-h", "/www"]));
    assert_eq!(
        httpd.ports,
        [ContainerPort {
            name: None,
            container_port: 8080,
            host_port: Some(18080),
            protocol: "tcp".into(),
            host_ip: None
        }]
    );
    assert_eq!((httpd.cpu_limit, httpd.memory_limit), (Some(0.5), Some(64 << 20)));
    assert_eq!(httpd.volume_mounts, www);

    assert_eq!((probe.name.as_str(), probe.image.as_str()), ("probe", "busybox"));
    assert_eq!(
        probe.command,
        strings(&["sh", "-c", "while true; do wget -q -O- http://localhost:8080/ ; sleep 2; done"])
    );
}

#[test]
fn hostpath_example() {
    let all = parse_all(&read("pod-hostpath.yaml"), "pod-hostpath.yaml").unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].warnings.is_empty(), "{:?}", all[0].warnings);
    let pod = &all[0].pod;
    assert_eq!(pod.restart_policy, RestartPolicy::Never);
    assert_eq!(pod.containers.len(), 1);
    assert_eq!(
        pod.volumes[0].source,
        VolumeSource::HostPath { path: "/tmp/capsa-demo".into(), kind: Some("DirectoryOrCreate".into()) }
    );
    let mount = &pod.containers[0].volume_mounts[0];
    assert_eq!((mount.name.as_str(), mount.read_only), (pod.volumes[0].name.as_str(), true));
}

#[test]
fn both_examples_as_one_stream() {
    let text = format!("{}---\n{}", read("pod-web-sidecar.yaml"), read("pod-hostpath.yaml"));
    let names: Vec<String> = parse_all(&text, "both.yaml").unwrap().into_iter().map(|p| p.pod.name).collect();
    assert_eq!(names, ["web", "hostpath-demo"]);
}
