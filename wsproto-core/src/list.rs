//! The list syntax of HTTP header values (RFC 7230 §3.2.3, §3.2.6, §7):
//! optional whitespace, and elements separated by a byte outside
//! quoted-strings. One splitter serves the comma lists of the handshake and
//! the `;` and `=` of extension parameters.

use core::iter::Filter;

/// Trims optional whitespace (spaces and tabs) from both ends.
pub(crate) fn trim_ows(s: &str) -> &str {
    // Whitespace is ASCII, so what is left is still UTF-8; checking it again
    // costs less code than checking character boundaries.
    core::str::from_utf8(trim_ows_bytes(s.as_bytes())).unwrap_or_default()
}

/// Trims optional whitespace from both ends of raw bytes.
pub(crate) fn trim_ows_bytes(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `s` split at the first `sep` (an ASCII byte) outside a quoted-string:
/// the part before it, and the rest after it if there was one. A backslash
/// inside quotes escapes the next byte; an unterminated quote runs to the
/// end.
pub(crate) fn split_first(s: &str, sep: u8) -> (&str, Option<&str>) {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if in_quotes && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes && b == sep {
            // `i` is the index of an ASCII byte: a character boundary.
            return (s.get(..i).unwrap_or_default(), s.get(i + 1..));
        }
    }
    (s, None)
}

/// The elements of `s` between separators outside quoted-strings, each
/// trimmed of optional whitespace; empty elements are kept. An empty `s`
/// has no elements.
#[derive(Clone, Debug)]
pub(crate) struct Split<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Split<'a> {
    pub(crate) fn new(s: &'a str, sep: u8) -> Self {
        Self {
            rest: if s.is_empty() { None } else { Some(s) },
            sep,
        }
    }
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (element, rest) = split_first(self.rest?, self.sep);
        self.rest = rest;
        Some(trim_ows(element))
    }
}

/// The elements of a comma-separated list (RFC 7230 §7): trimmed, empty
/// elements skipped, commas inside quoted-strings not splitting.
pub(crate) type List<'a> = Filter<Split<'a>, fn(&&'a str) -> bool>;

/// The elements of the comma-separated list `s`.
pub(crate) fn list(s: &str) -> List<'_> {
    Split::new(s, b',').filter(|element| !element.is_empty())
}

/// Whether the comma-separated `value` contains `token`, compared ASCII
/// case-insensitively; false if `value` is not UTF-8.
pub(crate) fn has_token(value: &[u8], token: &str) -> bool {
    core::str::from_utf8(value)
        .is_ok_and(|value| list(value).any(|t| t.eq_ignore_ascii_case(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_trims_skips_empty_and_respects_quotes() {
        let mut it = list(" a ,\t, b;x=\"1,\\\"2\" ,c,");
        assert_eq!(it.next(), Some("a"));
        assert_eq!(it.next(), Some("b;x=\"1,\\\"2\""));
        assert_eq!(it.next(), Some("c"));
        assert_eq!(it.next(), None);
        assert_eq!(list("").next(), None);
        assert_eq!(list(" , ,").next(), None);
        // An unterminated quote keeps the rest as one element.
        let mut it = list("a\"b,c");
        assert_eq!(it.next(), Some("a\"b,c"));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn split_keeps_empty_elements() {
        let mut it = Split::new("a; ;b=\"x;y\";", b';');
        assert_eq!(it.next(), Some("a"));
        assert_eq!(it.next(), Some(""));
        assert_eq!(it.next(), Some("b=\"x;y\""));
        assert_eq!(it.next(), Some(""));
        assert_eq!(it.next(), None);
        assert_eq!(Split::new("", b';').next(), None);
        assert_eq!(split_first("a=b=c", b'='), ("a", Some("b=c")));
        assert_eq!(split_first("a", b'='), ("a", None));
    }

    #[test]
    fn tokens_and_whitespace() {
        assert!(has_token(b"keep-alive, UPGRADE", "upgrade"));
        assert!(!has_token(b"keep-alive, upgrades", "upgrade"));
        assert!(!has_token(b"\xff", "upgrade"));
        assert_eq!(trim_ows_bytes(b" \tx y\t "), b"x y");
        assert_eq!(trim_ows_bytes(b"  "), b"");
        assert_eq!(trim_ows(" \t\u{e9} x\t"), "\u{e9} x");
        assert_eq!(trim_ows(""), "");
    }
}
