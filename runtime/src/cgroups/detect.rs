//! Host detection: which cgroup filesystems are mounted where.
//!
//! Parsing is done on text (`parse_mountinfo`, `parse_proc_cgroup`) so that it
//! can be unit tested with fake `/proc/self/mountinfo` and `/proc/self/cgroup`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{CgroupError, HostMode};

/// One mounted cgroup hierarchy (a v1 hierarchy, or the cgroup2 mount).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory`.
    pub mount_point: PathBuf,
    /// mountinfo field 4: which cgroup of the hierarchy is at `mount_point`
    /// ("/" normally; something else for a bind mount of a sub-tree).
    pub root: String,
    /// v1: controllers from the super options, e.g. `["cpu", "cpuacct"]` or
    /// `["name=systemd"]`. cgroup2: the contents of `cgroup.controllers` of the
    /// mount (empty when parsed from text only).
    pub controllers: Vec<String>,
}

impl Hierarchy {
    /// True when this v1 hierarchy carries controller `c` (e.g. "memory", "name=systemd").
    pub fn has(&self, c: &str) -> bool {
        self.controllers.iter().any(|x| x == c)
    }
}

/// What `detect()` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub mode: HostMode,
    /// v1 hierarchies (empty on a unified host), one per distinct controller set.
    pub hierarchies: Vec<Hierarchy>,
    /// The cgroup2 mount (`/sys/fs/cgroup` on unified hosts,
    /// usually `/sys/fs/cgroup/unified` on hybrid ones).
    pub unified: Option<Hierarchy>,
}

impl Host {
    /// The v1 hierarchy carrying controller `c`.
    pub fn v1(&self, c: &str) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.has(c))
    }
}

/// Super options of a v1 cgroup mount that are not controller names.
const NON_CONTROLLER_OPTS: &[&str] = &[
    "rw",
    "ro",
    "none",
    "all",
    "noprefix",
    "xattr",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
    "nofavordynmods",
];

/// Parse `/proc/self/mountinfo` text into a [`Host`].
///
/// v1 hierarchies with the same controller set mounted twice (bind mounts)
/// are listed once (first mount wins). For cgroup2, a mount at
/// `/sys/fs/cgroup` is preferred, then `/sys/fs/cgroup/unified`, then the first.
pub fn parse_mountinfo(text: &str) -> Result<Host, CgroupError> {
    let mut hierarchies: Vec<Hierarchy> = Vec::new();
    let mut v2: Vec<Hierarchy> = Vec::new();
    for e in crate::mountinfo::parse(text) {
        let root = e.root.to_string_lossy().into_owned();
        let mount_point = e.mount_point;
        match e.fstype {
            "cgroup" => {
                let mut controllers: Vec<String> = e
                    .super_opts
                    .split(',')
                    .filter(|o| !NON_CONTROLLER_OPTS.contains(o))
                    .filter(|o| !o.contains('=') || o.starts_with("name="))
                    .map(str::to_string)
                    .collect();
                if controllers.is_empty() {
                    continue;
                }
                controllers.sort();
                if hierarchies.iter().any(|h| h.controllers == controllers) {
                    continue;
                }
                hierarchies.push(Hierarchy { mount_point, root, controllers });
            }
            "cgroup2" => v2.push(Hierarchy { mount_point, root, controllers: Vec::new() }),
            _ => {}
        }
    }
    let pick = |p: &str| v2.iter().position(|h| h.mount_point == std::path::Path::new(p));
    let unified = pick("/sys/fs/cgroup")
        .or_else(|| pick("/sys/fs/cgroup/unified"))
        .or(if v2.is_empty() { None } else { Some(0) })
        .map(|i| v2[i].clone());
    let mode = match (hierarchies.is_empty(), unified.is_some()) {
        (false, true) => HostMode::Hybrid,
        (false, false) => HostMode::Legacy,
        (true, true) => HostMode::Unified,
        (true, false) => return Err(CgroupError::NoCgroupMounts),
    };
    Ok(Host { mode, hierarchies, unified })
}

/// One line of `/proc/<pid>/cgroup`: `ID:CONTROLLERS:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroupLine {
    pub id: u32,
    /// Controllers sorted (e.g. `["cpu","cpuacct"]`, `["name=systemd"]`); empty for cgroup2 ("0::/...").
    pub controllers: Vec<String>,
    pub path: String,
}

/// Parse `/proc/self/cgroup` text.
pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroupLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let Ok(id) = id.parse() else { continue };
        let mut controllers: Vec<String> = ctrls.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect();
        controllers.sort();
        out.push(ProcCgroupLine { id, controllers, path: path.to_string() });
    }
    out
}

/// Read `/proc/self/mountinfo` once and classify the host.
pub fn detect() -> Result<Host, CgroupError> {
    let p = "/proc/self/mountinfo";
    let text = std::fs::read_to_string(p).map_err(|e| CgroupError::Read { path: p.into(), source: e })?;
    let mut host = parse_mountinfo(&text)?;
    if let Some(u) = host.unified.as_mut() {
        if let Ok(s) = std::fs::read_to_string(u.mount_point.join("cgroup.controllers")) {
            u.controllers = s.split_whitespace().map(str::to_string).collect();
        }
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x/y,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:32 /docker /mnt/mem\\040bind rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn hybrid_mountinfo() {
        let h = parse_mountinfo(HYBRID).unwrap();
        assert_eq!(h.mode, HostMode::Hybrid);
        assert_eq!(h.hierarchies.len(), 4, "{h:?}");
        assert_eq!(h.hierarchies[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(h.hierarchies[0].mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h.hierarchies[1].controllers, vec!["cpuset"]);
        assert_eq!(h.hierarchies[3].controllers, vec!["name=systemd"]);
        assert!(h.v1("cpuacct").is_some());
        assert_eq!(h.unified.unwrap().mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn legacy_and_unified() {
        let legacy = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(parse_mountinfo(legacy).unwrap().mode, HostMode::Legacy);
        let unified = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let h = parse_mountinfo(unified).unwrap();
        assert_eq!(h.mode, HostMode::Unified);
        assert!(h.hierarchies.is_empty());
        assert_eq!(h.unified.unwrap().mount_point, PathBuf::from("/sys/fs/cgroup"));
        assert!(matches!(parse_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n"), Err(CgroupError::NoCgroupMounts)));
    }

    #[test]
    fn proc_cgroup() {
        let t = "9:name=systemd:/\n4:memory:/process_api/986e\n2:cpuacct,cpu:/a\n0::/\n";
        let l = parse_proc_cgroup(t);
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].controllers, vec!["name=systemd"]);
        assert_eq!(l[1].path, "/process_api/986e");
        assert_eq!(l[2].controllers, vec!["cpu", "cpuacct"]);
        assert!(l[3].controllers.is_empty());
        assert_eq!(l[3].id, 0);
    }
}
