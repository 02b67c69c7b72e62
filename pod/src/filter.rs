//! Labels on managed containers and pods, and the `--filter` of `capsa ps` and
//! `capsa pod ls`, with docker's semantics:
//!
//! - `--label KEY=VALUE` (or `KEY` alone: an empty value) sets a label;
//! - `--filter label=KEY` matches when the label exists (any value),
//!   `--filter label=KEY=VALUE` when it has exactly that value; several label filters
//!   must *all* match (a Kubernetes equality-based selector: `app=web,tier=front`);
//! - `--filter name=SUBSTR` matches names containing SUBSTR, `--filter status=STATE` a
//!   container state; several of the same kind match when *any* does;
//! - an unknown filter key, or one the command does not take, is an error.

use std::collections::BTreeMap;

use crate::error::{PodError, Result};

/// The container states `--filter status=` accepts (see [`crate::containers::State`]).
pub const STATUSES: &[&str] = &["created", "running", "restarting", "exited", "lost"];

/// Parses one `--label` argument: `KEY=VALUE`, or `KEY` for an empty value.
pub fn parse_label(s: &str) -> Result<(String, String)> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(PodError::invalid(format!(
            "--label {s:?}: expected KEY=VALUE (or KEY), with a non-empty key without spaces"
        )));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Parses every `--label` argument; a key given twice keeps its last value (as docker).
pub fn parse_labels(args: &[String]) -> Result<BTreeMap<String, String>> {
    args.iter().map(|s| parse_label(s)).collect()
}

/// The parsed `--filter` arguments of one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// (key, value): all must match; `None` matches any value of the key.
    labels: Vec<(String, Option<String>)>,
    /// Substrings of the name: any may match.
    names: Vec<String>,
    /// States: any may match.
    statuses: Vec<String>,
}

impl Filters {
    /// Parses `specs` (`KEY=VALUE` each); `keys` are the filter keys the command takes
    /// (among `label`, `name`, `status`), `verb` names the command in errors.
    pub fn parse(specs: &[String], keys: &[&str], verb: &str) -> Result<Filters> {
        let mut f = Filters::default();
        for s in specs {
            let bad = |why: String| PodError::invalid(format!("{verb} --filter {s:?}: {why}"));
            let Some((key, value)) = s.split_once('=') else {
                return Err(bad(format!("expected KEY=VALUE, with KEY one of {}", keys.join(", "))));
            };
            if !keys.contains(&key) {
                return Err(bad(format!("unknown filter {key:?} (this command takes {})", keys.join(", "))));
            }
            match key {
                "label" => {
                    let (k, v) = match value.split_once('=') {
                        Some((k, v)) => (k, Some(v.to_owned())),
                        None => (value, None),
                    };
                    if k.is_empty() {
                        return Err(bad("expected label=KEY or label=KEY=VALUE".into()));
                    }
                    f.labels.push((k.to_owned(), v));
                }
                "name" => f.names.push(value.to_owned()),
                "status" => {
                    if !STATUSES.contains(&value) {
                        return Err(bad(format!("unknown status {value:?} (one of {})", STATUSES.join(", "))));
                    }
                    f.statuses.push(value.to_owned());
                }
                _ => return Err(bad(format!("unknown filter {key:?}"))),
            }
        }
        Ok(f)
    }

    /// Whether a status filter was given: it selects among stopped containers too
    /// (`ps --filter status=exited` needs no `-a`, as in docker).
    pub fn has_status(&self) -> bool {
        !self.statuses.is_empty()
    }

    /// Whether an object with this name, these labels and this state (none for a pod)
    /// passes every filter.
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>, status: Option<&str>) -> bool {
        let label_ok = self.labels.iter().all(|(k, v)| match (labels.get(k), v) {
            (Some(have), Some(want)) => have == want,
            (Some(_), None) => true,
            (None, _) => false,
        });
        let name_ok = self.names.is_empty() || self.names.iter().any(|n| name.contains(n.as_str()));
        let status_ok =
            self.statuses.is_empty() || status.is_some_and(|s| self.statuses.iter().any(|w| w.as_str() == s));
        label_ok && name_ok && status_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn labels(s: &[(&str, &str)]) -> BTreeMap<String, String> {
        s.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_arguments() {
        assert_eq!(parse_label("app=web").unwrap(), ("app".into(), "web".into()));
        assert_eq!(parse_label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(parse_label("flag").unwrap(), ("flag".into(), "".into()));
        assert_eq!(parse_label("empty=").unwrap(), ("empty".into(), "".into()));
        for bad in ["", "=x", "a b=c"] {
            assert!(parse_label(bad).is_err(), "{bad:?}");
        }
        let m = parse_labels(&v(&["a=1", "b=2", "a=3"])).unwrap();
        assert_eq!(m, labels(&[("a", "3"), ("b", "2")]));
    }

    #[test]
    fn filters_match_as_docker() {
        const ALL: &[&str] = &["label", "name", "status"];
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let db = labels(&[("app", "db")]);
        let f = Filters::parse(&v(&["label=app=web"]), ALL, "ps").unwrap();
        assert!(f.matches("a", &web, None) && !f.matches("b", &db, None));
        // KEY only: any value.
        let f = Filters::parse(&v(&["label=app"]), ALL, "ps").unwrap();
        assert!(f.matches("a", &web, None) && f.matches("b", &db, None) && !f.matches("c", &labels(&[]), None));
        // Several labels: all must match.
        let f = Filters::parse(&v(&["label=app=web", "label=tier"]), ALL, "ps").unwrap();
        assert!(f.matches("a", &web, None));
        assert!(!f.matches("a", &labels(&[("app", "web")]), None));
        // Names: any; with a label: both.
        let f = Filters::parse(&v(&["name=we", "name=zz", "label=app"]), ALL, "ps").unwrap();
        assert!(f.matches("web-1", &web, None) && !f.matches("db-1", &db, None));
        assert!(!f.matches("web-2", &labels(&[]), None));
        // Status.
        let f = Filters::parse(&v(&["status=exited", "status=lost"]), ALL, "ps").unwrap();
        assert!(f.has_status());
        assert!(f.matches("x", &web, Some("exited")) && !f.matches("x", &web, Some("running")));
        assert!(!f.matches("x", &web, None));
        // No filter: everything.
        assert!(Filters::parse(&[], ALL, "ps").unwrap().matches("x", &labels(&[]), Some("running")));
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        let err = |s: &str, keys: &[&str]| Filters::parse(&v(&[s]), keys, "ps").unwrap_err().to_string();
        assert_eq!(
            err("colour=red", &["label", "name"]),
            "ps --filter \"colour=red\": unknown filter \"colour\" (this command takes label, name)"
        );
        assert!(err("status=running", &["label", "name"]).contains("unknown filter \"status\""));
        assert!(err("label", &["label"]).contains("expected KEY=VALUE"));
        assert!(err("label=", &["label"]).contains("expected label=KEY or label=KEY=VALUE"));
        assert!(err("status=up", &["status"]).contains("unknown status \"up\""));
    }
}
