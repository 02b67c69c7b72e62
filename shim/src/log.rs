//! CRI log format (`RFC3339Nano stdout|stderr P|F text\n`), with a size cap and rotation.
//!
//! Each stream has one fixed line buffer ([`LINE_BUF`] bytes). A full line (ending in
//! `\n`) is written as an `F` entry without its newline; when the buffer fills up without
//! a newline, its content is written as a `P` (partial) entry and the line continues in the
//! next entry; at end of stream a remainder without a newline is written as `P`.
//! Timestamps are UTC with nine fractional digits (`2026-11-22T03:39:58.711381314Z`),
//! which Go's `time.RFC3339Nano` parser (kubelet, crictl) accepts.

use crate::sys;
use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

/// Size of one stream's line buffer (as conmon's STDIO_BUF_SIZE).
pub const LINE_BUF: usize = 8192;

/// Length of a timestamp written by [`rfc3339nano`].
pub const TS_LEN: usize = 30;

/// Format (secs, nanos) since the epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn rfc3339nano(secs: i64, nanos: u32, out: &mut [u8; TS_LEN]) {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400) as u32;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + if m <= 2 { 1 } else { 0 }) as u32;
    fn put(out: &mut [u8], mut v: u32, width: usize) {
        for i in (0..width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    put(&mut out[0..4], y, 4);
    out[4] = b'-';
    put(&mut out[5..7], m, 2);
    out[7] = b'-';
    put(&mut out[8..10], d, 2);
    out[10] = b'T';
    put(&mut out[11..13], sod / 3600, 2);
    out[13] = b':';
    put(&mut out[14..16], sod / 60 % 60, 2);
    out[16] = b':';
    put(&mut out[17..19], sod % 60, 2);
    out[19] = b'.';
    put(&mut out[20..29], nanos, 9);
    out[29] = b'Z';
}

/// Current time as an RFC3339Nano string.
pub fn now_string() -> String {
    let (s, n) = sys::realtime();
    let mut b = [0u8; TS_LEN];
    rfc3339nano(s, n, &mut b);
    String::from_utf8_lossy(&b).into_owned()
}

/// The log file: appends CRI entries, rotates to `<path>.1` when the next entry would
/// take it past `max` bytes (0 = no cap).
pub struct LogFile {
    fd: RawFd,
    path: CString,
    path1: CString,
    size: u64,
    max: u64,
}

impl LogFile {
    pub fn open(path: &str, max: u64) -> io::Result<LogFile> {
        let cpath = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let path1 = CString::new(format!("{path}.1")).unwrap();
        let fd = sys::open(&cpath, libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND)?;
        // SAFETY: libc::stat is plain C data: all-zero is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a live local stat for fstat to write; `fd` was just opened.
        unsafe { libc::fstat(fd, &mut st) };
        Ok(LogFile { fd, path: cpath, path1, size: st.st_size as u64, max })
    }

    /// Reopens the log at its path (creating it): after the caller renamed the file away
    /// (kubelet's rotation, then CRI ReopenContainerLog), new entries go to a new file.
    pub fn reopen(&mut self) -> io::Result<()> {
        let fd = sys::open(&self.path, libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND)?;
        // SAFETY: libc::stat is plain C data: all-zero is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a live local stat for fstat to write; `fd` was just opened.
        unsafe { libc::fstat(fd, &mut st) };
        sys::close(&mut self.fd);
        self.fd = fd;
        self.size = st.st_size as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        // SAFETY: both paths are NUL-terminated CStrings owned by `self`, live for the call.
        sys::cvt(unsafe { libc::rename(self.path.as_ptr(), self.path1.as_ptr()) })?;
        let fd = sys::open(&self.path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND)?;
        sys::close(&mut self.fd);
        self.fd = fd;
        self.size = 0;
        Ok(())
    }

    /// Write one entry: `TS STREAM P|F TEXT\n` (one writev).
    pub fn entry(&mut self, stream: &[u8], partial: bool, text: &[u8]) -> io::Result<()> {
        let mut head = [0u8; TS_LEN + 1 + 6 + 3];
        let (s, n) = sys::realtime();
        rfc3339nano(s, n, (&mut head[..TS_LEN]).try_into().unwrap());
        let mut i = TS_LEN;
        head[i] = b' ';
        i += 1;
        let sl = stream.len().min(6);
        head[i..i + sl].copy_from_slice(&stream[..sl]);
        i += sl;
        head[i..i + 3].copy_from_slice(if partial { b" P " } else { b" F " });
        i += 3;
        let total = (i + text.len() + 1) as u64;
        if self.max > 0 && self.size > 0 && self.size + total > self.max {
            // Best effort: if rotation fails, keep appending rather than lose output.
            let _ = self.rotate();
        }
        let iov = [
            libc::iovec { iov_base: head.as_ptr() as *mut _, iov_len: i },
            libc::iovec { iov_base: text.as_ptr() as *mut _, iov_len: text.len() },
            libc::iovec { iov_base: b"\n".as_ptr() as *mut _, iov_len: 1 },
        ];
        // SAFETY: the three iovecs point to `head[..i]`, `text` and a static "\n" with their lengths,
        // all live for the call; writev only reads them.
        let r = unsafe { libc::writev(self.fd, iov.as_ptr(), 3) };
        let n = sys::cvt_s(r)?;
        if (n as u64) < total {
            // Short write (disk full, signal): finish the entry byte-exactly.
            let mut all = Vec::with_capacity(total as usize);
            all.extend_from_slice(&head[..i]);
            all.extend_from_slice(text);
            all.push(b'\n');
            sys::write_all(self.fd, &all[n..])?;
        }
        self.size += total;
        Ok(())
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        sys::close(&mut self.fd);
    }
}

/// Line splitter for one stream: a fixed buffer and the CRI P/F rules.
pub struct LineBuf {
    buf: Box<[u8; LINE_BUF]>,
    len: usize,
}

impl Default for LineBuf {
    fn default() -> Self {
        LineBuf { buf: Box::new([0; LINE_BUF]), len: 0 }
    }
}

impl LineBuf {
    /// Free space to read into.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// `n` bytes were read into `spare()`: write complete lines (F), and the buffer as a
    /// partial entry (P) if it is full without a newline. Returns the new bytes' range
    /// start so the caller can forward them to attach clients.
    pub fn commit(&mut self, n: usize, stream: &[u8], log: &mut LogFile) -> io::Result<()> {
        let scan_from = self.len;
        self.len += n;
        let mut start = 0;
        let mut pos = scan_from;
        while let Some(off) = self.buf[pos..self.len].iter().position(|&c| c == b'\n') {
            let end = pos + off;
            log.entry(stream, false, &self.buf[start..end])?;
            start = end + 1;
            pos = start;
        }
        if start > 0 {
            self.buf.copy_within(start..self.len, 0);
            self.len -= start;
        }
        if self.len == LINE_BUF {
            log.entry(stream, true, &self.buf[..self.len])?;
            self.len = 0;
        }
        Ok(())
    }

    /// End of stream: a remainder without newline becomes a `P` entry.
    pub fn finish(&mut self, stream: &[u8], log: &mut LogFile) -> io::Result<()> {
        if self.len > 0 {
            log.entry(stream, true, &self.buf[..self.len])?;
            self.len = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let mut b = [0u8; TS_LEN];
        rfc3339nano(0, 0, &mut b);
        assert_eq!(&b, b"1970-01-01T00:00:00.000000000Z");
        rfc3339nano(1_795_318_798, 711_381_314, &mut b);
        assert_eq!(&b, b"2026-11-22T03:39:58.711381314Z");
        rfc3339nano(951_782_400 + 86399, 5, &mut b); // 2000-02-29 (leap day)
        assert_eq!(&b, b"2000-02-29T23:59:59.000000005Z");
    }

    #[test]
    fn lines_partial_and_rotation() {
        let dir = std::env::temp_dir().join(format!("capsa-shim-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.log");
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(dir.join("c.log.1"));
        let mut log = LogFile::open(p.to_str().unwrap(), 0).unwrap();
        let mut lb = LineBuf::default();
        let feed = |lb: &mut LineBuf, log: &mut LogFile, s: &[u8]| {
            lb.spare()[..s.len()].copy_from_slice(s);
            lb.commit(s.len(), b"stdout", log).unwrap();
        };
        feed(&mut lb, &mut log, b"one\ntw");
        feed(&mut lb, &mut log, b"o\n\nthr");
        let big = vec![b'x'; LINE_BUF - 3];
        feed(&mut lb, &mut log, &big);
        lb.finish(b"stdout", &mut log).unwrap();
        drop(log);
        let text = std::fs::read_to_string(&p).unwrap();
        let rest: Vec<&str> = text.lines().map(|l| &l[TS_LEN + 1..]).collect();
        assert_eq!(rest[0], "stdout F one");
        assert_eq!(rest[1], "stdout F two");
        assert_eq!(rest[2], "stdout F ");
        assert_eq!(rest[3].len(), "stdout P ".len() + LINE_BUF);
        assert!(rest[3].starts_with("stdout P thrxxx"));
        assert_eq!(rest.len(), 4);

        // rotation: cap of 110 bytes, each entry 30+1+6+3+10+1 = 51 bytes
        let mut log = LogFile::open(p.to_str().unwrap(), 110).unwrap();
        log.entry(b"stderr", false, b"0123456789").unwrap();
        assert!(dir.join("c.log.1").exists());
        log.entry(b"stderr", false, b"0123456789").unwrap();
        log.entry(b"stderr", false, b"0123456789").unwrap();
        drop(log);
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 1);
        assert_eq!(std::fs::read_to_string(dir.join("c.log.1")).unwrap().lines().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reopen_after_rename() {
        let dir = std::env::temp_dir().join(format!("capsa-shim-reopen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.log");
        let mut log = LogFile::open(p.to_str().unwrap(), 0).unwrap();
        log.entry(b"stdout", false, b"before").unwrap();
        std::fs::rename(&p, dir.join("c.log.old")).unwrap();
        log.entry(b"stdout", false, b"still old").unwrap();
        log.reopen().unwrap();
        log.entry(b"stdout", false, b"after").unwrap();
        drop(log);
        let old = std::fs::read_to_string(dir.join("c.log.old")).unwrap();
        let new = std::fs::read_to_string(&p).unwrap();
        assert_eq!(old.lines().count(), 2, "{old}");
        assert!(new.ends_with("stdout F after\n") && new.lines().count() == 1, "{new}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
