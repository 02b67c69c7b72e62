//! Linux capabilities (OCI `process.capabilities`).
//!
//! Order of application in the container init (as runc does):
//! 1. [`drop_bounding`] — drop every capability not in `bounding`;
//! 2. [`keep_caps_for_setuid`] — so the following setresuid keeps permitted caps;
//! 3. the caller switches gid/uid;
//! 4. [`apply_sets`] — clear keep-caps, capset(2) effective/permitted/inheritable,
//!    then reset and raise the ambient set.

use serde::{Deserialize, Serialize};

use super::SecurityError;

/// Capability names indexed by number (CAP_CHOWN = 0 … CAP_CHECKPOINT_RESTORE = 40).
const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Highest capability number this module knows by name.
pub const MAX_KNOWN_CAP: u32 = CAP_NAMES.len() as u32 - 1;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// OCI `process.capabilities`.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
pub struct LinuxCapabilities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounding: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inheritable: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permitted: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambient: Option<Vec<String>>,
}

/// Resolved capability sets as bitmasks (bit N = capability N). A missing
/// set in the spec is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub inheritable: u64,
    pub permitted: u64,
    pub ambient: u64,
    /// The kernel's highest capability, as seen when the sets were built.
    pub last_cap: u32,
}

/// Resolves "CAP_NET_ADMIN" or "NET_ADMIN" (any case) to its number.
pub fn cap_from_name(name: &str) -> Result<u32, SecurityError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    CAP_NAMES
        .iter()
        .position(|n| *n == full)
        .map(|i| i as u32)
        .ok_or_else(|| SecurityError::UnknownCapability(name.to_string()))
}

/// The canonical name of capability `cap`, if known.
pub fn cap_name(cap: u32) -> Option<&'static str> {
    CAP_NAMES.get(cap as usize).copied()
}

/// The kernel's highest capability number from /proc/sys/kernel/cap_last_cap
/// (40 if it cannot be read).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n < 64)
        .unwrap_or(MAX_KNOWN_CAP)
}

/// Formats a mask as "CAP_A|CAP_B" for log and error messages.
pub fn mask_names(mask: u64) -> String {
    let names: Vec<String> = (0..64u32)
        .filter(|c| mask & (1u64 << c) != 0)
        .map(|c| cap_name(c).map_or_else(|| format!("cap{c}"), str::to_string))
        .collect();
    names.join("|")
}

/// "CAP_" followed by upper-case letters, digits and '_' (any case accepted).
fn well_formed(name: &str) -> bool {
    let upper = name.trim().to_ascii_uppercase();
    let rest = upper.strip_prefix("CAP_").unwrap_or(&upper);
    !rest.is_empty()
        && rest.starts_with(|c: char| c.is_ascii_alphabetic())
        && rest.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

impl CapSets {
    /// Resolves the OCI names against this kernel.
    ///
    /// A known capability above the kernel's `cap_last_cap` is skipped with a
    /// warning (runc does the same). A well-formed but unknown name is skipped
    /// with a warning only when the kernel has capabilities this table lacks
    /// (`cap_last_cap` > 40: it may be one of them); otherwise it is an error,
    /// as is any malformed name.
    pub fn from_spec(spec: &LinuxCapabilities) -> Result<CapSets, SecurityError> {
        Self::from_spec_with_last_cap(spec, last_cap())
    }

    fn from_spec_with_last_cap(spec: &LinuxCapabilities, last: u32) -> Result<CapSets, SecurityError> {
        let resolve = |set: &'static str, names: &Option<Vec<String>>| {
            let mut mask = 0u64;
            for name in names.iter().flatten() {
                match cap_from_name(name) {
                    Ok(cap) if cap <= last => mask |= 1u64 << cap,
                    Ok(cap) => tracing::warn!(
                        capability = %name,
                        cap,
                        last_cap = last,
                        set,
                        "ignoring capability unavailable on this kernel"
                    ),
                    Err(_) if well_formed(name) && last > MAX_KNOWN_CAP => tracing::warn!(
                        capability = %name,
                        set,
                        "ignoring unknown capability (kernel has capabilities newer than this runtime)"
                    ),
                    Err(e) => return Err(e),
                }
            }
            Ok(mask)
        };
        Ok(CapSets {
            bounding: resolve("bounding", &spec.bounding)?,
            effective: resolve("effective", &spec.effective)?,
            inheritable: resolve("inheritable", &spec.inheritable)?,
            permitted: resolve("permitted", &spec.permitted)?,
            ambient: resolve("ambient", &spec.ambient)?,
            last_cap: last,
        })
    }
}

fn prctl(op: &str, option: libc::c_int, arg2: libc::c_ulong) -> Result<libc::c_int, SecurityError> {
    // SAFETY: the prctl options used here take only integer arguments.
    let r = unsafe { libc::prctl(option, arg2, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if r < 0 {
        return Err(SecurityError::last_os(op));
    }
    Ok(r)
}

fn cap_label(cap: u32) -> String {
    cap_name(cap).map_or_else(|| cap.to_string(), str::to_string)
}

/// Step 1: drops every capability not in `sets.bounding` from the bounding
/// set (PR_CAPBSET_DROP). Capabilities already absent, or unknown to the
/// kernel, are skipped. Needs CAP_SETPCAP.
pub fn drop_bounding(sets: &CapSets) -> Result<(), SecurityError> {
    for cap in 0..=sets.last_cap.min(63) {
        if sets.bounding & (1u64 << cap) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_READ takes an integer capability number.
        let present = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if present <= 0 {
            // 0: already dropped; -1 (EINVAL): kernel does not know this cap.
            continue;
        }
        prctl(&format!("prctl(PR_CAPBSET_DROP, {})", cap_label(cap)), libc::PR_CAPBSET_DROP, cap as libc::c_ulong)?;
    }
    Ok(())
}

/// Step 2: prctl(PR_SET_KEEPCAPS, 1), so a following setresuid() away from
/// uid 0 keeps the permitted set.
pub fn keep_caps_for_setuid() -> Result<(), SecurityError> {
    prctl("prctl(PR_SET_KEEPCAPS, 1)", libc::PR_SET_KEEPCAPS, 1).map(drop)
}

#[repr(C)]
struct CapUserHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapUserData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn split(mask: u64) -> (u32, u32) {
    (mask as u32, (mask >> 32) as u32)
}

fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), SecurityError> {
    let mut header = CapUserHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapUserData::default(); 2];
    for (i, d) in data.iter_mut().enumerate() {
        let pick = |m: u64| if i == 0 { split(m).0 } else { split(m).1 };
        d.effective = pick(effective);
        d.permitted = pick(permitted);
        d.inheritable = pick(inheritable);
    }
    // SAFETY: header is a valid v3 header and data holds the two u32-triples
    // that _LINUX_CAPABILITY_VERSION_3 requires; both outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapUserHeader, data.as_ptr()) };
    if r < 0 {
        return Err(SecurityError::last_os(format!(
            "capset(effective={effective:#x}, permitted={permitted:#x}, inheritable={inheritable:#x})"
        )));
    }
    Ok(())
}

/// Steps 3+4, after the caller switched uid/gid: PR_SET_KEEPCAPS 0, capset(2)
/// for effective/permitted/inheritable, then PR_CAP_AMBIENT_CLEAR_ALL and
/// PR_CAP_AMBIENT_RAISE for each ambient cap. An ambient raise that fails
/// (e.g. cap not in both permitted and inheritable) is only a warning, like runc.
pub fn apply_sets(sets: &CapSets) -> Result<(), SecurityError> {
    prctl("prctl(PR_SET_KEEPCAPS, 0)", libc::PR_SET_KEEPCAPS, 0)?;
    capset(sets.effective, sets.permitted, sets.inheritable)?;

    // SAFETY: PR_CAP_AMBIENT with CLEAR_ALL takes only integer arguments.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r < 0 {
        let err = SecurityError::last_os("prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)");
        if sets.ambient == 0 && err.errno() == Some(libc::EINVAL) {
            // Kernel without ambient capabilities (< 4.3): nothing to clear.
            tracing::debug!("ambient capabilities not supported by the kernel");
            return Ok(());
        }
        return Err(err);
    }
    for cap in (0..64u32).filter(|c| sets.ambient & (1u64 << c) != 0) {
        // SAFETY: PR_CAP_AMBIENT_RAISE takes an integer capability number.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if r < 0 {
            tracing::debug!(
                "ambient capability {} not raised (it must also be permitted and inheritable): prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE): {}",
                cap_label(cap),
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
