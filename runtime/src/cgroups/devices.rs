//! Device cgroup rules: OCI `linux.resources.devices` checked field by field, folded
//! into the state the v1 kernel would reach (as runc does, on both cgroup versions),
//! and written as `devices.allow` / `devices.deny` lines on v1 (v2: `devfilter`).
//!
//! The kernel's model: a default (allow or deny everything) plus a list of
//! exceptions `TYPE MAJOR:MINOR ACCESS`. A type-`a` rule resets both (allow: allow
//! everything, no exceptions; deny: deny everything, no exceptions) whatever its
//! major, minor and access say. Any other rule adds an exception when it goes against
//! the default (an allow on a deny-by-default cgroup), merging the access of an
//! identical `TYPE MAJOR:MINOR`, and otherwise takes access away from the identical
//! exception only. Every list starts from "deny everything", so the runtime's
//! defaults, appended last, are the only devices a config that says nothing gets.

use super::resources::LinuxDeviceCgroup;
use super::CgroupError;

/// mknod, read and write: the access bits of the kernel (and of the BPF program).
pub const ACC_MKNOD: u8 = 1;
/// See `ACC_MKNOD`.
pub const ACC_READ: u8 = 2;
/// See `ACC_MKNOD`.
pub const ACC_WRITE: u8 = 4;
/// All three.
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// Char or block (type `a` is a reset, never an exception).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevType {
    Char,
    Block,
}

/// One exception: `None` for a wildcard major or minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exception {
    pub typ: DevType,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl Exception {
    /// The kernel's line for it: `c 1:3 rwm`, `c 136:* rw`.
    pub fn line(&self) -> String {
        let n = |v: Option<u32>| v.map_or("*".to_string(), |n| n.to_string());
        let t = if self.typ == DevType::Char { 'c' } else { 'b' };
        format!("{t} {}:{} {}", n(self.major), n(self.minor), access_text(self.access))
    }

    fn same_node(&self, o: &Exception) -> bool {
        self.typ == o.typ && self.major == o.major && self.minor == o.minor
    }
}

/// "rwm" order, for lines and messages.
pub fn access_text(bits: u8) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The devices cgroup after a rule list: the default and the exceptions, in the
/// order they were first added (so `devices.list` shows the config's rules first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    pub default_allow: bool,
    pub exceptions: Vec<Exception>,
}

fn invalid(i: usize, field: &str, why: String) -> CgroupError {
    CgroupError::InvalidResource(format!("linux.resources.devices[{i}].{field}: {why}"))
}

/// Parse an access string as runc does: the letters r, w and m in any order, repeats
/// allowed; other letters mean nothing (runc ignores them; so does capsa, with a
/// warning). Missing reads as "rwm" (the spec makes the field optional); empty, or
/// without any of r, w and m, is an error.
pub fn parse_access(i: usize, access: Option<&str>) -> Result<u8, CgroupError> {
    let Some(a) = access else { return Ok(ACC_ALL) };
    if a.is_empty() {
        return Err(invalid(i, "access", "empty; give some of r (read), w (write) and m (mknod)".into()));
    }
    let mut bits = 0;
    let mut ignored = String::new();
    for c in a.chars() {
        match c {
            'r' => bits |= ACC_READ,
            'w' => bits |= ACC_WRITE,
            'm' => bits |= ACC_MKNOD,
            c => ignored.push(c),
        }
    }
    if bits == 0 {
        return Err(invalid(i, "access", format!("{a:?} has none of r (read), w (write) and m (mknod)")));
    }
    if !ignored.is_empty() {
        tracing::warn!(
            "linux.resources.devices[{i}].access {a:?}: {ignored:?} ignored, only r, w and m mean something (read as {:?})",
            access_text(bits)
        );
    }
    Ok(bits)
}

fn parse_num(i: usize, field: &str, v: Option<i64>) -> Result<Option<u32>, CgroupError> {
    match v {
        None | Some(-1) => Ok(None),
        Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(invalid(i, field, format!("{n} is out of range (0 to 4294967295; -1 or none: any)"))),
    }
}

impl DeviceState {
    /// Fold `rules` into the state the kernel would reach from "deny everything".
    /// Errors name the rule (`linux.resources.devices[i]`) and its field. Like runc,
    /// a rule that would take access away from inside a wildcard exception
    /// (`c *:* rw`, then deny `c 1:9 w`) is refused: the kernel would silently keep
    /// the wildcard and grant the access.
    pub fn from_rules(rules: &[LinuxDeviceCgroup]) -> Result<DeviceState, CgroupError> {
        let mut st = DeviceState { default_allow: false, exceptions: Vec::new() };
        for (i, r) in rules.iter().enumerate() {
            let typ = match r.r#type.as_deref() {
                None | Some("a") => {
                    // runc (and the kernel) read nothing but the type of a reset; only
                    // an empty access is refused, as runc does for every rule.
                    if r.access.as_deref() == Some("") {
                        parse_access(i, Some(""))?;
                    }
                    if !matches!(r.major, None | Some(-1))
                        || !matches!(r.minor, None | Some(-1))
                        || !matches!(r.access.as_deref(), None | Some("rwm"))
                    {
                        tracing::warn!(
                            "linux.resources.devices[{i}]: type \"a\" {} every device; its major, minor and access are ignored (as the kernel and runc do)",
                            if r.allow { "allows" } else { "denies" }
                        );
                    }
                    st = DeviceState { default_allow: r.allow, exceptions: Vec::new() };
                    continue;
                }
                Some("c") => DevType::Char,
                Some("b") => DevType::Block,
                Some(t) => return Err(invalid(i, "type", format!("{t:?} is not a cgroup device type (a, b or c)"))),
            };
            let access = parse_access(i, r.access.as_deref())?;
            let (major, minor) = (parse_num(i, "major", r.major)?, parse_num(i, "minor", r.minor)?);
            let ex = Exception { typ, major, minor, access };
            if r.allow != st.default_allow {
                st.add(ex);
            } else {
                st.remove(i, ex)?;
            }
        }
        Ok(st)
    }

    fn add(&mut self, ex: Exception) {
        match self.exceptions.iter_mut().find(|e| e.same_node(&ex)) {
            Some(e) => e.access |= ex.access,
            None => self.exceptions.push(ex),
        }
    }

    fn remove(&mut self, i: usize, ex: Exception) -> Result<(), CgroupError> {
        for e in &self.exceptions {
            let wider = e.typ == ex.typ
                && !e.same_node(&ex)
                && (e.major.is_none() || e.major == ex.major)
                && (e.minor.is_none() || e.minor == ex.minor);
            if wider && e.access & ex.access != 0 {
                let verb = if self.default_allow { "allow" } else { "deny" };
                return Err(CgroupError::InvalidResource(format!(
                    "linux.resources.devices[{i}]: cannot {verb} {} inside the wildcard rule {} (the devices cgroup cannot punch a hole in a wildcard rule; list the devices one by one)",
                    ex.line(),
                    e.line()
                )));
            }
        }
        if let Some(pos) = self.exceptions.iter().position(|e| e.same_node(&ex)) {
            self.exceptions[pos].access &= !ex.access;
            if self.exceptions[pos].access == 0 {
                self.exceptions.remove(pos);
            }
        }
        Ok(())
    }

    /// Whether the kernel would let a process do `access` (some of `ACC_*`) on the
    /// device `typ major:minor` (how v1 checks an open or mknod; the BPF program
    /// compiled by `devfilter` answers the same).
    pub fn permits(&self, typ: DevType, major: u32, minor: u32, access: u8) -> bool {
        let hits =
            |e: &&Exception| e.typ == typ && e.major.is_none_or(|m| m == major) && e.minor.is_none_or(|m| m == minor);
        if self.default_allow {
            !self.exceptions.iter().filter(hits).any(|e| e.access & access != 0)
        } else {
            self.exceptions.iter().filter(hits).any(|e| access & !e.access == 0)
        }
    }
}

/// One write to a v1 devices file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceWrite {
    /// "devices.allow" or "devices.deny"
    pub file: &'static str,
    /// e.g. "c 1:3 rwm", or "a" (reset: allow/deny everything)
    pub value: String,
}

/// The writes that bring a v1 devices cgroup to `st`: the reset ("a" to
/// devices.deny, or to devices.allow for allow-by-default), then every exception.
pub fn v1_device_writes(st: &DeviceState) -> Vec<DeviceWrite> {
    let (reset, each) =
        if st.default_allow { ("devices.allow", "devices.deny") } else { ("devices.deny", "devices.allow") };
    let mut out = vec![DeviceWrite { file: reset, value: "a".to_string() }];
    out.extend(st.exceptions.iter().map(|e| DeviceWrite { file: each, value: e.line() }));
    out
}

#[cfg(test)]
mod tests {
    use super::super::resources::default_allowed_devices;
    use super::*;

    fn rule(allow: bool, t: Option<&str>, ma: Option<i64>, mi: Option<i64>, a: Option<&str>) -> LinuxDeviceCgroup {
        LinuxDeviceCgroup { allow, r#type: t.map(Into::into), major: ma, minor: mi, access: a.map(Into::into) }
    }

    fn deny_all() -> LinuxDeviceCgroup {
        rule(false, None, None, None, Some("rwm"))
    }

    fn state(rules: &[LinuxDeviceCgroup]) -> DeviceState {
        DeviceState::from_rules(rules).unwrap()
    }

    fn err(rules: &[LinuxDeviceCgroup]) -> String {
        DeviceState::from_rules(rules).unwrap_err().to_string()
    }

    #[test]
    fn access_strings_as_runc_reads_them() {
        for (a, bits) in [("rwm", ACC_ALL), ("mrw", ACC_ALL), ("wr", ACC_READ | ACC_WRITE), ("rrw", 6), ("rwa", 6)] {
            assert_eq!(parse_access(0, Some(a)).unwrap(), bits, "{a}");
        }
        assert_eq!(parse_access(0, None).unwrap(), ACC_ALL);
        for a in ["", "x", "RW", "a"] {
            let e = parse_access(3, Some(a)).unwrap_err().to_string();
            assert!(e.contains("linux.resources.devices[3].access"), "{e}");
        }
    }

    #[test]
    fn lines() {
        let st = state(&[
            deny_all(),
            rule(true, Some("c"), Some(136), None, Some("wr")),
            rule(true, Some("b"), None, None, Some("m")),
        ]);
        let w = v1_device_writes(&st);
        assert_eq!(w[0], DeviceWrite { file: "devices.deny", value: "a".into() });
        assert_eq!(w[1], DeviceWrite { file: "devices.allow", value: "c 136:* rw".into() });
        assert_eq!(w[2], DeviceWrite { file: "devices.allow", value: "b *:* m".into() });
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn bad_fields_are_named() {
        assert!(err(&[rule(true, Some("u"), None, None, None)]).contains("devices[0].type"));
        assert!(err(&[deny_all(), rule(true, Some("c"), Some(-5), Some(3), None)]).contains("devices[1].major"));
        assert!(err(&[rule(true, Some("c"), Some(1), Some(1 << 33), None)]).contains("devices[0].minor"));
    }

    #[test]
    fn nothing_said_means_only_the_defaults() {
        let st = state(&default_allowed_devices());
        assert!(!st.default_allow);
        assert_eq!(st.exceptions.len(), 11);
        assert!(!st.permits(DevType::Char, 1, 11, ACC_WRITE), "/dev/kmsg");
        assert!(st.permits(DevType::Char, 1, 3, ACC_READ | ACC_WRITE), "/dev/null");
        assert!(st.permits(DevType::Block, 8, 0, ACC_MKNOD));
        assert!(!st.permits(DevType::Block, 8, 0, ACC_READ));
    }

    #[test]
    fn later_rules_win_as_in_the_kernel() {
        // allow then deny part of the same node: what is left
        let st = state(&[
            deny_all(),
            rule(true, Some("c"), Some(1), Some(11), Some("rw")),
            rule(false, Some("c"), Some(1), Some(11), Some("w")),
        ]);
        assert_eq!(
            st.exceptions,
            vec![Exception { typ: DevType::Char, major: Some(1), minor: Some(11), access: ACC_READ }]
        );
        assert!(!st.permits(DevType::Char, 1, 11, ACC_READ | ACC_WRITE));
        // a type-a rule resets everything before it, whatever its other fields say
        let st = state(&[
            rule(true, Some("c"), Some(1), Some(11), Some("rw")),
            rule(false, Some("a"), Some(1), Some(3), Some("r")),
        ]);
        assert_eq!(st, DeviceState { default_allow: false, exceptions: vec![] });
        let st = state(&[rule(false, None, Some(-7), None, Some("x"))]);
        assert_eq!(st, DeviceState { default_allow: false, exceptions: vec![] });
        assert!(err(&[rule(false, None, None, None, Some(""))]).contains("devices[0].access"));
        // allow-all then deny: deny exceptions, any overlap of access denies
        let st =
            state(&[rule(true, None, None, None, Some("rwm")), rule(false, Some("c"), Some(1), Some(11), Some("w"))]);
        assert!(st.default_allow);
        assert!(!st.permits(DevType::Char, 1, 11, ACC_READ | ACC_WRITE));
        assert!(st.permits(DevType::Char, 1, 11, ACC_READ));
        assert!(st.permits(DevType::Char, 1, 3, ACC_ALL));
    }

    #[test]
    fn no_hole_in_a_wildcard() {
        let e = err(&[
            deny_all(),
            rule(true, Some("c"), None, None, Some("rw")),
            rule(false, Some("c"), Some(1), Some(11), Some("w")),
        ]);
        assert!(e.contains("devices[2]") && e.contains("c *:* rw"), "{e}");
        // no overlap of access: fine (the kernel agrees)
        state(&[
            deny_all(),
            rule(true, Some("c"), None, None, Some("m")),
            rule(false, Some("c"), Some(1), Some(11), Some("w")),
        ]);
    }
}
