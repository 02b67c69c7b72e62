//! `update` and `events`.

use std::io::Read;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use capsa_runtime::container::Store;
use capsa_runtime::spec::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use capsa_runtime::{events, lifecycle};

use super::args::Parsed;

/// "512m", "1G", "1048576" → bytes ("-1" stays -1).
fn bytes(flag: &str, v: &str) -> Result<i64> {
    let t = v.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let (num, mul) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let m = match t[i..].to_ascii_lowercase().trim_end_matches('b').trim_end_matches('i') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1i64 << 40,
                _ => bail!("--{flag} {v:?}: unknown unit (use k, m, g or t)"),
            };
            (&t[..i], m)
        }
        None => (t, 1),
    };
    let n: i64 = num.parse().with_context(|| format!("--{flag} {v:?} is not a size"))?;
    Ok(n * mul)
}

fn int<T: std::str::FromStr>(p: &Parsed, flag: &str) -> Result<Option<T>> {
    p.get(flag).map(|v| v.parse::<T>().map_err(|_| anyhow::anyhow!("--{flag} {v:?} is not a number"))).transpose()
}

/// Resources from `--resources FILE|-` and the individual flags (flags win).
fn resources(p: &Parsed) -> Result<LinuxResources> {
    let mut r: LinuxResources = match p.get("resources") {
        Some(f) => {
            let mut data = Vec::new();
            if f == "-" {
                std::io::stdin().read_to_end(&mut data).context("read resources from stdin")?;
            } else {
                data = std::fs::read(f).with_context(|| format!("read {f}"))?;
            }
            serde_json::from_slice(&data).with_context(|| format!("parse the resources JSON from {f}"))?
        }
        None => LinuxResources::default(),
    };
    let mem = r.memory.get_or_insert_with(LinuxMemory::default);
    for (flag, field) in [
        ("memory", &mut mem.limit),
        ("memory-reservation", &mut mem.reservation),
        ("memory-swap", &mut mem.swap),
        ("kernel-memory", &mut mem.kernel),
    ] {
        if let Some(v) = p.get(flag) {
            *field = Some(bytes(flag, v)?);
        }
    }
    let cpu = r.cpu.get_or_insert_with(LinuxCpu::default);
    if let Some(v) = int(p, "cpu-quota")? {
        cpu.quota = Some(v);
    }
    if let Some(v) = int(p, "cpu-period")? {
        cpu.period = Some(v);
    }
    if let Some(v) = int::<u64>(p, "cpu-shares")?.or(int(p, "cpu-share")?) {
        cpu.shares = Some(v);
    }
    if let Some(v) = int(p, "cpu-rt-period")? {
        cpu.realtime_period = Some(v);
    }
    if let Some(v) = int(p, "cpu-rt-runtime")? {
        cpu.realtime_runtime = Some(v);
    }
    if let Some(v) = p.get("cpuset-cpus") {
        cpu.cpus = Some(v.into());
    }
    if let Some(v) = p.get("cpuset-mems") {
        cpu.mems = Some(v.into());
    }
    if let Some(v) = int(p, "pids-limit")? {
        r.pids = Some(LinuxPids { limit: v });
    }
    if let Some(v) = int::<u16>(p, "blkio-weight")? {
        r.block_io.get_or_insert_with(Default::default).weight = Some(v);
    }
    Ok(r)
}

pub fn update(store: &Store, p: &Parsed) -> Result<i32> {
    let [id] = p.pos.as_slice() else { bail!("usage: capsa update [OPTIONS] ID") };
    let r = resources(p)?;
    lifecycle::update(store, id, &r).with_context(|| format!("update container {id}"))?;
    Ok(0)
}

/// "5s", "500ms", "1m" → duration.
fn interval(v: &str) -> Result<Duration> {
    let (n, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = n.parse().with_context(|| format!("--interval {v:?}"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => bail!("--interval {v:?}: use ms, s or m"),
    })
}

pub fn events(store: &Store, p: &Parsed) -> Result<i32> {
    let [id] = p.pos.as_slice() else { bail!("usage: capsa events [--stats] [--interval 5s] ID") };
    if p.on("stats") {
        let st = store.load(id)?;
        let cg = st.cgroup.context("the container has no cgroup")?;
        println!("{}", events::stats_event(id, &cg));
        return Ok(0);
    }
    let every = interval(p.get("interval").unwrap_or("5s"))?;
    events::stream(store, id, every, &mut |v| println!("{v}"))?;
    Ok(0)
}
