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
    // runc reads a pids limit of 0 as "leave it as it is" (the JSON form keeps that
    // meaning, callers send it), and any negative number as "no limit".
    if r.pids.as_ref().is_some_and(|p| p.limit == 0) {
        r.pids = None;
    }
    if let Some(v) = int::<i64>(p, "pids-limit")? {
        let limit = match v {
            1.. | -1 => v,
            0 => bail!(
                "--pids-limit 0 would change nothing (runc reads 0 as \"leave the limit as it is\"): give a positive number, or -1 for no limit"
            ),
            _ => bail!("--pids-limit {v} is not a number of processes: give a positive number, or -1 for no limit"),
        };
        r.pids = Some(LinuxPids { limit });
    }
    if let Some(v) = int::<u16>(p, "blkio-weight")? {
        r.block_io.get_or_insert_with(Default::default).weight = Some(v);
    }
    if !r.devices.is_empty() {
        // As runc: update never changes the device rules (they would replace the
        // defaults and the config's own rules).
        tracing::debug!(
            "linux.resources.devices is ignored by update (as runc does): device rules are fixed at create"
        );
        r.devices.clear();
    }
    if r.memory.as_ref() == Some(&LinuxMemory::default()) {
        r.memory = None;
    }
    if r.cpu.as_ref() == Some(&LinuxCpu::default()) {
        r.cpu = None;
    }
    Ok(r)
}

pub fn update(store: &Store, p: &Parsed) -> Result<i32> {
    let [id] = p.pos.as_slice() else { bail!("usage: capsa update [OPTIONS] ID") };
    let r = resources(p)?;
    if r == LinuxResources::default() {
        if p.get("resources").is_none() {
            bail!("update {id}: nothing to change: give a limit (--memory, --pids-limit, --cpu-quota, ...) or --resources FILE");
        }
        // A document may carry only what update leaves alone (devices, a pids limit of
        // 0): runc accepts it, so do we, but say so.
        tracing::warn!("update {id}: the resources document changes nothing");
        return Ok(0);
    }
    tracing::debug!("update {id}: {}", serde_json::to_string(&r).unwrap_or_default());
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
        super::out::line(&events::stats_event(id, &cg)).context("write to stdout")?;
        return Ok(0);
    }
    let every = interval(p.get("interval").unwrap_or("5s"))?;
    let mut failed = None;
    events::stream(store, id, every, &mut |v| {
        if failed.is_none() {
            failed = super::out::line(&v).err();
        }
    })?;
    match failed {
        Some(e) => Err(e).context("write to stdout"),
        None => Ok(0),
    }
}
