//! `capsa inspect --namespaces NAME|ID...`: both sides of a container, for students:
//! its namespaces next to the host's (and whose they are), its cgroups' usage against
//! their limits, and its processes with host and container pids. The looking is
//! [`capsa_pod::both_sides`]; this module finds the store and prints.
//!
//! Works on runtime containers (`capsa --root R inspect --namespaces ID`), managed
//! containers and pod members (by name, in `--store`), and capsa-cri's containers (by
//! id or a unique prefix: `--root` is the CRI config's `runtime_root`, `--store` its
//! `store_dir`; both default to capsa's own defaults, as capsa-cri's do).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Result};

use capsa_image::images::default_root;
use capsa_pod::both_sides::{self, Cgroups, Lookup, Report};

use super::args::Parsed;

/// `inspect --namespaces`: `p` the verb's flags, `g` the global ones.
pub fn main(p: &Parsed, g: &Parsed) -> Result<i32> {
    if p.pos.is_empty() {
        bail!("inspect --namespaces: expected container names or ids");
    }
    let json = match p.get("format").unwrap_or("text") {
        "text" | "table" => false,
        "json" => true,
        f => bail!("inspect --namespaces --format {f:?}: text or json"),
    };
    // A store that does not exist is not made: a runtime container needs none.
    let root = p.get("store").map_or_else(|| default_root().to_string_lossy().into_owned(), str::to_owned);
    let store = if Path::new(&root).is_dir() { Some(super::image::open_store(&root)?) } else { None };
    let root = super::state_root(g);
    let runtime_root = Path::new(&root);
    let lookup = Lookup { runtime_root, store: store.as_ref() };
    let mut reports = Vec::new();
    for name in &p.pos {
        reports.push(both_sides::inspect(&lookup, name).map_err(|e| anyhow::anyhow!("inspect --namespaces: {e}"))?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        let texts: Vec<String> = reports.iter().map(text).collect();
        print!("{}", texts.join("\n"));
    }
    Ok(0)
}

/// Bytes for people.
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn or_max(v: Option<u64>, f: impl Fn(u64) -> String) -> String {
    v.map_or_else(|| "max (no limit)".to_owned(), f)
}

/// The human report of one container.
fn text(r: &Report) -> String {
    let mut s = String::new();
    let pod = match (&r.pod, &r.kubernetes_pod) {
        (Some(p), Some(k)) => format!(" of pod {} ({k})", both_sides::short(p)),
        (Some(p), None) => format!(" of pod {}", both_sides::short(p)),
        _ => String::new(),
    };
    let id = both_sides::short(&r.id);
    let _ = writeln!(s, "{id}: {}{pod}, {}, init pid {} on the host", r.kind.describe(), r.status, r.pid);
    let _ = writeln!(s, "runtime root {}, bundle {}", r.runtime_root.display(), r.bundle.display());
    let _ = writeln!(s, "\nNAMESPACES (readlink /proc/{}/ns/TYPE; the host's: {})", r.pid, r.host_view);
    let w = r.namespaces.iter().filter_map(|n| n.container.as_ref().map(String::len)).max().unwrap_or(0).max(9);
    let hw = r.namespaces.iter().filter_map(|n| n.host.as_ref().map(String::len)).max().unwrap_or(0).max(4);
    let _ = writeln!(s, "  {:<17} {:<w$}  {:<hw$}  VERDICT", "TYPE", "CONTAINER", "HOST");
    for n in &r.namespaces {
        let c = n.container.as_deref().unwrap_or("-");
        let h = n.host.as_deref().unwrap_or("-");
        let _ = writeln!(s, "  {:<17} {c:<w$}  {h:<hw$}  {}", n.kind, n.verdict);
    }
    match &r.cgroups {
        Some(cg) => cgroups_text(&mut s, cg),
        None => s.push_str("\nCGROUPS: none (the container runs in its caller's)\n"),
    }
    let _ = writeln!(s, "\nPROCESSES (cgroup.procs; the container pid is NSpid's, in the container's pid namespace)");
    let _ = writeln!(s, "  {:>8}  {:>13}  COMMAND", "HOST PID", "CONTAINER PID");
    for p in &r.processes {
        let cpid = p.container_pid.map_or("-".to_owned(), |c| c.to_string());
        let tree = if p.depth == 0 { String::new() } else { format!("{}\\_ ", "   ".repeat(p.depth - 1)) };
        let _ = writeln!(s, "  {:>8}  {cpid:>13}  {tree}{}", p.host_pid, p.command);
    }
    s
}

fn cgroups_text(s: &mut String, cg: &Cgroups) {
    let mode = match cg.mode {
        "hybrid" => "hybrid host: the v1 controllers, and the cgroup2 tree as \"unified\"",
        "v1" => "cgroup v1: one hierarchy per controller",
        _ => "cgroup v2: one tree",
    };
    let _ = writeln!(s, "\nCGROUPS ({mode})");
    for d in &cg.dirs {
        let _ = writeln!(s, "  {:<17} {}", d.controllers.join(","), d.path.display());
    }
    let m = &cg.memory;
    let peak = if m.peak > 0 { format!(" (peak {})", bytes(m.peak)) } else { String::new() };
    let _ = writeln!(
        s,
        "  memory            {}{peak} of {}; limit hit {} times, {} OOM kills",
        bytes(m.usage),
        or_max(m.limit, bytes),
        m.failcnt,
        m.oom_kills
    );
    let _ = writeln!(s, "  pids              {} of {}", cg.pids.current, or_max(cg.pids.limit, |v| v.to_string()));
    let c = &cg.cpu;
    let quota = match c.quota_us {
        Some(q) if c.period_us > 0 => {
            format!("quota {q} us per {} us period ({:.2} CPUs)", c.period_us, q as f64 / c.period_us as f64)
        }
        Some(q) => format!("quota {q} us"),
        None => "no quota".to_owned(),
    };
    let _ = writeln!(
        s,
        "  cpu               {quota}; throttled in {} of {} periods ({:.3} s); used {:.3} s (user {:.3}, system {:.3})",
        c.throttled_periods,
        c.periods,
        c.throttled_ns as f64 / 1e9,
        c.usage_ns as f64 / 1e9,
        c.user_ns as f64 / 1e9,
        c.system_ns as f64 / 1e9
    );
    let throttles: Vec<String> = cg
        .io
        .throttles
        .iter()
        .map(|t| {
            let parts: Vec<String> = [("rbps", t.rbps), ("wbps", t.wbps), ("riops", t.riops), ("wiops", t.wiops)]
                .iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
                .collect();
            format!("{}:{} {}", t.major, t.minor, parts.join(" "))
        })
        .collect();
    let used: Vec<String> = cg
        .io
        .devices
        .iter()
        .map(|d| format!("{}:{} read {}, written {}", d.major, d.minor, bytes(d.read_bytes), bytes(d.write_bytes)))
        .collect();
    let _ = writeln!(
        s,
        "  io                {}; {}",
        if throttles.is_empty() { "no throttle".to_owned() } else { format!("throttled {}", throttles.join(", ")) },
        if used.is_empty() { "no bytes counted".to_owned() } else { used.join("; ") }
    );
}
