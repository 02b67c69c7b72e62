//! `events --stats`: resource usage read from the cgroup files, in runc's JSON
//! shape (libcontainer's `types.Stats`), and OOM notifications.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{fsutil, HostMode, Manager};

/// CPU usage (nanoseconds) and throttling.
#[derive(Serialize, Default, Debug)]
pub struct CpuStats {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Serialize, Default, Debug)]
pub struct CpuUsage {
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

/// One memory counter set (usage, max usage, limit, failures).
#[derive(Serialize, Default, Debug)]
pub struct MemoryEntry {
    pub limit: u64,
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct MemoryStats {
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    pub raw: BTreeMap<String, u64>,
}

#[derive(Serialize, Default, Debug)]
pub struct PidsStats {
    pub current: u64,
    pub limit: u64,
}

/// One blkio/io counter.
#[derive(Serialize, Debug)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct BlkioStats {
    #[serde(rename = "ioServiceBytesRecursive")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Serialize, Default, Debug)]
pub struct HugetlbStats {
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

/// Everything `events --stats` reports.
#[derive(Serialize, Default, Debug)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

fn num(dir: &Path, file: &str) -> u64 {
    fsutil::read_trim(dir, file)
        .ok()
        .and_then(|s| if s == "max" { Some(u64::MAX) } else { s.parse().ok() })
        .unwrap_or(0)
}

fn kv(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    fsutil::read_file(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// "8:0 Read 123" lines (v1 blkio.throttle.*).
fn blkio_lines(dir: &Path, file: &str) -> Vec<BlkioEntry> {
    fsutil::read_file(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (maj, min) = f.first()?.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: f.get(1)?.to_string(),
                value: f.get(2)?.parse().ok()?,
            })
        })
        .collect()
}

/// "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." lines (v2 io.stat).
fn io_stat(dir: &Path, out: &mut BlkioStats) {
    for l in fsutil::read_file(dir, "io.stat").unwrap_or_default().lines() {
        let mut it = l.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else { continue };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else { continue };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let Ok(value) = v.parse() else { continue };
            let e = |op: &str| BlkioEntry { major, minor, op: op.into(), value };
            match k {
                "rbytes" => out.io_service_bytes_recursive.push(e("Read")),
                "wbytes" => out.io_service_bytes_recursive.push(e("Write")),
                "rios" => out.io_serviced_recursive.push(e("Read")),
                "wios" => out.io_serviced_recursive.push(e("Write")),
                _ => {}
            }
        }
    }
}

fn hugetlb(dir: &Path, v2: bool, out: &mut BTreeMap<String, HugetlbStats>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(size) =
            name.strip_prefix("hugetlb.").and_then(|r| r.strip_suffix(if v2 { ".current" } else { ".usage_in_bytes" }))
        else {
            continue;
        };
        let (max_f, fail_f) = if v2 {
            (format!("hugetlb.{size}.max"), format!("hugetlb.{size}.events"))
        } else {
            (format!("hugetlb.{size}.limit_in_bytes"), format!("hugetlb.{size}.failcnt"))
        };
        let failcnt = if v2 { kv(dir, &fail_f).get("max").copied().unwrap_or(0) } else { num(dir, &fail_f) };
        out.insert(size.to_string(), HugetlbStats { usage: num(dir, &name), max: num(dir, &max_f), failcnt });
    }
}

impl Manager {
    /// Read usage statistics from every controller that exists (missing files read as 0).
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        if self.mode == HostMode::Unified {
            if let Some(d) = &self.v2 {
                v2_stats(&d.dir, &mut s);
            }
            return s;
        }
        let ticks = clock_ticks();
        if let Some(d) = self.v1_dir("cpuacct") {
            s.cpu.usage.total = num(d, "cpuacct.usage");
            s.cpu.usage.percpu = fsutil::read_file(d, "cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let st = kv(d, "cpuacct.stat");
            s.cpu.usage.user = st.get("user").copied().unwrap_or(0) * 1_000_000_000 / ticks;
            s.cpu.usage.kernel = st.get("system").copied().unwrap_or(0) * 1_000_000_000 / ticks;
        }
        if let Some(d) = self.v1_dir("cpu") {
            let st = kv(d, "cpu.stat");
            s.cpu.throttling = Throttling {
                periods: st.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: st.get("throttled_time").copied().unwrap_or(0),
            };
        }
        if let Some(d) = self.v1_dir("memory") {
            let entry = |p: &str| MemoryEntry {
                limit: num(d, &format!("{p}limit_in_bytes")),
                usage: num(d, &format!("{p}usage_in_bytes")),
                max: num(d, &format!("{p}max_usage_in_bytes")),
                failcnt: num(d, &format!("{p}failcnt")),
            };
            s.memory.usage = entry("memory.");
            s.memory.swap = entry("memory.memsw.");
            s.memory.kernel = entry("memory.kmem.");
            s.memory.raw = kv(d, "memory.stat");
        }
        if let Some(d) = self.v1_dir("pids") {
            s.pids = PidsStats { current: num(d, "pids.current"), limit: num(d, "pids.max") };
        }
        if let Some(d) = self.v1_dir("blkio") {
            s.blkio.io_service_bytes_recursive = blkio_lines(d, "blkio.throttle.io_service_bytes_recursive");
            s.blkio.io_serviced_recursive = blkio_lines(d, "blkio.throttle.io_serviced_recursive");
        }
        if let Some(d) = self.v1_dir("hugetlb") {
            hugetlb(d, false, &mut s.hugetlb);
        } else if let Some(d) = &self.v2 {
            hugetlb(&d.dir, true, &mut s.hugetlb);
        }
        s
    }

    /// How many times the kernel's OOM killer killed a process in this cgroup
    /// (v2 memory.events `oom_kill`, v1 memory.oom_control `oom_kill`).
    pub fn oom_kills(&self) -> u64 {
        match self.mode {
            HostMode::Unified => {
                self.v2.as_ref().map(|d| kv(&d.dir, "memory.events").get("oom_kill").copied().unwrap_or(0)).unwrap_or(0)
            }
            _ => self
                .v1_dir("memory")
                .map(|d| kv(d, "memory.oom_control").get("oom_kill").copied().unwrap_or(0))
                .unwrap_or(0),
        }
    }
}

fn v2_stats(d: &Path, s: &mut Stats) {
    let cpu = kv(d, "cpu.stat");
    let g = |k: &str| cpu.get(k).copied().unwrap_or(0);
    s.cpu.usage = CpuUsage {
        total: g("usage_usec") * 1000,
        percpu: Vec::new(),
        kernel: g("system_usec") * 1000,
        user: g("user_usec") * 1000,
    };
    s.cpu.throttling = Throttling {
        periods: g("nr_periods"),
        throttled_periods: g("nr_throttled"),
        throttled_time: g("throttled_usec") * 1000,
    };
    let events = kv(d, "memory.events");
    s.memory.usage = MemoryEntry {
        limit: num(d, "memory.max"),
        usage: num(d, "memory.current"),
        max: num(d, "memory.peak"),
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    s.memory.swap = MemoryEntry {
        limit: num(d, "memory.swap.max"),
        usage: num(d, "memory.swap.current"),
        max: num(d, "memory.swap.peak"),
        failcnt: 0,
    };
    s.memory.raw = kv(d, "memory.stat");
    s.pids = PidsStats { current: num(d, "pids.current"), limit: num(d, "pids.max") };
    io_stat(d, &mut s.blkio);
    hugetlb(d, true, &mut s.hugetlb);
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety requirements.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}
