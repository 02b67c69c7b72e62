//! cgroup v2 (unified) backend: basic but real. Device rules (which need an
//! eBPF program on v2) are not implemented: they are logged and skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fsutil::{self, read_trim, read_u64, write_file};
use super::resources::*;
use super::{shares_to_weight, CgroupError, Manager};

pub(super) fn create(m: &mut Manager) -> Result<(), CgroupError> {
    let Some(d) = m.v2.clone() else {
        return Err(CgroupError::Unsupported {
            what: "cgroup v2 manager".to_string(),
            why: "no cgroup2 mount".to_string(),
        });
    };
    let mut created = std::mem::take(&mut m.created);
    let r = fsutil::mkdir_p(&d.mount, &d.dir, &mut created);
    m.created = created;
    r?;
    enable_controllers(&d.mount, &d.dir, None);
    Ok(())
}

/// Enable, in every ancestor of `dir` (from the mount down to `dir`'s parent),
/// each controller listed in its cgroup.controllers but missing from its
/// cgroup.subtree_control. With `only = Some(list)`, ancestors not in `list`
/// (i.e. not created by us) are left untouched: that is how hybrid hosts are
/// handled. Failures are logged; a later `apply` that needs a missing
/// controller fails with `ControllerMissing`.
pub(super) fn enable_controllers(mount: &Path, dir: &Path, only: Option<&[PathBuf]>) {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return;
    };
    let mut ancestors = vec![mount.to_path_buf()];
    let mut cur = mount.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        ancestors.push(cur.clone());
    }
    ancestors.pop(); // the leaf itself holds processes: never enable there
    for a in ancestors {
        if let Some(list) = only {
            if !list.contains(&a) {
                continue;
            }
        }
        let (Ok(avail), Ok(enabled)) = (read_trim(&a, "cgroup.controllers"), read_trim(&a, "cgroup.subtree_control"))
        else {
            continue;
        };
        let enabled: Vec<&str> = enabled.split_whitespace().collect();
        for c in avail.split_whitespace().filter(|c| !enabled.contains(c)) {
            if let Err(e) = write_file(&a, "cgroup.subtree_control", &format!("+{c}")) {
                tracing::warn!("enabling controller {c}: {e}");
            }
        }
    }
}

/// Write; a missing file means the controller is not enabled for `dir`.
fn w(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    write_file(dir, file, value).map_err(|e| {
        if fsutil::is_enoent(&e) && dir.exists() {
            CgroupError::ControllerMissing {
                controller: file.split('.').next().unwrap_or(file).to_string(),
                dir: dir.to_path_buf(),
                file: file.to_string(),
            }
        } else {
            e
        }
    })
}

fn warn_no(what: &str, why: &str) {
    tracing::warn!("{what} requested but ignored on cgroup v2: {why}");
}

/// pids.max value: "max" for limit <= 0.
pub(super) fn pids_value(limit: i64) -> String {
    if limit <= 0 {
        "max".to_string()
    } else {
        limit.to_string()
    }
}

/// v2 value for a memory limit: 0 = unset, negative = "max".
pub fn memory_value(v: i64) -> Option<String> {
    match v {
        0 => None,
        v if v < 0 => Some("max".to_string()),
        v => Some(v.to_string()),
    }
}

/// OCI swap is memory+swap (v1 semantics); v2 memory.swap.max is swap only.
/// runc's ConvertMemorySwapToCgroupV2Value.
pub fn swap_value(swap: i64, limit: i64) -> Result<Option<String>, CgroupError> {
    if limit == -1 && swap == 0 {
        return Ok(Some("max".to_string()));
    }
    match swap {
        0 => return Ok(None),
        -1 => return Ok(Some("max".to_string())),
        _ => {}
    }
    if limit == 0 || limit == -1 {
        return Err(CgroupError::InvalidResource(
            "memory.swap is set but memory.limit is not: cannot compute memory.swap.max".to_string(),
        ));
    }
    if limit < 0 || swap < limit {
        return Err(CgroupError::InvalidResource(format!(
            "memory.swap ({swap}) is memory+swap and must be >= memory.limit ({limit})"
        )));
    }
    Ok(Some((swap - limit).to_string()))
}

/// cpu.max value from quota/period (runc): quota <= 0 is "max"; period 0 keeps
/// the kernel's period. None when neither is set.
pub fn cpu_max_value(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let (q, p) = (quota.unwrap_or(0), period.unwrap_or(0));
    if q == 0 && p == 0 {
        return None;
    }
    let mut s = if q > 0 { q.to_string() } else { "max".to_string() };
    if p != 0 {
        s.push_str(&format!(" {p}"));
    }
    Some(s)
}

/// rdma.max line: "DEV [hca_handle=N] [hca_object=N]".
pub(super) fn rdma_value(dev: &str, r: &LinuxRdma) -> String {
    let mut s = dev.to_string();
    if let Some(h) = r.hca_handles {
        s.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = r.hca_objects {
        s.push_str(&format!(" hca_object={o}"));
    }
    s
}

/// Write raw `linux.resources.unified` keys (file names) in `dir`.
pub(super) fn write_unified(dir: &Path, map: &BTreeMap<String, String>) -> Result<(), CgroupError> {
    for (k, v) in map {
        if k.is_empty() || k.contains('/') || k == "." || k == ".." {
            return Err(CgroupError::InvalidResource(format!("unified key {k:?} must be a plain cgroup file name")));
        }
        w(dir, k, v)?;
    }
    Ok(())
}

pub(super) fn apply(m: &Manager, res: &LinuxResources) -> Result<(), CgroupError> {
    let Some(d) = &m.v2 else {
        return Err(CgroupError::Unsupported {
            what: "cgroup v2 resources".to_string(),
            why: "no cgroup2 mount".to_string(),
        });
    };
    let dir = d.dir.as_path();
    if !res.devices.is_empty() {
        // cgroup v2 has no devices.allow: an eBPF program enforces the rules.
        super::devfilter::apply(dir, &super::devices::DeviceState::from_rules(&res.devices)?)?;
    }
    if let Some(cpu) = &res.cpu {
        if let Some(c) = &cpu.cpus {
            w(dir, "cpuset.cpus", c)?;
        }
        if let Some(mm) = &cpu.mems {
            w(dir, "cpuset.mems", mm)?;
        }
    }
    if let Some(mem) = &res.memory {
        set_memory(dir, mem)?;
    }
    if let Some(cpu) = &res.cpu {
        set_cpu(dir, cpu)?;
    }
    if let Some(p) = &res.pids {
        w(dir, "pids.max", &pids_value(p.limit))?;
    }
    if let Some(b) = &res.block_io {
        set_io(dir, b)?;
    }
    for h in &res.hugepage_limits {
        w(dir, &format!("hugetlb.{}.max", h.page_size), &h.limit.to_string())?;
    }
    for (dev, r) in &res.rdma {
        w(dir, "rdma.max", &rdma_value(dev, r))?;
    }
    if res.network.is_some() {
        warn_no("network (classID/priorities)", "net_cls/net_prio exist only in cgroup v1");
    }
    write_unified(dir, &res.unified)
}

fn set_memory(dir: &Path, mem: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = mem.limit.unwrap_or(0);
    if mem.check_before_update == Some(true) && limit > 0 {
        let usage = read_u64(dir, "memory.current")?;
        if usage > limit as u64 {
            let peak = read_u64(dir, "memory.peak").unwrap_or(usage);
            return Err(CgroupError::MemoryLimitBelowUsage { dir: dir.to_path_buf(), limit, usage, peak });
        }
    }
    if let Some(s) = swap_value(mem.swap.unwrap_or(0), limit)? {
        if let Err(e) = w(dir, "memory.swap.max", &s) {
            // Swap accounting off: silently accept "max" and "0" (runc).
            let missing = matches!(e, CgroupError::ControllerMissing { .. }) || fsutil::is_enoent(&e);
            if !(missing && (s == "max" || s == "0")) {
                return Err(e);
            }
        }
    }
    if let Some(v) = memory_value(limit) {
        w(dir, "memory.max", &v)?;
    }
    if let Some(v) = mem.reservation.and_then(memory_value) {
        w(dir, "memory.low", &v)?;
    }
    if mem.disable_oom_killer == Some(true) {
        warn_no("memory.disableOOMKiller", "cgroup v2 has no OOM-killer switch");
    }
    if mem.swappiness.is_some_and(|s| s != u64::MAX) {
        warn_no("memory.swappiness", "cgroup v2 has no per-cgroup swappiness");
    }
    if mem.kernel.is_some() || mem.kernel_tcp.is_some() {
        warn_no("memory.kernel/kernelTCP", "kernel memory limits are deprecated");
    }
    Ok(())
}

fn set_cpu(dir: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = cpu.shares {
        if s != 0 {
            w(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
        }
    }
    if let Some(v) = cpu_max_value(cpu.quota, cpu.period) {
        w(dir, "cpu.max", &v)?;
    }
    if let Some(b) = cpu.burst {
        w(dir, "cpu.max.burst", &b.to_string())?;
    }
    if let Some(i) = cpu.idle {
        w(dir, "cpu.idle", &i.to_string())?;
    }
    if cpu.realtime_period.is_some_and(|p| p != 0) || cpu.realtime_runtime.is_some_and(|r| r != 0) {
        warn_no("cpu.realtimeRuntime/realtimePeriod", "cgroup v2 has no RT bandwidth files");
    }
    Ok(())
}

/// runc's blkio weight (10..1000) to io.weight (1..10000) conversion.
pub fn blkio_weight_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10)) * 9999 / 990
}

fn set_io(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(wt) = b.weight {
        if bfq {
            w(dir, "io.bfq.weight", &wt.to_string())?;
        } else if wt != 0 {
            w(dir, "io.weight", &blkio_weight_to_io_weight(wt).to_string())?;
        }
    }
    for d in &b.weight_device {
        if let Some(wt) = d.weight {
            if bfq {
                w(dir, "io.bfq.weight", &format!("{}:{} {}", d.major, d.minor, wt))?;
            } else {
                let v = blkio_weight_to_io_weight(wt);
                w(dir, "io.weight", &format!("{}:{} {}", d.major, d.minor, v))?;
            }
        }
    }
    if b.leaf_weight.is_some() || b.weight_device.iter().any(|d| d.leaf_weight.is_some()) {
        warn_no("blockIO leafWeight", "cgroup v2 has no leaf weights");
    }
    let throttles = [
        ("rbps", &b.throttle_read_bps_device),
        ("wbps", &b.throttle_write_bps_device),
        ("riops", &b.throttle_read_iops_device),
        ("wiops", &b.throttle_write_iops_device),
    ];
    for (key, list) in throttles {
        for t in list {
            w(dir, "io.max", &format!("{}:{} {}={}", t.major, t.minor, key, t.rate))?;
        }
    }
    Ok(())
}

/// cgroup.freeze=1, then wait for "frozen 1" in cgroup.events.
pub(super) fn freeze(dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    write_file(dir, "cgroup.freeze", "1")?;
    let start = Instant::now();
    let mut sleep = Duration::from_micros(100);
    loop {
        let ev = match fsutil::read_file(dir, "cgroup.events") {
            Ok(s) => s,
            Err(e) => {
                let _ = write_file(dir, "cgroup.freeze", "0");
                return Err(e);
            }
        };
        if ev.lines().any(|l| l.trim() == "frozen 1") {
            return Ok(());
        }
        if start.elapsed() > timeout {
            let _ = write_file(dir, "cgroup.freeze", "0");
            return Err(CgroupError::FreezeTimeout {
                path: dir.join("cgroup.events"),
                state: "frozen 0".to_string(),
                waited_ms: start.elapsed().as_millis(),
            });
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(10));
    }
}

pub(super) fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    Ok(read_trim(dir, "cgroup.freeze")? == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(cpu_max_value(None, None), None);
        assert_eq!(cpu_max_value(Some(50000), Some(100000)).as_deref(), Some("50000 100000"));
        assert_eq!(cpu_max_value(Some(-1), Some(100000)).as_deref(), Some("max 100000"));
        assert_eq!(cpu_max_value(Some(20000), None).as_deref(), Some("20000"));
        assert_eq!(memory_value(0), None);
        assert_eq!(memory_value(-1).as_deref(), Some("max"));
        assert_eq!(memory_value(4096).as_deref(), Some("4096"));
        assert_eq!(swap_value(0, 0).unwrap(), None);
        assert_eq!(swap_value(0, -1).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_value(-1, 100).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_value(300, 100).unwrap().as_deref(), Some("200"));
        assert!(swap_value(50, 100).is_err());
        assert!(swap_value(50, 0).is_err());
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10000);
        assert_eq!(pids_value(0), "max");
        assert_eq!(pids_value(-1), "max");
        assert_eq!(pids_value(32), "32");
        let r = LinuxRdma { hca_handles: Some(3), hca_objects: None };
        assert_eq!(rdma_value("mlx5_1", &r), "mlx5_1 hca_handle=3");
    }
}
