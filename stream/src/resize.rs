//! Terminal resizes as clients send them: a stream of JSON objects `{"Width":W,"Height":H}`
//! (Go's json.Encoder output, one per line; field names matched case-insensitively as Go's
//! decoder does).

use crate::TermSize;

/// Decodes resize events from arbitrarily split input.
#[derive(Default)]
pub struct ResizeDecoder {
    buf: Vec<u8>,
    failed: bool,
}

/// Largest partial object kept while waiting for its end.
const MAX_PENDING: usize = 4096;

impl ResizeDecoder {
    /// Feeds bytes; returns the sizes completed by them. After malformed input the decoder
    /// stops, as kubelet's does (its decoder loop ends at the first error).
    pub fn push(&mut self, data: &[u8]) -> Vec<TermSize> {
        let mut sizes = Vec::new();
        if self.failed {
            return sizes;
        }
        self.buf.extend_from_slice(data);
        let mut used = 0;
        {
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
            loop {
                match it.next() {
                    None => {
                        used = self.buf.len();
                        break;
                    }
                    Some(Ok(v)) => {
                        used = it.byte_offset();
                        match size_of(&v) {
                            Some(s) => sizes.push(s),
                            None => {
                                self.failed = true;
                                break;
                            }
                        }
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(_)) => {
                        self.failed = true;
                        break;
                    }
                }
            }
        }
        self.buf.drain(..used);
        if self.buf.len() > MAX_PENDING {
            self.failed = true;
        }
        if self.failed {
            self.buf = Vec::new();
        }
        sizes
    }
}

fn size_of(v: &serde_json::Value) -> Option<TermSize> {
    let obj = v.as_object()?;
    let field = |name: &str| -> Option<u16> {
        match obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            None => Some(0),
            Some((_, v)) => v.as_u64().and_then(|n| u16::try_from(n).ok()),
        }
    };
    Some(TermSize { width: field("width")?, height: field("height")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_split_and_joined_objects() {
        let mut d = ResizeDecoder::default();
        assert_eq!(d.push(b"{\"Width\":80,"), vec![]);
        assert_eq!(
            d.push(b"\"Height\":24}\n{\"width\":100,\"height\":40}\n{\"Wid"),
            vec![TermSize { width: 80, height: 24 }, TermSize { width: 100, height: 40 }]
        );
        assert_eq!(d.push(b"th\":1,\"Height\":2}\n"), vec![TermSize { width: 1, height: 2 }]);
    }

    #[test]
    fn stops_at_malformed_input() {
        let mut d = ResizeDecoder::default();
        assert_eq!(d.push(b"{\"Width\":70000,\"Height\":1}"), vec![]);
        assert_eq!(d.push(b"{\"Width\":1,\"Height\":1}"), vec![]);
        let mut d = ResizeDecoder::default();
        assert_eq!(d.push(b"]]"), vec![]);
        assert_eq!(d.push(b"{\"Width\":1,\"Height\":1}"), vec![]);
    }
}
