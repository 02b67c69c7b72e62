//! OCI runtime-spec `linux.resources` types (config-linux.md), serde-exact.
//!
//! Every field is optional on input (missing fields take their default) and
//! unknown fields are ignored. On output, unset fields are omitted, as the Go
//! reference types do with `omitempty`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `linux.resources`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxResources {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<LinuxDeviceCgroup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<LinuxMemory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<LinuxCpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<LinuxPids>,
    #[serde(rename = "blockIO", skip_serializing_if = "Option::is_none")]
    pub block_io: Option<LinuxBlockIo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hugepage_limits: Vec<LinuxHugepageLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<LinuxNetwork>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rdma: BTreeMap<String, LinuxRdma>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unified: BTreeMap<String, String>,
}

/// One entry of `linux.resources.devices` (device cgroup rule).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LinuxDeviceCgroup {
    /// `allow` is REQUIRED in the spec; a missing value reads as `false` (deny).
    pub allow: bool,
    /// "a" (all), "c" (char) or "b" (block); None means "a".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// None means any major ("*").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    /// None means any minor ("*").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    /// Some of "rwm"; None means "rwm".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
}

/// `linux.resources.memory`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxMemory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation: Option<i64>,
    /// memory+swap limit (v1 semantics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<i64>,
    #[serde(rename = "kernelTCP", skip_serializing_if = "Option::is_none")]
    pub kernel_tcp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swappiness: Option<u64>,
    #[serde(rename = "disableOOMKiller", skip_serializing_if = "Option::is_none")]
    pub disable_oom_killer: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_hierarchy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_before_update: Option<bool>,
}

/// `linux.resources.cpu`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxCpu {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime_runtime: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime_period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mems: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<i64>,
}

/// `linux.resources.pids`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LinuxPids {
    /// `limit <= 0` means unlimited ("max").
    pub limit: i64,
}

/// `linux.resources.blockIO`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxBlockIo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_weight: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<LinuxWeightDevice>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub throttle_read_bps_device: Vec<LinuxThrottleDevice>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub throttle_write_bps_device: Vec<LinuxThrottleDevice>,
    #[serde(rename = "throttleReadIOPSDevice", skip_serializing_if = "Vec::is_empty")]
    pub throttle_read_iops_device: Vec<LinuxThrottleDevice>,
    #[serde(rename = "throttleWriteIOPSDevice", skip_serializing_if = "Vec::is_empty")]
    pub throttle_write_iops_device: Vec<LinuxThrottleDevice>,
}

/// `blockIO.weightDevice[]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxWeightDevice {
    pub major: i64,
    pub minor: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_weight: Option<u16>,
}

/// `blockIO.throttle*Device[]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LinuxThrottleDevice {
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

/// `hugepageLimits[]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxHugepageLimit {
    /// e.g. "2MB", "1GB" (as in the hugetlb cgroup file names).
    pub page_size: String,
    pub limit: u64,
}

/// `linux.resources.network`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LinuxNetwork {
    #[serde(rename = "classID", skip_serializing_if = "Option::is_none")]
    pub class_id: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<LinuxInterfacePriority>,
}

/// `network.priorities[]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LinuxInterfacePriority {
    pub name: String,
    pub priority: u32,
}

/// `linux.resources.rdma.<device>`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct LinuxRdma {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hca_handles: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hca_objects: Option<u32>,
}

fn dev(typ: &str, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
    LinuxDeviceCgroup { allow: true, r#type: Some(typ.to_string()), major, minor, access: Some(access.to_string()) }
}

/// runc's `AllowedDevices` (libcontainer/specconv): the node each rule is for, if any.
fn defaults() -> [(Option<&'static str>, LinuxDeviceCgroup); 11] {
    [
        (None, dev("c", None, None, "m")),
        (None, dev("b", None, None, "m")),
        (Some("/dev/null"), dev("c", Some(1), Some(3), "rwm")),
        (Some("/dev/random"), dev("c", Some(1), Some(8), "rwm")),
        (Some("/dev/full"), dev("c", Some(1), Some(7), "rwm")),
        (Some("/dev/tty"), dev("c", Some(5), Some(0), "rwm")),
        (Some("/dev/zero"), dev("c", Some(1), Some(5), "rwm")),
        (Some("/dev/urandom"), dev("c", Some(1), Some(9), "rwm")),
        (None, dev("c", Some(136), None, "rwm")),     // /dev/pts/*
        (None, dev("c", Some(5), Some(2), "rwm")),    // /dev/ptmx
        (None, dev("c", Some(10), Some(200), "rwm")), // /dev/net/tun
    ]
}

/// The device rules runc appends to every container's list.
///
/// Derived from runc's `AllowedDevices` (libcontainer/specconv/spec_linux.go):
/// mknod of any char/block device, /dev/null, /dev/random, /dev/full,
/// /dev/tty, /dev/zero, /dev/urandom, /dev/pts/* (136:*), /dev/ptmx (5:2)
/// and /dev/net/tun (10:200, runc 1.1). runc does not list /dev/console (5:1) here;
/// the console is bind-mounted from a pty (136:*), which is covered.
pub fn default_allowed_devices() -> Vec<LinuxDeviceCgroup> {
    defaults().into_iter().map(|(_, r)| r).collect()
}

/// `default_allowed_devices` without the rule of a default node that the config's
/// `linux.devices` lists itself (its path in `listed`): as runc does, the config's
/// entry replaces the default node, and its access is then up to
/// `linux.resources.devices`. `linux.devices` never adds a cgroup rule.
pub fn default_device_rules(listed: &[&str]) -> Vec<LinuxDeviceCgroup> {
    defaults().into_iter().filter(|(p, _)| !p.is_some_and(|p| listed.contains(&p))).map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_field_names() {
        let j = r#"{
          "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}],
          "memory":{"limit":67108864,"reservation":1,"swap":2,"kernel":3,"kernelTCP":4,"swappiness":0,
                    "disableOOMKiller":true,"useHierarchy":true,"checkBeforeUpdate":true},
          "cpu":{"shares":1024,"quota":50000,"burst":1,"period":100000,"realtimeRuntime":950000,
                 "realtimePeriod":1000000,"cpus":"0-1","mems":"0","idle":1},
          "pids":{"limit":32},
          "blockIO":{"weight":10,"leafWeight":20,"weightDevice":[{"major":8,"minor":0,"weight":500,"leafWeight":300}],
                     "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":600}],
                     "throttleWriteBpsDevice":[{"major":8,"minor":0,"rate":700}],
                     "throttleReadIOPSDevice":[{"major":8,"minor":0,"rate":800}],
                     "throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":900}]},
          "hugepageLimits":[{"pageSize":"2MB","limit":209715200}],
          "network":{"classID":1048577,"priorities":[{"name":"eth0","priority":500}]},
          "rdma":{"mlx5_1":{"hcaHandles":3,"hcaObjects":10000}},
          "unified":{"io.weight":"100"},
          "someFutureField":{"x":1}
        }"#;
        let r: LinuxResources = serde_json::from_str(j).unwrap();
        assert_eq!(r.devices.len(), 2);
        assert_eq!(r.devices[1].r#type.as_deref(), Some("c"));
        let m = r.memory.as_ref().unwrap();
        assert_eq!(m.kernel_tcp, Some(4));
        assert_eq!(m.disable_oom_killer, Some(true));
        assert_eq!(m.check_before_update, Some(true));
        let c = r.cpu.as_ref().unwrap();
        assert_eq!(c.realtime_runtime, Some(950000));
        assert_eq!(c.realtime_period, Some(1000000));
        assert_eq!(c.idle, Some(1));
        let b = r.block_io.as_ref().unwrap();
        assert_eq!(b.leaf_weight, Some(20));
        assert_eq!(b.weight_device[0].leaf_weight, Some(300));
        assert_eq!(b.throttle_read_iops_device[0].rate, 800);
        assert_eq!(b.throttle_write_iops_device[0].rate, 900);
        assert_eq!(r.hugepage_limits[0].page_size, "2MB");
        assert_eq!(r.network.as_ref().unwrap().class_id, Some(1048577));
        assert_eq!(r.rdma["mlx5_1"].hca_objects, Some(10000));
        assert_eq!(r.unified["io.weight"], "100");

        // Round trip: the serialized form uses the same names and parses back equal.
        let out = serde_json::to_string(&r).unwrap();
        for key in [
            "\"blockIO\"",
            "\"hugepageLimits\"",
            "\"kernelTCP\"",
            "\"disableOOMKiller\"",
            "\"realtimeRuntime\"",
            "\"throttleReadIOPSDevice\"",
            "\"classID\"",
            "\"hcaHandles\"",
            "\"type\":\"c\"",
        ] {
            assert!(out.contains(key), "{key} missing in {out}");
        }
        let back: LinuxResources = serde_json::from_str(&out).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn empty_object_and_omitted_fields() {
        let r: LinuxResources = serde_json::from_str("{}").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "{}");
        let m: LinuxMemory = serde_json::from_str(r#"{"limit":-1}"#).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"limit":-1}"#);
    }

    #[test]
    fn default_devices_match_runc() {
        let d = default_allowed_devices();
        assert_eq!(d.len(), 11);
        assert!(d.iter().all(|r| r.allow));
        assert!(d.iter().any(|r| r.major == Some(136) && r.minor.is_none()));
        assert!(d.iter().any(|r| r.major == Some(10) && r.minor == Some(200)));
        let d = default_device_rules(&["/dev/null", "/dev/kmsg"]);
        assert_eq!(d.len(), 10);
        assert!(!d.iter().any(|r| r.major == Some(1) && r.minor == Some(3)));
    }
}
