//! A container's `ports`: container and host port numbers, protocol, host IP and port names.

use std::net::IpAddr;

use serde_norway::Value;

use super::spec::{PodRefs, PortRef};
use super::walk::{as_port, as_string, fields, join, mappings, present, Ctx};
use super::ContainerPort;

const PORT_FIELDS: &[&str] = &["name", "containerPort", "hostPort", "protocol", "hostIP"];

pub(super) fn parse_ports(ctx: &mut Ctx, path: &str, v: &Value, refs: &mut PodRefs) -> Vec<ContainerPort> {
    let mut out = Vec::new();
    for (ip, m) in mappings(ctx, path, v, "a port (a mapping)") {
        let mut port = ContainerPort {
            name: None,
            container_port: 0,
            host_port: None,
            protocol: "tcp".to_string(),
            host_ip: None,
        };
        let mut container_port = None;
        for (key, v) in fields(ctx, &ip, m) {
            let p = join(&ip, key);
            match key {
                "name" => match as_string(ctx, &p, v) {
                    Some(n) if !port_name_ok(&n) => ctx.error(
                        &p,
                        format!(
                            "invalid port name {n:?}: at most 15 lowercase letters, digits and '-', with at least \
                             one letter, not starting or ending with '-' nor containing \"--\""
                        ),
                    ),
                    n => port.name = n,
                },
                "containerPort" => container_port = as_port(ctx, &p, v, false),
                "hostPort" => port.host_port = as_port(ctx, &p, v, true),
                "protocol" => match as_string(ctx, &p, v).as_deref() {
                    None | Some("TCP") => {}
                    Some("UDP") => port.protocol = "udp".to_string(),
                    Some("SCTP") => ctx.error(&p, "SCTP is not supported by capsa (TCP or UDP)"),
                    Some(other) => ctx.error(&p, format!("unsupported protocol {other:?} (expected TCP or UDP)")),
                },
                "hostIP" => match as_string(ctx, &p, v) {
                    Some(ip) if ip.is_empty() => {}
                    Some(ip) if ip.parse::<IpAddr>().is_err() => ctx.error(&p, format!("invalid IP address {ip:?}")),
                    ip => port.host_ip = ip,
                },
                k => ctx.unknown(&p, k, &[PORT_FIELDS]),
            }
        }
        match container_port {
            Some(cp) => {
                port.container_port = cp;
                refs.ports.push(PortRef {
                    container_port: cp,
                    host_port: port.host_port,
                    protocol: port.protocol.clone(),
                    path: ip,
                });
                out.push(port);
            }
            None if !present(m, "containerPort") => {
                ctx.error(&join(&ip, "containerPort"), "missing (every port needs a containerPort)")
            }
            None => {}
        }
    }
    out
}

/// IANA service name, as Kubernetes checks port names.
fn port_name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(|c| c.is_ascii_lowercase())
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_error, ok, with_container};

    #[test]
    fn port_rules() {
        let p = "spec.containers[0].ports[0]";
        assert_error(&with_container("ports: [{hostPort: 80}]"), &format!("pod.yaml: {p}.containerPort: missing"));
        assert_error(
            &with_container("ports: [{containerPort: 0}]"),
            &format!("{p}.containerPort: port must be between 1 and 65535, found 0"),
        );
        assert_error(
            &with_container("ports: [{containerPort: 70000}]"),
            &format!("{p}.containerPort: port must be between 1 and 65535, found 70000"),
        );
        assert_error(
            &with_container("ports: [{containerPort: -1}]"),
            &format!("{p}.containerPort: port must be between"),
        );
        assert_error(
            &with_container("ports: [{containerPort: \"80\"}]"),
            &format!("{p}.containerPort: expected an integer port number, found string \"80\" (remove the quotes)"),
        );
        assert_error(
            &with_container("ports: [{containerPort: 80.5}]"),
            &format!("{p}.containerPort: expected an integer port number, found number 80.5"),
        );
        assert_error(
            &with_container("ports: [{containerPort: 80, hostPort: 65536}]"),
            &format!("{p}.hostPort: port must be between 1 and 65535"),
        );
        assert_error(
            &with_container("ports: [{containerPort: 80, protocol: SCTP}]"),
            &format!("{p}.protocol: SCTP is not supported"),
        );
        assert_error(
            &with_container("ports: [{containerPort: 80, protocol: tcp}]"),
            &format!("{p}.protocol: unsupported protocol \"tcp\""),
        );
        assert_error(
            &with_container("ports: [{containerPort: 80, hostIP: localhost}]"),
            &format!("{p}.hostIP: invalid IP address"),
        );
        assert_error(
            &with_container("ports: [{containerPort: 80, name: HTTP}]"),
            &format!("{p}.name: invalid port name"),
        );

        let port = &ok(&with_container("ports: [{containerPort: 80, hostPort: 0}]")).pod.containers[0].ports[0];
        assert_eq!((port.host_port, port.protocol.as_str()), (None, "tcp"));
    }
}
