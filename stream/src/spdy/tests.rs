//! Frame codec tests: frames written by Go's spdystream framer, round trips, and a randomized
//! check that no input makes the parser panic.

use super::frame::{decode_buffer, encode, goaway, rst, Frame, FLAG_FIN};
use super::zlib::{HeaderCompressor, HeaderDecompressor, Headers};

/// Frames written by github.com/moby/spdystream/spdy's Framer (Go 1.19, Debian's
/// golang-github-docker-spdystream-dev 0.2.0), one framer for all, in this order:
/// SYN_STREAM 1 {streamType: error}, SYN_STREAM 3 {streamType: stdin}, SYN_STREAM 5 FIN
/// {streamType: data, port: 8080, requestID: 0}, SYN_REPLY 1 {}, DATA 3 FIN "hello", PING 1,
/// RST_STREAM 3 CANCEL, GOAWAY 5 OK, WINDOW_UPDATE 1 +1000, SETTINGS {flag 1, id 7: 65536},
/// HEADERS 1 {streamType: error}.
const GO_FRAMES: &str = "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff800300010000001700000003000000000000c22e555c92929907000000ffff800300010100002f0000000500000000000002255548a95d04ce20160616060c0c0c9c459058ce04a57e46030ccda0222a11000000ffff800300020000000e000000016260606000000000ffff000000030100000568656c6c6f8003000600000004000000018003000300000008000000030000000580030007000000080000000500000000800300090000000800000001000003e8800300040000000c000000010100000700010000800300080000000c00000001c2632b000000ffff";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    Headers(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn sorted(mut h: Headers) -> Headers {
    h.0.sort();
    h
}

#[test]
fn decodes_frames_written_by_go_spdystream() {
    let bytes = unhex(GO_FRAMES);
    let mut inflate = HeaderDecompressor::new();
    let (frames, used) = decode_buffer(&bytes, &mut inflate).unwrap();
    assert_eq!(used, bytes.len());
    let mut frames = frames.into_iter();
    let syn = |f: Option<Frame>| match f {
        Some(Frame::SynStream { stream_id, flags, headers, .. }) => (stream_id, flags, sorted(headers)),
        other => panic!("expected SYN_STREAM, got {other:?}"),
    };
    assert_eq!(syn(frames.next()), (1, 0, headers(&[("streamtype", "error")])));
    assert_eq!(syn(frames.next()), (3, 0, headers(&[("streamtype", "stdin")])));
    assert_eq!(
        syn(frames.next()),
        (5, FLAG_FIN, headers(&[("port", "8080"), ("requestid", "0"), ("streamtype", "data")]))
    );
    assert_eq!(frames.next(), Some(Frame::SynReply { stream_id: 1, flags: 0, headers: Headers::default() }));
    assert_eq!(frames.next(), Some(Frame::Data { stream_id: 3, flags: FLAG_FIN, data: b"hello".to_vec() }));
    assert_eq!(frames.next(), Some(Frame::Ping { id: 1 }));
    assert_eq!(frames.next(), Some(Frame::RstStream { stream_id: 3, status: rst::CANCEL }));
    assert_eq!(frames.next(), Some(Frame::GoAway { last_good_stream_id: 5, status: goaway::OK }));
    assert_eq!(frames.next(), Some(Frame::WindowUpdate { stream_id: 1, delta: 1000 }));
    assert_eq!(frames.next(), Some(Frame::Settings { flags: 0, entries: vec![(1, 7, 65536)] }));
    assert_eq!(
        frames.next(),
        Some(Frame::Headers { stream_id: 1, flags: 0, headers: headers(&[("streamtype", "error")]) })
    );
    assert_eq!(frames.next(), None);
}

#[test]
fn encodes_control_frames_byte_for_byte_as_go() {
    // Frames without header blocks have one encoding: compare with Go's bytes.
    let go = unhex(GO_FRAMES);
    let mut deflate = HeaderCompressor::new();
    let mut out = Vec::new();
    for f in [
        Frame::Data { stream_id: 3, flags: FLAG_FIN, data: b"hello".to_vec() },
        Frame::Ping { id: 1 },
        Frame::RstStream { stream_id: 3, status: rst::CANCEL },
        Frame::GoAway { last_good_stream_id: 5, status: goaway::OK },
        Frame::WindowUpdate { stream_id: 1, delta: 1000 },
        Frame::Settings { flags: 0, entries: vec![(1, 7, 65536)] },
    ] {
        encode(&f, &mut deflate, &mut out);
    }
    let start = go.windows(out.len().min(13)).position(|w| w == &out[..13]).expect("Go's DATA frame");
    assert_eq!(&go[start..start + out.len()], &out[..]);
}

#[test]
fn header_blocks_use_the_spdy_dictionary_and_sync_flush() {
    let mut deflate = HeaderCompressor::new();
    let block = deflate.compress(&headers(&[("streamtype", "error")]));
    // zlib header with FDICT, then the dictionary's Adler-32 (what Go writes: 78 f9 e3c6a7c2).
    assert_eq!(block[0], 0x78);
    assert_ne!(block[1] & 0x20, 0, "FDICT set");
    assert_eq!(&block[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
    assert_eq!(&block[block.len() - 4..], &[0, 0, 0xff, 0xff], "ends with a sync flush");
    let second = deflate.compress(&Headers::default());
    assert_eq!(&second[second.len() - 4..], &[0, 0, 0xff, 0xff]);
}

#[test]
fn frames_round_trip_through_one_compression_context() {
    let frames = vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 3,
            slot: 0,
            flags: 0,
            headers: headers(&[("streamtype", "error"), ("port", "80")]),
        },
        Frame::SynReply { stream_id: 1, flags: 0, headers: Headers::default() },
        Frame::SynStream {
            stream_id: 3,
            associated_to: 1,
            priority: 7,
            slot: 2,
            flags: FLAG_FIN,
            headers: headers(&[("x", "a"), ("x", "b"), ("y", "")]),
        },
        Frame::Headers { stream_id: 3, flags: FLAG_FIN, headers: headers(&[("streamtype", "stdout")]) },
        Frame::Data { stream_id: 3, flags: 0, data: vec![0; 70_000] },
        Frame::Data { stream_id: 5, flags: FLAG_FIN, data: Vec::new() },
        Frame::RstStream { stream_id: 7, status: rst::PROTOCOL_ERROR },
        Frame::Settings { flags: 1, entries: vec![(0, 4, 100), (1, 7, 1 << 20)] },
        Frame::Ping { id: 0xffff_fff1 },
        Frame::GoAway { last_good_stream_id: 9, status: goaway::PROTOCOL_ERROR },
        Frame::WindowUpdate { stream_id: 3, delta: 0x7fff_ffff },
    ];
    let mut deflate = HeaderCompressor::new();
    let mut wire = Vec::new();
    for f in &frames {
        encode(f, &mut deflate, &mut wire);
    }
    let mut inflate = HeaderDecompressor::new();
    let (decoded, used) = decode_buffer(&wire, &mut inflate).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(decoded, frames);
    // An incomplete tail is left for later.
    let (partial, used) = decode_buffer(&wire[..wire.len() - 3], &mut HeaderDecompressor::new()).unwrap();
    assert_eq!(partial.len(), frames.len() - 1);
    assert!(used < wire.len());
}

#[test]
fn malformed_frames_are_errors() {
    let mut inflate = HeaderDecompressor::new();
    // Version 2 control frame.
    assert!(decode_buffer(&unhex("800200060000000400000001"), &mut inflate).is_err());
    // RST_STREAM of length 4.
    assert!(decode_buffer(&unhex("800300030000000400000001"), &mut inflate).is_err());
    // Data on stream 0.
    assert!(decode_buffer(&unhex("0000000000000001ff"), &mut inflate).is_err());
    // A SYN_STREAM whose header block is not zlib.
    assert!(decode_buffer(&unhex("80030001000000100000000100000000000000000000ffff"), &mut HeaderDecompressor::new())
        .is_err());
    // SETTINGS whose count does not match its length.
    assert!(decode_buffer(&unhex("800300040000000c000000020100000700010000"), &mut inflate).is_err());
    // Unknown control frame types are skipped, not errors.
    let (f, _) = decode_buffer(&unhex("8003000a00000002abcd"), &mut inflate).unwrap();
    assert_eq!(f, vec![Frame::Unknown { frame_type: 10 }]);
}

/// xorshift64*: a fixed-seed generator so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let valid = unhex(GO_FRAMES);
    for round in 0..20_000 {
        let input: Vec<u8> = if round % 2 == 0 {
            // Go's frames with a few bytes changed, cut or duplicated.
            let mut v = valid.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(v.len());
                match rng.below(3) {
                    0 => v[i] = rng.next() as u8,
                    1 => v.truncate(i),
                    _ => {
                        let b = v[i];
                        v.insert(i, b)
                    }
                }
                if v.is_empty() {
                    break;
                }
            }
            v
        } else {
            // Random frames: a plausible head (control or data, small length) and random body.
            let mut v = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let len = rng.below(64);
                let control = rng.below(2) == 0;
                let word: u32 =
                    if control { 0x8003_0000 | rng.below(12) as u32 } else { rng.next() as u32 & 0x7fff_ffff };
                v.extend_from_slice(&word.to_be_bytes());
                v.extend_from_slice(&((rng.below(4) as u32) << 24 | len as u32).to_be_bytes());
                v.extend((0..len).map(|_| rng.next() as u8));
            }
            v
        };
        let mut inflate = HeaderDecompressor::new();
        let _ = decode_buffer(&input, &mut inflate);
        let _ = Headers::decode(&input);
    }
}
