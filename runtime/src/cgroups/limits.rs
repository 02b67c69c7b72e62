//! The limits a cgroup holds that [`super::stats`] does not report: the CPU quota
//! and period, and the per-device IO throttles. Read back from the kernel (what it
//! accepted), on v1 from `cpu.cfs_quota_us`/`cpu.cfs_period_us` and
//! `blkio.throttle.{read,write}_{bps,iops}_device`, on v2 from `cpu.max` and `io.max`.
//! `capsa inspect --namespaces` shows them next to the usage.

use std::path::Path;

use serde::Serialize;

use super::{fsutil, HostMode, Manager};

/// One device's IO throttle; `None`: unlimited.
#[derive(Serialize, Default, Debug, Clone, PartialEq, Eq)]
pub struct IoThrottle {
    pub major: u64,
    pub minor: u64,
    /// Read bytes per second.
    pub rbps: Option<u64>,
    /// Written bytes per second.
    pub wbps: Option<u64>,
    /// Read operations per second.
    pub riops: Option<u64>,
    /// Write operations per second.
    pub wiops: Option<u64>,
}

/// The CPU and IO limits of a cgroup.
#[derive(Serialize, Default, Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// CPU time per period, microseconds; `None`: no quota.
    pub cpu_quota_us: Option<u64>,
    /// The CFS period, microseconds (0 when the cpu controller is missing).
    pub cpu_period_us: u64,
    /// Devices with at least one throttle.
    pub io: Vec<IoThrottle>,
}

impl Manager {
    /// The CPU quota/period and IO throttles of this cgroup (missing files read as
    /// no limit).
    pub fn limits(&self) -> Limits {
        let mut l = Limits::default();
        if self.mode == HostMode::Unified {
            if let Some(d) = &self.v2 {
                (l.cpu_quota_us, l.cpu_period_us) =
                    parse_cpu_max(&fsutil::read_trim(&d.dir, "cpu.max").unwrap_or_default());
                l.io = parse_io_max(&fsutil::read_file(&d.dir, "io.max").unwrap_or_default());
            }
            return l;
        }
        if let Some(d) = self.v1_dir("cpu") {
            let quota = fsutil::read_trim(d, "cpu.cfs_quota_us").unwrap_or_default();
            l.cpu_quota_us = quota.parse::<i64>().ok().filter(|q| *q > 0).map(|q| q as u64);
            l.cpu_period_us = fsutil::read_trim(d, "cpu.cfs_period_us").ok().and_then(|p| p.parse().ok()).unwrap_or(0);
        }
        if let Some(d) = self.v1_dir("blkio") {
            l.io = v1_throttles(d);
        }
        l
    }
}

/// `cpu.max`: "max 100000" or "50000 100000".
fn parse_cpu_max(s: &str) -> (Option<u64>, u64) {
    let mut it = s.split_whitespace();
    let quota = it.next().and_then(|q| q.parse().ok());
    (quota, it.next().and_then(|p| p.parse().ok()).unwrap_or(0))
}

/// The entry of device `maj:min` in `out`, made if missing.
fn device<'a>(out: &'a mut Vec<IoThrottle>, dev: &str) -> Option<&'a mut IoThrottle> {
    let (maj, min) = dev.split_once(':')?;
    let (major, minor) = (maj.parse().ok()?, min.parse().ok()?);
    let i = match out.iter().position(|t| t.major == major && t.minor == minor) {
        Some(i) => i,
        None => {
            out.push(IoThrottle { major, minor, ..Default::default() });
            out.len() - 1
        }
    };
    Some(&mut out[i])
}

/// `io.max`: "8:16 rbps=2097152 wbps=max riops=max wiops=120" per device.
fn parse_io_max(s: &str) -> Vec<IoThrottle> {
    let mut out = Vec::new();
    for l in s.lines() {
        let mut it = l.split_whitespace();
        let Some(t) = it.next().and_then(|d| device(&mut out, d)) else { continue };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let v = v.parse().ok();
            match k {
                "rbps" => t.rbps = v,
                "wbps" => t.wbps = v,
                "riops" => t.riops = v,
                "wiops" => t.wiops = v,
                _ => {}
            }
        }
    }
    out.retain(|t| t.rbps.is_some() || t.wbps.is_some() || t.riops.is_some() || t.wiops.is_some());
    out
}

/// v1: one "8:0 1048576" line per device in each of the four throttle files.
fn v1_throttles(dir: &Path) -> Vec<IoThrottle> {
    let mut out = Vec::new();
    for (file, key) in [
        ("blkio.throttle.read_bps_device", 0),
        ("blkio.throttle.write_bps_device", 1),
        ("blkio.throttle.read_iops_device", 2),
        ("blkio.throttle.write_iops_device", 3),
    ] {
        merge_v1(&mut out, &fsutil::read_file(dir, file).unwrap_or_default(), key);
    }
    out
}

/// Adds the "MAJ:MIN VALUE" lines of one v1 throttle file (`key`: 0 rbps, 1 wbps,
/// 2 riops, 3 wiops) to `out`.
fn merge_v1(out: &mut Vec<IoThrottle>, text: &str, key: usize) {
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let (Some(dev), Some(Ok(v))) = (it.next(), it.next().map(str::parse::<u64>)) else { continue };
        let Some(t) = device(out, dev) else { continue };
        *[&mut t.rbps, &mut t.wbps, &mut t.riops, &mut t.wiops][key] = Some(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max() {
        assert_eq!(parse_cpu_max("max 100000"), (None, 100000));
        assert_eq!(parse_cpu_max("50000 100000"), (Some(50000), 100000));
        assert_eq!(parse_cpu_max(""), (None, 0));
    }

    #[test]
    fn io_throttles() {
        let v = parse_io_max(
            "8:16 rbps=2097152 wbps=max riops=max wiops=120\n259:0 rbps=max wbps=max riops=max wiops=max\n",
        );
        assert_eq!(
            v,
            [IoThrottle { major: 8, minor: 16, rbps: Some(2097152), wbps: None, riops: None, wiops: Some(120) }]
        );
        let mut out = Vec::new();
        merge_v1(&mut out, "8:0 1048576\n", 0);
        merge_v1(&mut out, "8:0 300\n253:1 50\n", 3);
        assert_eq!(
            out,
            [
                IoThrottle { major: 8, minor: 0, rbps: Some(1048576), wbps: None, riops: None, wiops: Some(300) },
                IoThrottle { major: 253, minor: 1, rbps: None, wbps: None, riops: None, wiops: Some(50) },
            ]
        );
    }
}
