//! The server side: reading and checking the client's request
//! (RFC 6455 §4.2.1), then accepting it (§4.2.2) or refusing it with an
//! HTTP response.

use super::body::{is_chunked, parse_length, BodyEncoder};
use super::extensions::server_extensions_handshake;
use super::head::{emit, write_accept, write_chunk, write_reject, AcceptHead};
use super::util::{generate_accept_token, is_valid_key, HeadScan};
use super::Received;
use super::{
    check_headers, push_name, ExtensionSet, Handshake, Negotiated, Phase, Server, Side,
    UpgradeError, MAX_HEADERS,
};
use crate::error::{LocalProtocolError, RemoteProtocolError, SendError};
use crate::event::{AcceptConnection, Event, Header, RejectConnection, RejectData, Request};
use crate::extension::is_extension_list;
use crate::fields::{Headers, Names, Source, Tokens};
use crate::list::trim_ows;

impl<S: Side, E: ExtensionSet> Handshake<S, E> {
    /// Server: parse and check the request head at the front of `buf`.
    pub(super) fn receive_request<'a>(&'a mut self, buf: &'a [u8]) -> Received<'a> {
        let head_limit = self.config.head_limit();
        let window = buf.get(..head_limit).unwrap_or(buf);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let headers = headers
            .get_mut(..self.config.header_limit())
            .unwrap_or_default();
        let mut request = httparse::Request::new(headers);
        let head_len = match request.parse(window) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if window.len() < head_limit => {
                return Received {
                    consumed: 0,
                    event: Ok(None),
                }
            }
            Ok(httparse::Status::Partial) => {
                return self.fail(RemoteProtocolError::reject(
                    431,
                    "the request head exceeds the size limit",
                ))
            }
            Err(httparse::Error::TooManyHeaders) => {
                return self.fail(RemoteProtocolError::reject(
                    431,
                    "the request has too many headers",
                ))
            }
            Err(_) => return self.fail(RemoteProtocolError::reject(400, "malformed HTTP request")),
        };
        // RFC 6455 §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
        if request.method != Some("GET") {
            return self.fail(RemoteProtocolError::reject(
                400,
                "the opening handshake must be a GET request",
            ));
        }
        if request.version != Some(1) {
            return self.fail(RemoteProtocolError::reject(
                400,
                "the opening handshake must use HTTP/1.1",
            ));
        }
        let target = request.path.unwrap_or("");
        let head = window.get(..head_len).unwrap_or(window);
        let source = Source::Parsed { head };
        let host = match check_request(
            source,
            &mut self.extensions,
            &mut self.negotiated,
            &mut self.accepted_extensions,
        ) {
            Ok(host) => host,
            Err(err) => return self.fail(err),
        };
        self.phase = Phase::RequestReceived;
        Received {
            consumed: head_len,
            event: Ok(Some(Event::Request(request_event(source, target, host)))),
        }
    }

    /// Server: write the 101 response.
    pub(super) fn send_accept(
        &mut self,
        accept: &AcceptConnection<'_>,
        out: &mut [u8],
    ) -> Result<usize, SendError> {
        if self.phase != Phase::RequestReceived {
            return Err(LocalProtocolError::new(
                "AcceptConnection answers a valid request that has not been answered yet",
            )
            .into());
        }
        let chosen = match accept.subprotocol {
            None => None,
            Some(protocol) => Some(self.negotiated.find_protocol(protocol).ok_or(
                LocalProtocolError::new("the client did not offer this subprotocol"),
            )?),
        };
        for raw in accept.extensions {
            let well_formed = trim_ows(raw).len() == raw.len()
                && super::util::is_field_value(raw.as_bytes())
                && is_extension_list(raw);
            if !well_formed || raw.is_empty() {
                return Err(LocalProtocolError::new(
                    "AcceptConnection::extensions holds a malformed extension",
                )
                .into());
            }
        }
        check_headers(accept.extra_headers)?;
        let head = AcceptHead {
            accept: self.negotiated.accept.as_ref().map_or(&[], |a| &a[..]),
            subprotocol: accept.subprotocol,
            negotiated: self.accepted_extensions.as_ref(),
            raw_extensions: accept.extensions,
            extra_headers: accept.extra_headers,
        };
        let written = emit(out, |w| write_accept(w, &head))?;
        self.negotiated.chosen = chosen;
        self.phase = Phase::Open;
        Ok(written)
    }

    /// Server: write a refusal head.
    pub(super) fn send_reject(
        &mut self,
        reject: &RejectConnection<'_>,
        out: &mut [u8],
    ) -> Result<usize, SendError> {
        if !matches!(
            self.phase,
            Phase::Idle | Phase::RequestReceived | Phase::Failed(_)
        ) {
            return Err(LocalProtocolError::new(
                "RejectConnection answers a request that has not been answered yet",
            )
            .into());
        }
        if !(200..=999).contains(&reject.status_code) {
            return Err(LocalProtocolError::new(
                "a refusal needs a final status code, from 200 to 999",
            )
            .into());
        }
        check_headers(reject.headers)?;
        let mut length = None;
        let mut chunked = false;
        for header in reject.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                let value = parse_length(header.value).ok_or(LocalProtocolError::new(
                    "invalid Content-Length in the refusal",
                ))?;
                if length.is_some_and(|l| l != value) {
                    return Err(
                        LocalProtocolError::new("conflicting Content-Length headers").into(),
                    );
                }
                length = Some(value);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                if !is_chunked(header.value) {
                    return Err(LocalProtocolError::new(
                        "a refusal body is sent with Content-Length or chunked, nothing else",
                    )
                    .into());
                }
                chunked = true;
            }
        }
        let (framing, next) = match (reject.has_body, length, chunked) {
            (_, Some(_), true) => {
                return Err(LocalProtocolError::new(
                    "a refusal has Content-Length or Transfer-Encoding, not both",
                )
                .into())
            }
            (false, None, false) => (Some(Header::new("Content-Length", b"0")), Phase::Closed),
            (false, Some(0), false) => (None, Phase::Closed),
            (false, _, _) => {
                return Err(LocalProtocolError::new(
                    "a refusal without a body declares a body length",
                )
                .into())
            }
            (true, Some(length), false) => (None, Phase::SendingBody(BodyEncoder::Length(length))),
            (true, None, true) => (None, Phase::SendingBody(BodyEncoder::Chunked)),
            (true, None, false) => (
                Some(Header::new("Transfer-Encoding", b"chunked")),
                Phase::SendingBody(BodyEncoder::Chunked),
            ),
        };
        let written = emit(out, |w| {
            write_reject(w, reject.status_code, reject.headers, framing)
        })?;
        self.phase = next;
        Ok(written)
    }

    /// Server: write a chunk of the refusal body.
    pub(super) fn send_reject_data(
        &mut self,
        data: &RejectData<'_>,
        out: &mut [u8],
    ) -> Result<usize, SendError> {
        let Phase::SendingBody(encoder) = self.phase else {
            return Err(LocalProtocolError::new(
                "RejectData follows a RejectConnection that has a body",
            )
            .into());
        };
        let (written, next) = match encoder {
            BodyEncoder::Length(left) => {
                let len = data.data.len() as u64;
                if len > left {
                    return Err(LocalProtocolError::new(
                        "RejectData goes beyond the declared Content-Length",
                    )
                    .into());
                }
                if data.body_finished && len != left {
                    return Err(LocalProtocolError::new(
                        "the refusal body ends before its Content-Length",
                    )
                    .into());
                }
                let written = emit(out, |w| w.put(data.data))?;
                (written, BodyEncoder::Length(left - len))
            }
            BodyEncoder::Chunked => {
                let written = emit(out, |w| write_chunk(w, data.data, data.body_finished))?;
                (written, BodyEncoder::Chunked)
            }
        };
        self.phase = if data.body_finished {
            Phase::Closed
        } else {
            Phase::SendingBody(next)
        };
        Ok(written)
    }
}

impl<E: ExtensionSet> Handshake<Server, E> {
    /// Start from a request parsed elsewhere, such as by an HTTP server:
    /// check its `headers` as [`receive`](Self::receive) would, negotiate the
    /// extensions, and return the [`Request`] event. The method (GET) and
    /// the HTTP version are the caller's to check.
    ///
    /// The event borrows only `headers` and `target`, so the handshake is
    /// free to [`send`](Self::send) the answer while the request is in use.
    ///
    /// ```
    /// use wsproto_core::event::{AcceptConnection, Header};
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// let headers = [
    ///     Header::new("Host", b"example.com"),
    ///     Header::new("Upgrade", b"websocket"),
    ///     Header::new("Connection", b"keep-alive, Upgrade"),
    ///     Header::new("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    ///     Header::new("Sec-WebSocket-Version", b"13"),
    ///     Header::new("Sec-WebSocket-Protocol", b"chat, superchat"),
    /// ];
    /// let mut hs = Handshake::server(HandshakeConfig::default());
    /// let request = hs.initiate_upgrade_connection(&headers, "/chat")?;
    /// assert_eq!((request.host, request.target), ("example.com", "/chat"));
    /// let accept = AcceptConnection {
    ///     subprotocol: request.subprotocols.iter().next(),
    ///     ..AcceptConnection::default()
    /// };
    /// let mut out = [0u8; 256];
    /// let n = hs.send(&accept.into(), &mut out)?;
    /// assert!(out[..n].starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`UpgradeError::Remote`] for an invalid request, with the refusal to
    /// send as its hint; [`UpgradeError::Local`] if the handshake already has
    /// a request.
    pub fn initiate_upgrade_connection<'a>(
        &mut self,
        headers: &'a [Header<'a>],
        target: &'a str,
    ) -> Result<Request<'a>, UpgradeError> {
        if self.phase != Phase::Idle {
            return Err(LocalProtocolError::new("the handshake already has a request").into());
        }
        let source = Source::Slice(headers);
        let host = match check_request(
            source,
            &mut self.extensions,
            &mut self.negotiated,
            &mut self.accepted_extensions,
        ) {
            Ok(host) => host,
            Err(err) => {
                self.phase = Phase::Failed(err);
                return Err(err.into());
            }
        };
        self.phase = Phase::RequestReceived;
        Ok(request_event(source, target, host))
    }
}

/// The [`Request`] event of a checked request with this `Host`.
fn request_event<'a>(source: Source<'a>, target: &'a str, host: &'a str) -> Request<'a> {
    Request {
        host,
        target,
        subprotocols: Tokens::field(source, Names::Protocols),
        extensions: Tokens::field(source, Names::Extensions),
        extra_headers: Headers::except(source, Names::RequestFields),
    }
}

/// Checks the headers of an opening request (RFC 6455 §4.2.1), then keeps
/// the accept token and the offered subprotocols and lets the extensions
/// accept the client's offers. Returns the `Host`, trimmed.
fn check_request<'a, E: ExtensionSet + ?Sized>(
    source: Source<'a>,
    extensions: &mut E,
    negotiated: &mut Negotiated,
    accepted: &mut E::Accepted,
) -> Result<&'a str, RemoteProtocolError> {
    let bad = |message| RemoteProtocolError::reject(400, message);
    let scan = HeadScan::of(source);
    // Items 5 to 8 of the syntax: well-formed values, and no body.
    if let Some(message) = scan.request_error {
        return Err(bad(message));
    }
    // Item 2: a Host header.
    match scan.hosts {
        0 => return Err(bad("the request has no Host header")),
        1 => {}
        _ => return Err(bad("the request has several Host headers")),
    }
    if !scan.upgrade {
        return Err(bad("the request has no `Upgrade: websocket` header"));
    }
    if !scan.connection {
        return Err(bad(
            "the request's Connection header lacks the `Upgrade` token",
        ));
    }
    // Item 6 and §4.4: any version but 13 (or none) gets 426 with
    // `Sec-WebSocket-Version: 13`.
    if scan.version != Some(true) {
        return Err(RemoteProtocolError::reject(
            426,
            "unsupported Sec-WebSocket-Version: this server speaks version 13",
        ));
    }
    // Item 5: a key that decodes to 16 bytes.
    if scan.keys != 1 {
        return Err(bad("the request needs exactly one Sec-WebSocket-Key"));
    }
    if !is_valid_key(scan.key) {
        return Err(bad("Sec-WebSocket-Key is not 16 bytes in base64"));
    }
    negotiated.accept = Some(generate_accept_token(scan.key));
    negotiated.names.clear();
    negotiated.chosen = None;
    for protocol in Tokens::field(source, Names::Protocols) {
        if !push_name(&mut negotiated.names, 0, protocol) {
            return Err(RemoteProtocolError::reject(
                431,
                "the subprotocols offered exceed the handshake's storage",
            ));
        }
    }
    // At most SUBPROTOCOL_CAPACITY.
    negotiated.protocols_end = u16::try_from(negotiated.names.len()).unwrap_or(u16::MAX);
    *accepted = E::Accepted::default();
    // Without extensions every offer is declined (their syntax was checked
    // above), so there is nothing to negotiate.
    if !extensions.is_empty() {
        // Element by element: each is a list of one for the parser.
        let offers = Tokens::field(source, Names::Extensions);
        server_extensions_handshake(offers, extensions, accepted)?;
    }
    Ok(scan.host)
}
