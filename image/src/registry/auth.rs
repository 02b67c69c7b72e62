//! Registry auth: answering `WWW-Authenticate` challenges (Basic, Bearer tokens, OAuth2
//! refresh tokens) and reading credentials from a docker-style auth file.

use std::io::Read;
use std::path::PathBuf;

use super::session::Session;
use super::RegistryError;

impl Session<'_> {
    /// The `Authorization` value answering `challenge`.
    pub(super) fn authenticate(&self, url: &str, challenge: &str) -> Result<String, RegistryError> {
        let (scheme, params) = parse_challenge(challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => match &self.basic {
                Some(b) => Ok(format!("Basic {b}")),
                None => Err(RegistryError::Status {
                    url: url.to_owned(),
                    status: 401,
                    detail: " unauthorized: the registry wants credentials (--creds or an auth file)".into(),
                }),
            },
            "bearer" => {
                let realm = params.iter().find(|(k, _)| k == "realm").map(|(_, v)| v.clone()).ok_or_else(|| {
                    RegistryError::Invalid(format!("{url}: Bearer challenge without a realm: {challenge:?}"))
                })?;
                let mut q: Vec<String> = Vec::new();
                if let Some((_, s)) = params.iter().find(|(k, _)| k == "service") {
                    q.push(format!("service={}", urlencode(s)));
                }
                let scope = params
                    .iter()
                    .find(|(k, _)| k == "scope")
                    .map_or_else(|| format!("repository:{}:pull", self.name.repo), |(_, v)| v.clone());
                q.push(format!("scope={}", urlencode(&scope)));
                let turl = format!("{realm}{}{}", if realm.contains('?') { "&" } else { "?" }, q.join("&"));
                let answer = if let Some(rt) = &self.identity_token {
                    // OAuth2: the refresh token for an access token (docker's "identitytoken").
                    let mut form = vec![("grant_type", "refresh_token"), ("client_id", "capsa"), ("refresh_token", rt)];
                    let service = params.iter().find(|(k, _)| k == "service").map(|(_, v)| v.as_str());
                    if let Some(sv) = service {
                        form.push(("service", sv));
                    }
                    form.push(("scope", &scope));
                    self.agent.post(&realm).send_form(&form)
                } else {
                    let mut req = self.agent.get(&turl);
                    if let Some(b) = &self.basic {
                        req = req.set("Authorization", &format!("Basic {b}"));
                    }
                    req.call()
                };
                let resp = match answer {
                    Ok(r) => r,
                    Err(ureq::Error::Status(status @ (401 | 403), _)) => {
                        let detail = if self.basic.is_some() {
                            " unauthorized: the token endpoint refused the credentials (check --creds or the auth file)"
                        } else {
                            " unauthorized: the token endpoint wants credentials (--creds or an auth file)"
                        };
                        return Err(RegistryError::Status { url: realm, status, detail: detail.into() });
                    }
                    Err(e) => return Err(RegistryError::Transport { url: turl.clone(), msg: e.to_string() }),
                };
                let mut body = Vec::new();
                resp.into_reader()
                    .take(1 << 20)
                    .read_to_end(&mut body)
                    .map_err(|e| RegistryError::Transport { url: turl.clone(), msg: e.to_string() })?;
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let t: Token = serde_json::from_slice(&body)
                    .map_err(|e| RegistryError::Invalid(format!("{turl}: bad token answer: {e}")))?;
                let tok = t
                    .token
                    .or(t.access_token)
                    .ok_or_else(|| RegistryError::Invalid(format!("{turl}: token answer without a token")))?;
                Ok(format!("Bearer {tok}"))
            }
            _ => Err(RegistryError::Invalid(format!("{url}: unsupported auth challenge {challenge:?}"))),
        }
    }
}

/// `scheme k="v", k2=v2` → (scheme, params).
fn parse_challenge(h: &str) -> (String, Vec<(String, String)>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut out = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, r)) = rest.split_once('=') else { break };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let r = r.trim_start();
        let (v, r) = if let Some(r) = r.strip_prefix('"') {
            match r.find('"') {
                Some(i) => (r[..i].to_owned(), &r[i + 1..]),
                None => (r.to_owned(), ""),
            }
        } else {
            match r.find(',') {
                Some(i) => (r[..i].trim().to_owned(), &r[i..]),
                None => (r.trim().to_owned(), ""),
            }
        };
        out.push((k, v));
        rest = r.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_owned(), out)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(super) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `auth` value (base64 `user:pass`) for `host` in a docker-style auth file.
pub(super) fn auth_file_entry(explicit: Option<&PathBuf>, host: &str) -> Option<String> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.clone()],
        None => {
            let mut v = Vec::new();
            if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
                v.push(PathBuf::from(p));
            }
            if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR") {
                v.push(PathBuf::from(p).join("containers/auth.json"));
            }
            if let Some(p) = std::env::var_os("HOME") {
                v.push(PathBuf::from(p).join(".docker/config.json"));
            }
            v
        }
    };
    for p in candidates {
        let Ok(b) = std::fs::read(&p) else { continue };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) else { continue };
        let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else { continue };
        let keys = [host.to_owned(), format!("https://{host}"), format!("http://{host}")];
        let hub = host == crate::reference::DOCKER_HUB;
        for (k, e) in auths {
            let k = k.trim_end_matches('/');
            let matches = keys.iter().any(|h| h == k)
                || (hub && (k.contains("index.docker.io") || k.contains("registry-1.docker.io")));
            if matches {
                if let Some(a) = e.get("auth").and_then(|a| a.as_str()) {
                    return Some(a.to_owned());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example.io/token",service="registry.example.io",scope="repository:a/b:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p[0], ("realm".into(), "https://auth.example.io/token".into()));
        assert_eq!(p[1], ("service".into(), "registry.example.io".into()));
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull".into()));
        let (s, p) = parse_challenge(r#"Basic realm="x""#);
        assert_eq!((s.as_str(), p.len()), ("Basic", 1));
    }

    #[test]
    fn helpers() {
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(urlencode("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
    }

    #[test]
    fn auth_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("auth.json");
        std::fs::write(
            &p,
            r#"{"auths":{"reg.io:5000":{"auth":"dXNlcjpwYXNz"},"https://index.docker.io/v1/":{"auth":"aHViOng="}}}"#,
        )
        .unwrap();
        assert_eq!(auth_file_entry(Some(&p), "reg.io:5000").as_deref(), Some("dXNlcjpwYXNz"));
        assert_eq!(auth_file_entry(Some(&p), "docker.io").as_deref(), Some("aHViOng="));
        assert_eq!(auth_file_entry(Some(&p), "other.io"), None);
    }
}
