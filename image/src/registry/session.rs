//! A session with one registry repository: GET with redirects followed by hand and
//! auth challenges answered; the registry's error text.

use crate::reference::RegistryName;

use super::auth::{auth_file_entry, base64_encode};
use super::{PullOptions, RegistryError};

/// Redirect hops followed.
const MAX_REDIRECTS: usize = 5;

/// A session with one registry repository.
#[derive(Clone)]
pub(super) struct Session<'a> {
    pub(super) agent: ureq::Agent,
    base: String,
    host: String,
    pub(super) name: &'a RegistryName,
    pub(super) basic: Option<String>,
    auth: Option<String>,
    pub(super) identity_token: Option<String>,
}

impl<'a> Session<'a> {
    pub(super) fn new(name: &'a RegistryName, opts: &PullOptions) -> Result<Session<'a>, RegistryError> {
        let scheme = if opts.insecure || name.is_loopback() { "http" } else { "https" };
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(std::time::Duration::from_secs(30))
            .timeout_read(std::time::Duration::from_secs(300))
            .user_agent(concat!("capsa/", env!("CARGO_PKG_VERSION")))
            .build();
        let basic = match &opts.creds {
            Some(c) if c.contains(':') => Some(base64_encode(c.as_bytes())),
            Some(_) => return Err(RegistryError::Invalid("--creds: expected USER:PASSWORD".into())),
            None => auth_file_entry(opts.auth_file.as_ref(), &name.host),
        };
        Ok(Session {
            agent,
            base: format!("{scheme}://{}/v2/{}", name.api_host(), name.repo),
            host: name.api_host().to_owned(),
            name,
            basic,
            auth: opts.registry_token.as_ref().map(|t| format!("Bearer {t}")),
            identity_token: opts.identity_token.clone(),
        })
    }

    /// GET `url` (relative to the repository when it starts with `/`),
    /// answering auth challenges and following redirects.
    pub(super) fn get(&mut self, path: &str, accept: Option<&str>) -> Result<ureq::Response, RegistryError> {
        self.get_from(path, accept, None)
    }

    /// [`Session::get`] with `Range: bytes=FROM-` when `from` is given.
    pub(super) fn get_from(
        &mut self,
        path: &str,
        accept: Option<&str>,
        from: Option<u64>,
    ) -> Result<ureq::Response, RegistryError> {
        let mut url = format!("{}{path}", self.base);
        let mut tried_auth = false;
        let mut hops = 0;
        loop {
            let same_host = url_host(&url) == Some(self.host.as_str());
            let mut req = self.agent.get(&url);
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if let Some(n) = from {
                req = req.set("Range", &format!("bytes={n}-"));
            }
            if same_host {
                if let Some(a) = &self.auth {
                    req = req.set("Authorization", a);
                }
            }
            let resp = match req.call() {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(e) => return Err(RegistryError::Transport { url, msg: e.to_string() }),
            };
            match resp.status() {
                200..=299 => return Ok(resp),
                301 | 302 | 303 | 307 | 308 if hops < MAX_REDIRECTS => {
                    hops += 1;
                    let loc = resp.header("Location").unwrap_or_default().to_owned();
                    url = resolve_location(&url, &loc)
                        .ok_or_else(|| RegistryError::Invalid(format!("{url}: bad redirect Location {loc:?}")))?;
                }
                401 if !tried_auth && same_host => {
                    tried_auth = true;
                    let challenge = resp.header("WWW-Authenticate").unwrap_or_default().to_owned();
                    self.auth = Some(self.authenticate(&url, &challenge)?);
                }
                status => {
                    let detail = resp.into_string().ok().map(|b| error_detail(&b)).unwrap_or_default();
                    let detail = match (status, detail.is_empty()) {
                        (401, _) => format!(" unauthorized{}", colon(&detail)),
                        (404, _) => format!(" not found{}", colon(&detail)),
                        (_, true) => String::new(),
                        _ => colon(&detail),
                    };
                    return Err(RegistryError::Status { url, status, detail });
                }
            }
        }
    }
}

/// The registry's JSON error text (`{"errors":[{"code","message"}]}`), or the body's start.
fn error_detail(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        code: Option<String>,
        message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<E>,
    }
    match serde_json::from_str::<Errs>(body) {
        Ok(e) => e
            .errors
            .iter()
            .map(|e| {
                format!("{} {}", e.code.as_deref().unwrap_or(""), e.message.as_deref().unwrap_or("")).trim().to_owned()
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => body.chars().take(200).collect::<String>().trim().to_owned(),
    }
}

fn colon(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

/// The `host[:port]` of an absolute URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// Resolves a `Location` against the URL it came from.
fn resolve_location(base: &str, loc: &str) -> Option<String> {
    if loc.is_empty() {
        return None;
    }
    if loc.contains("://") {
        return Some(loc.to_owned());
    }
    let (scheme, rest) = base.split_once("://")?;
    let host = rest.split('/').next()?;
    if let Some(l) = loc.strip_prefix("//") {
        return Some(format!("{scheme}://{l}"));
    }
    if loc.starts_with('/') {
        return Some(format!("{scheme}://{host}{loc}"));
    }
    let dir = base.rsplit_once('/').map_or(base, |(d, _)| d);
    Some(format!("{dir}/{loc}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(url_host("http://127.0.0.1:5000/v2/x"), Some("127.0.0.1:5000"));
        assert_eq!(resolve_location("http://h/v2/x/blobs/y", "/z").as_deref(), Some("http://h/z"));
        assert_eq!(resolve_location("http://h/v2/x", "https://s3/o?a=b").as_deref(), Some("https://s3/o?a=b"));
        assert_eq!(
            error_detail(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#),
            "MANIFEST_UNKNOWN manifest unknown"
        );
    }
}
