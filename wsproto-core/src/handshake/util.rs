//! Helpers of the opening handshake (`wsproto.utilities` in Python): the
//! client's nonce, the server's accept token, and comma-separated header
//! lists.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

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
    // 16 bytes always encode to exactly 24 with padding.
    let _ = STANDARD.encode_slice(raw, &mut nonce);
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
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID.as_bytes());
    let digest = sha1.digest().bytes();
    let mut token = [0u8; 28];
    // 20 bytes always encode to exactly 28 with padding.
    let _ = STANDARD.encode_slice(digest, &mut token);
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
    ListSplit::new(value)
}

/// Splits a header value on commas outside quoted-strings, trimming each
/// element and skipping empty ones.
#[derive(Clone, Debug)]
pub(crate) struct ListSplit<'a> {
    rest: &'a str,
}

impl<'a> ListSplit<'a> {
    pub(crate) const fn new(value: &'a str) -> Self {
        Self { rest: value }
    }
}

impl<'a> Iterator for ListSplit<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        while !self.rest.is_empty() {
            let mut in_quotes = false;
            let mut escaped = false;
            let mut end = self.rest.len();
            for (i, b) in self.rest.bytes().enumerate() {
                if escaped {
                    escaped = false;
                } else if in_quotes && b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_quotes = !in_quotes;
                } else if !in_quotes && b == b',' {
                    end = i;
                    break;
                }
            }
            // `end` is the length or the index of an ASCII comma: always a
            // character boundary.
            let Some((element, rest)) = self.rest.split_at_checked(end) else {
                self.rest = "";
                return None;
            };
            self.rest = rest.get(1..).unwrap_or("");
            let element = trim_ows(element);
            if !element.is_empty() {
                return Some(element);
            }
        }
        None
    }
}

/// Trims optional whitespace (spaces and tabs, RFC 7230 §3.2.3).
pub(crate) fn trim_ows(s: &str) -> &str {
    crate::extension::trim_ows(s)
}

/// Trims optional whitespace from raw bytes.
pub(crate) fn trim_ows_bytes(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Whether a comma-separated header value contains `token`, compared
/// ASCII case-insensitively.
pub(crate) fn has_token(value: &[u8], token: &str) -> bool {
    core::str::from_utf8(value)
        .map(|value| ListSplit::new(value).any(|t| t.eq_ignore_ascii_case(token)))
        .unwrap_or(false)
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

/// Decodes a `Sec-WebSocket-Key` and checks that it holds exactly 16 bytes
/// (RFC 6455 §4.1, §4.2.1).
pub(crate) fn is_valid_key(key: &[u8]) -> bool {
    if key.len() != 24 {
        return false;
    }
    let mut raw = [0u8; 18];
    matches!(STANDARD.decode_slice(key, &mut raw), Ok(16))
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn split_trims_skips_empty_and_respects_quotes() {
        let mut it = ListSplit::new(" a ,\t, b;x=\"1,\\\"2\" ,c,");
        assert_eq!(it.next(), Some("a"));
        assert_eq!(it.next(), Some("b;x=\"1,\\\"2\""));
        assert_eq!(it.next(), Some("c"));
        assert_eq!(it.next(), None);
        assert_eq!(ListSplit::new("").next(), None);
        assert_eq!(ListSplit::new(" , ,").next(), None);
        // An unterminated quote keeps the rest as one element.
        let mut it = ListSplit::new("a\"b,c");
        assert_eq!(it.next(), Some("a\"b,c"));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn tokens_and_values() {
        assert!(has_token(b"keep-alive, UPGRADE", "upgrade"));
        assert!(!has_token(b"keep-alive, upgrades", "upgrade"));
        assert!(!has_token(b"\xff", "upgrade"));
        assert_eq!(trim_ows_bytes(b" \tx y\t "), b"x y");
        assert_eq!(trim_ows_bytes(b"  "), b"");
        assert!(is_field_value(b"a\tb c~\x80"));
        assert!(!is_field_value(b"a\r\nb"));
        assert!(!is_field_value(b"a\0"));
        assert!(is_request_target("/chat?x=1"));
        assert!(!is_request_target("/a b"));
        assert!(!is_request_target(""));
    }
}
