//! Writing heads: the client's upgrade request, the server's 101 and
//! refusals, and the chunks of a refusal body.
//!
//! Every head is written twice: once to count its size, then, if the caller's
//! buffer holds it, for real. So a short buffer is reported with the size it
//! needs and receives nothing.

use core::fmt::{self, Write as _};

use super::extensions::{ExtensionSet, Separated};
use crate::error::BufferTooSmall;
use crate::event::Header;
use crate::fields::{Headers, Tokens};

/// Writes into a caller buffer, or only counts when the buffer is too small.
pub(crate) struct Writer<'o> {
    buf: &'o mut [u8],
    len: usize,
}

impl<'o> Writer<'o> {
    pub(crate) fn new(buf: &'o mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// A writer that only counts.
    pub(crate) fn counting() -> Writer<'static> {
        Writer {
            buf: &mut [],
            len: 0,
        }
    }

    /// The bytes written (or counted) so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }

    /// Writes `n` in base `radix` (10 or 16, lowercase digits), without
    /// the weight of `core::fmt` on firmware.
    pub(crate) fn number(&mut self, mut n: usize, radix: usize) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let radix = radix.clamp(2, 16);
        let mut digits = [0u8; 20];
        let mut len = 0;
        for slot in digits.iter_mut().rev() {
            *slot = DIGITS[(n % radix) & 15];
            n /= radix;
            len += 1;
            if n == 0 {
                break;
            }
        }
        self.put(digits.get(digits.len() - len..).unwrap_or_default());
    }

    pub(crate) fn header(&mut self, name: &str, value: &[u8]) {
        self.put(name.as_bytes());
        self.put(b": ");
        self.put(value);
        self.put(b"\r\n");
    }
}

impl fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s.as_bytes());
        Ok(())
    }
}

/// Runs `write` once to count, then into `out` if it fits.
pub(crate) fn emit(
    out: &mut [u8],
    mut write: impl FnMut(&mut Writer<'_>),
) -> Result<usize, BufferTooSmall> {
    let mut counter = Writer::counting();
    write(&mut counter);
    let required = counter.len();
    if required > out.len() {
        return Err(BufferTooSmall { required });
    }
    let mut writer = Writer::new(out);
    write(&mut writer);
    debug_assert_eq!(writer.len(), required);
    Ok(writer.len())
}

/// The fields of the client's request that go on the wire.
pub(crate) struct RequestHead<'r, E: ?Sized> {
    pub(crate) host: &'r str,
    pub(crate) target: &'r str,
    pub(crate) subprotocols: Tokens<'r>,
    pub(crate) raw_extensions: Tokens<'r>,
    pub(crate) extra_headers: Headers<'r>,
    pub(crate) extensions: &'r E,
}

/// Writes the upgrade request of RFC 6455 §4.1 with `key` as
/// `Sec-WebSocket-Key`. Fails only if an extension fails to write its offer.
pub(crate) fn write_request<E: ExtensionSet + ?Sized>(
    w: &mut Writer<'_>,
    head: &RequestHead<'_, E>,
    key: &[u8],
) -> fmt::Result {
    // The fixed lines go out as a few long strings: one call each.
    w.put(b"GET ");
    w.put(head.target.as_bytes());
    w.put(b" HTTP/1.1\r\nHost: ");
    w.put(head.host.as_bytes());
    w.put(b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    w.put(key);
    w.put(b"\r\nSec-WebSocket-Version: 13\r\n");
    // The subprotocols were checked to be tokens: none is empty.
    let mut any = false;
    for protocol in head.subprotocols {
        w.put(if any {
            b", "
        } else {
            b"Sec-WebSocket-Protocol: "
        });
        w.put(protocol.as_bytes());
        any = true;
    }
    if any {
        w.put(b"\r\n");
    }
    // The header goes out only if some extension writes an offer: otherwise
    // its name is taken back.
    let start = w.len();
    w.put(b"Sec-WebSocket-Extensions: ");
    let offers = w.len();
    write_offers(w, head.extensions, head.raw_extensions)?;
    if w.len() == offers {
        w.len = start;
    } else {
        w.put(b"\r\n");
    }
    for header in head.extra_headers {
        w.header(header.name, header.value);
    }
    w.put(b"\r\n");
    Ok(())
}

fn write_offers<E: ExtensionSet + ?Sized>(
    w: &mut Writer<'_>,
    extensions: &E,
    raw: Tokens<'_>,
) -> fmt::Result {
    let mut list = Separated::new(w);
    for ext in (0..extensions.len()).filter_map(|i| extensions.get(i)) {
        ext.offer(&mut list)?;
        list.next_item();
    }
    for offer in raw {
        // An extension of the set already made its own offer: the same name
        // by hand would offer it twice.
        let own = (0..extensions.len())
            .filter_map(|i| extensions.get(i))
            .any(|ext| names(offer, ext.name()));
        if !own {
            list.write_str(offer)?;
            list.next_item();
        }
    }
    Ok(())
}

/// Whether the extension offer `offer` is for the extension `name`.
fn names(offer: &str, name: &str) -> bool {
    offer
        .trim_start_matches([' ', '\t'])
        .as_bytes()
        .strip_prefix(name.as_bytes())
        .is_some_and(|rest| matches!(rest.first(), None | Some(b';' | b',' | b' ' | b'\t')))
}

/// The fields of the server's 101 response.
pub(crate) struct AcceptHead<'r> {
    pub(crate) accept: &'r [u8],
    pub(crate) subprotocol: Option<&'r str>,
    pub(crate) negotiated: &'r str,
    pub(crate) raw_extensions: Tokens<'r>,
    pub(crate) extra_headers: Headers<'r>,
}

/// Writes the 101 response of RFC 6455 §4.2.2.
pub(crate) fn write_accept(w: &mut Writer<'_>, head: &AcceptHead<'_>) {
    w.put(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    w.put(head.accept);
    w.put(b"\r\n");
    if let Some(protocol) = head.subprotocol {
        w.header("Sec-WebSocket-Protocol", protocol.as_bytes());
    }
    // The raw extensions were checked to be well formed: none is empty.
    let mut any = !head.negotiated.is_empty();
    if any {
        w.put(b"Sec-WebSocket-Extensions: ");
        w.put(head.negotiated.as_bytes());
    }
    for ext in head.raw_extensions {
        w.put(if any {
            b", "
        } else {
            b"Sec-WebSocket-Extensions: "
        });
        w.put(ext.as_bytes());
        any = true;
    }
    if any {
        w.put(b"\r\n");
    }
    for header in head.extra_headers {
        w.header(header.name, header.value);
    }
    w.put(b"\r\n");
}

/// Writes a refusal head: status line, the caller's headers, then the
/// framing header the handshake adds, if any.
pub(crate) fn write_reject(
    w: &mut Writer<'_>,
    status: u16,
    headers: Headers<'_>,
    framing: Option<Header<'_>>,
) {
    w.put(b"HTTP/1.1 ");
    w.number(usize::from(status), 10);
    w.put(b" ");
    w.put(reason_phrase(status).as_bytes());
    w.put(b"\r\n");
    for header in headers.iter().chain(framing) {
        w.header(header.name, header.value);
    }
    w.put(b"\r\n");
}

/// Writes one chunk of a chunked body (RFC 7230 §4.1), and the last chunk
/// when `finished`. An empty `data` writes no chunk: a zero-size chunk would
/// end the body.
pub(crate) fn write_chunk(w: &mut Writer<'_>, data: &[u8], finished: bool) {
    if !data.is_empty() {
        w.number(data.len(), 16);
        w.put(b"\r\n");
        w.put(data);
        w.put(b"\r\n");
    }
    if finished {
        w.put(b"0\r\n\r\n");
    }
}

/// The reason phrase sent with a status code; empty (which HTTP allows) for
/// codes not listed.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffer_gets_nothing() {
        let mut out = [0xaau8; 8];
        let err = emit(&mut out, |w| w.put(b"0123456789")).unwrap_err();
        assert_eq!(err, BufferTooSmall { required: 10 });
        assert_eq!(out, [0xaa; 8]);
        let mut out = [0u8; 10];
        assert_eq!(emit(&mut out, |w| w.put(b"0123456789")), Ok(10));
        assert_eq!(&out, b"0123456789");
    }

    #[test]
    fn numbers_match_core_fmt() {
        extern crate std;
        use std::string::ToString;
        for n in [0usize, 1, 9, 10, 15, 16, 255, 999, 4096, 65_535, usize::MAX] {
            let mut out = [0u8; 20];
            let len = emit(&mut out, |w| w.number(n, 10)).unwrap();
            assert_eq!(&out[..len], n.to_string().as_bytes());
            let len = emit(&mut out, |w| w.number(n, 16)).unwrap();
            assert_eq!(&out[..len], std::format!("{n:x}").as_bytes());
        }
    }

    #[test]
    fn reject_heads_and_chunks() {
        let mut out = [0u8; 128];
        let n = emit(&mut out, |w| {
            write_reject(
                w,
                403,
                Headers::new(&[Header::new("X", b"y")]),
                Some(Header::new("Content-Length", b"0")),
            )
        })
        .unwrap();
        assert_eq!(
            &out[..n],
            b"HTTP/1.1 403 Forbidden\r\nX: y\r\nContent-Length: 0\r\n\r\n"
        );
        let n = emit(&mut out, |w| write_reject(w, 599, Headers::EMPTY, None)).unwrap();
        assert_eq!(&out[..n], b"HTTP/1.1 599 \r\n\r\n");
        let n = emit(&mut out, |w| write_chunk(w, &[7u8; 26], true)).unwrap();
        assert_eq!(&out[..5], b"1a\r\n\x07");
        assert_eq!(&out[n - 7..n], b"\r\n0\r\n\r\n");
        let n = emit(&mut out, |w| write_chunk(w, b"", false)).unwrap();
        assert_eq!(n, 0);
    }
}
