//! `events --stats`: resource usage read from the cgroup files, in runc's JSON
//! shape: the fields, their order and which are left out when zero are those of
//! runc 1.1's `types.Stats` (callers compare the text).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{fsutil, HostMode, Manager};

fn zero(v: &u64) -> bool {
    *v == 0
}

/// CPU usage (nanoseconds) and throttling.
#[derive(Serialize, Default, Debug)]
pub struct CpuStats {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Serialize, Default, Debug)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Serialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

/// v1 cpuset settings (runc reports them; all zero on cgroup v2).
#[derive(Serialize, Default, Debug)]
pub struct CpusetStats {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

/// One memory counter set (limit, usage, max usage, failures).
#[derive(Serialize, Default, Debug)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// `limit` 0: no limit ("max"), as runc reports it.
#[derive(Serialize, Default, Debug)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

/// One blkio/io counter.
#[derive(Serialize, Debug)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Serialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub struct BlkioStats {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Serialize, Default, Debug)]
pub struct HugetlbStats {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Intel RDT: not supported, reported empty as runc does without it.
#[derive(Serialize, Default, Debug)]
pub struct IntelRdt {}

/// Everything `events --stats` reports, in runc's order.
#[derive(Serialize, Default, Debug)]
pub struct Stats {
    pub cpu: CpuStats,
    pub cpuset: CpusetStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
    pub hugetlb: BTreeMap<String, HugetlbStats>,
    pub intel_rdt: IntelRdt,
    /// Always null (runc fills it only for its own network setup).
    pub network_interfaces: (),
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
            // "cpu user system" header, then one line of nanoseconds per CPU.
            for l in fsutil::read_file(d, "cpuacct.usage_all").unwrap_or_default().lines().skip(1) {
                let f: Vec<u64> = l.split_whitespace().filter_map(|v| v.parse().ok()).collect();
                if let [_, user, system] = f[..] {
                    s.cpu.usage.percpu_user.push(user);
                    s.cpu.usage.percpu_kernel.push(system);
                }
            }
        }
        if let Some(d) = self.v1_dir("cpuset") {
            s.cpuset = cpuset(d);
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
            s.memory.kernel_tcp = entry("memory.kmem.tcp.");
            s.memory.raw = kv(d, "memory.stat");
            s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
        }
        if let Some(d) = self.v1_dir("pids") {
            s.pids = pids(d);
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
        kernel: g("system_usec") * 1000,
        user: g("user_usec") * 1000,
        ..Default::default()
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
    // Like runc: swap as v1 counts it, memory + swap.
    let (swap_limit, mem_limit) = (num(d, "memory.swap.max"), s.memory.usage.limit);
    s.memory.swap = MemoryEntry {
        limit: if swap_limit == u64::MAX { swap_limit } else { swap_limit.saturating_add(mem_limit) },
        usage: num(d, "memory.swap.current") + s.memory.usage.usage,
        max: 0,
        failcnt: 0,
    };
    s.memory.raw = kv(d, "memory.stat");
    s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
    s.pids = pids(d);
    io_stat(d, &mut s.blkio);
    hugetlb(d, true, &mut s.hugetlb);
}

/// pids.current and pids.max ("max" reads as 0, runc's "no limit").
fn pids(d: &Path) -> PidsStats {
    let max = fsutil::read_trim(d, "pids.max").unwrap_or_default();
    PidsStats { current: num(d, "pids.current"), limit: max.parse().unwrap_or(0) }
}

/// A kernel cpu/node list ("0-2,4") as numbers.
fn list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
            out.extend(a..=b);
        }
    }
    out
}

fn cpuset(d: &Path) -> CpusetStats {
    let n = |f: &str| num(d, &format!("cpuset.{f}"));
    CpusetStats {
        cpus: list(&fsutil::read_trim(d, "cpuset.cpus").unwrap_or_default()),
        cpu_exclusive: n("cpu_exclusive"),
        mems: list(&fsutil::read_trim(d, "cpuset.mems").unwrap_or_default()),
        mem_hardwall: n("mem_hardwall"),
        mem_exclusive: n("mem_exclusive"),
        memory_migrate: n("memory_migrate"),
        memory_spread_page: n("memory_spread_page"),
        memory_spread_slab: n("memory_spread_slab"),
        memory_pressure: n("memory_pressure"),
        sched_load_balance: n("sched_load_balance"),
        sched_relax_domain_level: fsutil::read_trim(d, "cpuset.sched_relax_domain_level")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Zero values: the keys Go's encoding/json writes for runc's types.Stats
    /// (omitempty on numbers, slices and maps; never on structs), in its order.
    #[test]
    fn runc_shape() {
        let s = serde_json::to_string(&Stats::default()).unwrap();
        assert_eq!(
            s,
            r#"{"cpu":{"usage":{"kernel":0,"user":0},"throttling":{}},"cpuset":{"cpu_exclusive":0,"mem_hardwall":0,"mem_exclusive":0,"memory_migrate":0,"memory_spread_page":0,"memory_spread_slab":0,"memory_pressure":0,"sched_load_balance":0,"sched_relax_domain_level":0},"memory":{"usage":{"limit":0,"failcnt":0},"swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0}},"pids":{},"blkio":{},"hugetlb":{},"intel_rdt":{},"network_interfaces":null}"#
        );
        let mut s = Stats::default();
        s.cpu.usage =
            CpuUsage { total: 5, percpu: vec![2, 3], percpu_kernel: vec![1], percpu_user: vec![1], kernel: 1, user: 2 };
        s.cpu.throttling.throttled_periods = 4;
        s.cpuset.cpus = list("0-1,3");
        s.memory.cache = 9;
        s.pids = PidsStats { current: 1, limit: 64 };
        let v = serde_json::to_string(&s).unwrap();
        assert!(v.starts_with(r#"{"cpu":{"usage":{"total":5,"percpu":[2,3],"percpu_kernel":[1],"percpu_user":[1],"kernel":1,"user":2},"throttling":{"throttledPeriods":4}},"cpuset":{"cpus":[0,1,3],"cpu_exclusive":0,"#), "{v}");
        assert!(v.contains(r#""memory":{"cache":9,"usage":"#), "{v}");
        assert!(v.contains(r#""pids":{"current":1,"limit":64}"#), "{v}");
    }
}
