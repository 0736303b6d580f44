//! Extensions (RFC 6455 §9): the [`Extension`] trait and the
//! `Sec-WebSocket-Extensions` grammar, plus permessage-deflate (RFC 7692)
//! under the `deflate` feature.
//!
//! The grammar (RFC 6455 §9.1):
//!
//! ```text
//! Sec-WebSocket-Extensions = extension-list
//! extension-list = 1#extension
//! extension = extension-token *( ";" extension-param )
//! extension-param = token [ "=" (token | quoted-string) ]
//! ```
//!
//! [`parse_extensions`] walks a header value without allocating; each
//! [`ExtensionOffer`] yields its parameters through
//! [`params`](ExtensionOffer::params).

use core::fmt;

use crate::error::RemoteProtocolError;

#[cfg(feature = "deflate")]
pub mod deflate;

/// A WebSocket extension taking part in the opening handshake.
///
/// The handshake asks a client's extensions for their offers, a server's to
/// accept or decline each offer, and a client's to check the server's answer.
pub trait Extension {
    /// The extension token, such as `permessage-deflate`.
    fn name(&self) -> &str;

    /// Whether negotiation succeeded.
    fn enabled(&self) -> bool;

    /// Client: write this extension's offer (name and parameters), as it
    /// appears in `Sec-WebSocket-Extensions`.
    fn offer(&self, out: &mut dyn fmt::Write) -> fmt::Result;

    /// Server: consider one of the client's offers for this extension. Write
    /// the accepted form into `out` and return `Ok(true)`, or return
    /// `Ok(false)` and write nothing to decline it.
    fn accept(
        &mut self,
        offer: &ExtensionOffer<'_>,
        out: &mut dyn fmt::Write,
    ) -> Result<bool, fmt::Error>;

    /// Client: apply the server's answer. An answer the offer did not allow
    /// fails the handshake.
    fn finalize(&mut self, response: &ExtensionOffer<'_>) -> Result<(), RemoteProtocolError>;
}

/// One element of a `Sec-WebSocket-Extensions` list: a name and its raw
/// parameters, borrowed from the header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionOffer<'a> {
    /// The extension token.
    pub name: &'a str,
    params: &'a str,
}

/// One parameter of an extension: a name and an optional value, with the
/// quotes of a quoted-string removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionParam<'a> {
    /// The parameter name.
    pub name: &'a str,
    /// The value, if one was given. A quoted value has its quotes removed; a
    /// quoted value that used backslash escapes is kept with them, since
    /// unescaping needs a copy, and [`has_escapes`](Self::has_escapes) says so.
    pub value: Option<&'a str>,
    quoted_with_escapes: bool,
}

impl ExtensionParam<'_> {
    /// Whether the value was a quoted-string containing backslash escapes.
    #[must_use]
    pub const fn has_escapes(&self) -> bool {
        self.quoted_with_escapes
    }
}

impl<'a> ExtensionOffer<'a> {
    /// The parameters, in order. A syntax error ends the iteration with an
    /// `Err`.
    pub fn params(
        &self,
    ) -> impl Iterator<Item = Result<ExtensionParam<'a>, RemoteProtocolError>> + 'a {
        Splitter::new(self.params, b';').map(parse_param)
    }

    /// Whether every parameter is well formed.
    #[must_use]
    pub fn is_well_formed(&self) -> bool {
        self.params().all(|p| p.is_ok())
    }
}

/// Walk the extension list in a `Sec-WebSocket-Extensions` value.
///
/// Empty list elements are skipped, as RFC 7230 §7 allows. A syntax error
/// ends the iteration with an `Err`.
///
/// ```
/// use wsproto_core::extension::parse_extensions;
/// let value = "permessage-deflate; client_max_window_bits, x-foo; a=\"b;c\"";
/// let offers: Vec<_> = parse_extensions(value).collect::<Result<_, _>>().unwrap();
/// assert_eq!(offers[0].name, "permessage-deflate");
/// let param = offers[0].params().next().unwrap().unwrap();
/// assert_eq!((param.name, param.value), ("client_max_window_bits", None));
/// let param = offers[1].params().next().unwrap().unwrap();
/// assert_eq!((param.name, param.value), ("a", Some("b;c")));
/// ```
pub fn parse_extensions(
    value: &str,
) -> impl Iterator<Item = Result<ExtensionOffer<'_>, RemoteProtocolError>> + '_ {
    Splitter::new(value, b',').filter_map(|element| {
        let element = trim_ows(element);
        if element.is_empty() {
            return None;
        }
        let (name, params) = split_once(element, b';').unwrap_or((element, ""));
        let name = trim_ows(name);
        if !is_token(name) {
            return Some(Err(bad("extension name is not a token")));
        }
        let offer = ExtensionOffer { name, params };
        if !offer.is_well_formed() {
            return Some(Err(bad("malformed extension parameter")));
        }
        Some(Ok(offer))
    })
}

/// Whether `s` is a non-empty HTTP token (RFC 7230 §3.2.6).
#[must_use]
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// A `tchar` of RFC 7230 §3.2.6.
fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~')
}

/// Trims optional whitespace (spaces and tabs, RFC 7230 §3.2.3).
pub(crate) fn trim_ows(s: &str) -> &str {
    let bytes = s.as_bytes();
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

/// `s` split around the first `sep`, an ASCII byte.
fn split_once(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

fn bad(message: &'static str) -> RemoteProtocolError {
    RemoteProtocolError::reject(400, message)
}

fn parse_param(raw: &str) -> Result<ExtensionParam<'_>, RemoteProtocolError> {
    let raw = trim_ows(raw);
    let (name, value) = match split_once(raw, b'=') {
        Some((name, value)) => (trim_ows(name), Some(trim_ows(value))),
        None => (raw, None),
    };
    if !is_token(name) {
        return Err(bad("extension parameter name is not a token"));
    }
    let Some(value) = value else {
        return Ok(ExtensionParam {
            name,
            value: None,
            quoted_with_escapes: false,
        });
    };
    if let Some(inner) = value.strip_prefix('"') {
        let Some(inner) = inner.strip_suffix('"') else {
            return Err(bad("unterminated quoted-string in extension parameter"));
        };
        let mut escaped = false;
        let mut has_escapes = false;
        for b in inner.bytes() {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
                has_escapes = true;
            } else if b == b'"' {
                return Err(bad("stray quote in extension parameter"));
            }
        }
        if escaped {
            return Err(bad("unterminated quoted-string in extension parameter"));
        }
        return Ok(ExtensionParam {
            name,
            value: Some(inner),
            quoted_with_escapes: has_escapes,
        });
    }
    if !is_token(value) {
        return Err(bad("extension parameter value is not a token"));
    }
    Ok(ExtensionParam {
        name,
        value: Some(value),
        quoted_with_escapes: false,
    })
}

/// Splits on a separator byte outside quoted-strings.
struct Splitter<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Splitter<'a> {
    fn new(s: &'a str, sep: u8) -> Self {
        Self {
            rest: if s.is_empty() { None } else { Some(s) },
            sep,
        }
    }
}

impl<'a> Iterator for Splitter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let mut in_quotes = false;
        let mut escaped = false;
        for (i, b) in s.bytes().enumerate() {
            if escaped {
                escaped = false;
            } else if in_quotes && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = !in_quotes;
            } else if !in_quotes && b == self.sep {
                self.rest = s.get(i + 1..);
                return s.get(..i);
            }
        }
        self.rest = None;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_is_rfc7230() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), expected, "{b}");
        }
    }

    #[test]
    fn grammar_handles_quotes_and_whitespace() {
        let value = " , permessage-deflate ;client_max_window_bits = \"10\" ; server_no_context_takeover,foo";
        let offers: heapless::Vec<ExtensionOffer<'_>, 4> =
            parse_extensions(value).map(Result::unwrap).collect();
        assert_eq!(offers.len(), 2);
        let params: heapless::Vec<ExtensionParam<'_>, 4> =
            offers[0].params().map(Result::unwrap).collect();
        assert_eq!(
            (params[0].name, params[0].value),
            ("client_max_window_bits", Some("10"))
        );
        assert_eq!(
            (params[1].name, params[1].value),
            ("server_no_context_takeover", None)
        );
        assert_eq!(offers[1].name, "foo");
        assert_eq!(offers[1].params().count(), 0);
    }

    #[test]
    fn grammar_rejects_malformed_elements() {
        for value in [
            "per message",
            "a; b=\"x",
            "a; =1",
            "a; b=c d",
            "a; b=\"x\"y\"",
        ] {
            assert!(parse_extensions(value).any(|r| r.is_err()), "{value}");
        }
    }
}
