//! Reading container logs written by the shim in the CRI format:
//! `RFC3339Nano SP stdout|stderr SP P|F SP text NL` (P: a partial line whose
//! text continues in the next record; F: the record ends the line).
//! The shim rotates `container.log` to `container.log.1` past its size cap.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{io, Result};

/// One parsed CRI record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub time: &'a str,
    pub stderr: bool,
    pub partial: bool,
    pub text: &'a [u8],
}

/// Parses one record (without its newline); None for a malformed line.
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut it = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(it.next()?).ok()?;
    let stderr = match it.next()? {
        b"stdout" => false,
        b"stderr" => true,
        _ => return None,
    };
    let partial = match it.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record { time, stderr, partial, text: it.next().unwrap_or(b"") })
}

/// What `logs` prints.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Prefix every line with the time the shim read it.
    pub timestamps: bool,
}

/// Reassembles records into lines on `out` / `err`.
struct Printer<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    timestamps: bool,
    /// Whether each stream is in the middle of a line (after a P record).
    mid: [bool; 2],
}

impl Printer<'_> {
    fn record(&mut self, r: &Record<'_>) -> std::io::Result<()> {
        let i = r.stderr as usize;
        let w: &mut dyn Write = if r.stderr { &mut *self.err } else { &mut *self.out };
        if self.timestamps && !self.mid[i] {
            w.write_all(r.time.as_bytes())?;
            w.write_all(b" ")?;
        }
        w.write_all(r.text)?;
        if !r.partial {
            w.write_all(b"\n")?;
        }
        self.mid[i] = r.partial;
        Ok(())
    }

    fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Some(r) = parse(line) {
                self.record(&r)?;
            }
        }
        self.out.flush()?;
        self.err.flush()
    }
}

/// The byte offset in `data` where the last `n` lines (F records) begin.
fn tail_offset(data: &[u8], n: usize) -> usize {
    if n == 0 {
        return data.len();
    }
    let mut count = 0;
    let mut end = data.len();
    // Walk records backwards; a line starts after the F record before it.
    while end > 0 {
        let start = data[..end.saturating_sub(1)].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        if let Some(r) = parse(data[start..end].strip_suffix(b"\n").unwrap_or(&data[start..end])) {
            if !r.partial {
                count += 1;
                if count > n {
                    return end;
                }
            }
        }
        end = start;
    }
    0
}

fn read_all(p: &Path) -> Result<Vec<u8>> {
    match std::fs::read(p) {
        Ok(d) => Ok(d),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io("read", p)(e)),
    }
}

/// Prints the log at `path` (and its rotated predecessor `path.1`). With
/// `follow`, keeps printing what is appended, across rotations, until
/// `running()` says the writer is gone and everything is printed.
pub fn print(
    path: &Path,
    opts: Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
    running: &mut dyn FnMut() -> bool,
) -> Result<()> {
    let rotated = PathBuf::from(format!("{}.1", path.display()));
    let mut data = read_all(&rotated)?;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("open", path)(e)),
    };
    if let Some(f) = f.as_mut() {
        f.read_to_end(&mut data).map_err(io("read", path))?;
    }
    // Only whole records: a record the shim is still writing is printed on the next read.
    let whole = data.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let mut pending = data.split_off(whole);
    let start = opts.tail.map_or(0, |n| tail_offset(&data, n));
    let mut p = Printer { out, err, timestamps: opts.timestamps, mid: [false; 2] };
    p.chunk(&data[start..]).map_err(io("write", Path::new("stdout")))?;
    if !opts.follow {
        return Ok(());
    }
    let mut ino = f.as_ref().and_then(|f| f.metadata().ok()).map(|m| m.ino());
    let mut buf = vec![0u8; 64 << 10];
    let mut last_round = false;
    loop {
        let mut got = false;
        if let Some(file) = f.as_mut() {
            loop {
                let n = file.read(&mut buf).map_err(io("read", path))?;
                if n == 0 {
                    break;
                }
                got = true;
                pending.extend_from_slice(&buf[..n]);
            }
        }
        if let Some(i) = pending.iter().rposition(|b| *b == b'\n') {
            let rest = pending.split_off(i + 1);
            p.chunk(&pending).map_err(io("write", Path::new("stdout")))?;
            pending = rest;
        }
        // Rotation: the name now points at a new file; the old one was read to its end above.
        let now = std::fs::metadata(path).ok().map(|m| m.ino());
        if now.is_some() && now != ino {
            // Records appended to the old file just before it was renamed: read it to its end first.
            if let Some(file) = f.as_mut() {
                file.read_to_end(&mut pending).map_err(io("read", path))?;
            }
            f = std::fs::File::open(path).ok();
            ino = now;
            if let Some(file) = f.as_mut() {
                let _ = file.seek(SeekFrom::Start(0));
            }
            continue;
        }
        if got {
            continue;
        }
        if last_round {
            return Ok(());
        }
        if !running() {
            // One more read: the writer may have flushed its last records just before exiting.
            last_round = true;
            continue;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-01-01T00:00:00.1Z stdout F one\n\
2026-01-01T00:00:00.2Z stderr F oops\n\
2026-01-01T00:00:00.3Z stdout P tw\n\
2026-01-01T00:00:00.4Z stdout F o\n\
2026-01-01T00:00:00.5Z stdout F three\n";

    fn run(data: &str, opts: Options) -> (String, String) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("container.log");
        std::fs::write(&p, data).unwrap();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        print(&p, opts, &mut o, &mut e, &mut || false).unwrap();
        (String::from_utf8(o).unwrap(), String::from_utf8(e).unwrap())
    }

    #[test]
    fn parse_records() {
        let r = parse(b"2026-01-01T00:00:00Z stderr P a b c").unwrap();
        assert!(r.stderr && r.partial);
        assert_eq!(r.text, b"a b c");
        assert_eq!(parse(b"ts stdout F ").unwrap().text, b"");
        assert!(parse(b"ts stdin F x").is_none());
        assert!(parse(b"garbage").is_none());
    }

    #[test]
    fn lines_streams_and_partials() {
        let (o, e) = run(LOG, Options::default());
        assert_eq!(o, "one\ntwo\nthree\n");
        assert_eq!(e, "oops\n");
    }

    #[test]
    fn tail_counts_whole_lines() {
        let (o, e) = run(LOG, Options { tail: Some(2), ..Default::default() });
        assert_eq!(o, "two\nthree\n");
        assert_eq!(e, "");
        let (o, _) = run(LOG, Options { tail: Some(0), ..Default::default() });
        assert_eq!(o, "");
        let (o, e) = run(LOG, Options { tail: Some(100), ..Default::default() });
        assert_eq!((o.as_str(), e.as_str()), ("one\ntwo\nthree\n", "oops\n"));
    }

    #[test]
    fn timestamps_once_per_line() {
        let (o, _) = run(LOG, Options { timestamps: true, tail: Some(2), ..Default::default() });
        assert_eq!(o, "2026-01-01T00:00:00.3Z two\n2026-01-01T00:00:00.5Z three\n");
    }

    #[test]
    fn rotated_file_first_and_incomplete_record_held_back() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("container.log");
        std::fs::write(d.path().join("container.log.1"), "t stdout F old\n").unwrap();
        std::fs::write(&p, "t stdout F new\nt stdout F half-writ").unwrap();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        print(&p, Options::default(), &mut o, &mut e, &mut || false).unwrap();
        assert_eq!(String::from_utf8(o).unwrap(), "old\nnew\n");
    }

    #[test]
    fn follow_sees_appends_and_rotation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("container.log");
        std::fs::write(&p, "t stdout F a\n").unwrap();
        let p2 = p.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            let mut f = std::fs::OpenOptions::new().append(true).open(&p2).unwrap();
            f.write_all(b"t stdout F b\n").unwrap();
            std::thread::sleep(Duration::from_millis(150));
            std::fs::rename(&p2, format!("{}.1", p2.display())).unwrap();
            std::fs::write(&p2, "t stdout F c\n").unwrap();
        });
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let t0 = std::time::Instant::now();
        print(&p, Options { follow: true, ..Default::default() }, &mut o, &mut e, &mut || {
            t0.elapsed() < Duration::from_millis(700)
        })
        .unwrap();
        writer.join().unwrap();
        assert_eq!(String::from_utf8(o).unwrap(), "a\nb\nc\n");
    }
}
