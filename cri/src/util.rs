//! Small helpers: ids, clocks.

/// A new 64-hex-digit id (256 random bits), as containerd makes them.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    let mut filled = 0;
    while filled < b.len() {
        // SAFETY: getrandom writes at most the remaining length into our buffer.
        let n = unsafe { libc::getrandom(b[filled..].as_mut_ptr().cast(), b.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // No entropy source at all: time and pid make a unique (not secret) id.
            let t = now_ns() as u128 ^ ((std::process::id() as u128) << 64);
            b[filled..].iter_mut().enumerate().for_each(|(i, x)| *x = (t >> ((i % 16) * 8)) as u8);
            break;
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (what the shim and the runtime write) into
/// nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000) + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert!(capsa_pod::pods::is_hex_id(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(parse_rfc3339("2026-11-22T03:39:58.711381314Z"), Some(1_795_318_798_711_381_314));
        assert_eq!(parse_rfc3339("2000-02-29T23:59:59.000000005Z"), Some((951_782_400 + 86399) * 1_000_000_000 + 5));
        for bad in ["", "2026-11-22", "2026-13-01T00:00:00Z", "2026-11-22T03:39:58", "x-y-zTa:b:cZ"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
