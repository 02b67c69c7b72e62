//! `--log`, `--log-format text|json`, `--debug`: a minimal tracing subscriber that
//! writes log records as runc does (logrus): `--log-format json` gives
//! `{"level":"error","msg":"...","time":"..."}` (containerd's shim reads it back),
//! text gives logrus's `time="..." level=debug msg="..."` lines. Records go to the
//! `--log` file, or to stderr (there as human `capsa[debug]: ...` lines when stderr
//! is a terminal, where logrus also switches to a human layout).

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// How records are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// logrus's JSONFormatter.
    Json,
    /// logrus's TextFormatter without colours (what it writes to a file or a pipe).
    Text,
    /// `capsa[level]: msg` for a terminal.
    Human,
}

/// Where and how log records go.
pub struct Logger {
    max: Level,
    format: Format,
    out: Mutex<Option<File>>,
}

impl Logger {
    /// Install the global logger.
    pub fn install(debug: bool, json: bool, path: Option<&std::path::Path>) {
        let out = path.and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
        let format = match (json, out.is_some()) {
            (true, _) => Format::Json,
            (false, true) => Format::Text,
            (false, false) if std::io::stderr().is_terminal() => Format::Human,
            (false, false) => Format::Text,
        };
        let logger = Logger { max: if debug { Level::DEBUG } else { Level::WARN }, format, out: Mutex::new(out) };
        let _ = tracing::subscriber::set_global_default(logger);
    }

    fn write(&self, level: &str, msg: &str, fields: &[(&str, String)]) {
        let line = match self.format {
            Format::Json => json_record(level, msg, fields, &now()),
            Format::Text => text_record(level, msg, fields, &now()),
            Format::Human => {
                let mut s = format!("capsa[{level}]: {msg}");
                for (k, v) in fields {
                    s.push_str(&format!(" {k}={v}"));
                }
                s
            }
        };
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        match out.as_mut() {
            Some(f) => {
                let _ = writeln!(f, "{line}");
            }
            None => eprintln!("{line}"),
        }
    }
}

/// Report a fatal error. With `--log FILE`: a record in the file (where containerd
/// and conmon look for it) and one plain `capsa: ...` line on stderr, as runc prints
/// its plain line there. Without: the JSON record on stderr with `--log-format
/// json` (as runc), otherwise the `capsa: ...` line (runc prints its text record).
pub fn error(msg: &str) {
    let handled = tracing::dispatcher::get_default(|d| {
        d.downcast_ref::<Logger>().map(|l| {
            let to_file = l.out.lock().map(|o| o.is_some()).unwrap_or(false);
            if to_file || l.format == Format::Json {
                l.write("error", msg, &[]);
            }
            l.format == Format::Json && !to_file
        })
    });
    if handled != Some(true) {
        eprintln!("capsa: {msg}");
    }
}

/// Now, as logrus writes it (RFC 3339, whole seconds, UTC).
fn now() -> String {
    let t = capsa_runtime::time::now_rfc3339();
    // "2026-12-06T02:05:11.123456789Z" -> "2026-12-06T02:05:11Z"
    format!("{}Z", &t[..19])
}

/// logrus's JSONFormatter: one object, keys sorted (a Go map), HTML-escaped as Go's
/// encoding/json does by default.
fn json_record(level: &str, msg: &str, fields: &[(&str, String)], time: &str) -> String {
    let mut m = serde_json::Map::new();
    for (k, v) in fields {
        m.insert(k.to_string(), v.clone().into());
    }
    m.insert("level".into(), level.into());
    m.insert("msg".into(), msg.into());
    m.insert("time".into(), time.into());
    serde_json::Value::Object(m)
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// logrus's TextFormatter: `time="..." level=... msg="..."`, then the other fields
/// sorted by key; a value is quoted (Go's %q) unless it is made only of letters,
/// digits and `-._/@^+`. An empty message leaves `msg` out.
fn text_record(level: &str, msg: &str, fields: &[(&str, String)], time: &str) -> String {
    let mut s = format!("time={} level={}", logrus_value(time), logrus_value(level));
    if !msg.is_empty() {
        s.push_str(" msg=");
        s.push_str(&logrus_value(msg));
    }
    let mut rest: Vec<&(&str, String)> = fields.iter().collect();
    rest.sort_by_key(|(k, _)| *k);
    for (k, v) in rest {
        s.push_str(&format!(" {k}={}", logrus_value(v)));
    }
    s
}

fn logrus_value(v: &str) -> String {
    let plain = v.chars().all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if plain {
        v.to_string()
    } else {
        go_quote(v)
    }
}

/// Go's `strconv.Quote` (what `%q` prints).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if !printable(c) => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Close to Go's `unicode.IsPrint`: controls, separators other than the ASCII space,
/// and the common invisible format characters are not printable.
fn printable(c: char) -> bool {
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'))
}

#[derive(Default)]
struct RecordVisitor {
    msg: String,
    fields: Vec<(&'static str, String)>,
}

impl Visit for RecordVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.msg = format!("{value:?}");
        } else {
            self.fields.push((field.name(), format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_string();
        } else {
            self.fields.push((field.name(), value.to_string()));
        }
    }
}

impl Subscriber for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        *m.level() <= self.max
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut v = RecordVisitor::default();
        e.record(&mut v);
        // logrus's level names.
        let level = match *e.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        self.write(level, &v.msg, &v.fields);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-12-06T02:05:11Z";

    #[test]
    fn logrus_text_lines() {
        assert_eq!(
            text_record("error", "container does not exist", &[], T),
            r#"time="2026-12-06T02:05:11Z" level=error msg="container does not exist""#
        );
        assert_eq!(
            text_record("debug", "plain/word_1.2", &[], T),
            r#"time="2026-12-06T02:05:11Z" level=debug msg=plain/word_1.2"#
        );
        assert_eq!(
            text_record("warning", "a \"b\"\\c\nd\te\u{1b}\u{a0}é", &[("zz", "1".into()), ("error", "x y".into())], T),
            r#"time="2026-12-06T02:05:11Z" level=warning msg="a \"b\"\\c\nd\te\x1b\u00a0é" error="x y" zz=1"#
        );
        assert_eq!(text_record("info", "", &[("k", "".into())], T), r#"time="2026-12-06T02:05:11Z" level=info k="#);
    }

    #[test]
    fn logrus_json_lines() {
        assert_eq!(
            json_record("error", "a <b> & c", &[("error", "e".into())], T),
            r#"{"error":"e","level":"error","msg":"a \u003cb\u003e \u0026 c","time":"2026-12-06T02:05:11Z"}"#
        );
    }
}
