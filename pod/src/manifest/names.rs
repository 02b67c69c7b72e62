//! Name and path rules of Kubernetes objects: DNS-1123 labels, label keys and values, absolute paths and
//! paths without `..`.

use super::walk::Ctx;

fn dns_label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let end = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && b.len() <= 63 && b.iter().all(inner) && end(&b[0]) && end(&b[b.len() - 1])
}

/// Checks a DNS-1123 label, reporting a problem at `path`.
pub(super) fn check_dns_label(ctx: &mut Ctx, path: &str, what: &str, s: &str) -> bool {
    let ok = dns_label_ok(s);
    if !ok {
        ctx.error(
            path,
            format!(
                "invalid {what} {s:?}: must be a DNS-1123 label (lowercase letters, digits and '-', starting and \
                 ending with a letter or digit, at most 63 characters)"
            ),
        );
    }
    ok
}

pub(super) fn label_name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(inner)
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

pub(super) fn label_key_ok(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => prefix.len() <= 253 && prefix.split('.').all(dns_label_ok) && label_name_ok(name),
        None => label_name_ok(key),
    }
}

pub(super) fn absolute(s: &str) -> bool {
    s.starts_with('/')
}

pub(super) fn has_dotdot(s: &str) -> bool {
    s.split('/').any(|c| c == "..")
}
