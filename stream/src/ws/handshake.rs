//! The server side of the websocket opening handshake (RFC 6455 section 4.2): the accept key
//! (SHA-1 of the client's key and the protocol GUID, in base64) and subprotocol choice.

use base64::Engine;

use crate::http::Request;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why an upgrade to websocket was refused, with the HTTP status to answer.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

/// Checks the handshake headers and picks the subprotocol: the first the client offers that
/// `supported` lists (the client's preference wins, as in kubelet's wsstream); "" when the
/// client offers none and "" is supported. Returns the accept key and the protocol.
pub fn accept(req: &Request, supported: &[&str]) -> Result<(String, String), Refusal> {
    let bad = |message: &str| Refusal { status: 400, message: message.to_string() };
    if req.method != "GET" {
        return Err(bad("websocket upgrades must be GET requests"));
    }
    let key = req.header("sec-websocket-key").map(str::trim).ok_or_else(|| bad("missing Sec-WebSocket-Key"))?;
    if base64::engine::general_purpose::STANDARD.decode(key).map(|k| k.len()) != Ok(16) {
        return Err(bad("malformed Sec-WebSocket-Key"));
    }
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(Refusal { status: 426, message: "unsupported websocket version (13 is)".into() });
    }
    let offered = req.header_tokens("sec-websocket-protocol");
    let chosen = if offered.is_empty() {
        supported.contains(&"").then(String::new)
    } else {
        offered.iter().find(|p| supported.contains(&p.as_str())).cloned()
    };
    let Some(protocol) = chosen else {
        return Err(Refusal {
            status: 403,
            message: format!("requested protocol(s) are not supported: {offered:?}; supports {supported:?}"),
        });
    };
    Ok((accept_key(key), protocol))
}

/// base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1(&input))
}

/// SHA-1 (FIPS 180-4). Only the handshake uses it: no secrecy rests on it.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476, 0xc3d2_e1f0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5a82_7999),
                20..=39 => (b ^ c ^ d, 0x6ed9_eba1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8f1b_bcdc),
                _ => (b ^ c ^ d, 0xca62_c1d6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_rfc_6455() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn sha1_known_answers() {
        let hex = |b: [u8; 20]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex(sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(sha1(long)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    }

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/exec/t".into(),
            query: String::new(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn the_clients_preferred_supported_protocol_wins() {
        let base = [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")];
        let with = |p: &str| {
            let mut h = base.to_vec();
            h.push(("Sec-WebSocket-Protocol", p));
            request(&h)
        };
        let supported = ["v5.channel.k8s.io", "v4.channel.k8s.io", ""];
        let (key, proto) = accept(&with("v5.channel.k8s.io, v4.channel.k8s.io"), &supported).unwrap();
        assert_eq!((key.as_str(), proto.as_str()), ("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "v5.channel.k8s.io"));
        assert_eq!(accept(&with("v3.channel.k8s.io,v4.channel.k8s.io"), &supported).unwrap().1, "v4.channel.k8s.io");
        assert_eq!(accept(&request(&base), &supported).unwrap().1, "");
        assert_eq!(accept(&with("v9.channel.k8s.io"), &supported).unwrap_err().status, 403);
        assert_eq!(accept(&request(&base[..1]), &supported).unwrap_err().status, 426);
        assert_eq!(accept(&request(&[("Sec-WebSocket-Version", "13")]), &supported).unwrap_err().status, 400);
    }
}
