//! Helpers of the opening handshake (`wsproto.utilities` in Python): the
//! client's nonce, the server's accept token, and comma-separated header
//! lists.

use super::body::{is_chunked, parse_length};
use crate::extension::{is_extension_list, is_token};
use crate::fields::Source;
use crate::list::{has_token, list, trim_ows, trim_ows_bytes};
use crate::random::RandomSource;

/// The GUID a server appends to the client's key before hashing it
/// (RFC 6455 §1.3).
///
/// ```
/// use wsproto_core::handshake::WEBSOCKET_GUID;
/// assert_eq!(WEBSOCKET_GUID.len(), 36);
/// ```
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The protocol version of RFC 6455, sent in `Sec-WebSocket-Version`.
///
/// ```
/// assert_eq!(wsproto_core::handshake::WEBSOCKET_VERSION, "13");
/// ```
pub const WEBSOCKET_VERSION: &str = "13";

/// A fresh `Sec-WebSocket-Key`: 16 bytes from `rng`, base64-encoded into 24
/// ASCII bytes (RFC 6455 §4.1).
///
/// ```
/// use wsproto_core::handshake::generate_nonce;
/// let mut rng = |dest: &mut [u8]| dest.copy_from_slice(b"the sample nonce");
/// assert_eq!(&generate_nonce(&mut rng), b"dGhlIHNhbXBsZSBub25jZQ==");
/// ```
#[must_use]
pub fn generate_nonce<R: RandomSource + ?Sized>(rng: &mut R) -> [u8; 24] {
    let mut raw = [0u8; 16];
    rng.fill(&mut raw);
    let mut nonce = [0u8; 24];
    base64_encode(&raw, &mut nonce);
    nonce
}

/// The `Sec-WebSocket-Accept` value answering the client's
/// `Sec-WebSocket-Key`: the base64 of the SHA-1 of the key followed by
/// [`WEBSOCKET_GUID`] (RFC 6455 §1.3, §4.2.2).
///
/// `key` is the header value as sent (the base64 text, not the decoded
/// bytes).
///
/// ```
/// use wsproto_core::handshake::generate_accept_token;
/// // The example of RFC 6455 §1.3.
/// let token = generate_accept_token(b"dGhlIHNhbXBsZSBub25jZQ==");
/// assert_eq!(&token, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
#[must_use]
pub fn generate_accept_token(key: &[u8]) -> [u8; 28] {
    let digest = sha1(key, WEBSOCKET_GUID.as_bytes());
    let mut token = [0u8; 28];
    base64_encode(&digest, &mut token);
    token
}

/// The elements of a comma-separated header value, such as
/// `Connection: keep-alive, Upgrade`, with surrounding spaces and tabs
/// trimmed and empty elements skipped (RFC 7230 §7).
///
/// A comma inside a quoted-string does not split, so the function also walks
/// `Sec-WebSocket-Extensions` values, whose parameters may be quoted.
///
/// ```
/// use wsproto_core::handshake::split_comma_header;
/// let tokens: Vec<&str> = split_comma_header(" keep-alive ,, Upgrade").collect();
/// assert_eq!(tokens, ["keep-alive", "Upgrade"]);
/// let offers: Vec<&str> = split_comma_header("x; a=\"1,2\", y").collect();
/// assert_eq!(offers, ["x; a=\"1,2\"", "y"]);
/// ```
pub fn split_comma_header(value: &str) -> impl Iterator<Item = &str> + '_ {
    crate::list::list(value)
}

/// A header the handshake checks itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Host,
    Upgrade,
    Connection,
    Key,
    Version,
    Accept,
    Protocol,
    Extensions,
    ContentLength,
    TransferEncoding,
}

/// The names of the [`Field`]s, compared ASCII case-insensitively.
const FIELDS: [(&str, Field); 10] = [
    ("host", Field::Host),
    ("upgrade", Field::Upgrade),
    ("connection", Field::Connection),
    ("sec-websocket-key", Field::Key),
    ("sec-websocket-version", Field::Version),
    ("sec-websocket-accept", Field::Accept),
    ("sec-websocket-protocol", Field::Protocol),
    ("sec-websocket-extensions", Field::Extensions),
    ("content-length", Field::ContentLength),
    ("transfer-encoding", Field::TransferEncoding),
];

/// Which checked header `name` is, if any: one table lookup instead of a
/// comparison per name at each call site.
pub(crate) fn field(name: &str) -> Option<Field> {
    FIELDS
        .iter()
        .find(|(known, _)| name.eq_ignore_ascii_case(known))
        .map(|&(_, field)| field)
}

/// What one pass over the headers of a head found: the facts the checks of
/// either side, and the framing of a refusal body, are decided from. One
/// pass serves them all, so the header loop exists once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadScan<'a> {
    /// `Host` headers, and the last one's value, trimmed (empty if it is
    /// not UTF-8).
    pub(crate) hosts: usize,
    pub(crate) host: &'a str,
    /// Whether an `Upgrade` header contains `websocket`.
    pub(crate) upgrade: bool,
    /// Whether a `Connection` header contains `upgrade`.
    pub(crate) connection: bool,
    /// `Sec-WebSocket-Key` headers, and the last one's value, trimmed.
    pub(crate) keys: usize,
    pub(crate) key: &'a [u8],
    /// `Sec-WebSocket-Accept` headers, and the last one's value, trimmed.
    pub(crate) accepts: usize,
    pub(crate) accept: &'a [u8],
    /// Whether every `Sec-WebSocket-Version` is 13; `None` if there is none.
    pub(crate) version: Option<bool>,
    /// `Sec-WebSocket-Protocol` headers, and the last one's value, trimmed
    /// (empty if it is not UTF-8).
    pub(crate) protocols: usize,
    pub(crate) protocol: &'a str,
    /// Whether a `Sec-WebSocket-Extensions` value is not UTF-8.
    pub(crate) extensions_not_utf8: bool,
    /// The first header, in order, that makes an opening request invalid
    /// (RFC 6455 §4.2.1): the reason to refuse it with 400.
    pub(crate) request_error: Option<&'static str>,
    /// Whether the final coding of the last `Transfer-Encoding` is chunked;
    /// `None` without one.
    pub(crate) chunked: Option<bool>,
    /// The `Content-Length`, or the first reason it is unusable.
    pub(crate) length: Result<Option<u64>, &'static str>,
}

impl<'a> HeadScan<'a> {
    /// Reads the headers of `source` once.
    pub(crate) fn of(source: Source<'a>) -> Self {
        let mut scan = HeadScan {
            hosts: 0,
            host: "",
            upgrade: false,
            connection: false,
            keys: 0,
            key: b"",
            accepts: 0,
            accept: b"",
            version: None,
            protocols: 0,
            protocol: "",
            extensions_not_utf8: false,
            request_error: None,
            chunked: None,
            length: Ok(None),
        };
        for header in source.iter() {
            let value = header.value;
            let mut error = None;
            match field(header.name) {
                Some(Field::Host) => {
                    let text = core::str::from_utf8(value);
                    scan.hosts += 1;
                    scan.host = text.map_or("", trim_ows);
                    if text.is_err() {
                        error = Some("the Host header is not UTF-8");
                    }
                }
                Some(Field::Upgrade) => scan.upgrade |= has_token(value, "websocket"),
                Some(Field::Connection) => scan.connection |= has_token(value, "upgrade"),
                Some(Field::Key) => {
                    scan.keys += 1;
                    scan.key = trim_ows_bytes(value);
                }
                Some(Field::Accept) => {
                    scan.accepts += 1;
                    scan.accept = trim_ows_bytes(value);
                }
                Some(Field::Version) => {
                    let is_13 = trim_ows_bytes(value) == b"13";
                    scan.version = Some(scan.version.unwrap_or(true) && is_13);
                }
                Some(Field::Protocol) => {
                    let text = core::str::from_utf8(value);
                    scan.protocols += 1;
                    scan.protocol = text.map_or("", trim_ows);
                    if !text.is_ok_and(|text| list(text).all(is_token)) {
                        error = Some("Sec-WebSocket-Protocol is not a list of tokens");
                    }
                }
                Some(Field::Extensions) => {
                    let text = core::str::from_utf8(value);
                    scan.extensions_not_utf8 |= text.is_err();
                    if !text.is_ok_and(is_extension_list) {
                        error = Some("malformed Sec-WebSocket-Extensions");
                    }
                }
                Some(Field::ContentLength) => {
                    let length = parse_length(value);
                    if length != Some(0) {
                        error = Some("an opening request has no body");
                    }
                    if let Ok(previous) = scan.length {
                        scan.length = match length {
                            None => Err("invalid Content-Length in the refusal"),
                            Some(length) if previous.is_some_and(|l| l != length) => {
                                Err("conflicting Content-Length headers in the refusal")
                            }
                            Some(length) => Ok(Some(length)),
                        };
                    }
                }
                Some(Field::TransferEncoding) => {
                    error = Some("an opening request has no body");
                    // Chunked only if it is the final coding.
                    let coding = match value.iter().rposition(|&b| b == b',') {
                        Some(comma) => value.get(comma + 1..).unwrap_or_default(),
                        None => value,
                    };
                    scan.chunked = Some(is_chunked(coding));
                }
                None => {}
            }
            scan.request_error = scan.request_error.or(error);
        }
        scan
    }
}

/// Whether `value` may be sent as a header value: no control characters
/// other than horizontal tab (RFC 7230 §3.2), so no CR or LF can end the
/// header early.
pub(crate) fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Whether `target` may be sent as a request target: not empty, no spaces
/// and no control characters.
pub(crate) fn is_request_target(target: &str) -> bool {
    !target.is_empty() && target.bytes().all(|b| b > 0x20 && b != 0x7f)
}

/// Whether a `Sec-WebSocket-Key` is the base64 of exactly 16 bytes
/// (RFC 6455 §4.1, §4.2.1), in canonical form: 22 characters of the
/// alphabet of RFC 4648 §4, the last with its 4 unused bits zero, then `==`.
pub(crate) fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.iter().enumerate().all(|(i, &c)| match i {
            22 | 23 => c == b'=',
            21 => sextet(c).is_some_and(|value| value & 0x0f == 0),
            _ => sextet(c).is_some(),
        })
}

/// The base64 alphabet of RFC 4648 §4.
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The value of a base64 character: its place in the alphabet.
fn sextet(c: u8) -> Option<usize> {
    BASE64.iter().position(|&b| b == c)
}

/// Base64 with padding (RFC 4648 §4) of `input` into `out`, which holds
/// `4 * ceil(input.len() / 3)` bytes.
fn base64_encode(input: &[u8], out: &mut [u8]) {
    for (chunk, quad) in input.chunks(3).zip(out.chunks_exact_mut(4)) {
        let mut bits = 0u32;
        for i in 0..3 {
            bits = bits << 8 | u32::from(chunk.get(i).copied().unwrap_or(0));
        }
        for (i, c) in quad.iter_mut().enumerate() {
            *c = match BASE64.get((bits >> (18 - 6 * i)) as usize & 63) {
                Some(&c) if i <= chunk.len() => c,
                _ => b'=',
            };
        }
    }
}

/// SHA-1 (FIPS 180-4 §6.1) of `a` followed by `b`. RFC 6455 uses it only
/// to prove the server read the key, not for security; a rolled loop keeps
/// firmware small.
fn sha1(a: &[u8], b: &[u8]) -> [u8; 20] {
    let len = a.len() + b.len();
    // Padding (§5.1.1): 0x80, zeros up to 56 mod 64, the length in bits.
    let total = (len + 8) / 64 * 64 + 64;
    let bits = (len as u64).wrapping_mul(8);
    let mut state = [
        0x6745_2301,
        0xefcd_ab89,
        0x98ba_dcfe,
        0x1032_5476,
        0xc3d2_e1f0,
    ];
    let mut block = [0u8; 64];
    for i in 0..total {
        let byte = match i.checked_sub(a.len()) {
            None => a.get(i),
            Some(j) => b.get(j),
        };
        block[i & 63] = match byte {
            Some(&byte) => byte,
            None if i == len => 0x80,
            None if i + 8 >= total => (bits >> ((total - 1 - i) * 8)) as u8,
            None => 0,
        };
        if i & 63 == 63 {
            sha1_block(&mut state, &block);
        }
    }
    let mut digest = [0u8; 20];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// The SHA-1 compression function over one 64-byte block.
fn sha1_block(state: &mut [u32; 5], block: &[u8; 64]) {
    let mut w = [0u32; 16];
    let [mut a, mut b, mut c, mut d, mut e] = *state;
    for t in 0..80 {
        // The message schedule, kept as a ring of 16 words.
        let word = if t < 16 {
            let at = 4 * t;
            u32::from_be_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]])
        } else {
            (w[(t + 13) & 15] ^ w[(t + 8) & 15] ^ w[(t + 2) & 15] ^ w[t & 15]).rotate_left(1)
        };
        w[t & 15] = word;
        let (f, k) = if t < 20 {
            ((b & c) | (!b & d), 0x5a82_7999)
        } else if t < 40 {
            (b ^ c ^ d, 0x6ed9_eba1)
        } else if t < 60 {
            ((b & c) | (b & d) | (c & d), 0x8f1b_bcdc)
        } else {
            (b ^ c ^ d, 0xca62_c1d6)
        };
        let temp = a
            .rotate_left(5)
            .wrapping_add(f)
            .wrapping_add(e)
            .wrapping_add(k)
            .wrapping_add(word);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = temp;
    }
    for (word, add) in state.iter_mut().zip([a, b, c, d, e]) {
        *word = word.wrapping_add(add);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn rfc6455_section_1_3_accept_token() {
        // RFC 6455 §1.3: key "dGhlIHNhbXBsZSBub25jZQ==" gives this token.
        assert_eq!(
            &generate_accept_token(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn nonce_is_base64_of_16_random_bytes() {
        let mut rng = |dest: &mut [u8]| {
            for (i, b) in dest.iter_mut().enumerate() {
                *b = i as u8 + 1;
            }
        };
        let nonce = generate_nonce(&mut rng);
        assert_eq!(&nonce, b"AQIDBAUGBwgJCgsMDQ4PEA==");
        assert!(is_valid_key(&nonce));
    }

    #[test]
    fn key_must_decode_to_16_bytes() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        // 15 and 17 bytes, a non-canonical padding, a bad alphabet.
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25j"));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ==="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZR=="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=!"));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ"));
        assert!(!is_valid_key(b""));
    }

    // Thousands of digests and encodings, with no unsafe code: too slow
    // under Miri.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn sha1_and_base64_match_reference_crates() {
        use base64::Engine as _;
        let reference = base64::engine::general_purpose::STANDARD;
        // FIPS 180-4 examples, then every length around the block edges.
        assert_eq!(
            sha1(b"abc", b""),
            sha1_smol::Sha1::from(b"abc").digest().bytes()
        );
        let data: [u8; 200] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for len in 0..data.len() {
            for split in [0, len / 3, len] {
                let (a, b) = data[..len].split_at(split);
                let expected = sha1_smol::Sha1::from(&data[..len]).digest().bytes();
                assert_eq!(sha1(a, b), expected, "{len} {split}");
            }
            let mut out = [0u8; 268];
            let n = len.div_ceil(3) * 4;
            base64_encode(&data[..len], &mut out[..n]);
            assert_eq!(
                out[..n],
                *reference.encode(&data[..len]).as_bytes(),
                "{len}"
            );
        }
        // Every key of 16 bytes is valid; each character changed is judged
        // as the reference decoder judges it.
        for seed in 0..64u8 {
            let raw: [u8; 16] = core::array::from_fn(|i| seed.wrapping_mul(31) ^ (i as u8 * 17));
            let key = reference.encode(raw);
            assert!(is_valid_key(key.as_bytes()));
            for pos in 0..24 {
                for c in [b'A', b'Q', b'R', b'z', b'+', b'/', b'=', b'-', b'!'] {
                    let mut bad = key.clone().into_bytes();
                    bad[pos] = c;
                    let mut decoded = [0u8; 18];
                    let expected = matches!(reference.decode_slice(&bad, &mut decoded), Ok(16));
                    assert_eq!(
                        is_valid_key(&bad),
                        expected,
                        "{:?}",
                        std::str::from_utf8(&bad)
                    );
                }
            }
        }
    }

    #[test]
    fn values_and_targets() {
        assert!(is_field_value(b"a\tb c~\x80"));
        assert!(!is_field_value(b"a\r\nb"));
        assert!(!is_field_value(b"a\0"));
        assert!(is_request_target("/chat?x=1"));
        assert!(!is_request_target("/a b"));
        assert!(!is_request_target(""));
    }
}
