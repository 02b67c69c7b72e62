//! The transcript of a run of the comparison scenario, and the helpers that turn
//! crictl's answers into its lines (masked ids, timestamps, addresses).

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::cricmp::{self, wait_until, Env};

/// The transcript of one run: lines, and the names that mask ids and addresses.
pub struct Transcript {
    pub lines: Vec<String>,
    masks: Vec<(String, String)>,
}

impl Transcript {
    pub fn new(e: &Env) -> Transcript {
        let masks = vec![
            (e.dir.path().display().to_string(), "<dir>".to_owned()),
            (e.registry().addr.clone(), "<registry>".to_owned()),
            (e.cgroup_parent.clone(), "<cgroup-parent>".to_owned()),
        ];
        Transcript { lines: Vec::new(), masks }
    }

    /// Names an id: every later occurrence (and its 12/13-char prefixes) reads `<name>`.
    pub fn name(&mut self, id: &str, name: &str) {
        let id = id.trim();
        assert!(!id.is_empty(), "empty id for {name}");
        self.masks.insert(0, (id.to_owned(), format!("<{name}>")));
        if id.len() > 13 {
            self.masks.push((id[..13].to_owned(), format!("<{name}>")));
        }
    }

    pub fn mask(&self, s: &str) -> String {
        let mut s = s.to_owned();
        for (from, to) in &self.masks {
            s = s.replace(from.as_str(), to);
        }
        mask_patterns(&s)
    }

    pub fn line(&mut self, key: &str, value: impl AsRef<str>) {
        let v = self.mask(value.as_ref());
        let v = v.trim_end().replace('\n', "\\n");
        self.lines.push(format!("{key}: {v}"));
    }

    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}

/// Masks what differs between any two runs: 64-hex ids, timestamps, pod IPs, sizes.
pub fn mask_patterns(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // 64 hex digits (ids, digests not named otherwise)
        let hex = b[i..].iter().take_while(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()).count();
        if hex >= 64 {
            out.push_str("<hex>");
            i += hex;
            continue;
        }
        // RFC 3339 timestamps: 2026-12-06T03:42:42.398205804Z
        if b.len() - i >= 20
            && b[i..i + 4].iter().all(u8::is_ascii_digit)
            && b[i + 4] == b'-'
            && b[i + 10] == b'T'
            && b[i + 13] == b':'
        {
            let mut j = i + 19;
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
                j += 1;
            }
            if j < b.len() && b[j] == b'Z' {
                j += 1;
            } else if j + 6 <= b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 6;
            }
            out.push_str("<time>");
            i = j;
            continue;
        }
        // pod addresses: 10.88.x.y
        if s[i..].starts_with("10.88.") && (i == 0 || !b[i - 1].is_ascii_digit()) {
            let mut j = i + 6;
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
                j += 1;
            }
            out.push_str("<pod-ip>");
            i = j;
            continue;
        }
        let c = s[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// The gRPC status code of a failed crictl call ("rpc error: code = NotFound desc = ...").
pub fn code(o: &cricmp::Out) -> String {
    if o.code == 0 {
        return "ok".into();
    }
    match o.stderr.split("code = ").nth(1) {
        Some(rest) => format!("rc={} code={}", o.code, rest.split_whitespace().next().unwrap_or("")),
        None => format!("rc={} (no gRPC code) {}", o.code, o.stderr.trim()),
    }
}

pub fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        v => v.to_string(),
    }
}

/// Sorted `k=v` of a JSON object (labels, annotations).
pub fn kv(v: &Value) -> String {
    let mut items: Vec<String> =
        v.as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect()).unwrap_or_default();
    items.sort();
    format!("{{{}}}", items.join(","))
}

/// `crictl inspect` → "STATE exit=N reason=R message=M".
pub fn status_line(e: &Env, id: &str) -> String {
    let v = e.json(&["inspect", "-o", "json", id]);
    let st = &v["status"];
    format!(
        "{} exit={} reason={:?} message={:?}",
        s(&st["state"]),
        s(&st["exitCode"]),
        s(&st["reason"]),
        s(&st["message"])
    )
}

pub fn wait_state(e: &Env, id: &str, want: &str) -> String {
    let mut last = String::new();
    wait_until(Duration::from_secs(60), || {
        last = status_line(e, id);
        last.starts_with(want)
    });
    last
}

/// Runs `crictl ARGS` under `script` (a terminal on crictl's stdin and stdout), with
/// `input` typed into it; its output with the terminal's CRs dropped.
pub fn with_tty(e: &Env, args: &[&str], input: &str) -> (i32, String) {
    let c = e.crictl_command(args);
    let mut line: Vec<String> = vec![c.get_program().to_string_lossy().into_owned()];
    line.extend(c.get_args().map(|a| shell_quote(&a.to_string_lossy())));
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output_after(stdin, Duration::from_secs(30));
    (o.0, o.1.replace('\r', ""))
}

pub fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub trait WaitOutput {
    /// Keeps stdin open for a moment (the remote side may need it), then closes it and
    /// waits; kills the child after `timeout`. (exit code, stdout).
    fn wait_with_output_after(self, stdin: std::process::ChildStdin, timeout: Duration) -> (i32, String);
}

impl WaitOutput for std::process::Child {
    fn wait_with_output_after(mut self, stdin: std::process::ChildStdin, timeout: Duration) -> (i32, String) {
        std::thread::sleep(Duration::from_millis(1500));
        drop(stdin);
        let mut out = self.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let pid = self.id() as i32;
        let done = wait_until(timeout, || matches!(self.try_wait(), Ok(Some(_))));
        if !done {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let code = self.wait().map(|s| s.code().unwrap_or(-1)).unwrap_or(-1);
        (code, reader.join().unwrap_or_default())
    }
}
