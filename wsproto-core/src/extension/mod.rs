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
use crate::list::{list, split_first, trim_ows, Split};

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

    /// The permessage-deflate parameters this extension agreed on, if it is
    /// permessage-deflate and negotiation enabled it: what
    /// [`Handshake::into_connection`](crate::handshake::Handshake::into_connection)
    /// applies to the connection. Other extensions keep the default, `None`.
    #[cfg(feature = "deflate")]
    fn deflate_params(&self) -> Option<deflate::DeflateParams> {
        None
    }
}

/// One element of a `Sec-WebSocket-Extensions` list: a name and its raw
/// parameters, borrowed from the header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ExtensionOffer<'a> {
    /// The extension token.
    pub name: &'a str,
    params: &'a str,
}

/// One parameter of an extension: a name and an optional value, with the
/// quotes of a quoted-string removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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
        Split::new(self.params, b';').map(parse_param)
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
    list(value).map(parse_offer)
}

/// Whether every element of a `Sec-WebSocket-Extensions` value is well
/// formed.
pub(crate) fn is_extension_list(value: &str) -> bool {
    parse_extensions(value).all(|offer| offer.is_ok())
}

/// One element of an extension list: a name, then parameters after `;`.
fn parse_offer(element: &str) -> Result<ExtensionOffer<'_>, RemoteProtocolError> {
    let (name, params) = split_first(element, b';');
    let name = trim_ows(name);
    if !is_token(name) {
        return Err(bad("extension name is not a token"));
    }
    let offer = ExtensionOffer {
        name,
        params: params.unwrap_or_default(),
    };
    if !offer.is_well_formed() {
        return Err(bad("malformed extension parameter"));
    }
    Ok(offer)
}

/// Whether `s` is a non-empty HTTP token (RFC 7230 §3.2.6).
#[must_use]
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// A `tchar` of RFC 7230 §3.2.6.
fn is_tchar(b: u8) -> bool {
    // A table lookup: smaller on firmware than the chain of ranges.
    TCHARS[usize::from(b >> 5)] >> (b & 31) & 1 == 1
}

/// The `tchar`s as a 256-bit set: bit `b % 32` of word `b / 32`.
const TCHARS: [u32; 8] = {
    let mut set = [0u32; 8];
    let mut b = 0u8;
    loop {
        let tchar = matches!(b,
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z'
            | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
            | b'`' | b'|' | b'~');
        if tchar {
            set[(b >> 5) as usize] |= 1 << (b & 31);
        }
        if b == u8::MAX {
            break;
        }
        b += 1;
    }
    set
};

fn bad(message: &'static str) -> RemoteProtocolError {
    RemoteProtocolError::reject(400, message)
}

fn parse_param(raw: &str) -> Result<ExtensionParam<'_>, RemoteProtocolError> {
    let (name, value) = split_first(raw, b'=');
    let (name, value) = (trim_ows(name), value.map(trim_ows));
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
