//! Registry client: the OCI distribution API v2, synchronous (ureq, rustls).
//!
//! - manifests negotiated with an `Accept` of the OCI and Docker schema 2
//!   manifest and index types; an index / manifest list resolves to the wanted
//!   platform (default: the host's, `--platform` to change);
//! - auth: on a 401, the `WWW-Authenticate` challenge is answered: `Bearer`
//!   → a token from the realm (with basic credentials when given), `Basic` →
//!   the credentials; credentials come from `--creds USER:PASS` or a
//!   docker-style auth file (`{"auths":{"host":{"auth":"base64(user:pass)"}}}`);
//! - redirects followed by hand (blob downloads go to object stores): the
//!   `Authorization` header is only sent to the registry's own host;
//! - plain http with `insecure`, and always for loopback hosts;
//! - every manifest and config is checked against its digest before it is
//!   parsed; every blob streams into the content store, which verifies the
//!   digest and the size (a bad blob never gets a name in the store); the
//!   layers' diff_ids are verified when they are unpacked.

use std::io::Read;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::layout::{self, ResolvedImage, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use crate::oci::{self, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, Platform};
use crate::reference::{RegistryName, TagOrDigest};
use crate::store::Store;

/// Redirect hops followed.
const MAX_REDIRECTS: usize = 5;
/// Layers downloaded at once.
const PARALLEL_DOWNLOADS: usize = 4;
/// Index levels followed.
const MAX_INDEX_DEPTH: usize = 4;
/// Requests per blob download (the first, then resumes with `Range`).
const BLOB_ATTEMPTS: u32 = 3;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Errors talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Transport failure (DNS, connection refused, TLS...).
    #[error("{msg}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        msg: String,
    },
    /// An HTTP error status.
    #[error("{url}: HTTP {status}{detail}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The registry's error text, if any.
        detail: String,
    },
    /// Content that fails verification or parsing.
    #[error("{0}")]
    Invalid(String),
    /// Import / store error.
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    /// Store error.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Use plain http (loopback hosts always do).
    pub insecure: bool,
    /// `USER:PASS`.
    pub creds: Option<String>,
    /// A docker-style auth file (default: `$REGISTRY_AUTH_FILE`, then
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, then `~/.docker/config.json`).
    pub auth_file: Option<PathBuf>,
    /// The platform to pick from an index.
    pub platform: Option<Platform>,
    /// A bearer token for the registry, sent as is (CRI `AuthConfig.registry_token`,
    /// skopeo's `--registry-token`).
    pub registry_token: Option<String>,
    /// An OAuth2 refresh token (CRI `AuthConfig.identity_token`): exchanged at the
    /// Bearer challenge's realm (`grant_type=refresh_token`) for an access token.
    pub identity_token: Option<String>,
}

/// A session with one registry repository.
#[derive(Clone)]
struct Session<'a> {
    agent: ureq::Agent,
    base: String,
    host: String,
    name: &'a RegistryName,
    basic: Option<String>,
    auth: Option<String>,
    identity_token: Option<String>,
}

impl<'a> Session<'a> {
    fn new(name: &'a RegistryName, opts: &PullOptions) -> Result<Session<'a>, RegistryError> {
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
    fn get(&mut self, path: &str, accept: Option<&str>) -> Result<ureq::Response, RegistryError> {
        self.get_from(path, accept, None)
    }

    /// [`Session::get`] with `Range: bytes=FROM-` when `from` is given.
    fn get_from(
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

    /// The `Authorization` value answering `challenge`.
    fn authenticate(&self, url: &str, challenge: &str) -> Result<String, RegistryError> {
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

    /// Fetches a manifest or index by tag or digest: (bytes, media type, digest).
    fn manifest(
        &mut self,
        reference: &str,
        expected: Option<&Descriptor>,
    ) -> Result<(Vec<u8>, String, Digest), RegistryError> {
        let resp = self.get(&format!("/manifests/{reference}"), Some(ACCEPT))?;
        let ctype = resp.content_type().to_owned();
        let url = resp.get_url().to_owned();
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST_SIZE + 1)
            .read_to_end(&mut body)
            .map_err(|e| RegistryError::Transport { url: url.clone(), msg: e.to_string() })?;
        if body.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(RegistryError::Invalid(format!("{url}: manifest larger than {MAX_MANIFEST_SIZE} bytes")));
        }
        let digest = Digest::sha256_of(&body);
        if let Some(d) = expected {
            let mut h = crate::digest::Hasher::new();
            h.update(&body);
            h.verify(Some(&d.digest), Some(d.size))
                .map_err(|e| RegistryError::Invalid(format!("manifest {reference}: {e}")))?;
        } else if let Ok(want) = Digest::parse(reference) {
            if want != digest {
                return Err(RegistryError::Invalid(format!("manifest {reference}: digest mismatch: got {digest}")));
            }
        }
        // The media type: from the document, else from Content-Type.
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
        }
        let p: Probe = serde_json::from_slice(&body).map_err(|e| RegistryError::Invalid(format!("{url}: {e}")))?;
        let mt = p.media_type.unwrap_or_else(|| {
            if p.manifests.is_some() {
                oci::MEDIA_TYPE_OCI_INDEX.to_owned()
            } else if oci::is_manifest_media_type(&ctype) || oci::is_index_media_type(&ctype) {
                ctype
            } else {
                oci::MEDIA_TYPE_OCI_MANIFEST.to_owned()
            }
        });
        Ok((body, mt, digest))
    }

    /// Streams a blob into the store, verified.
    fn blob(&mut self, store: &Store, d: &Descriptor) -> Result<(), RegistryError> {
        self.blob_bar(store, d, None)
    }

    /// [`Session::blob`], advancing `bar` (a terminal progress bar).
    fn blob_bar(
        &mut self,
        store: &Store,
        d: &Descriptor,
        bar: Option<indicatif::ProgressBar>,
    ) -> Result<(), RegistryError> {
        if store.has(&d.digest) {
            return Ok(());
        }
        let path = format!("/blobs/{}", d.digest);
        let resp = self.get(&path, None)?;
        let r = Resuming {
            s: self,
            path: &path,
            size: d.size,
            got: 0,
            skip: 0,
            attempts: 1,
            reader: Some(resp.into_reader()),
            last: None,
        };
        let res = store.put(crate::progress::Counting::new(r, bar.clone()), Some(&d.digest), Some(d.size));
        if let Some(b) = bar {
            match res {
                Ok(_) => b.finish_with_message("done"),
                Err(_) => b.abandon_with_message("failed"),
            }
        }
        res?;
        Ok(())
    }
}

/// A blob body that survives broken connections: when the body ends early
/// (an error, or EOF before the descriptor's size), it asks again with
/// `Range: bytes=N-` (N = the bytes already handed out, which are in the
/// store's temp file) and goes on reading the 206 answer; a server that
/// ignores Range (200) sends the whole blob again, whose first N bytes are
/// skipped (the download restarts from zero). At most [`BLOB_ATTEMPTS`]
/// requests; the store verifies the digest and the size of the whole file.
struct Resuming<'s, 'a> {
    s: &'s mut Session<'a>,
    path: &'s str,
    size: u64,
    /// Bytes handed out.
    got: u64,
    /// Bytes of the current body still to drop (a restart from zero).
    skip: u64,
    attempts: u32,
    reader: Option<Box<dyn Read + Send + Sync + 'static>>,
    /// Why the last attempt failed.
    last: Option<String>,
}

impl Resuming<'_, '_> {
    /// Opens the next attempt's body.
    fn resume(&mut self, why: String) -> std::io::Result<()> {
        if self.attempts >= BLOB_ATTEMPTS {
            return Err(std::io::Error::other(format!(
                "{}: download failed after {} attempts: {why}",
                self.path.trim_start_matches('/'),
                self.attempts
            )));
        }
        self.attempts += 1;
        tracing::info!(path = self.path, from = self.got, %why, "resuming blob download");
        self.last = Some(why);
        self.reader = None;
        self.skip = 0;
        let resp = self.s.get_from(self.path, None, Some(self.got)).map_err(|e| std::io::Error::other(e.to_string()));
        match resp {
            Ok(r) if r.status() == 206 => {
                // Content-Range: bytes START-END/TOTAL must start where we are.
                let start = r
                    .header("Content-Range")
                    .and_then(|v| v.trim().strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if start != Some(self.got) {
                    return Err(std::io::Error::other(format!(
                        "{}: bad Content-Range {:?} for a resume at byte {}",
                        self.path.trim_start_matches('/'),
                        r.header("Content-Range"),
                        self.got
                    )));
                }
                self.reader = Some(r.into_reader());
            }
            Ok(r) => {
                self.skip = self.got;
                self.reader = Some(r.into_reader());
            }
            Err(e) => self.last = Some(e.to_string()),
        }
        Ok(())
    }
}

impl Read for Resuming<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(r) = self.reader.as_mut() else {
                let why = self.last.take().unwrap_or_default();
                self.resume(why)?;
                continue;
            };
            let res = if self.skip > 0 {
                let n = buf.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                match r.read(&mut buf[..n]) {
                    Ok(0) => Ok(0),
                    Ok(k) => {
                        self.skip -= k as u64;
                        continue;
                    }
                    Err(e) => Err(e),
                }
            } else {
                r.read(buf)
            };
            match res {
                Ok(0) if self.skip == 0 && self.got >= self.size => return Ok(0),
                Ok(0) => {
                    let why = format!("connection closed after {} of {} bytes", self.got, self.size);
                    self.resume(why)?;
                }
                Ok(n) => {
                    self.got += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(e),
                Err(e) => self.resume(format!("{e} after {} of {} bytes", self.got, self.size))?,
            }
        }
    }
}

/// Pulls `name` into `store` (blobs only; the caller names it). `progress`
/// gets one line per step.
pub fn pull(
    store: &Store,
    name: &RegistryName,
    opts: &PullOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ResolvedImage, RegistryError> {
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let mut s = Session::new(name, opts)?;
    let reference = match &name.reference {
        TagOrDigest::Tag(t) => t.clone(),
        TagOrDigest::Digest(d) => d.to_string(),
    };
    progress(&format!("pulling {name}"));
    let (mut bytes, mut mt, mut digest) = s.manifest(&reference, None)?;
    let mut indexes = Vec::new();
    while oci::is_index_media_type(&mt) {
        if indexes.len() >= MAX_INDEX_DEPTH {
            return Err(RegistryError::Invalid(format!("image indexes nest deeper than {MAX_INDEX_DEPTH} levels")));
        }
        let idx: ImageIndex = layout::parse_json(&format!("image index {digest}"), &bytes)?;
        let next = layout::pick_platform(&idx, &platform)?.clone();
        indexes.push((Descriptor::new(&mt, digest.clone(), bytes.len() as u64), bytes));
        (bytes, mt, digest) = s.manifest(&next.digest.to_string(), Some(&next))?;
        mt = if oci::is_manifest_media_type(&next.media_type) || oci::is_index_media_type(&next.media_type) {
            next.media_type.clone()
        } else {
            mt
        };
    }
    if !oci::is_manifest_media_type(&mt) {
        return Err(RegistryError::Invalid(format!(
            "{name}: unsupported manifest media type {mt:?} (schema 1 manifests are not supported)"
        )));
    }
    let desc = Descriptor::new(&mt, digest.clone(), bytes.len() as u64);
    let manifest: ImageManifest = layout::parse_json(&format!("image manifest {digest}"), &bytes)?;
    layout::check_manifest(&manifest, &desc)?;
    if manifest.config.size > MAX_CONFIG_SIZE {
        return Err(RegistryError::Invalid(format!("config {} too large", manifest.config.digest)));
    }
    s.blob(store, &manifest.config)?;
    let config_bytes = store.read_bytes(&manifest.config.digest, MAX_CONFIG_SIZE)?;
    let config: ImageConfiguration =
        layout::parse_json(&format!("image config {}", manifest.config.digest), &config_bytes)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(RegistryError::Invalid(format!(
            "image config lists {} diff_ids for {} layers",
            config.rootfs.diff_ids.len(),
            manifest.layers.len()
        )));
    }
    if config.os != platform.os || config.architecture != platform.architecture {
        return Err(RegistryError::Invalid(format!(
            "{name} is for {}/{}, not {platform} (use --platform)",
            config.os, config.architecture
        )));
    }
    let n = manifest.layers.len();
    let mut missing: Vec<(&Descriptor, Option<indicatif::ProgressBar>)> = Vec::new();
    for (i, l) in manifest.layers.iter().enumerate() {
        if store.has(&l.digest) {
            progress(&format!("layer {}/{n} {} already present", i + 1, l.digest));
        } else if !missing.iter().any(|(m, _)| m.digest == l.digest) {
            progress(&format!("downloading layer {}/{n} {} ({} bytes)", i + 1, l.digest, l.size));
            missing.push((l, crate::progress::layer("download", i + 1, n, &l.digest, l.size)));
        }
    }
    // Layers download in parallel (a few connections, each with its own
    // session: the token obtained above is shared by cloning).
    let t = std::time::Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = missing.len().min(PARALLEL_DOWNLOADS);
    let errors: Vec<RegistryError> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let mut ws = s.clone();
                let (next, missing) = (&next, &missing);
                sc.spawn(move || {
                    let mut errs = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((l, bar)) = missing.get(k) else { break };
                        if let Err(e) = ws.blob_bar(store, l, bar.clone()) {
                            errs.push(e);
                            // Stop the others early.
                            next.store(missing.len(), std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                    }
                    errs
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec![RegistryError::Invalid("download thread panicked".into())]))
            .collect()
    });
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    if !missing.is_empty() {
        progress(&format!("downloaded {} layer(s) in {:.2}s", missing.len(), t.elapsed().as_secs_f64()));
    }
    for (d, b) in &indexes {
        store.put_bytes(b, Some(&d.digest))?;
    }
    store.put_bytes(&bytes, Some(&digest))?;
    Ok(ResolvedImage { manifest_descriptor: desc, manifest, manifest_bytes: bytes, config, config_bytes, indexes })
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

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
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
fn auth_file_entry(explicit: Option<&PathBuf>, host: &str) -> Option<String> {
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
        assert_eq!(url_host("http://127.0.0.1:5000/v2/x"), Some("127.0.0.1:5000"));
        assert_eq!(resolve_location("http://h/v2/x/blobs/y", "/z").as_deref(), Some("http://h/z"));
        assert_eq!(resolve_location("http://h/v2/x", "https://s3/o?a=b").as_deref(), Some("https://s3/o?a=b"));
        assert_eq!(urlencode("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
        assert_eq!(
            error_detail(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#),
            "MANIFEST_UNKNOWN manifest unknown"
        );
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
