//! cgroup v1 device rules: turning OCI `linux.resources.devices` into writes
//! to `devices.allow` / `devices.deny`.

use super::resources::LinuxDeviceCgroup;
use super::CgroupError;

/// One write to a v1 devices file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceWrite {
    /// "devices.allow" or "devices.deny"
    pub file: &'static str,
    /// e.g. "c 1:3 rwm", or "a" (reset: allow/deny everything)
    pub value: String,
}

fn invalid(rule: &LinuxDeviceCgroup, why: &str) -> CgroupError {
    CgroupError::InvalidResource(format!("device rule {rule:?}: {why}"))
}

fn num(rule: &LinuxDeviceCgroup, v: Option<i64>, what: &str) -> Result<String, CgroupError> {
    match v {
        None | Some(-1) => Ok("*".to_string()),
        Some(n) if n >= 0 => Ok(n.to_string()),
        Some(_) => Err(invalid(rule, &format!("negative {what}"))),
    }
}

fn access(rule: &LinuxDeviceCgroup) -> Result<String, CgroupError> {
    let a = rule.access.as_deref().unwrap_or("rwm");
    if a.is_empty() {
        return Err(invalid(rule, "empty access (use some of \"rwm\")"));
    }
    if let Some(c) = a.chars().find(|c| !"rwm".contains(*c)) {
        return Err(invalid(rule, &format!("access has {c:?}; only r, w, m are allowed")));
    }
    // Canonical order, no duplicates.
    Ok("rwm".chars().filter(|c| a.contains(*c)).collect())
}

/// True for "deny everything": type "a" (or none), any major/minor, access rwm.
pub fn is_deny_all(rule: &LinuxDeviceCgroup) -> bool {
    !rule.allow && is_wildcard_all(rule)
}

fn is_wildcard_all(rule: &LinuxDeviceCgroup) -> bool {
    matches!(rule.r#type.as_deref(), None | Some("a"))
        && matches!(rule.major, None | Some(-1))
        && matches!(rule.minor, None | Some(-1))
        && access(rule).map(|a| a == "rwm").unwrap_or(false)
}

/// Format one rule as the kernel line(s) "TYPE MAJOR:MINOR ACCESS".
///
/// major/minor None -> "*", type None -> "a", access None -> "rwm".
/// The kernel treats any line starting with 'a' as "reset to allow/deny
/// everything" and ignores the rest of it, so a type-"a" rule is written as a
/// bare "a" only when it really covers everything (`*:*` and `rwm`); a
/// narrower type-"a" rule is split into the equivalent "c" and "b" lines.
pub fn device_rule_lines(rule: &LinuxDeviceCgroup) -> Result<Vec<String>, CgroupError> {
    let major = num(rule, rule.major, "major")?;
    let minor = num(rule, rule.minor, "minor")?;
    let acc = access(rule)?;
    match rule.r#type.as_deref().unwrap_or("a") {
        t @ ("c" | "b") => Ok(vec![format!("{t} {major}:{minor} {acc}")]),
        "a" if is_wildcard_all(rule) => Ok(vec!["a".to_string()]),
        "a" => Ok(vec![format!("c {major}:{minor} {acc}"), format!("b {major}:{minor} {acc}")]),
        t => Err(invalid(rule, &format!("type {t:?} is not a cgroup device type (use \"a\", \"c\" or \"b\")"))),
    }
}

/// All writes for a rule list, in order. If the first rule denies everything,
/// start with "a" to devices.deny (which drops every inherited exception) and
/// continue with the following rules.
pub fn v1_device_writes(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceWrite>, CgroupError> {
    let mut out = Vec::new();
    let mut rest = rules;
    if let Some(first) = rules.first() {
        if is_deny_all(first) {
            out.push(DeviceWrite { file: "devices.deny", value: "a".to_string() });
            rest = &rules[1..];
        }
    }
    for r in rest {
        let file = if r.allow { "devices.allow" } else { "devices.deny" };
        for value in device_rule_lines(r)? {
            out.push(DeviceWrite { file, value });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::resources::default_allowed_devices;
    use super::*;

    fn rule(allow: bool, t: Option<&str>, ma: Option<i64>, mi: Option<i64>, a: Option<&str>) -> LinuxDeviceCgroup {
        LinuxDeviceCgroup { allow, r#type: t.map(Into::into), major: ma, minor: mi, access: a.map(Into::into) }
    }

    #[test]
    fn formatting() {
        assert_eq!(
            device_rule_lines(&rule(true, Some("c"), Some(1), Some(3), Some("rwm"))).unwrap(),
            vec!["c 1:3 rwm"]
        );
        assert_eq!(device_rule_lines(&rule(true, Some("c"), Some(136), None, None)).unwrap(), vec!["c 136:* rwm"]);
        assert_eq!(device_rule_lines(&rule(false, Some("b"), None, None, Some("mw"))).unwrap(), vec!["b *:* wm"]);
        assert_eq!(device_rule_lines(&rule(false, None, None, None, None)).unwrap(), vec!["a"]);
        assert_eq!(
            device_rule_lines(&rule(true, Some("a"), None, None, Some("m"))).unwrap(),
            vec!["c *:* m", "b *:* m"]
        );
        assert!(device_rule_lines(&rule(true, Some("u"), None, None, None)).is_err());
        assert!(device_rule_lines(&rule(true, Some("c"), Some(1), Some(3), Some("rx"))).is_err());
        assert!(device_rule_lines(&rule(true, Some("c"), Some(-5), Some(3), None)).is_err());
    }

    #[test]
    fn deny_all_first() {
        let mut rules = vec![rule(false, None, None, None, Some("rwm"))];
        rules.extend(default_allowed_devices());
        rules.push(rule(false, Some("c"), Some(1), Some(9), Some("w")));
        let w = v1_device_writes(&rules).unwrap();
        assert_eq!(w[0], DeviceWrite { file: "devices.deny", value: "a".into() });
        assert_eq!(w[1], DeviceWrite { file: "devices.allow", value: "c *:* m".into() });
        assert_eq!(w[3].value, "c 1:3 rwm");
        assert_eq!(w.len(), 1 + 11 + 1);
        assert_eq!(w.last().unwrap(), &DeviceWrite { file: "devices.deny", value: "c 1:9 w".into() });
        // no deny-all first: no reset
        let w = v1_device_writes(&default_allowed_devices()).unwrap();
        assert_eq!(w.len(), 11);
        assert!(w.iter().all(|x| x.file == "devices.allow"));
    }
}
