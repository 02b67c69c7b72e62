//! The little HTTP/1.1 this server needs: one request head per connection (every useful
//! request is an upgrade), parsed with httparse, and short plain-text error responses.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head accepted (kubelet's clients send well under 2 KiB).
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Header names as sent; look them up with [`Request::header`].
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// Every value of `name` (case-insensitive), one per header line.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The first value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every comma-separated token of every `name` line, trimmed, empty ones skipped.
    pub fn header_tokens(&self, name: &str) -> Vec<String> {
        self.header_all(name)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    }

    /// Whether `Connection` lists `upgrade` and `Upgrade` names `proto` (case-insensitive).
    pub fn is_upgrade_to(&self, proto: &str) -> bool {
        self.header_tokens("connection").iter().any(|t| t.eq_ignore_ascii_case("upgrade"))
            && self.header_tokens("upgrade").iter().any(|t| t.eq_ignore_ascii_case(proto))
    }

    /// Every value of query parameter `name` (percent-decoding is not needed for the numbers
    /// and flags this server reads).
    pub fn query_all(&self, name: &str) -> Vec<String> {
        self.query
            .split('&')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == name).then(|| v.to_string())
            })
            .collect()
    }
}

/// Why a request head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("reading the request: {0}")]
    Io(#[from] io::Error),
    #[error("the client closed the connection before a full request head")]
    Eof,
    #[error("request head larger than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    #[error("no request head within {0:?}")]
    Timeout(Duration),
}

/// Reads one request head; returns it and the bytes read past it (the start of the upgraded
/// protocol, if the client did not wait for our answer).
pub async fn read_head<R: AsyncRead + Unpin>(r: &mut R, timeout: Duration) -> Result<(Request, Vec<u8>), HeadError> {
    tokio::time::timeout(timeout, read_head_inner(r)).await.map_err(|_| HeadError::Timeout(timeout))?
}

async fn read_head_inner<R: AsyncRead + Unpin>(r: &mut R) -> Result<(Request, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(2048);
    loop {
        let mut chunk = [0u8; 2048];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(HeadError::Eof);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(parsed) = parse_head(&buf)? {
            return Ok(parsed);
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Parses a request head from `buf`: `None` if incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, Vec<u8>)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf).map_err(HeadError::Malformed)? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(len) => {
            let target = req.path.unwrap_or("/");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let request = Request {
                method: req.method.unwrap_or("").to_string(),
                path: path.to_string(),
                query: query.to_string(),
                headers: req
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect(),
            };
            Ok(Some((request, buf[len..].to_vec())))
        }
    }
}

/// Writes a complete plain-text response and shuts the write side down (the connection is
/// not reused).
pub async fn respond<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    extra_headers: &[(&str, &str)],
    body: &str,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(body);
    w.write_all(head.as_bytes()).await?;
    w.flush().await?;
    w.shutdown().await
}

/// Writes the `101 Switching Protocols` head of an upgrade.
pub async fn switch_protocols<W: AsyncWrite + Unpin>(w: &mut W, headers: &[(&str, &str)]) -> io::Result<()> {
    let mut head = String::from("HTTP/1.1 101 Switching Protocols\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes()).await?;
    w.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_upgrade_request_and_keeps_what_follows() {
        let raw = b"POST /exec/abc?x=1&port=80&port=81 HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: v3.channel.k8s.io, v2.channel.k8s.io\r\n\r\n\x80\x03";
        let (req, rest) = parse_head(raw).unwrap().unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/exec/abc");
        assert_eq!(req.query_all("port"), ["80", "81"]);
        assert!(req.is_upgrade_to("spdy/3.1"));
        assert!(!req.is_upgrade_to("websocket"));
        assert_eq!(
            req.header_tokens("x-stream-protocol-version"),
            ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io"]
        );
        assert_eq!(rest, b"\x80\x03");
    }

    #[test]
    fn incomplete_and_malformed_heads() {
        assert!(parse_head(b"GET /exec/abc HTTP/1.1\r\nHost: h\r\n").unwrap().is_none());
        assert!(parse_head(b"GET /exec/abc HTTP/1.1\r\nHo st: h\r\n\r\n").is_err());
        assert!(parse_head(b"\x00\x01garbage\r\n\r\n").is_err());
    }

    #[test]
    fn random_bytes_never_panic_the_parser() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            let mut buf = b"GET /exec/t HTTP/1.1\r\n".to_vec();
            for _ in 0..(x % 300) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(if x % 5 == 1 { b'\n' } else { x as u8 });
            }
            buf.extend_from_slice(b"\r\n\r\n");
            let _ = parse_head(&buf);
        }
    }
}
