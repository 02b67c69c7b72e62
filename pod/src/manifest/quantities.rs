//! Kubernetes resource quantities (`500m`, `128Mi`, `1e3`) as CPU cores and memory bytes, and the checks of
//! the quantities a manifest gives (limits, `sizeLimit`), which must be greater than zero.

use super::walk::Ctx;

/// Parses a Kubernetes memory quantity into bytes, rounding a fractional byte count up as Kubernetes does.
///
/// Accepts a plain number (`1024`, `0.5`, `1e3`) with an optional suffix: binary `Ki Mi Gi Ti Pi Ei`, decimal
/// `n u m k M G T P E`, or an exponent `e<N>`/`E<N>`. Negative values and values beyond `i64` are errors.
pub fn parse_quantity_memory(s: &str) -> Result<i64, String> {
    let q = parse_quantity(s)?;
    let too_large = || format!("invalid quantity {s:?}: too large");
    let mut v = q.digits.checked_mul(1u128 << q.exp2).ok_or_else(too_large)?;
    if q.exp10 >= 0 {
        for _ in 0..q.exp10 {
            v = v.checked_mul(10).ok_or_else(too_large)?;
        }
    } else {
        // ceil(ceil(a / b) / c) == ceil(a / (b * c)) for positive integers, so one digit at a time is exact.
        for _ in 0..-q.exp10 {
            v = v.div_ceil(10);
        }
    }
    i64::try_from(v).map_err(|_| too_large())
}

/// Parses a Kubernetes CPU quantity into cores: `500m` → 0.5, `2` → 2.0, `1.5` → 1.5.
///
/// Same grammar as [`parse_quantity_memory`]; negative values are errors.
pub fn parse_quantity_cpu(s: &str) -> Result<f64, String> {
    let q = parse_quantity(s)?;
    let base = q.digits as f64 * 2f64.powi(q.exp2 as i32);
    let v = if q.exp10 >= 0 { base * 10f64.powi(q.exp10) } else { base / 10f64.powi(-q.exp10) };
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("invalid quantity {s:?}: too large"))
    }
}

/// A quantity as `digits × 10^exp10 × 2^exp2`.
struct Quantity {
    digits: u128,
    exp10: i32,
    exp2: u32,
}

const QUANTITY_SUFFIXES: &str = "Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E or an exponent such as e3";

fn parse_quantity(s: &str) -> Result<Quantity, String> {
    let bad = |why: &str| format!("invalid quantity {s:?}: {why}");
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(split);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if frac.contains('.') {
        return Err(bad("malformed number"));
    }
    if int.is_empty() && frac.is_empty() {
        return Err(bad("expected a number, optionally followed by a unit suffix"));
    }
    let all: String = int.chars().chain(frac.chars()).skip_while(|&c| c == '0').collect();
    if all.len() > 38 {
        return Err(bad("too many digits"));
    }
    let digits: u128 = if all.is_empty() { 0 } else { all.parse().map_err(|_| bad("malformed number"))? };
    let mut exp10 = -i32::try_from(frac.len()).map_err(|_| bad("too many digits"))?;
    let mut exp2 = 0;
    match suffix {
        "" => {}
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        _ if suffix.starts_with(['e', 'E']) => {
            let e = &suffix[1..];
            let valid = !e.is_empty() && e.trim_start_matches(['+', '-']).bytes().all(|b| b.is_ascii_digit());
            match e.parse::<i32>() {
                Ok(n) if valid && (-100..=100).contains(&n) => exp10 += n,
                Ok(_) if valid => return Err(bad("exponent out of range")),
                _ => {
                    return Err(bad(&format!("unknown suffix {suffix:?} (expected {QUANTITY_SUFFIXES})")));
                }
            }
        }
        _ => {
            return Err(bad(&format!("unknown suffix {suffix:?} (expected {QUANTITY_SUFFIXES})")));
        }
    }
    if negative && digits != 0 {
        return Err(bad("must not be negative"));
    }
    Ok(Quantity { digits, exp10, exp2 })
}

pub(super) fn positive_cpu(ctx: &mut Ctx, path: &str, q: &str) -> Option<f64> {
    match parse_quantity_cpu(q) {
        Ok(v) if v > 0.0 => Some(v),
        Ok(_) => {
            ctx.error(path, format!("must be greater than 0, found {q:?}"));
            None
        }
        Err(e) => {
            ctx.error(path, e);
            None
        }
    }
}

pub(super) fn positive_memory(ctx: &mut Ctx, path: &str, q: &str) -> Option<i64> {
    match parse_quantity_memory(q) {
        Ok(v) if v > 0 => Some(v),
        Ok(_) => {
            ctx.error(path, format!("must be greater than 0, found {q:?}"));
            None
        }
        Err(e) => {
            ctx.error(path, e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_quantities() {
        let table: &[(&str, i64)] = &[
            ("1024", 1024),
            ("128Mi", 128 << 20),
            ("1Gi", 1 << 30),
            ("0.5Gi", 1 << 29),
            ("1.5Ki", 1536),
            ("500M", 500_000_000),
            ("1e3", 1000),
            ("1E3", 1000),
            ("2e+2", 200),
            ("1k", 1000),
            ("1G", 1_000_000_000),
            ("1T", 1_000_000_000_000),
            ("1P", 10i64.pow(15)),
            ("1E", 10i64.pow(18)),
            ("1Ti", 1 << 40),
            ("1Pi", 1 << 50),
            ("1Ei", 1 << 60),
            ("500m", 1),
            ("1500m", 2),
            ("0.1", 1),
            ("0", 0),
            ("+5", 5),
            (".5Ki", 512),
            ("12345678901e-3", 12_345_679),
        ];
        for (text, want) in table {
            assert_eq!(parse_quantity_memory(text), Ok(*want), "{text}");
        }
        for (text, why) in [
            ("", "expected a number"),
            ("Mi", "expected a number"),
            ("1MB", "unknown suffix \"MB\""),
            ("1K", "unknown suffix \"K\""),
            ("1 Gi", "unknown suffix \" Gi\""),
            ("1e", "unknown suffix \"e\""),
            ("1.2.3", "malformed number"),
            ("-1", "must not be negative"),
            ("8Ei", "too large"),
            ("1e200", "exponent out of range"),
        ] {
            let e = parse_quantity_memory(text).unwrap_err();
            assert!(e.starts_with(&format!("invalid quantity {text:?}: ")) && e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn cpu_quantities() {
        let table: &[(&str, f64)] =
            &[("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("100m", 0.1), ("0.25", 0.25), ("1k", 1000.0), ("2e-1", 0.2)];
        for (text, want) in table {
            assert_eq!(parse_quantity_cpu(text), Ok(*want), "{text}");
        }
        assert!(parse_quantity_cpu("-500m").unwrap_err().contains("must not be negative"));
        assert!(parse_quantity_cpu("half").unwrap_err().contains("invalid quantity \"half\""));
    }
}
