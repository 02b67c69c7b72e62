//! `capsa pod ...`: pods over capsa-pod (linked into `capsa-image` only, whose clap
//! parser, `cli/human/pod.rs`, defines the verbs and their flags).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

use capsa_image::images::{ImageStore, LocalImage};
use capsa_pod::cni::PortMapping;
use capsa_pod::containers;
use capsa_pod::filter::Filters;
use capsa_pod::pods::{self, NetConfig, PodCreate};
use capsa_pod::runtime_cli::Tools;

use super::args::Parsed;

fn parse_port(s: &str) -> Result<PortMapping> {
    let (spec, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto = proto.to_lowercase();
    if proto != "tcp" && proto != "udp" {
        bail!("-p {s:?}: protocol must be tcp or udp");
    }
    let parts: Vec<&str> = spec.split(':').collect();
    let (ip, h, c) = match parts.as_slice() {
        [h, c] => (None, *h, *c),
        [ip, h, c] => (Some(ip.to_string()), *h, *c),
        _ => bail!("-p {s:?}: expected HOSTPORT:PORT[/proto] or IP:HOSTPORT:PORT[/proto]"),
    };
    let num = |v: &str| -> Result<u16> {
        match v.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("-p {s:?}: {v:?} is not a port (1-65535)"),
        }
    };
    Ok(PortMapping { host_port: num(h)?, container_port: num(c)?, protocol: proto, host_ip: ip })
}

fn one(p: &Parsed, verb: &str) -> Result<String> {
    match p.pos.as_slice() {
        [n] => Ok(n.clone()),
        _ => bail!("pod {verb}: expected one pod name"),
    }
}

fn names(p: &Parsed, verb: &str) -> Result<()> {
    if p.pos.is_empty() {
        bail!("pod {verb}: expected pod names");
    }
    Ok(())
}

fn read_manifest(p: &Parsed) -> Result<(String, String)> {
    let f = p.get("file").context("-f FILE is required")?;
    let text = if f == "-" {
        std::io::read_to_string(std::io::stdin()).context("read the manifest from stdin")?
    } else {
        std::fs::read_to_string(f).with_context(|| format!("read {f}"))?
    };
    Ok((f.to_owned(), text))
}

/// `capsa pod VERB ...`: runs `verb` on its parsed arguments (`g`: the global flags).
pub fn main(verb: &str, p: &Parsed, g: &Parsed) -> Result<i32> {
    let (store, tools) = super::managed::env(p, g)?;
    let net = NetConfig::default();
    match verb {
        "create" => {
            let name = one(p, verb)?;
            let ports = p.all("publish").iter().map(|s| parse_port(s)).collect::<Result<Vec<_>>>()?;
            let labels = capsa_pod::filter::parse_labels(&p.all("label"))?;
            let rec = pods::create(
                &store,
                &net,
                &PodCreate {
                    name,
                    network: p.get("network").unwrap_or("bridge").to_owned(),
                    ports,
                    hostname: p.get("hostname").map(str::to_owned),
                    labels,
                    manifest: None,
                },
            )?;
            println!("{}", rec.name);
            Ok(0)
        }
        "ls" => ls(&store, &tools, p),
        "inspect" => {
            let name = one(p, verb)?;
            let rec = pods::load(&store, &name)?;
            let ms = pods::members(&store, &tools, &name)?;
            let ns = pods::pod_dir(&store, &name).join("ns");
            let v = json!({
                "pod": rec,
                "namespaces": capsa_pod::netns::KINDS.iter()
                    .filter(|k| capsa_pod::netns::is_pinned(&ns, k))
                    .map(|k| (k.to_string(), json!(ns.join(k)))).collect::<serde_json::Map<_, _>>(),
                "containers": ms.iter().map(|m| json!({
                    "name": m.meta.name, "container": m.meta.pod_container, "init": m.meta.init,
                    "state": m.state, "pid": m.pid, "exitCode": m.exit_code(), "restartCount": m.restart_count,
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        "logs" => logs(&store, &tools, p),
        "check" => {
            let name = one(p, verb)?;
            pods::check(&store, &net, &name)?;
            println!("{name}: network ok");
            Ok(0)
        }
        "stop" => {
            let secs: u64 = p.get("time").map(|t| t.parse()).transpose().context("--time takes seconds")?.unwrap_or(10);
            names(p, verb)?;
            for name in &p.pos {
                pods::stop(&store, &tools, name, Duration::from_secs(secs))?;
                println!("{name}");
            }
            Ok(0)
        }
        "rm" => {
            names(p, verb)?;
            for name in &p.pos {
                pods::remove(&store, &tools, &net, name, p.on("force"))?;
                println!("{name}");
            }
            Ok(0)
        }
        "apply" => apply(&store, &tools, &net, p),
        "delete" => {
            let (origin, text) = read_manifest(p)?;
            let parsed = capsa_pod::manifest::parse_all(&text, &origin)?;
            let pods_in: Vec<_> = parsed.into_iter().map(|x| x.pod).collect();
            for n in capsa_pod::apply::delete(&store, &tools, &net, &pods_in)? {
                println!("pod/{n} deleted");
            }
            Ok(0)
        }
        v => bail!("pod: unknown verb {v:?} (see 'capsa pod --help')"),
    }
}

fn apply(store: &ImageStore, tools: &Tools, net: &NetConfig, p: &Parsed) -> Result<i32> {
    let (origin, text) = read_manifest(p)?;
    let parsed = capsa_pod::manifest::parse_all(&text, &origin)?;
    let quiet = p.on("quiet");
    for x in &parsed {
        for w in &x.warnings {
            eprintln!("capsa: warning: {w}");
        }
    }
    for x in parsed {
        let mut resolve = |name: &str| -> capsa_pod::Result<LocalImage> {
            super::image::obtain_for_pod(store, name, quiet).map_err(|e| capsa_pod::PodError::msg(format!("{e:#}")))
        };
        let mut progress = |s: &str| {
            if !quiet {
                eprintln!("capsa: {s}");
            }
        };
        let rec = capsa_pod::apply::apply(store, tools, net, &x.pod, &origin, &mut resolve, &mut progress)?;
        println!("pod/{} created{}", rec.name, rec.ip.map(|i| format!(" (IP {i})")).unwrap_or_default());
    }
    Ok(0)
}

fn ls(store: &ImageStore, tools: &Tools, p: &Parsed) -> Result<i32> {
    let filters = Filters::parse(&p.all("filter"), &["label", "name"], "pod ls")?;
    let recs: Vec<_> = pods::list(store)?.into_iter().filter(|r| filters.matches(&r.name, &r.labels, None)).collect();
    if p.on("quiet") {
        for r in &recs {
            println!("{}", r.name);
        }
        return Ok(0);
    }
    let all = containers::list(store, tools)?;
    let count = |n: &str| {
        let ms: Vec<_> = all.iter().filter(|i| i.meta.pod.as_deref() == Some(n) && !i.meta.init).collect();
        (ms.iter().filter(|i| i.is_active()).count(), ms.len())
    };
    match p.get("format").unwrap_or("table") {
        "json" => {
            let v: Vec<_> = recs
                .iter()
                .map(|r| {
                    let (up, total) = count(&r.name);
                    json!({"name": r.name, "network": r.network, "ip": r.ip, "ports": r.ports,
                           "created": r.created, "running": up, "containers": total, "labels": r.labels})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "table" => {
            let w = recs.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
            println!("{:<w$}  {:<8}  {:<15}  {:<9}  PORTS", "NAME", "NETWORK", "IP", "READY");
            for r in &recs {
                let (up, total) = count(&r.name);
                let ports: Vec<String> =
                    r.ports.iter().map(|m| format!("{}->{}/{}", m.host_port, m.container_port, m.protocol)).collect();
                println!(
                    "{:<w$}  {:<8}  {:<15}  {:<9}  {}",
                    r.name,
                    r.network,
                    r.ip.as_deref().unwrap_or("-"),
                    format!("{up}/{total}"),
                    ports.join(",")
                );
            }
        }
        f => bail!("--format {f:?}: table or json"),
    }
    Ok(0)
}

fn logs(store: &ImageStore, tools: &Tools, p: &Parsed) -> Result<i32> {
    let name = one(p, "logs")?;
    pods::load(store, &name)?;
    let ms = pods::members(store, tools, &name)?;
    let sel: Vec<_> = match p.get("container") {
        Some(c) => ms.iter().filter(|m| m.meta.name == c || m.meta.pod_container.as_deref() == Some(c)).collect(),
        None => ms.iter().collect(),
    };
    if sel.is_empty() {
        bail!("pod logs {name}: no such container {:?}", p.get("container").unwrap_or(""));
    }
    if p.on("follow") && sel.len() > 1 {
        bail!("pod logs -f {name}: the pod has {} containers: choose one with -c", sel.len());
    }
    let tail = p.get("tail").map(|t| t.parse::<usize>()).transpose().context("--tail takes a number")?;
    for m in sel {
        if p.get("container").is_none() {
            println!("==> {} <==", m.meta.pod_container.as_deref().unwrap_or(&m.meta.name));
        }
        let opts = capsa_pod::logs::Options { follow: p.on("follow"), tail, timestamps: p.on("timestamps") };
        let n = m.meta.name.clone();
        let mut running = || containers::inspect_state(store, tools, &n).is_ok_and(|i| i.is_active());
        let (mut o, mut e) = (std::io::stdout().lock(), std::io::stderr().lock());
        capsa_pod::logs::print(&containers::log_path(store, &m.meta.name), opts, &mut o, &mut e, &mut running)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        let p = parse_port("8080:80").unwrap();
        assert_eq!((p.host_port, p.container_port, p.protocol.as_str(), p.host_ip), (8080, 80, "tcp", None));
        let p = parse_port("127.0.0.1:53:5353/UDP").unwrap();
        assert_eq!((p.host_port, p.container_port, p.protocol.as_str()), (53, 5353, "udp"));
        assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
        for bad in ["80", "0:80", "a:80", "80:80/sctp", "1:2:3:4"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }
}
