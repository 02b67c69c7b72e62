//! Walking the YAML tree: [`Ctx`] collects one document's errors and warnings, each located by its field
//! path, and the readers below take typed values (mappings, lists, strings, ports...), reporting type errors.

use std::fmt::Display;

use serde_norway::{Mapping, Value};

/// Collects located errors and warnings for one document.
pub(super) struct Ctx {
    pub(super) prefix: String,
    pub(super) errors: Vec<String>,
    pub(super) warnings: Vec<String>,
}

impl Ctx {
    fn line(&self, path: &str, msg: impl Display) -> String {
        if path.is_empty() {
            format!("{}: {msg}", self.prefix)
        } else {
            format!("{}: {path}: {msg}", self.prefix)
        }
    }

    pub(super) fn error(&mut self, path: &str, msg: impl Display) {
        let line = self.line(path, msg);
        self.errors.push(line);
    }

    pub(super) fn warn(&mut self, path: &str, msg: impl Display) {
        let line = self.line(path, msg);
        self.warnings.push(line);
    }

    pub(super) fn ignored(&mut self, path: &str) {
        self.warn(path, "not supported by capsa, ignored");
    }

    pub(super) fn unsupported(&mut self, path: &str) {
        self.error(path, "not supported by capsa");
    }

    pub(super) fn unknown(&mut self, path: &str, key: &str, known: &[&[&str]]) {
        match suggest(key, known) {
            Some(s) => self.warn(path, format!("unknown field, ignored (did you mean {s:?}?)")),
            None => self.warn(path, "unknown field, ignored"),
        }
    }

    pub(super) fn type_error(&mut self, path: &str, expected: &str, found: &Value) {
        let hint = match found {
            Value::Number(_) | Value::Bool(_) if expected == "a string" => {
                format!(" (quote it: \"{}\")", scalar_text(found))
            }
            Value::String(s)
                if (expected.contains("integer") && s.parse::<i64>().is_ok())
                    || (expected.contains("boolean") && (s == "true" || s == "false")) =>
            {
                " (remove the quotes)".to_string()
            }
            _ => String::new(),
        };
        self.error(path, format!("expected {expected}, found {}{hint}", describe(found)));
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn suggest<'a>(key: &str, known: &[&[&'a str]]) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    let limit = if key.chars().count() < 5 { 1 } else { 2 };
    known
        .iter()
        .flat_map(|list| list.iter())
        .map(|k| (edit_distance(&key, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The mapping, or `None` (with an error unless the value is null, which counts as absent).
pub(super) fn as_mapping<'v>(ctx: &mut Ctx, path: &str, v: &'v Value) -> Option<&'v Mapping> {
    match v {
        Value::Mapping(m) => Some(m),
        Value::Null => None,
        other => {
            ctx.type_error(path, "a mapping", other);
            None
        }
    }
}

/// The mapping's entries with string keys; other keys are errors.
pub(super) fn fields<'v>(ctx: &mut Ctx, path: &str, m: &'v Mapping) -> Vec<(&'v str, &'v Value)> {
    let mut out = Vec::new();
    for (k, v) in m {
        match k {
            Value::String(s) => out.push((s.as_str(), v)),
            other => ctx.error(path, format!("field names must be strings, found {}", describe(other))),
        }
    }
    out
}

/// A list item that must be a mapping (null included in the error).
pub(super) fn as_item<'v>(ctx: &mut Ctx, path: &str, v: &'v Value, what: &str) -> Option<&'v Mapping> {
    match v {
        Value::Mapping(m) => Some(m),
        other => {
            ctx.type_error(path, what, other);
            None
        }
    }
}

/// The items of the list at `path` that are mappings, each with its own path
/// (`path[i]`); any other item is a type error naming `what` was expected.
pub(super) fn mappings<'v>(ctx: &mut Ctx, path: &str, v: &'v Value, what: &str) -> Vec<(String, &'v Mapping)> {
    let mut out = Vec::new();
    for (i, item) in as_list(ctx, path, v).unwrap_or_default().iter().enumerate() {
        let ip = format!("{path}[{i}]");
        if let Some(m) = as_item(ctx, &ip, item, what) {
            out.push((ip, m));
        }
    }
    out
}

/// Whether the mapping has `key` with a non-null value.
pub(super) fn present(m: &Mapping, key: &str) -> bool {
    m.get(key).is_some_and(|v| !v.is_null())
}

/// `pick(v)` for a value of the expected type; null is "absent"; any other type is an error.
fn typed<'v, T>(
    ctx: &mut Ctx,
    path: &str,
    v: &'v Value,
    expected: &str,
    pick: impl FnOnce(&'v Value) -> Option<T>,
) -> Option<T> {
    if v.is_null() {
        return None;
    }
    let r = pick(v);
    if r.is_none() {
        ctx.type_error(path, expected, v);
    }
    r
}

/// A top-level field that must hold exactly `want`; `wrong` names what was found (`{}`).
pub(super) fn expect_value(ctx: &mut Ctx, field: &str, v: Option<&Value>, want: &str, wrong: &str) -> bool {
    let errors_before = ctx.errors.len();
    match v.and_then(|v| as_string(ctx, field, v)) {
        Some(found) if found == want => true,
        Some(found) => {
            ctx.error(field, wrong.replace("{}", &format!("{found:?}")));
            false
        }
        None => {
            if ctx.errors.len() == errors_before {
                ctx.error(field, format!("missing (expected {want})"));
            }
            false
        }
    }
}

pub(super) fn as_list<'v>(ctx: &mut Ctx, path: &str, v: &'v Value) -> Option<&'v [Value]> {
    typed(ctx, path, v, "a list", |v| v.as_sequence().map(Vec::as_slice))
}

pub(super) fn as_string(ctx: &mut Ctx, path: &str, v: &Value) -> Option<String> {
    typed(ctx, path, v, "a string", |v| v.as_str().map(str::to_owned))
}

pub(super) fn as_bool(ctx: &mut Ctx, path: &str, v: &Value) -> Option<bool> {
    typed(ctx, path, v, "a boolean (true or false)", Value::as_bool)
}

/// A port number; `allow_zero` makes 0 mean "absent" (as `hostPort: 0` does in Kubernetes).
pub(super) fn as_port(ctx: &mut Ctx, path: &str, v: &Value, allow_zero: bool) -> Option<u16> {
    match v {
        Value::Null => None,
        Value::Number(n) if n.is_i64() || n.is_u64() => match n.as_i64() {
            Some(0) if allow_zero => None,
            Some(p) if (1..=65535).contains(&p) => u16::try_from(p).ok(),
            _ => {
                ctx.error(path, format!("port must be between 1 and 65535, found {n}"));
                None
            }
        },
        other => {
            ctx.type_error(path, "an integer port number", other);
            None
        }
    }
}

/// The text of a quantity given as a string or a bare YAML number.
pub(super) fn as_quantity(ctx: &mut Ctx, path: &str, v: &Value) -> Option<String> {
    typed(ctx, path, v, "a quantity (a string such as \"64Mi\" or a number)", |v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

pub(super) fn string_list(ctx: &mut Ctx, path: &str, v: &Value) -> Vec<String> {
    let Some(items) = as_list(ctx, path, v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match item {
            Value::String(s) => out.push(s.clone()),
            other => ctx.type_error(&p, "a string", other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::containers::CONTAINER_FIELDS;
    use super::*;

    #[test]
    fn edit_distance_and_suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(suggest("comand", &[CONTAINER_FIELDS]), Some("command"));
        assert_eq!(suggest("xyz", &[CONTAINER_FIELDS]), None);
    }
}
