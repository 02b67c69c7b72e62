//! OCI `process.rlimits`, applied with prlimit64(2) on the calling process.

use serde::{Deserialize, Serialize};

use super::SecurityError;

/// OCI `POSIXRlimit`. `u64::MAX` means RLIM_INFINITY.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PosixRlimit {
    #[serde(rename = "type")]
    pub typ: String,
    pub hard: u64,
    pub soft: u64,
}

/// Every Linux RLIMIT_* and its resource number.
const RLIMITS: [(&str, libc::c_int); 16] = [
    ("RLIMIT_CPU", libc::RLIMIT_CPU as libc::c_int),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE as libc::c_int),
    ("RLIMIT_DATA", libc::RLIMIT_DATA as libc::c_int),
    ("RLIMIT_STACK", libc::RLIMIT_STACK as libc::c_int),
    ("RLIMIT_CORE", libc::RLIMIT_CORE as libc::c_int),
    ("RLIMIT_RSS", libc::RLIMIT_RSS as libc::c_int),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC as libc::c_int),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE as libc::c_int),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK as libc::c_int),
    ("RLIMIT_AS", libc::RLIMIT_AS as libc::c_int),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS as libc::c_int),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING as libc::c_int),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE as libc::c_int),
    ("RLIMIT_NICE", libc::RLIMIT_NICE as libc::c_int),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO as libc::c_int),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME as libc::c_int),
];

/// The resource number for an OCI rlimit type such as "RLIMIT_NOFILE"
/// (exact, upper-case, as the runtime spec requires).
pub fn resource_from_name(name: &str) -> Result<libc::c_int, SecurityError> {
    RLIMITS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, r)| r)
        .ok_or_else(|| SecurityError::InvalidRlimit(format!("unknown rlimit type {name:?}")))
}

/// Checks names, soft <= hard and duplicates without touching the process,
/// so a bad spec can be rejected before forking.
pub fn validate(limits: &[PosixRlimit]) -> Result<(), SecurityError> {
    let mut seen = Vec::with_capacity(limits.len());
    for l in limits {
        let res = resource_from_name(&l.typ)?;
        if l.soft > l.hard {
            return Err(SecurityError::InvalidRlimit(format!(
                "{}: soft limit {} exceeds hard limit {}",
                l.typ, l.soft, l.hard
            )));
        }
        if seen.contains(&res) {
            return Err(SecurityError::InvalidRlimit(format!("{} specified more than once", l.typ)));
        }
        seen.push(res);
    }
    Ok(())
}

/// Kernel `struct rlimit64` as taken by prlimit64(2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Rlimit64 {
    cur: u64,
    max: u64,
}

fn prlimit64(res: libc::c_int, new: Option<&Rlimit64>) -> std::io::Result<Rlimit64> {
    let mut old = Rlimit64::default();
    let new_ptr = new.map_or(std::ptr::null(), |n| n as *const Rlimit64);
    // SAFETY: pid 0 is the calling process; new_ptr is null or points to a
    // valid rlimit64, and old is a valid, writable rlimit64 for the call.
    let r = unsafe { libc::syscall(libc::SYS_prlimit64, 0 as libc::pid_t, res, new_ptr, &mut old as *mut Rlimit64) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(old)
}

/// Applies every limit to the calling process (validating all first, so an
/// unknown type fails before anything changed).
///
/// EPERM means the hard limit would be raised above its current value, which
/// needs CAP_SYS_RESOURCE (the error says so).
pub fn apply(limits: &[PosixRlimit]) -> Result<(), SecurityError> {
    validate(limits)?;
    for l in limits {
        let res = resource_from_name(&l.typ)?;
        let new = Rlimit64 { cur: l.soft, max: l.hard };
        if let Err(err) = prlimit64(res, Some(&new)) {
            let hint = match err.raw_os_error() {
                Some(libc::EPERM) => {
                    let cur_hard = prlimit64(res, None).map(|o| o.max).ok();
                    let cur = match cur_hard {
                        Some(u64::MAX) => " (current hard limit: unlimited)".to_string(),
                        Some(h) => format!(" (current hard limit: {h})"),
                        None => String::new(),
                    };
                    format!(
                        "; EPERM: raising a hard limit above its current value needs \
                         CAP_SYS_RESOURCE{cur}"
                    )
                }
                Some(libc::EINVAL) if l.typ == "RLIMIT_NOFILE" => {
                    "; EINVAL: RLIMIT_NOFILE cannot exceed /proc/sys/fs/nr_open".to_string()
                }
                _ => String::new(),
            };
            return Err(SecurityError::Rlimit { name: l.typ.clone(), soft: l.soft, hard: l.hard, err, hint });
        }
        tracing::debug!(rlimit = %l.typ, soft = l.soft, hard = l.hard, "rlimit set");
        crate::explain::step(crate::explain::Kind::Rlimit, || {
            let v = |n: u64| if n == u64::MAX { "unlimited".to_string() } else { n.to_string() };
            crate::explain::Step::new(
                format!("{}: soft limit {}, hard limit {} (the soft one is enforced; a process may raise it up to the hard one)", l.typ, v(l.soft), v(l.hard)),
                format!("prlimit64(0, {}, {{rlim_cur: {}, rlim_max: {}}}, NULL)", l.typ, v(l.soft), v(l.hard)),
            )
            .field("rlimit", l.typ.as_str())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::testutil::{assert_child_ok, in_child, Outcome};

    fn lim(typ: &str, soft: u64, hard: u64) -> PosixRlimit {
        PosixRlimit { typ: typ.to_string(), hard, soft }
    }

    #[test]
    fn names_and_serde() {
        for (n, r) in RLIMITS {
            assert_eq!(resource_from_name(n).unwrap(), r);
        }
        assert_eq!(resource_from_name("RLIMIT_NOFILE").unwrap(), libc::RLIMIT_NOFILE as libc::c_int);
        let e = resource_from_name("RLIMIT_FOO").unwrap_err();
        assert_eq!(e.to_string(), "rlimit: unknown rlimit type \"RLIMIT_FOO\"");
        assert!(resource_from_name("nofile").is_err());

        let l: PosixRlimit = serde_json::from_str(r#"{"type":"RLIMIT_NOFILE","hard":4096,"soft":1024}"#).unwrap();
        assert_eq!(l, lim("RLIMIT_NOFILE", 1024, 4096));
        let v = serde_json::to_value(&l).unwrap();
        assert_eq!(v["type"], "RLIMIT_NOFILE");
    }

    #[test]
    fn validate_rejects_bad_entries() {
        assert!(validate(&[lim("RLIMIT_CORE", 0, 0), lim("RLIMIT_NOFILE", 1, 2)]).is_ok());
        let e = validate(&[lim("RLIMIT_NOFILE", 10, 5)]).unwrap_err();
        assert_eq!(e.to_string(), "rlimit: RLIMIT_NOFILE: soft limit 10 exceeds hard limit 5");
        let e = validate(&[lim("RLIMIT_CORE", 0, 0), lim("RLIMIT_CORE", 1, 1)]).unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");
        // An unknown name fails before anything is applied.
        assert!(apply(&[lim("RLIMIT_BOGUS", 1, 1)]).is_err());
    }

    #[test]
    fn applies_in_child() {
        assert_child_ok(|| {
            apply(&[lim("RLIMIT_NOFILE", 2048, 4096), lim("RLIMIT_CORE", 0, u64::MAX)])?;
            let nofile = prlimit64(libc::RLIMIT_NOFILE as libc::c_int, None)?;
            let core = prlimit64(libc::RLIMIT_CORE as libc::c_int, None)?;
            if (nofile.cur, nofile.max) != (2048, 4096) || (core.cur, core.max) != (0, u64::MAX) {
                return Err(format!("nofile={nofile:?} core={core:?}").into());
            }
            Ok(0)
        });
    }

    #[test]
    fn raising_hard_limit_reports_eperm() {
        // Lower the hard limit, then try to raise it again. Without
        // CAP_SYS_RESOURCE (as on this machine) the kernel refuses; with it,
        // the child drops the capability first so the result is the same.
        let (outcome, msg) = in_child(|| {
            // SAFETY: PR_CAPBSET_DROP takes an integer capability number.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, 24, 0, 0, 0) };
            apply(&[lim("RLIMIT_NOFILE", 1024, 4096)])?;
            match apply(&[lim("RLIMIT_NOFILE", 2048, 8192)]) {
                Ok(()) => Ok(1), // machine has CAP_SYS_RESOURCE in permitted
                Err(e) if e.errno() == Some(libc::EPERM) => Err(e.into()),
                Err(e) => Err(format!("unexpected: {e}").into()),
            }
        });
        if outcome == Outcome::Exited(1) {
            eprintln!("skipping EPERM check: CAP_SYS_RESOURCE is available");
            return;
        }
        assert_eq!(outcome, Outcome::Exited(100), "{msg}");
        assert_eq!(
            msg,
            "setrlimit RLIMIT_NOFILE soft=2048 hard=8192: Operation not permitted (os error 1); \
             EPERM: raising a hard limit above its current value needs CAP_SYS_RESOURCE \
             (current hard limit: 4096)"
        );
    }
}
