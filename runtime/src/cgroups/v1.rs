//! cgroup v1 backend (legacy and hybrid hosts).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fsutil::{self, read_trim, read_u64, write_file};
use super::resources::*;
use super::{devices, v2, CgroupError, HostMode, Manager};

pub(super) fn create(m: &mut Manager) -> Result<(), CgroupError> {
    // Keep the record even on error, so that destroy() can clean up.
    let mut created = std::mem::take(&mut m.created);
    let r = create_inner(m, &mut created);
    m.created = created;
    r
}

fn create_inner(m: &Manager, created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    for d in &m.v1 {
        fsutil::mkdir_p(&d.mount, &d.dir, created)?;
        if d.controllers.iter().any(|c| c == "cpuset") {
            cpuset_fill(&d.mount, &d.dir)?;
        }
    }
    if let Some(d) = &m.v2 {
        // Hybrid: join the cgroup2 mount at the same relative path. Only
        // directories we created get controllers enabled there.
        let start = created.len();
        fsutil::mkdir_p(&d.mount, &d.dir, created)?;
        v2::enable_controllers(&d.mount, &d.dir, Some(&created[start..]));
    }
    Ok(())
}

/// New v1 cpuset cgroups start with empty cpuset.cpus/mems, and no task can
/// join until both are set. Every directory from the mount down to `leaf` that
/// is still empty gets the values of its nearest non-empty ancestor, top-down.
///
/// Not only the directories this manager created: a concurrent create may
/// have made a shared parent (EEXIST here) and not filled it yet, and the
/// kernel refuses a child's cpus that are not a subset of its parent's
/// (EACCES). An empty cpuset cgroup cannot hold any task, so filling one
/// changes nothing for anybody.
fn cpuset_fill(mount: &Path, leaf: &Path) -> Result<(), CgroupError> {
    let Ok(rel) = leaf.strip_prefix(mount) else { return Ok(()) };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mut value = read_trim(mount, file)?;
        let mut cur = mount.to_path_buf();
        for c in rel.components() {
            cur.push(c);
            let own = read_trim(&cur, file)?;
            if !own.is_empty() {
                value = own;
                continue;
            }
            if value.is_empty() {
                return Err(CgroupError::InvalidResource(format!(
                    "{file} is empty in every ancestor of {}; cannot give the new cpuset cgroup any CPUs/memory nodes",
                    cur.display()
                )));
            }
            write_file(&cur, file, &value)?;
        }
    }
    Ok(())
}

fn warn_no(what: &str, why: &str) {
    tracing::warn!("{what} requested but ignored: {why}");
}

/// Write `dir/file` if the file exists; otherwise warn that `what` is ignored.
fn write_if_exists(dir: &Path, file: &str, value: &str, what: &str) -> Result<(), CgroupError> {
    if dir.join(file).exists() {
        write_file(dir, file, value)
    } else {
        warn_no(what, &format!("{} does not exist", dir.join(file).display()));
        Ok(())
    }
}

/// Write the resource limits into the v1 hierarchies (and, on hybrid hosts,
/// `unified` keys and hugetlb into the cgroup2 directory).
pub(super) fn apply(m: &Manager, res: &LinuxResources) -> Result<(), CgroupError> {
    // Refused before anything is written, as runc does: on a hybrid host the cgroup2
    // mount holds no controller the container's limits live in.
    if !res.unified.is_empty() {
        return Err(CgroupError::InvalidResource(format!(
            "linux.resources.unified ({}) needs a cgroup v2 host; this host uses cgroup v1{} (use the v1 fields of linux.resources)",
            res.unified.keys().map(String::as_str).collect::<Vec<_>>().join(", "),
            if m.mode == HostMode::Hybrid { " (hybrid: cgroup2 is mounted beside it, without the controllers)" } else { "" }
        )));
    }
    let devs = if res.devices.is_empty() { None } else { Some(devices::DeviceState::from_rules(&res.devices)?) };
    if let Some(cpu) = &res.cpu {
        if cpu.cpus.is_some() || cpu.mems.is_some() {
            match m.v1_dir("cpuset") {
                Some(d) => {
                    if let Some(c) = &cpu.cpus {
                        write_file(d, "cpuset.cpus", c)?;
                    }
                    if let Some(mm) = &cpu.mems {
                        write_file(d, "cpuset.mems", mm)?;
                    }
                }
                None => warn_no("cpu.cpus/mems", "no v1 cpuset hierarchy"),
            }
        }
    }
    if let Some(st) = &devs {
        match m.v1_dir("devices") {
            Some(d) => {
                for w in devices::v1_device_writes(st) {
                    write_file(d, w.file, &w.value)?;
                }
            }
            None => warn_no("devices", "no v1 devices hierarchy"),
        }
    }
    if let Some(mem) = &res.memory {
        match m.v1_dir("memory") {
            Some(d) => set_memory(d, mem)?,
            None => warn_no("memory", "no v1 memory hierarchy"),
        }
    }
    if let Some(cpu) = &res.cpu {
        match m.v1_dir("cpu") {
            Some(d) => set_cpu(d, cpu)?,
            None => warn_no("cpu", "no v1 cpu hierarchy"),
        }
    }
    if let Some(p) = &res.pids {
        match m.v1_dir("pids") {
            Some(d) => write_file(d, "pids.max", &super::v2::pids_value(p.limit))?,
            None => warn_no("pids", "no v1 pids hierarchy"),
        }
    }
    if let Some(b) = &res.block_io {
        match m.v1_dir("blkio") {
            Some(d) => set_blkio(d, b)?,
            None => warn_no("blockIO", "no v1 blkio hierarchy"),
        }
    }
    for h in &res.hugepage_limits {
        set_hugetlb(m, h)?;
    }
    if let Some(n) = &res.network {
        if let Some(id) = n.class_id {
            match m.v1_dir("net_cls") {
                Some(d) => write_file(d, "net_cls.classid", &id.to_string())?,
                None => warn_no("network.classID", "no v1 net_cls hierarchy"),
            }
        }
        for p in &n.priorities {
            match m.v1_dir("net_prio") {
                Some(d) => write_file(d, "net_prio.ifpriomap", &format!("{} {}", p.name, p.priority))?,
                None => warn_no("network.priorities", "no v1 net_prio hierarchy"),
            }
        }
    }
    for (dev, r) in &res.rdma {
        match m.v1_dir("rdma") {
            Some(d) => write_file(d, "rdma.max", &super::v2::rdma_value(dev, r))?,
            None => warn_no("rdma", "no v1 rdma hierarchy"),
        }
    }
    Ok(())
}

fn set_hugetlb(m: &Manager, h: &LinuxHugepageLimit) -> Result<(), CgroupError> {
    if let Some(d) = m.v1_dir("hugetlb") {
        return write_file(d, &format!("hugetlb.{}.limit_in_bytes", h.page_size), &h.limit.to_string());
    }
    if let Some(d) = &m.v2 {
        let file = format!("hugetlb.{}.max", h.page_size);
        if d.dir.join(&file).exists() {
            return write_file(&d.dir, &file, &h.limit.to_string());
        }
        warn_no(
            "hugepageLimits",
            &format!(
                "no v1 hugetlb hierarchy and {} does not exist (hugetlb is not enabled in the parent's cgroup.subtree_control, or page size {:?} is unknown)",
                d.dir.join(&file).display(),
                h.page_size
            ),
        );
        return Ok(());
    }
    warn_no("hugepageLimits", "no hugetlb controller mounted");
    Ok(())
}

fn memory_busy(dir: &Path, limit: i64, e: CgroupError) -> CgroupError {
    if e.errno() != Some(libc::EBUSY) {
        return e;
    }
    match (read_u64(dir, "memory.usage_in_bytes"), read_u64(dir, "memory.max_usage_in_bytes")) {
        (Ok(usage), Ok(peak)) => CgroupError::MemoryLimitBelowUsage { dir: dir.to_path_buf(), limit, usage, peak },
        _ => e,
    }
}

fn set_memory(dir: &Path, mem: &LinuxMemory) -> Result<(), CgroupError> {
    const MEMSW: &str = "memory.memsw.limit_in_bytes";
    let limit = mem.limit.unwrap_or(0);
    let mut swap = mem.swap.unwrap_or(0);
    let memsw_exists = dir.join(MEMSW).exists();
    // runc: unlimited memory without an explicit swap means unlimited swap too.
    if limit == -1 && swap == 0 && memsw_exists {
        swap = -1;
    }
    if swap != 0 && !memsw_exists {
        warn_no("memory.swap", &format!("{} does not exist (swap accounting is off)", dir.join(MEMSW).display()));
        swap = 0;
    }
    if mem.check_before_update == Some(true) && limit > 0 {
        let usage = read_u64(dir, "memory.usage_in_bytes")?;
        if usage > limit as u64 {
            let peak = read_u64(dir, "memory.max_usage_in_bytes").unwrap_or(usage);
            return Err(CgroupError::MemoryLimitBelowUsage { dir: dir.to_path_buf(), limit, usage, peak });
        }
    }
    let set_limit = || -> Result<(), CgroupError> {
        if limit != 0 {
            write_file(dir, "memory.limit_in_bytes", &limit.to_string()).map_err(|e| memory_busy(dir, limit, e))?;
        }
        Ok(())
    };
    let set_swap = || -> Result<(), CgroupError> {
        if swap != 0 {
            write_file(dir, MEMSW, &swap.to_string())?;
        }
        Ok(())
    };
    // The kernel requires memsw >= limit at every step. When raising (new
    // swap above the current limit, or unlimited), write memsw first;
    // otherwise the limit first (runc's setMemoryAndSwap).
    let swap_first = limit != 0 && swap != 0 && (swap == -1 || read_u64(dir, "memory.limit_in_bytes")? < swap as u64);
    if swap_first {
        set_swap()?;
        set_limit()?;
    } else {
        set_limit()?;
        set_swap()?;
    }
    if let Some(r) = mem.reservation {
        if r != 0 {
            write_file(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
        }
    }
    if mem.kernel.is_some() {
        // Kernels >= 5.16 accept the write but no longer enforce or report it.
        warn_no("memory.kernel", "kernel memory limits are deprecated (memory.kmem.limit_in_bytes has no effect)");
    }
    if let Some(t) = mem.kernel_tcp {
        // The TCP buffer limit still works on v1 where the file exists.
        if dir.join("memory.kmem.tcp.limit_in_bytes").exists() {
            write_file(dir, "memory.kmem.tcp.limit_in_bytes", &t.to_string())?;
        } else {
            warn_no("memory.kernelTCP", "no memory.kmem.tcp.limit_in_bytes on this kernel");
        }
    }
    if mem.disable_oom_killer == Some(true) {
        write_file(dir, "memory.oom_control", "1")?;
    }
    if let Some(s) = mem.swappiness {
        // u64::MAX is -1 as sent by some tools: leave unchanged.
        if s != u64::MAX {
            if s > 100 {
                return Err(CgroupError::InvalidResource(format!("memory.swappiness {s}: valid range is 0-100")));
            }
            write_file(dir, "memory.swappiness", &s.to_string())?;
        }
    }
    if mem.use_hierarchy == Some(false) {
        warn_no("memory.useHierarchy=false", "hierarchical accounting is always on in current kernels");
    }
    Ok(())
}

fn set_cpu(dir: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = cpu.shares {
        if s != 0 {
            write_file(dir, "cpu.shares", &s.to_string())?;
        }
    }
    let quota = cpu.quota.unwrap_or(0);
    let period = cpu.period.unwrap_or(0);
    // Period before quota. A smaller period can be rejected (EINVAL) while
    // the old quota is in place; then retry it after the quota (runc).
    let mut retry_period = false;
    if period != 0 {
        if let Err(e) = write_file(dir, "cpu.cfs_period_us", &period.to_string()) {
            if e.errno() != Some(libc::EINVAL) || quota == 0 {
                return Err(e);
            }
            retry_period = true;
        }
    }
    if quota != 0 {
        write_file(dir, "cpu.cfs_quota_us", &quota.to_string())?;
        if retry_period {
            write_file(dir, "cpu.cfs_period_us", &period.to_string())?;
        }
    }
    if let Some(b) = cpu.burst {
        write_if_exists(dir, "cpu.cfs_burst_us", &b.to_string(), "cpu.burst")?;
    }
    if let Some(p) = cpu.realtime_period {
        if p != 0 {
            write_file(dir, "cpu.rt_period_us", &p.to_string())?;
        }
    }
    if let Some(r) = cpu.realtime_runtime {
        if r != 0 {
            write_file(dir, "cpu.rt_runtime_us", &r.to_string())?;
        }
    }
    if let Some(i) = cpu.idle {
        write_if_exists(dir, "cpu.idle", &i.to_string(), "cpu.idle")?;
    }
    Ok(())
}

fn set_blkio(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    // CFQ files (blkio.weight) on old kernels, BFQ files on current ones.
    let (wfile, wdev) = if dir.join("blkio.weight").exists() {
        ("blkio.weight", "blkio.weight_device")
    } else {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    };
    if let Some(w) = b.weight {
        write_if_exists(dir, wfile, &w.to_string(), "blockIO.weight")?;
    }
    if let Some(w) = b.leaf_weight {
        write_if_exists(dir, "blkio.leaf_weight", &w.to_string(), "blockIO.leafWeight")?;
    }
    for d in &b.weight_device {
        if let Some(w) = d.weight {
            let v = format!("{}:{} {}", d.major, d.minor, w);
            write_if_exists(dir, wdev, &v, "blockIO.weightDevice")?;
        }
        if let Some(w) = d.leaf_weight {
            let v = format!("{}:{} {}", d.major, d.minor, w);
            write_if_exists(dir, "blkio.leaf_weight_device", &v, "blockIO.weightDevice.leafWeight")?;
        }
    }
    let throttles = [
        ("blkio.throttle.read_bps_device", &b.throttle_read_bps_device),
        ("blkio.throttle.write_bps_device", &b.throttle_write_bps_device),
        ("blkio.throttle.read_iops_device", &b.throttle_read_iops_device),
        ("blkio.throttle.write_iops_device", &b.throttle_write_iops_device),
    ];
    for (file, list) in throttles {
        for t in list {
            let v = format!("{}:{} {}", t.major, t.minor, t.rate);
            write_if_exists(dir, file, &v, file)?;
        }
    }
    Ok(())
}

/// Freeze like runc: write FROZEN and read back until the kernel says FROZEN,
/// re-writing on FREEZING, with an occasional thaw+sleep to get past tasks
/// that keep forking. On failure the cgroup is thawed again.
pub(super) fn freeze(dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut i: u32 = 0;
    let r = loop {
        if i % 50 == 49 {
            let _ = write_file(dir, "freezer.state", "THAWED");
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Err(e) = write_file(dir, "freezer.state", "FROZEN") {
            break Err(e);
        }
        if i % 25 == 24 {
            std::thread::sleep(Duration::from_micros(10));
        }
        if i >= 200 {
            // Very slow machine: stop spinning.
            std::thread::sleep(Duration::from_millis(1));
        }
        let state = match read_trim(dir, "freezer.state") {
            Ok(s) => s,
            Err(e) => break Err(e),
        };
        match state.as_str() {
            "FROZEN" => break Ok(()),
            "FREEZING" => {}
            _ => {
                break Err(CgroupError::BadState { path: dir.join("freezer.state"), state });
            }
        }
        if start.elapsed() > timeout {
            break Err(CgroupError::FreezeTimeout {
                path: dir.join("freezer.state"),
                state,
                waited_ms: start.elapsed().as_millis(),
            });
        }
        i += 1;
    };
    if r.is_err() {
        let _ = write_file(dir, "freezer.state", "THAWED");
    }
    r
}

/// FROZEN and self-frozen (not only through an ancestor) counts as frozen.
pub(super) fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    let start = Instant::now();
    loop {
        let state = read_trim(dir, "freezer.state")?;
        match state.as_str() {
            "THAWED" => return Ok(false),
            "FROZEN" => {
                return match read_trim(dir, "freezer.self_freezing") {
                    Ok(s) => Ok(s == "1"),
                    Err(e) if fsutil::is_enoent(&e) => Ok(true),
                    Err(e) => Err(e),
                };
            }
            "FREEZING" if start.elapsed() < Duration::from_secs(2) => {
                std::thread::sleep(Duration::from_millis(1));
            }
            _ => {
                return Err(CgroupError::BadState { path: dir.join("freezer.state"), state });
            }
        }
    }
}
