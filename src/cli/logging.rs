//! `--log`, `--log-format text|json`, `--debug`: a minimal tracing subscriber that
//! writes runc-style records (`{"level":"error","msg":"...","time":"..."}`, which
//! containerd's shim reads back) or human lines for students.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Where and how log records go.
pub struct Logger {
    max: Level,
    json: bool,
    out: Mutex<Option<File>>,
}

impl Logger {
    /// Install the global logger.
    pub fn install(debug: bool, json: bool, path: Option<&std::path::Path>) {
        let out = path.and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
        let logger = Logger { max: if debug { Level::DEBUG } else { Level::WARN }, json, out: Mutex::new(out) };
        let _ = tracing::subscriber::set_global_default(logger);
    }

    fn write(&self, level: &str, msg: &str) {
        let line = if self.json {
            serde_json::json!({"level": level, "msg": msg, "time": capsa_runtime::time::now_rfc3339()}).to_string()
        } else {
            format!("capsa[{level}]: {msg}")
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

/// Report a fatal error: as a log record where containerd/conmon look for it (the
/// `--log` file), and as one `capsa: ...` line on stderr (a JSON record instead,
/// when `--log-format json` has no log file).
pub fn error(msg: &str) {
    let handled = tracing::dispatcher::get_default(|d| {
        d.downcast_ref::<Logger>().map(|l| {
            let to_file = l.out.lock().map(|o| o.is_some()).unwrap_or(false);
            if to_file || l.json {
                l.write("error", msg);
            }
            l.json && !to_file
        })
    });
    if handled != Some(true) {
        eprintln!("capsa: {msg}");
    }
}

struct MsgVisitor(String);

impl Visit for MsgVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        } else {
            self.0.push_str(&format!(" {}={value}", field.name()));
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
        let mut v = MsgVisitor(String::new());
        e.record(&mut v);
        let level = match *e.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        self.write(level, &v.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
