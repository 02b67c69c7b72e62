//! What a cgroup file write asks of the kernel, in plain words (for `--explain`).

/// `1.5 MiB`-style size.
fn size(v: &str) -> String {
    match v.trim().parse::<u64>() {
        Ok(b) if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        Ok(b) if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64).replace(".0 MiB", " MiB"),
        Ok(b) if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0).replace(".0 KiB", " KiB"),
        Ok(b) => format!("{b} bytes"),
        Err(_) => v.trim().to_string(),
    }
}

fn unlimited(v: &str) -> bool {
    let v = v.trim();
    v == "max" || v == "-1" || v.parse::<u64>().is_ok_and(|n| n >= 1 << 62)
}

/// The meaning of writing `value` to the cgroup file `file` (its name only).
pub fn meaning(file: &str, value: &str) -> String {
    let v = value.trim();
    match file {
        "cgroup.procs" | "tasks" => format!("move process {v} (and its threads) into this cgroup"),
        "memory.max" | "memory.limit_in_bytes" if unlimited(v) => "no memory limit".into(),
        "memory.max" | "memory.limit_in_bytes" => {
            format!("above {} of memory the kernel reclaims, then the OOM killer acts", size(v))
        }
        "memory.high" => format!("above {} the kernel throttles and reclaims hard (no OOM kill)", size(v)),
        "memory.low" | "memory.soft_limit_in_bytes" => {
            format!("try to keep {} of this cgroup's memory when the host is short", size(v))
        }
        "memory.swap.max" if unlimited(v) => "no swap limit".into(),
        "memory.swap.max" => format!("at most {} of swap", size(v)),
        "memory.memsw.limit_in_bytes" if unlimited(v) => "no memory+swap limit".into(),
        "memory.memsw.limit_in_bytes" => format!("memory plus swap at most {}", size(v)),
        "memory.swappiness" => format!("swap tendency {v} (0: avoid swapping)"),
        "memory.oom_control" => "disable the OOM killer: tasks wait when out of memory".into(),
        "memory.oom.group" => "an OOM kill takes every process of the cgroup".into(),
        "pids.max" if unlimited(v) => "no limit on the number of processes".into(),
        "pids.max" => format!("at most {v} processes and threads: fork/clone fails with EAGAIN beyond"),
        "cpu.max" => match v.split_once(' ') {
            Some((q, p)) if q != "max" => match (q.parse::<f64>(), p.parse::<f64>()) {
                (Ok(q), Ok(p)) if p > 0.0 => {
                    format!("{q} µs of CPU time per {p} µs period = {:.2} CPUs; then throttled", q / p)
                }
                _ => format!("CPU quota {v}"),
            },
            _ => format!("no CPU quota (period {} µs)", v.split(' ').nth(1).unwrap_or("100000")),
        },
        "cpu.cfs_quota_us" if unlimited(v) => "no CPU quota".into(),
        "cpu.cfs_quota_us" => format!("{v} µs of CPU time per period; then throttled until the next period"),
        "cpu.cfs_period_us" => format!("the CPU quota's accounting period is {v} µs"),
        "cpu.shares" => format!("relative CPU weight {v} (1024 is the default) when CPUs are contended"),
        "cpu.weight" => format!("relative CPU weight {v} (100 is the default) when CPUs are contended"),
        "cpu.idle" => "schedule this cgroup only when nothing else wants the CPU".into(),
        "cpu.rt_period_us" | "cpu.rt_runtime_us" => format!("realtime scheduling budget: {file} = {v} µs"),
        "cpuset.cpus" | "cpuset.cpus.exclusive" => format!("run only on CPUs {v}"),
        "cpuset.mems" => format!("allocate memory only from NUMA nodes {v}"),
        "io.max"
        | "blkio.throttle.read_bps_device"
        | "blkio.throttle.write_bps_device"
        | "blkio.throttle.read_iops_device"
        | "blkio.throttle.write_iops_device" => {
            format!("throttle block I/O on device {v} (major:minor then the rate)")
        }
        "io.weight" | "io.bfq.weight" | "blkio.weight" | "blkio.bfq.weight" => {
            format!("relative block I/O weight {v}")
        }
        "devices.allow" => format!("allow device access {v:?} (type major:minor access)"),
        "devices.deny" => format!("deny device access {v:?} (a: every device)"),
        "freezer.state" | "cgroup.freeze" => format!("freezer: {v}"),
        "cgroup.kill" => "SIGKILL every process of the cgroup".into(),
        "cgroup.subtree_control" => format!("enable controllers {v} for the cgroups below"),
        f if f.starts_with("hugetlb.") => format!("huge pages limit: {}", size(v)),
        "net_cls.classid" => format!("tag this cgroup's packets with class id {v} (for tc/iptables)"),
        "net_prio.ifpriomap" => format!("network priority per interface: {v}"),
        "rdma.max" => format!("RDMA resource limits {v}"),
        f if f.starts_with("memory.kmem") => format!("kernel memory limit {}", size(v)),
        _ => format!("set {file} to {v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::meaning;

    #[test]
    fn plain_words() {
        assert_eq!(
            meaning("memory.max", "33554432"),
            "above 32 MiB of memory the kernel reclaims, then the OOM killer acts"
        );
        assert_eq!(meaning("memory.limit_in_bytes", "-1"), "no memory limit");
        assert!(meaning("cpu.max", "20000 100000").contains("0.20 CPUs"));
        assert!(meaning("pids.max", "20").contains("EAGAIN"));
    }
}
