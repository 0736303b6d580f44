//! The header vocabulary shared by events, errors and the handshake: a
//! [`Header`], and the list fields of handshake events without a heap,
//! [`Tokens`] and [`Headers`]. A leaf module: it imports nothing above it.
//!
//! Each wraps either a slice the caller built (to send an event) or a head
//! the handshake parsed, in the caller's buffer and read again when iterated
//! (a received event). Both are `Copy` and iterate in wire order.

use core::fmt;
use core::slice;

use crate::list::{list, trim_ows, trim_ows_bytes, List};

/// One HTTP header: a name and its raw value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header<'a> {
    /// The header name, compared case-insensitively.
    pub name: &'a str,
    /// The raw value.
    pub value: &'a [u8],
}

impl<'a> Header<'a> {
    /// A header from a name and a value.
    #[must_use]
    pub const fn new(name: &'a str, value: &'a [u8]) -> Self {
        Self { name, value }
    }
}

/// A list of headers: a caller's slice, or a head that httparse accepted,
/// read again line by line when iterated (so nothing about it is stored).
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    Slice(&'a [Header<'a>]),
    Parsed { head: &'a [u8] },
}

impl<'a> Source<'a> {
    pub(crate) fn iter(self) -> SourceIter<'a> {
        Field::new(self, Names::Nothing).headers()
    }
}

/// The lowercase header names that [`Names`] select from, in an order that
/// makes each selection a range.
const NAMES: [&str; 6] = [
    "host",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "connection",
    "upgrade",
    "sec-websocket-accept",
];

/// The header names a received [`Tokens`] reads or a received [`Headers`]
/// leaves out: one byte in place of a `&'static` list, which keeps the
/// handshake events small. Each is the range `NAMES[low nibble..high
/// nibble]`, which costs less code than a table of lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Names {
    /// No header.
    Nothing = 0x00,
    /// `Sec-WebSocket-Protocol`.
    Protocols = 0x21,
    /// `Sec-WebSocket-Extensions`.
    Extensions = 0x32,
    /// The request headers a [`Request`](crate::event::Request) reports in
    /// its own fields rather than in `extra_headers` (as in the Python
    /// library): `Host`, `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions`.
    RequestFields = 0x30,
    /// The response headers an
    /// [`AcceptConnection`](crate::event::AcceptConnection) reports in its
    /// own fields or checks away, rather than in `extra_headers`:
    /// `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions`, `Connection`,
    /// `Upgrade`, `Sec-WebSocket-Accept`.
    ResponseFields = 0x61,
}

impl Names {
    /// The names, lowercase.
    fn list(self) -> &'static [&'static str] {
        let range = self as u8;
        NAMES
            .get(usize::from(range & 0xf)..usize::from(range >> 4))
            .unwrap_or_default()
    }

    /// Whether `name` is one of these, compared ASCII case-insensitively.
    fn contain(self, name: &str) -> bool {
        self.list().iter().any(|n| name.eq_ignore_ascii_case(n))
    }
}

/// A [`Source`] and the [`Names`] to select from it, flat, so that the tag
/// and the names share the word beside the slice.
#[derive(Clone, Copy)]
enum Field<'a> {
    Slice(&'a [Header<'a>], Names),
    Parsed(&'a [u8], Names),
}

impl<'a> Field<'a> {
    const fn new(source: Source<'a>, names: Names) -> Self {
        match source {
            Source::Slice(headers) => Self::Slice(headers, names),
            Source::Parsed { head } => Self::Parsed(head, names),
        }
    }

    /// All the headers of the source, whatever the names.
    fn headers(self) -> SourceIter<'a> {
        match self {
            Self::Slice(headers, _) => SourceIter::Slice(headers.iter()),
            Self::Parsed(head, _) => SourceIter::Parsed {
                lines: header_lines(head),
            },
        }
    }

    const fn names(self) -> Names {
        match self {
            Self::Slice(_, names) | Self::Parsed(_, names) => names,
        }
    }
}

/// The header lines of `head`: after the empty lines httparse skips and the
/// request or status line.
fn header_lines(head: &[u8]) -> &[u8] {
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    let rest = head.get(start..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\n') {
        Some(end) => rest.get(end + 1..).unwrap_or_default(),
        None => &[],
    }
}

#[derive(Clone, Debug)]
pub(crate) enum SourceIter<'a> {
    Slice(slice::Iter<'a, Header<'a>>),
    /// The unread header lines of a parsed head.
    Parsed {
        lines: &'a [u8],
    },
}

impl<'a> Iterator for SourceIter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        match self {
            Self::Slice(headers) => headers.next().copied(),
            Self::Parsed { lines } => loop {
                // httparse accepted the head: lines end in LF or CRLF, a
                // name runs to the first colon, and the value is trimmed of
                // spaces and tabs, as httparse reports it.
                let end = lines.iter().position(|&b| b == b'\n')?;
                let line = lines.get(..end).unwrap_or_default();
                *lines = lines.get(end + 1..).unwrap_or_default();
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.is_empty() {
                    *lines = &[];
                    return None;
                }
                let Some(colon) = line.iter().position(|&b| b == b':') else {
                    continue;
                };
                let (name, value) = line.split_at(colon);
                let Ok(name) = core::str::from_utf8(name) else {
                    continue;
                };
                let value = value.get(1..).unwrap_or_default();
                return Some(Header::new(name, trim_ows_bytes(value)));
            },
        }
    }
}

/// A list of tokens, such as the subprotocols or extension offers of a
/// [`Request`](crate::event::Request).
///
/// Build one from a slice to send an event; a received event's list reads
/// the head the handshake parsed, splitting the comma-separated values of
/// every header of that name, without copying.
///
/// ```
/// use wsproto_core::handshake::Tokens;
/// let tokens = Tokens::new(&["chat", "superchat"]);
/// assert!(tokens.contains("chat"));
/// assert_eq!(tokens.iter().collect::<Vec<_>>(), ["chat", "superchat"]);
/// assert!(Tokens::default().is_empty());
/// ```
#[derive(Clone, Copy)]
pub struct Tokens<'a> {
    repr: TokensRepr<'a>,
}

#[derive(Clone, Copy)]
enum TokensRepr<'a> {
    List(&'a [&'a str]),
    /// The elements of the headers of these names.
    Field(Field<'a>),
}

impl<'a> Tokens<'a> {
    /// The empty list.
    ///
    /// ```
    /// use wsproto_core::handshake::Tokens;
    /// assert!(Tokens::EMPTY.is_empty());
    /// ```
    pub const EMPTY: Tokens<'static> = Tokens::new(&[]);

    /// A list of the given tokens, in order.
    ///
    /// ```
    /// use wsproto_core::handshake::Tokens;
    /// const PROTOCOLS: Tokens<'static> = Tokens::new(&["v2.chat", "v1.chat"]);
    /// assert_eq!(PROTOCOLS.len(), 2);
    /// ```
    #[must_use]
    pub const fn new(tokens: &'a [&'a str]) -> Self {
        Self {
            repr: TokensRepr::List(tokens),
        }
    }

    /// The comma-separated elements of every header of these `names`.
    pub(crate) const fn field(source: Source<'a>, names: Names) -> Self {
        Self {
            repr: TokensRepr::Field(Field::new(source, names)),
        }
    }

    /// The tokens, in order.
    ///
    /// ```
    /// use wsproto_core::handshake::Tokens;
    /// let mut it = Tokens::new(&["a", "b"]).iter();
    /// assert_eq!((it.next(), it.next(), it.next()), (Some("a"), Some("b"), None));
    /// ```
    pub fn iter(&self) -> TokensIter<'a> {
        TokensIter {
            repr: match self.repr {
                TokensRepr::List(list) => TokensIterRepr::List(list.iter()),
                TokensRepr::Field(field) => TokensIterRepr::Field {
                    headers: field.headers(),
                    names: field.names(),
                    current: list(""),
                },
            },
        }
    }

    /// Whether the list has no tokens.
    ///
    /// ```
    /// use wsproto_core::handshake::Tokens;
    /// assert!(Tokens::new(&[]).is_empty());
    /// assert!(!Tokens::new(&["chat"]).is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The number of tokens.
    ///
    /// ```
    /// use wsproto_core::handshake::Tokens;
    /// assert_eq!(Tokens::new(&["a", "b", "c"]).len(), 3);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether `token` is in the list (compared exactly, as subprotocol
    /// names are).
    ///
    /// ```
    /// use wsproto_core::handshake::Tokens;
    /// assert!(Tokens::new(&["chat"]).contains("chat"));
    /// assert!(!Tokens::new(&["chat"]).contains("Chat"));
    /// ```
    #[must_use]
    pub fn contains(&self, token: &str) -> bool {
        self.iter().any(|t| t == token)
    }

    /// The first entry of `supported` that this list contains: a server's
    /// choice of subprotocol in its own order of preference.
    ///
    /// The result borrows `supported`, not the list, so a server can pass it
    /// to [`AcceptConnection`](crate::event::AcceptConnection) once the
    /// received request is gone.
    ///
    /// ```
    /// use wsproto_core::handshake::Tokens;
    /// let offered = Tokens::new(&["v1.chat", "v2.chat"]);
    /// assert_eq!(offered.select(&["v2.chat", "v1.chat"]), Some("v2.chat"));
    /// assert_eq!(offered.select(&["v3.chat"]), None);
    /// ```
    #[must_use]
    pub fn select<'s>(&self, supported: &[&'s str]) -> Option<&'s str> {
        supported.iter().copied().find(|s| self.contains(s))
    }
}

impl Default for Tokens<'_> {
    fn default() -> Self {
        Tokens::new(&[])
    }
}

impl<'a> From<&'a [&'a str]> for Tokens<'a> {
    fn from(tokens: &'a [&'a str]) -> Self {
        Self::new(tokens)
    }
}

impl<'a, const N: usize> From<&'a [&'a str; N]> for Tokens<'a> {
    fn from(tokens: &'a [&'a str; N]) -> Self {
        Self::new(tokens)
    }
}

impl fmt::Debug for Tokens<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Two lists are equal when they hold the same tokens in the same order,
/// however they are stored.
impl PartialEq for Tokens<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Tokens<'_> {}

impl<'a> IntoIterator for Tokens<'a> {
    type Item = &'a str;
    type IntoIter = TokensIter<'a>;

    fn into_iter(self) -> TokensIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Tokens<'a> {
    type Item = &'a str;
    type IntoIter = TokensIter<'a>;

    fn into_iter(self) -> TokensIter<'a> {
        self.iter()
    }
}

/// The iterator of [`Tokens::iter`].
///
/// ```
/// use wsproto_core::handshake::{Tokens, TokensIter};
/// let it: TokensIter<'_> = Tokens::new(&["x"]).iter();
/// assert_eq!(it.count(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct TokensIter<'a> {
    repr: TokensIterRepr<'a>,
}

#[derive(Clone, Debug)]
enum TokensIterRepr<'a> {
    List(slice::Iter<'a, &'a str>),
    Field {
        headers: SourceIter<'a>,
        names: Names,
        current: List<'a>,
    },
}

impl<'a> Iterator for TokensIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match &mut self.repr {
            TokensIterRepr::List(list) => list.next().copied(),
            TokensIterRepr::Field {
                headers,
                names,
                current,
            } => loop {
                if let Some(token) = current.next() {
                    return Some(token);
                }
                let header = headers.find(|h| names.contain(h.name))?;
                // Values were checked to be UTF-8 when the head was accepted;
                // anything else is skipped rather than trusted.
                *current = list(core::str::from_utf8(header.value).unwrap_or(""));
            },
        }
    }
}

/// A list of headers, such as the `extra_headers` of a
/// [`Request`](crate::event::Request).
///
/// Build one from a slice to send an event; a received event's list reads
/// the parsed head in the caller's buffer, leaving out the headers the event
/// reports in its own fields.
///
/// ```
/// use wsproto_core::event::Header;
/// use wsproto_core::handshake::Headers;
/// let list = [Header::new("Origin", b"http://example.com")];
/// let headers = Headers::new(&list);
/// assert_eq!(headers.get("origin"), Some(&b"http://example.com"[..]));
/// assert_eq!(headers.len(), 1);
/// ```
#[derive(Clone, Copy)]
pub struct Headers<'a> {
    /// The headers of the source without those of these names.
    except: Field<'a>,
}

impl<'a> Headers<'a> {
    /// The empty list.
    ///
    /// ```
    /// use wsproto_core::handshake::Headers;
    /// assert_eq!(Headers::EMPTY.len(), 0);
    /// ```
    pub const EMPTY: Headers<'static> = Headers::new(&[]);

    /// A list of the given headers, in order.
    ///
    /// ```
    /// use wsproto_core::event::Header;
    /// use wsproto_core::handshake::Headers;
    /// const EXTRA: Headers<'static> = Headers::new(&[Header::new("Server", b"demo")]);
    /// assert!(!EXTRA.is_empty());
    /// ```
    #[must_use]
    pub const fn new(headers: &'a [Header<'a>]) -> Self {
        Self {
            except: Field::Slice(headers, Names::Nothing),
        }
    }

    /// The headers of `source` not named in `except`.
    pub(crate) const fn except(source: Source<'a>, except: Names) -> Self {
        Self {
            except: Field::new(source, except),
        }
    }

    /// The headers, in order.
    ///
    /// ```
    /// use wsproto_core::event::Header;
    /// use wsproto_core::handshake::Headers;
    /// let list = [Header::new("A", b"1"), Header::new("B", b"2")];
    /// let names: Vec<&str> = Headers::new(&list).iter().map(|h| h.name).collect();
    /// assert_eq!(names, ["A", "B"]);
    /// ```
    pub fn iter(&self) -> HeadersIter<'a> {
        HeadersIter {
            inner: self.except.headers(),
            except: self.except.names(),
        }
    }

    /// Whether the list has no headers.
    ///
    /// ```
    /// use wsproto_core::handshake::Headers;
    /// assert!(Headers::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The number of headers.
    ///
    /// ```
    /// use wsproto_core::event::Header;
    /// use wsproto_core::handshake::Headers;
    /// assert_eq!(Headers::new(&[Header::new("A", b"1")]).len(), 1);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The value of the first header called `name`, compared ASCII
    /// case-insensitively.
    ///
    /// ```
    /// use wsproto_core::event::Header;
    /// use wsproto_core::handshake::Headers;
    /// let list = [Header::new("Retry-After", b"120")];
    /// assert_eq!(Headers::new(&list).get("retry-after"), Some(&b"120"[..]));
    /// assert_eq!(Headers::new(&list).get("location"), None);
    /// ```
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The value of the first header called `name` as text, with
    /// surrounding whitespace trimmed; `None` if absent or not UTF-8.
    ///
    /// ```
    /// use wsproto_core::event::Header;
    /// use wsproto_core::handshake::Headers;
    /// let list = [Header::new("Location", b" /elsewhere ")];
    /// assert_eq!(Headers::new(&list).get_str("location"), Some("/elsewhere"));
    /// ```
    #[must_use]
    pub fn get_str(&self, name: &str) -> Option<&'a str> {
        core::str::from_utf8(self.get(name)?).ok().map(trim_ows)
    }
}

impl Default for Headers<'_> {
    fn default() -> Self {
        Headers::new(&[])
    }
}

impl<'a> From<&'a [Header<'a>]> for Headers<'a> {
    fn from(headers: &'a [Header<'a>]) -> Self {
        Self::new(headers)
    }
}

impl<'a, const N: usize> From<&'a [Header<'a>; N]> for Headers<'a> {
    fn from(headers: &'a [Header<'a>; N]) -> Self {
        Self::new(headers)
    }
}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Two lists are equal when they hold the same headers in the same order,
/// however they are stored.
impl PartialEq for Headers<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers<'_> {}

impl<'a> IntoIterator for Headers<'a> {
    type Item = Header<'a>;
    type IntoIter = HeadersIter<'a>;

    fn into_iter(self) -> HeadersIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Headers<'a> {
    type Item = Header<'a>;
    type IntoIter = HeadersIter<'a>;

    fn into_iter(self) -> HeadersIter<'a> {
        self.iter()
    }
}

/// The iterator of [`Headers::iter`].
///
/// ```
/// use wsproto_core::event::Header;
/// use wsproto_core::handshake::{Headers, HeadersIter};
/// let list = [Header::new("A", b"1")];
/// let it: HeadersIter<'_> = Headers::new(&list).iter();
/// assert_eq!(it.count(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct HeadersIter<'a> {
    inner: SourceIter<'a>,
    except: Names,
}

impl<'a> Iterator for HeadersIter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        let except = self.except;
        self.inner.find(|h| !except.contain(h.name))
    }
}

// A list is one slice and two bytes: the tag and the names.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(core::mem::size_of::<Tokens<'_>>() <= 24);
    assert!(core::mem::size_of::<Headers<'_>>() <= 24);
};

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    fn parsed(head: &[u8]) -> Source<'_> {
        Source::Parsed { head }
    }

    /// The headers httparse reports for `head`, and ours, agree.
    fn same_as_httparse(head: &[u8]) {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        let len = match req.parse(head).unwrap() {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial => panic!("partial head"),
        };
        let theirs: std::vec::Vec<_> = req
            .headers
            .iter()
            .map(|h| Header::new(h.name, h.value))
            .collect();
        let ours: std::vec::Vec<_> = parsed(&head[..len]).iter().collect();
        assert_eq!(ours, theirs, "{:?}", core::str::from_utf8(head));
    }

    #[test]
    fn rescanned_headers_match_httparse() {
        same_as_httparse(b"GET / HTTP/1.1\r\nA: 1\r\nB:2\r\n\r\n");
        same_as_httparse(b"\r\n\nGET / HTTP/1.1\nA:  1 \t\nEmpty:\nSp: \t \n\n");
        same_as_httparse(b"GET / HTTP/1.1\r\nX: a: b \xff\r\nY:\t\tz\r\n\r\nbody");
        same_as_httparse(b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn parsed_tokens_span_several_headers() {
        let head = b"GET / HTTP/1.1\r\nX: 1\r\nsec-websocket-protocol: a, b\r\n\
                     Y: 2\r\nSec-WebSocket-Protocol: ,c\r\n\r\n";
        let source = parsed(head);
        let tokens = Tokens::field(source, Names::Protocols);
        assert_eq!(tokens, Tokens::new(&["a", "b", "c"]));
        assert_eq!(tokens.len(), 3);
        assert_eq!(tokens.select(&["z", "c", "a"]), Some("c"));
        let extra = Headers::except(source, Names::RequestFields);
        assert_eq!(
            extra,
            Headers::new(&[Header::new("X", b"1"), Header::new("Y", b"2")])
        );
        assert_eq!(extra.get("y"), Some(&b"2"[..]));
        assert!(Tokens::field(source, Names::Extensions).is_empty());
    }

    #[test]
    fn names_select_their_ranges() {
        let cases: [(Names, &[&str]); 5] = [
            (Names::Nothing, &[]),
            (Names::Protocols, &["sec-websocket-protocol"]),
            (Names::Extensions, &["sec-websocket-extensions"]),
            (
                Names::RequestFields,
                &["host", "sec-websocket-protocol", "sec-websocket-extensions"],
            ),
            (
                Names::ResponseFields,
                &[
                    "sec-websocket-protocol",
                    "sec-websocket-extensions",
                    "connection",
                    "upgrade",
                    "sec-websocket-accept",
                ],
            ),
        ];
        for (names, list) in cases {
            assert_eq!(names.list(), list, "{names:?}");
            assert!(list.iter().all(|n| names.contain(&n.to_ascii_uppercase())));
            assert!(!names.contain("origin"));
        }
    }

    #[test]
    fn other_bytes_than_a_head_do_not_panic() {
        for head in [&b"GET"[..], b"", b"\n", b"x\nno colon\n:\n\xff: v\n\n"] {
            let _ = Headers::except(parsed(head), Names::Nothing).iter().count();
        }
        assert!(Headers::except(parsed(b"GET"), Names::Nothing).is_empty());
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Tokens<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "[");
        for (i, token) in self.iter().enumerate() {
            if i > 0 {
                defmt::write!(f, ", ");
            }
            defmt::write!(f, "{=str}", token);
        }
        defmt::write!(f, "]");
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Headers<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "[");
        for (i, header) in self.iter().enumerate() {
            if i > 0 {
                defmt::write!(f, ", ");
            }
            defmt::write!(f, "{}", header);
        }
        defmt::write!(f, "]");
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for TokensIter<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "TokensIter");
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for HeadersIter<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "HeadersIter");
    }
}
