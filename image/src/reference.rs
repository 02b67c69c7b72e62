//! Image references in the transport form of skopeo and podman.
//!
//! - `oci:DIR[:TAG]`: an OCI image layout directory;
//! - `oci-archive:FILE[:TAG]`: the same, packed in a tar;
//! - `docker-archive:FILE[:NAME[:TAG]]`: a `docker save` archive (classic or
//!   Docker 25+); the optional part names one image of a multi-image archive;
//! - `docker://[HOST[:PORT]/]NAME[:TAG|@DIGEST]`: a registry (Docker Hub when
//!   no host is named, as skopeo does);
//! - a bare `NAME[:TAG|@DIGEST]` (or an image id): the local store.
//!
//! Paths in `oci:`, `oci-archive:` and `docker-archive:` end at the first
//! `:` after the transport (skopeo's rule too): a path containing `:` cannot
//! be named this way.

use std::fmt;
use std::path::PathBuf;

use crate::digest::Digest;

/// The default registry for names without a host, and its API host.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API is actually served.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A reference that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    /// The input (truncated to 200 characters).
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

/// A tag or a digest on a registry or local name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagOrDigest {
    /// `:TAG`.
    Tag(String),
    /// `@sha256:...`.
    Digest(Digest),
}

impl fmt::Display for TagOrDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagOrDigest::Tag(t) => write!(f, ":{t}"),
            TagOrDigest::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// A registry image name: `HOST[:PORT]/REPO` plus a tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryName {
    /// `host` or `host:port` (`docker.io` for Docker Hub).
    pub host: String,
    /// The repository path (`library/busybox`).
    pub repo: String,
    /// The tag (default `latest`) or digest.
    pub reference: TagOrDigest,
}

impl RegistryName {
    /// Parses `[HOST[:PORT]/]NAME[:TAG|@DIGEST]` with Docker's defaults
    /// (`docker.io`, `library/`, `:latest`).
    pub fn parse(s: &str) -> Result<RegistryName, ReferenceError> {
        let err = |reason: &str| ReferenceError { input: s.chars().take(200).collect(), reason: reason.to_owned() };
        if s.is_empty() {
            return Err(err("empty name"));
        }
        let (name, reference) = match s.split_once('@') {
            Some((n, d)) => (n, TagOrDigest::Digest(Digest::parse(d).map_err(|e| err(&e.to_string()))?)),
            None => {
                let last_slash = s.rfind('/').map_or(0, |i| i + 1);
                match s[last_slash..].rfind(':') {
                    Some(i) => {
                        let tag = &s[last_slash + i + 1..];
                        check_tag(tag).map_err(|r| err(&r))?;
                        (&s[..last_slash + i], TagOrDigest::Tag(tag.to_owned()))
                    }
                    None => (s, TagOrDigest::Tag("latest".to_owned())),
                }
            }
        };
        let (host, repo) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                check_host(first).map_err(|r| err(&r))?;
                (first.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let repo = if host == DOCKER_HUB && !repo.contains('/') { format!("library/{repo}") } else { repo };
        check_repo(&repo).map_err(|r| err(&r))?;
        Ok(RegistryName { host, repo, reference })
    }

    /// The host to talk to (Docker Hub's API host for `docker.io`).
    pub fn api_host(&self) -> &str {
        if self.host == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.host
        }
    }

    /// Whether plain http is used without `--insecure`: loopback registries.
    pub fn is_loopback(&self) -> bool {
        let h = self.host.rsplit_once(':').map_or(self.host.as_str(), |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                &self.host
            }
        });
        h == "localhost" || h == "127.0.0.1" || h == "[::1]" || h.starts_with("127.")
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        match &self.reference {
            TagOrDigest::Tag(t) => Some(t),
            TagOrDigest::Digest(_) => None,
        }
    }
}

impl fmt::Display for RegistryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.host, self.repo, self.reference)
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `oci:DIR[:TAG]`.
    OciDir {
        /// The layout directory.
        path: PathBuf,
        /// The `org.opencontainers.image.ref.name` to pick (the only image when absent).
        tag: Option<String>,
    },
    /// `oci-archive:FILE[:TAG]`.
    OciArchive {
        /// The tar file.
        path: PathBuf,
        /// As for [`ImageRef::OciDir`].
        tag: Option<String>,
    },
    /// `docker-archive:FILE[:NAME[:TAG]]`.
    DockerArchive {
        /// The archive.
        path: PathBuf,
        /// Which image of the archive (the only one when absent).
        name: Option<String>,
    },
    /// `docker://...`.
    Registry(RegistryName),
    /// A name (or image id) in the local store.
    Local(String),
}

impl ImageRef {
    /// Parses a transport reference.
    pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
        let err = |reason: &str| ReferenceError { input: s.chars().take(200).collect(), reason: reason.to_owned() };
        let path_and_rest = |body: &str, what: &str| -> Result<(PathBuf, Option<String>), ReferenceError> {
            let (p, rest) = match body.split_once(':') {
                Some((p, r)) => (p, Some(r.to_owned())),
                None => (body, None),
            };
            if p.is_empty() {
                return Err(err(&format!("missing the {what} path")));
            }
            if rest.as_deref() == Some("") {
                return Err(err("empty name after ':'"));
            }
            Ok((PathBuf::from(p), rest))
        };
        if let Some(body) = s.strip_prefix("oci:") {
            let (path, tag) = path_and_rest(body, "layout directory")?;
            if let Some(t) = &tag {
                check_oci_tag(t).map_err(|r| err(&r))?;
            }
            return Ok(ImageRef::OciDir { path, tag });
        }
        if let Some(body) = s.strip_prefix("oci-archive:") {
            let (path, tag) = path_and_rest(body, "archive")?;
            if let Some(t) = &tag {
                check_oci_tag(t).map_err(|r| err(&r))?;
            }
            return Ok(ImageRef::OciArchive { path, tag });
        }
        if let Some(body) = s.strip_prefix("docker-archive:") {
            let (path, name) = path_and_rest(body, "archive")?;
            if let Some(n) = &name {
                RegistryName::parse(n)?;
            }
            return Ok(ImageRef::DockerArchive { path, name });
        }
        if let Some(body) = s.strip_prefix("docker://") {
            return Ok(ImageRef::Registry(RegistryName::parse(body)?));
        }
        if let Some((t, _)) = s.split_once(':') {
            if !t.is_empty() && !t.contains('/') && !t.contains('.') && t != "localhost" && looks_like_transport(s) {
                return Err(err(&format!(
                    "unknown transport {t:?} (use oci:, oci-archive:, docker-archive:, docker:// or a local name)"
                )));
            }
        }
        if s.is_empty() {
            return Err(err("empty reference"));
        }
        if s.starts_with('/') || s.starts_with("./") || s.starts_with("../") {
            return Err(err("a path needs a transport: oci:DIR, oci-archive:FILE or docker-archive:FILE"));
        }
        // A local name: must at least parse like a registry name (or be an id).
        if !is_id_prefix(s) {
            RegistryName::parse(s)?;
        }
        Ok(ImageRef::Local(s.to_owned()))
    }

    /// Whether the image must be imported (not already in the local store).
    pub fn is_local(&self) -> bool {
        matches!(self, ImageRef::Local(_))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |o: &Option<String>| o.as_ref().map(|t| format!(":{t}")).unwrap_or_default();
        match self {
            ImageRef::OciDir { path, tag } => write!(f, "oci:{}{}", path.display(), opt(tag)),
            ImageRef::OciArchive { path, tag } => write!(f, "oci-archive:{}{}", path.display(), opt(tag)),
            ImageRef::DockerArchive { path, name } => write!(f, "docker-archive:{}{}", path.display(), opt(name)),
            ImageRef::Registry(r) => write!(f, "docker://{r}"),
            ImageRef::Local(n) => f.write_str(n),
        }
    }
}

/// `name:tag` where `name` is not a path and `tag` is all-digits (a port)
/// or looks like a registry name is a local name; `foo:bar/baz` is not.
fn looks_like_transport(s: &str) -> bool {
    let (t, rest) = s.split_once(':').unwrap_or((s, ""));
    // `busybox:1.36` is a name with a tag, `myhost:5000/x` a host with a port;
    // `dir:/tmp/x`, `containers-storage:x/y` are transports.
    let port = rest.split('/').next().is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    t.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') && (rest.contains('/') || rest.is_empty()) && !port
}

/// Whether `s` is (a prefix of) an image id: 12 to 64 lowercase hex digits,
/// optionally `sha256:`-prefixed.
pub fn is_id_prefix(s: &str) -> bool {
    let h = s.strip_prefix("sha256:").unwrap_or(s);
    (12..=64).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(t: &str) -> Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("bad tag {t:?} (letters, digits, '_', '.', '-'; at most 128)"))
    }
}

/// An OCI layout's `ref.name`: printable, no `/` restriction, at most 255.
fn check_oci_tag(t: &str) -> Result<(), String> {
    if t.len() > 255 || t.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!("bad tag {t:?}"));
    }
    Ok(())
}

fn check_host(h: &str) -> Result<(), String> {
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(':') && !h.ends_with(']') => (n, Some(p)),
        _ => (h, None),
    };
    let ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        && port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(format!("bad registry host {h:?}"))
    }
}

/// Repository path components: lowercase alphanumerics separated by `.`, `_`,
/// `__`, or `-`; components joined by `/`.
fn check_repo(r: &str) -> Result<(), String> {
    for c in r.split('/') {
        let ok = !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
        if !ok {
            return Err(format!("bad repository name {r:?} (lowercase letters, digits and . _ - separated by /)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn transports() {
        assert_eq!(p("oci:/tmp/img"), ImageRef::OciDir { path: "/tmp/img".into(), tag: None });
        assert_eq!(p("oci:/tmp/img:v1"), ImageRef::OciDir { path: "/tmp/img".into(), tag: Some("v1".into()) });
        assert_eq!(
            p("oci-archive:x.tar:latest"),
            ImageRef::OciArchive { path: "x.tar".into(), tag: Some("latest".into()) }
        );
        assert_eq!(p("docker-archive:/a.tar"), ImageRef::DockerArchive { path: "/a.tar".into(), name: None });
        assert_eq!(
            p("docker-archive:/a.tar:busybox:1.36"),
            ImageRef::DockerArchive { path: "/a.tar".into(), name: Some("busybox:1.36".into()) }
        );
        assert_eq!(p("busybox"), ImageRef::Local("busybox".into()));
        assert_eq!(p("busybox:1.36"), ImageRef::Local("busybox:1.36".into()));
        assert_eq!(p("127.0.0.1:5000/x:y"), ImageRef::Local("127.0.0.1:5000/x:y".into()));
        assert_eq!(p("myhost:5000/x"), ImageRef::Local("myhost:5000/x".into()));
        assert_eq!(p("0123456789ab"), ImageRef::Local("0123456789ab".into()));
        assert_eq!(p("oci:/tmp/img:v1").to_string(), "oci:/tmp/img:v1");
    }

    #[test]
    fn registry_names() {
        let ImageRef::Registry(r) = p("docker://127.0.0.1:5000/busybox:v2s2") else { panic!() };
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repo, "busybox");
        assert_eq!(r.reference, TagOrDigest::Tag("v2s2".into()));
        assert!(r.is_loopback());
        assert_eq!(r.to_string(), "127.0.0.1:5000/busybox:v2s2");
        let ImageRef::Registry(r) = p("docker://busybox") else { panic!() };
        assert_eq!((r.host.as_str(), r.repo.as_str(), r.tag()), ("docker.io", "library/busybox", Some("latest")));
        assert_eq!(r.api_host(), DOCKER_HUB_API);
        assert!(!r.is_loopback());
        let d = format!("sha256:{}", "a".repeat(64));
        let ImageRef::Registry(r) = p(&format!("docker://localhost/a/b@{d}")) else { panic!() };
        assert_eq!((r.host.as_str(), r.repo.as_str()), ("localhost", "a/b"));
        assert_eq!(r.reference, TagOrDigest::Digest(Digest::parse(&d).unwrap()));
        let ImageRef::Registry(r) = p("docker://quay.io:443/org/app:1.0") else { panic!() };
        assert_eq!((r.host.as_str(), r.repo.as_str(), r.tag()), ("quay.io:443", "org/app", Some("1.0")));
        assert!(!r.is_loopback());
    }

    #[test]
    fn errors() {
        for bad in [
            "",
            "oci:",
            "oci::tag",
            "oci:/x:",
            "docker-archive:",
            "docker://",
            "docker://Busybox",
            "docker://busybox:",
            "docker://busybox:bad/tag",
            "docker://x@sha256:1234",
            "docker://host.io/UPPER",
            "docker://a//b",
            "dir:/tmp/x",
            "containers-storage:/x",
            "/tmp/layout",
            "./layout",
            "name with space",
        ] {
            let e = ImageRef::parse(bad).err().unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(e.to_string().starts_with("invalid image reference"), "{e}");
        }
        let e = ImageRef::parse("dir:/tmp/x").unwrap_err();
        assert!(e.reason.contains("unknown transport \"dir\""), "{e}");
    }
}
