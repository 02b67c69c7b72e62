//! `linux.cgroupsPath` resolution (runc's cgroupfs driver rules, with capsa's
//! own default for an empty path).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::detect::{parse_proc_cgroup, Hierarchy};
use super::CgroupError;

/// A resolved cgroupsPath, not yet tied to mount points (see `Manager::new`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPath {
    /// Lexically cleaned path: starts with '/' when absolute, never contains
    /// "." or ".." components, never empty.
    pub path: String,
    /// Relative to the calling process's own cgroup (per hierarchy).
    pub relative: bool,
    /// For relative paths: the caller's cgroup per hierarchy from
    /// /proc/self/cgroup, keyed by the sorted controller list joined with ','
    /// ("cpu,cpuacct", "memory", "name=systemd"; "" for cgroup2).
    pub own: BTreeMap<String, String>,
}

/// Lexically clean a path: drop empty and "." components, resolve ".." without
/// ever going above the start. Returns the components joined with '/'.
pub fn clean_components(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// True for the systemd driver's "slice:prefix:name" form.
pub fn is_systemd_form(p: &str) -> bool {
    !p.contains('/') && p.split(':').count() == 3
}

/// `resolve_path` with the contents of /proc/self/cgroup given as text
/// (only consulted for relative paths).
pub fn resolve_path_with(cgroups_path: &str, id: &str, proc_self_cgroup: &str) -> Result<CgroupPath, CgroupError> {
    let invalid =
        |reason: &str| CgroupError::InvalidPath { path: cgroups_path.to_string(), reason: reason.to_string() };
    if cgroups_path.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    if cgroups_path.is_empty() {
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            return Err(CgroupError::InvalidPath {
                path: String::new(),
                reason: format!(
                    "empty cgroupsPath defaults to /capsa/<id>, but container id {id:?} is not a valid directory name"
                ),
            });
        }
        return Ok(CgroupPath { path: format!("/capsa/{id}"), relative: false, own: BTreeMap::new() });
    }
    if is_systemd_form(cgroups_path) {
        return Err(CgroupError::SystemdPath(cgroups_path.to_string()));
    }
    let cleaned = clean_components(cgroups_path);
    if cleaned.is_empty() {
        return Err(invalid(
            "resolves to the root cgroup or to the caller's own cgroup; a container needs a cgroup of its own",
        ));
    }
    if cgroups_path.starts_with('/') {
        return Ok(CgroupPath { path: format!("/{cleaned}"), relative: false, own: BTreeMap::new() });
    }
    let own = parse_proc_cgroup(proc_self_cgroup).into_iter().map(|l| (l.controllers.join(","), l.path)).collect();
    Ok(CgroupPath { path: cleaned, relative: true, own })
}

/// Resolves cgroupsPath as runc's fs driver does: absolute "/a/b" -> that path
/// in every hierarchy; relative "a/b" -> under the calling process's own cgroup
/// (per hierarchy, from /proc/self/cgroup); empty -> "/capsa/<id>" (NOT under
/// the caller's cgroup, unlike runc). "slice:prefix:name" (systemd form) ->
/// `Err(CgroupError::SystemdPath)`.
pub fn resolve_path(cgroups_path: &str, id: &str) -> Result<CgroupPath, CgroupError> {
    let text = if !cgroups_path.is_empty() && !cgroups_path.starts_with('/') && !is_systemd_form(cgroups_path) {
        let p = "/proc/self/cgroup";
        std::fs::read_to_string(p).map_err(|e| CgroupError::Read { path: p.into(), source: e })?
    } else {
        String::new()
    };
    resolve_path_with(cgroups_path, id, &text)
}

fn join_rel(base: &Path, rel: &str) -> PathBuf {
    let rel = clean_components(rel);
    if rel.is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

impl CgroupPath {
    /// The caller's own cgroup in hierarchy `h` (v1) or in cgroup2 (`v2 == true`).
    fn own_in(&self, h: &Hierarchy, v2: bool) -> &str {
        let key = if v2 {
            String::new()
        } else {
            let mut c = h.controllers.clone();
            c.sort();
            c.join(",")
        };
        match self.own.get(&key) {
            Some(p) => p,
            None => {
                tracing::warn!(
                    hierarchy = %h.mount_point.display(),
                    "/proc/self/cgroup has no line for this hierarchy; resolving relative cgroupsPath from its root"
                );
                "/"
            }
        }
    }

    /// Absolute directory of this cgroup in hierarchy `h` (`v2`: `h` is the cgroup2 mount).
    pub fn dir_in(&self, h: &Hierarchy, v2: bool) -> PathBuf {
        if !self.relative {
            return join_rel(&h.mount_point, &self.path);
        }
        let own = self.own_in(h, v2);
        // The mount shows the hierarchy from `h.root` down: strip that prefix.
        let own_rel = if h.root == "/" {
            own
        } else {
            match own.strip_prefix(h.root.as_str()) {
                Some(r) if r.is_empty() || r.starts_with('/') => r,
                _ => own,
            }
        };
        join_rel(&join_rel(&h.mount_point, own_rel), &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hier(mp: &str, root: &str, c: &[&str]) -> Hierarchy {
        Hierarchy { mount_point: mp.into(), root: root.into(), controllers: c.iter().map(|s| s.to_string()).collect() }
    }

    const PROC: &str = "9:name=systemd:/user.slice\n4:memory:/process_api/986e\n1:cpu,cpuacct:/\n0::/init.scope\n";

    #[test]
    fn absolute() {
        let p = resolve_path_with("/a//b/./c/../d", "x", PROC).unwrap();
        assert_eq!(p.path, "/a/b/d");
        assert!(!p.relative);
        let mem = hier("/sys/fs/cgroup/memory", "/", &["memory"]);
        assert_eq!(p.dir_in(&mem, false), PathBuf::from("/sys/fs/cgroup/memory/a/b/d"));
        // ".." cannot climb above the hierarchy root.
        let p = resolve_path_with("/../../etc", "x", PROC).unwrap();
        assert_eq!(p.path, "/etc");
        assert_eq!(p.dir_in(&mem, false), PathBuf::from("/sys/fs/cgroup/memory/etc"));
    }

    #[test]
    fn relative_per_hierarchy() {
        let p = resolve_path_with("ctr/a", "x", PROC).unwrap();
        assert!(p.relative);
        let mem = hier("/sys/fs/cgroup/memory", "/", &["memory"]);
        let cpu = hier("/sys/fs/cgroup/cpu,cpuacct", "/", &["cpuacct", "cpu"]);
        let sd = hier("/sys/fs/cgroup/systemd", "/", &["name=systemd"]);
        let pids = hier("/sys/fs/cgroup/pids", "/", &["pids"]);
        let v2 = hier("/sys/fs/cgroup/unified", "/", &[]);
        assert_eq!(p.dir_in(&mem, false), PathBuf::from("/sys/fs/cgroup/memory/process_api/986e/ctr/a"));
        assert_eq!(p.dir_in(&cpu, false), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/ctr/a"));
        assert_eq!(p.dir_in(&sd, false), PathBuf::from("/sys/fs/cgroup/systemd/user.slice/ctr/a"));
        // no line for pids: falls back to the hierarchy root
        assert_eq!(p.dir_in(&pids, false), PathBuf::from("/sys/fs/cgroup/pids/ctr/a"));
        assert_eq!(p.dir_in(&v2, true), PathBuf::from("/sys/fs/cgroup/unified/init.scope/ctr/a"));
        // a mount whose root is a sub-tree (bind mount / cgroupns)
        let bound = hier("/mnt/mem", "/process_api", &["memory"]);
        assert_eq!(p.dir_in(&bound, false), PathBuf::from("/mnt/mem/986e/ctr/a"));
        // "../x" stays under the caller's cgroup
        let p = resolve_path_with("../x", "id", PROC).unwrap();
        assert_eq!(p.path, "x");
    }

    #[test]
    fn empty_and_errors() {
        let p = resolve_path_with("", "ctr1", PROC).unwrap();
        assert_eq!(p.path, "/capsa/ctr1");
        assert!(!p.relative);
        assert!(matches!(resolve_path_with("", "a/b", PROC), Err(CgroupError::InvalidPath { .. })));
        let e = resolve_path_with("system.slice:docker:1234", "x", PROC).unwrap_err();
        assert!(matches!(e, CgroupError::SystemdPath(_)));
        assert!(e.to_string().contains("--systemd-cgroup"), "{e}");
        assert!(matches!(resolve_path_with("/", "x", PROC), Err(CgroupError::InvalidPath { .. })));
        assert!(matches!(resolve_path_with("a/..", "x", PROC), Err(CgroupError::InvalidPath { .. })));
        // colons inside an absolute path are just names
        assert_eq!(resolve_path_with("/a:b:c", "x", PROC).unwrap().path, "/a:b:c");
    }
}
