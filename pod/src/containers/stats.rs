//! `stats`: samples of running containers' cgroup counters.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{PodError, Result};
use crate::runtime_cli::Tools;

/// One sample of a container's cgroup counters.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub name: String,
    /// CPU time used, nanoseconds.
    pub cpu_ns: u64,
    /// CPU use over the sampling interval, percent of one CPU.
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    /// The memory limit (u64::MAX: none).
    pub memory_limit: u64,
    pub pids: u64,
    pub pids_limit: u64,
}

/// cgroup counters of running containers, sampled twice `interval` apart for the CPU rate.
pub fn stats(tools: &Tools, names: &[String], interval: Duration) -> Result<Vec<Sample>> {
    let rt = capsa_runtime::container::Store::new(&tools.root);
    let mut mgrs = Vec::new();
    for n in names {
        let st =
            rt.load(n).map_err(|e| PodError::Runtime { op: "stats", id: n.clone(), source: Box::new(e.into()) })?;
        let cg = st.cgroup.ok_or_else(|| PodError::msg(format!("stats {n}: the container has no cgroup")))?;
        mgrs.push((n.clone(), cg));
    }
    let first: Vec<(u64, Instant)> = mgrs.iter().map(|(_, m)| (m.stats().cpu.usage.total, Instant::now())).collect();
    std::thread::sleep(interval);
    Ok(mgrs
        .iter()
        .zip(first)
        .map(|((n, m), (c0, t0))| {
            let s = m.stats();
            let dt = t0.elapsed().as_nanos().max(1) as f64;
            Sample {
                name: n.clone(),
                cpu_ns: s.cpu.usage.total,
                cpu_percent: (s.cpu.usage.total.saturating_sub(c0)) as f64 * 100.0 / dt,
                memory_bytes: s.memory.usage.usage,
                memory_limit: s.memory.usage.limit,
                pids: s.pids.current,
                pids_limit: s.pids.limit,
            }
        })
        .collect())
}
