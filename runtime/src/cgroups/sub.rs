//! `exec --cgroup`: run a process in an existing sub-cgroup of the container's
//! cgroup (runc 1.1). `--cgroup PATH` names one sub-path for every hierarchy (the
//! only form on cgroup v2); `--cgroup ctrl[,ctrl]:PATH` one per v1 controller
//! (on hybrid hosts the cgroup2 mount is the controller `unified`).

use std::path::{Path, PathBuf};

use super::{HostMode, Manager};

/// A bad `--cgroup` argument, or a sub-cgroup that cannot be joined.
#[derive(Debug, thiserror::Error)]
pub enum SubCgroupError {
    #[error("invalid --cgroup argument: {0}")]
    Invalid(String),
    #[error("{0} is not a sub cgroup path")]
    NotSub(String),
    #[error("unknown controller {name} in --cgroup (this container's: {known})")]
    UnknownController { name: String, known: String },
    #[error("--cgroup: controllers {a} and {b} share one hierarchy and cannot get different sub-cgroups")]
    SharedHierarchy { a: String, b: String },
    #[error("--cgroup: sub-cgroup {} does not exist (exec joins an existing cgroup; create it first)", .0.display())]
    Missing(PathBuf),
}

/// Parsed `--cgroup` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubCgroups {
    /// One sub-path for every hierarchy (`--cgroup PATH`).
    all: Option<String>,
    /// (controller, sub-path) pairs (`--cgroup ctrl[,ctrl]:PATH`).
    per: Vec<(String, String)>,
}

impl SubCgroups {
    /// Parse the `--cgroup` values as runc does: `PATH` alone (only as the sole
    /// argument) or `ctrl[,ctrl...]:PATH`. Also refused: an empty controller name
    /// and a controller given twice (runc 1.2's rules).
    pub fn parse(args: &[String]) -> Result<SubCgroups, SubCgroupError> {
        let mut out = SubCgroups::default();
        for a in args {
            match a.split_once(':') {
                None if args.len() == 1 => out.all = Some(a.clone()),
                None => return Err(SubCgroupError::Invalid(format!("{a} (missing <controller>: prefix)"))),
                Some((_, p)) if p.contains(':') => return Err(SubCgroupError::Invalid(a.clone())),
                Some((ctrls, p)) => {
                    for c in ctrls.split(',') {
                        if c.is_empty() {
                            return Err(SubCgroupError::Invalid(format!("{a} (empty <controller> prefix)")));
                        }
                        if out.per.iter().any(|(x, _)| x == c) {
                            return Err(SubCgroupError::Invalid(format!("controller {c} specified multiple times")));
                        }
                        out.per.push((c.to_string(), p.to_string()));
                    }
                }
            }
        }
        Ok(out)
    }

    /// No `--cgroup` given.
    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.per.is_empty()
    }
}

/// `base` joined with `sub`, which must stay below `base` (no `..` at all).
fn below(base: &Path, sub: &str) -> Result<PathBuf, SubCgroupError> {
    let mut out = base.to_path_buf();
    for c in sub.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(SubCgroupError::NotSub(sub.to_string())),
            c => out.push(c),
        }
    }
    Ok(out)
}

impl Manager {
    /// This container's cgroup with the sub-cgroups of `sub` in place of the
    /// container's own directories; each sub-cgroup must exist.
    pub fn sub_cgroup(&self, sub: &SubCgroups) -> Result<Manager, SubCgroupError> {
        let mut m = self.clone();
        m.created.clear();
        let check = |p: PathBuf| if p.is_dir() { Ok(p) } else { Err(SubCgroupError::Missing(p)) };
        if let Some(s) = &sub.all {
            for d in &mut m.v1 {
                d.dir = check(below(&d.dir, s)?)?;
            }
            if let Some(d) = &mut m.v2 {
                d.dir = check(below(&d.dir, s)?)?;
            }
            return Ok(m);
        }
        let known = || {
            let mut names: Vec<String> = self.v1.iter().flat_map(|d| d.controllers.iter().cloned()).collect();
            if self.mode == HostMode::Hybrid && self.v2.is_some() {
                names.push("unified".into());
            }
            if names.is_empty() {
                "none: cgroup v2 takes a single --cgroup PATH".into()
            } else {
                names.join(",")
            }
        };
        // Which controller set each hierarchy got, to refuse conflicting paths.
        let mut set_v1: Vec<Option<(&str, &str)>> = vec![None; m.v1.len()];
        for (ctrl, p) in &sub.per {
            if ctrl == "unified" && self.mode == HostMode::Hybrid {
                if let Some(d) = &mut m.v2 {
                    d.dir = check(below(&d.dir, p)?)?;
                    continue;
                }
            }
            let Some(i) = self.v1.iter().position(|d| d.controllers.iter().any(|c| c == ctrl)) else {
                return Err(SubCgroupError::UnknownController { name: ctrl.clone(), known: known() });
            };
            match set_v1[i] {
                Some((other, q)) if q != p => {
                    return Err(SubCgroupError::SharedHierarchy { a: other.to_string(), b: ctrl.clone() })
                }
                Some(_) => {}
                None => {
                    m.v1[i].dir = check(below(&self.v1[i].dir, p)?)?;
                    set_v1[i] = Some((ctrl, p));
                }
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parse_like_runc() {
        let all = SubCgroups::parse(&v(&["foo/bar"])).unwrap();
        assert_eq!(all.all.as_deref(), Some("foo/bar"));
        let per = SubCgroups::parse(&v(&["memory:a", "cpu,cpuacct:b"])).unwrap();
        assert_eq!(
            per.per,
            [("memory".into(), "a".into()), ("cpu".into(), "b".into()), ("cpuacct".into(), "b".into())]
        );
        assert!(SubCgroups::parse(&[]).unwrap().is_empty());
        let err = |a: &[&str]| SubCgroups::parse(&v(a)).unwrap_err().to_string();
        assert_eq!(err(&["a:b:c"]), "invalid --cgroup argument: a:b:c");
        assert!(err(&["a", "memory:b"]).contains("missing <controller>: prefix"), "{}", err(&["a", "memory:b"]));
        assert!(err(&[":x"]).contains("empty <controller> prefix"));
        assert!(err(&["memory:a", "memory:b"]).contains("memory specified multiple times"));
    }

    #[test]
    fn sub_paths_stay_below() {
        let b = Path::new("/sys/fs/cgroup/memory/c1");
        assert_eq!(below(b, "x/y").unwrap(), b.join("x/y"));
        assert_eq!(below(b, "/x").unwrap(), b.join("x"), "a leading / is relative to the container's cgroup");
        assert_eq!(below(b, "/").unwrap(), b);
        assert_eq!(below(b, "..").unwrap_err().to_string(), ".. is not a sub cgroup path");
        assert!(below(b, "x/../../y").is_err());
        assert!(below(b, "x/../y").is_err(), "no .. at all");
    }
}
