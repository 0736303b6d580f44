//! The body of a refused handshake: reading it on the client (framed by
//! Content-Length, chunked transfer-coding, or the end of the stream, RFC 7230
//! §3.3.3) and framing it on the server.

use crate::error::RemoteProtocolError;
use crate::event::RejectData;

use super::util::HeadScan;
use super::MAX_HEADERS;
use crate::list::trim_ows_bytes;

/// The longest chunk-size line accepted, extensions included.
const MAX_CHUNK_LINE: usize = 1024;

/// How a received refusal body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// This many bytes remain.
    Length(u64),
    /// Chunked transfer-coding, at the given point of a chunk.
    Chunked(Chunk),
    /// The body ends with the stream.
    UntilClose,
    /// The body ended.
    Done,
}

/// Where the chunked decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    /// Before the CRLF that ends a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields up to an empty line.
    Trailers,
}

/// Limits for reading a body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimits {
    pub(crate) max_body: u64,
    pub(crate) max_head: usize,
    pub(crate) max_headers: usize,
}

/// Reads a refusal body out of the caller's buffer without copying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyDecoder {
    pub(crate) framing: Framing,
    received: u64,
}

/// The outcome of one decoding step: bytes consumed and the chunk, if any.
pub(crate) type Decoded<'a> = (usize, Result<Option<RejectData<'a>>, RemoteProtocolError>);

impl BodyDecoder {
    /// The framing of a response with `status` and the headers `scan`
    /// read (RFC 7230 §3.3.3): the last Transfer-Encoding decides if there
    /// is one (the Content-Length is then ignored, even if invalid);
    /// otherwise the Content-Length headers must agree.
    pub(crate) fn for_response(
        status: u16,
        scan: &HeadScan<'_>,
    ) -> Result<Self, RemoteProtocolError> {
        let framing = match (status, scan.chunked) {
            (204 | 304, _) => Framing::Length(0),
            (_, Some(true)) => Framing::Chunked(Chunk::Size),
            (_, Some(false)) => Framing::UntilClose,
            (_, None) => scan
                .length
                .map_err(RemoteProtocolError::protocol)?
                .map_or(Framing::UntilClose, Framing::Length),
        };
        Ok(Self {
            framing,
            received: 0,
        })
    }

    /// Whether the body ended.
    pub(crate) fn is_done(&self) -> bool {
        self.framing == Framing::Done
    }

    /// Takes framing bytes and at most one chunk of data from the front of
    /// `buf`. On an error nothing counts as consumed.
    pub(crate) fn decode<'a>(&mut self, buf: &'a [u8], limits: BodyLimits) -> Decoded<'a> {
        let mut pos = 0;
        loop {
            let rest = buf.get(pos..).unwrap_or_default();
            match self.framing {
                Framing::Done => return (pos, Ok(None)),
                Framing::Length(0) => {
                    self.framing = Framing::Done;
                    return (pos, Ok(Some(finished())));
                }
                Framing::Length(remaining) => {
                    if self.received.saturating_add(remaining) > limits.max_body {
                        return (0, Err(too_big()));
                    }
                    let Some((data, left)) = take(rest, remaining) else {
                        return (pos, Ok(None));
                    };
                    self.received += data.len() as u64;
                    self.framing = if left == 0 {
                        Framing::Done
                    } else {
                        Framing::Length(left)
                    };
                    let event = RejectData {
                        data,
                        body_finished: left == 0,
                    };
                    return (pos + data.len(), Ok(Some(event)));
                }
                Framing::UntilClose => {
                    let Some((data, _)) = take(rest, u64::MAX) else {
                        return (pos, Ok(None));
                    };
                    self.received = self.received.saturating_add(data.len() as u64);
                    if self.received > limits.max_body {
                        return (0, Err(too_big()));
                    }
                    let event = RejectData {
                        data,
                        body_finished: false,
                    };
                    return (pos + data.len(), Ok(Some(event)));
                }
                Framing::Chunked(Chunk::Size) => match httparse::parse_chunk_size(rest) {
                    // The line limit holds whether or not the line's end
                    // has arrived yet.
                    Ok(httparse::Status::Complete((used, _))) if used > MAX_CHUNK_LINE => {
                        return (0, Err(malformed()))
                    }
                    Ok(httparse::Status::Complete((used, size))) => {
                        pos += used;
                        if size == 0 {
                            self.framing = Framing::Chunked(Chunk::Trailers);
                        } else if self.received.saturating_add(size) > limits.max_body {
                            return (0, Err(too_big()));
                        } else {
                            self.framing = Framing::Chunked(Chunk::Data(size));
                        }
                    }
                    Ok(httparse::Status::Partial) if rest.len() <= MAX_CHUNK_LINE => {
                        return (pos, Ok(None))
                    }
                    _ => return (0, Err(malformed())),
                },
                Framing::Chunked(Chunk::Data(remaining)) => {
                    let Some((data, left)) = take(rest, remaining) else {
                        return (pos, Ok(None));
                    };
                    self.received += data.len() as u64;
                    self.framing = Framing::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    let event = RejectData {
                        data,
                        body_finished: false,
                    };
                    return (pos + data.len(), Ok(Some(event)));
                }
                Framing::Chunked(Chunk::DataEnd) => match rest {
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        self.framing = Framing::Chunked(Chunk::Size);
                    }
                    [] | [b'\r'] => return (pos, Ok(None)),
                    _ => return (0, Err(malformed())),
                },
                Framing::Chunked(Chunk::Trailers) => {
                    let window = rest.get(..limits.max_head).unwrap_or(rest);
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let headers = headers.get_mut(..limits.max_headers).unwrap_or_default();
                    match httparse::parse_headers(window, headers) {
                        Ok(httparse::Status::Complete((used, _))) => {
                            self.framing = Framing::Done;
                            return (pos + used, Ok(Some(finished())));
                        }
                        Ok(httparse::Status::Partial) if window.len() < limits.max_head => {
                            return (pos, Ok(None))
                        }
                        _ => return (0, Err(malformed())),
                    }
                }
            }
        }
    }
}

/// At most `limit` bytes from the front of `rest`, and how many of `limit`
/// remain; `None` when `rest` is empty.
fn take(rest: &[u8], limit: u64) -> Option<(&[u8], u64)> {
    if rest.is_empty() {
        return None;
    }
    let n = usize::try_from(limit).map_or(rest.len(), |limit| limit.min(rest.len()));
    let data = rest.get(..n)?;
    Some((data, limit - n as u64))
}

fn finished() -> RejectData<'static> {
    RejectData {
        data: &[],
        body_finished: true,
    }
}

fn too_big() -> RemoteProtocolError {
    RemoteProtocolError::protocol("the refusal body exceeds the size limit")
}

fn malformed() -> RemoteProtocolError {
    RemoteProtocolError::protocol("malformed chunked refusal body")
}

/// A Content-Length value: decimal digits only (RFC 7230 §3.3.2).
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    let value = trim_ows_bytes(value);
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// How the server frames the body of a refusal it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyEncoder {
    /// Identity, with this many bytes of the declared Content-Length left.
    Length(u64),
    /// Chunked transfer-coding.
    Chunked,
}

/// Whether a `Transfer-Encoding` value is exactly `chunked`.
pub(crate) fn is_chunked(value: &[u8]) -> bool {
    trim_ows_bytes(value).eq_ignore_ascii_case(b"chunked")
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;
    use crate::event::Header;
    use crate::fields::Source;

    const LIMITS: BodyLimits = BodyLimits {
        max_body: 64,
        max_head: 64,
        max_headers: 4,
    };

    fn decoder(headers: &[Header<'_>]) -> BodyDecoder {
        BodyDecoder::for_response(400, &HeadScan::of(Source::Slice(headers))).unwrap()
    }

    /// Decodes `input` fed at once, returning the data and whether it ended.
    fn run(mut dec: BodyDecoder, input: &[u8]) -> (Vec<u8>, bool, usize) {
        let mut pos = 0;
        let mut data = Vec::new();
        let mut finished = false;
        loop {
            let (used, event) = dec.decode(&input[pos..], LIMITS);
            pos += used;
            match event.unwrap() {
                Some(chunk) => {
                    data.extend_from_slice(chunk.data);
                    finished |= chunk.body_finished;
                }
                None => return (data, finished, pos),
            }
        }
    }

    #[test]
    fn framing_rules() {
        let cl = [Header::new("Content-Length", b"5")];
        assert_eq!(decoder(&cl).framing, Framing::Length(5));
        let te = [
            Header::new("Transfer-Encoding", b"gzip, chunked"),
            Header::new("Content-Length", b"5"),
        ];
        assert_eq!(decoder(&te).framing, Framing::Chunked(Chunk::Size));
        let te = [Header::new("Transfer-Encoding", b"chunked, gzip")];
        assert_eq!(decoder(&te).framing, Framing::UntilClose);
        assert_eq!(decoder(&[]).framing, Framing::UntilClose);
        let none = BodyDecoder::for_response(304, &HeadScan::of(Source::Slice(&cl))).unwrap();
        assert_eq!(none.framing, Framing::Length(0));
        for bad in [&b"5, 5"[..], b"-1", b"", b"99999999999999999999999"] {
            let h = [Header::new("Content-Length", bad)];
            assert!(BodyDecoder::for_response(400, &HeadScan::of(Source::Slice(&h))).is_err());
        }
        let h = [
            Header::new("Content-Length", b"5"),
            Header::new("content-length", b"6"),
        ];
        assert!(BodyDecoder::for_response(400, &HeadScan::of(Source::Slice(&h))).is_err());
    }

    #[test]
    fn chunked_body_with_extension_and_trailer() {
        let dec = BodyDecoder {
            framing: Framing::Chunked(Chunk::Size),
            received: 0,
        };
        let input = b"5;x=1\r\nhello\r\n1\r\n!\r\n0\r\nT: 1\r\n\r\nNEXT";
        let (data, finished, used) = run(dec, input);
        assert_eq!((data.as_slice(), finished), (&b"hello!"[..], true));
        assert_eq!(&input[used..], b"NEXT");
    }

    #[test]
    fn chunked_errors_and_limits() {
        let dec = BodyDecoder {
            framing: Framing::Chunked(Chunk::Size),
            received: 0,
        };
        for bad in [&b"zz\r\n"[..], b"5\r\nhelloXX", b"0\r\nbad header\r\n\r\n"] {
            let mut d = dec;
            let mut pos = 0;
            let err = loop {
                let (used, event) = d.decode(&bad[pos..], LIMITS);
                pos += used;
                match event {
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("{bad:?} accepted"),
                    Err(err) => break err,
                }
            };
            #[cfg(feature = "error-text")]
            assert_eq!(err.message(), "malformed chunked refusal body");
            assert_eq!(err.close_code(), Some(crate::CloseCode::PROTOCOL_ERROR));
        }
        let mut d = dec;
        assert!(d.decode(b"41\r\n", LIMITS).1.is_err());
        let mut d = dec;
        assert!(d.decode(&[b'1'; MAX_CHUNK_LINE + 1], LIMITS).1.is_err());
        // Found by fuzzing: a whole line over the limit fails as a partial
        // one does, so the verdict does not depend on how input arrives.
        let mut long = b"4;".to_vec();
        long.extend(core::iter::repeat_n(b'x', MAX_CHUNK_LINE));
        long.extend_from_slice(b"\r\nbusy\r\n0\r\n\r\n");
        let mut d = decoder(&[Header::new("Transfer-Encoding", b"chunked")]);
        assert!(d.decode(&long, LIMITS).1.is_err());
        let mut d = decoder(&[Header::new("Content-Length", b"65")]);
        assert!(d.decode(b"x", LIMITS).1.is_err());
        let mut d = decoder(&[]);
        assert!(d.decode(&[0; 65], LIMITS).1.is_err());
    }

    #[test]
    fn lengths() {
        assert_eq!(parse_length(b" 42 "), Some(42));
        assert_eq!(parse_length(b"+1"), None);
        assert!(is_chunked(b" Chunked"));
        assert!(!is_chunked(b"gzip, chunked"));
    }
}
