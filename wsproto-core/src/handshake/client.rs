//! The client side: writing the upgrade request (RFC 6455 §4.1) and checking
//! the server's response, or reading its refusal.

use super::body::BodyDecoder;
use super::extensions::finalize_extensions;
use super::head::{write_request, RequestHead, Writer};
use super::util::{
    generate_accept_token, generate_nonce, is_field_value, is_request_target, HeadScan,
};
use super::Received;
use super::{
    check_headers, push_name, ExtensionSet, Handshake, Negotiated, Phase, Side, MAX_HEADERS,
    RAW_OFFER_CAPACITY,
};
use crate::error::{BufferTooSmall, LocalProtocolError, RemoteProtocolError, SendError};
use crate::event::{AcceptConnection, Event, RejectConnection, Request};
use crate::extension::{is_token, parse_extensions};
use crate::fields::{Headers, Names, Source, Tokens};
use crate::list::list;

impl<S: Side, E: ExtensionSet> Handshake<S, E> {
    /// Client: write the upgrade request with a fresh nonce.
    pub(super) fn send_request(
        &mut self,
        request: &Request<'_>,
        out: &mut [u8],
    ) -> Result<usize, SendError> {
        let local = |message| SendError::Local(LocalProtocolError::new(message));
        if self.phase != Phase::Idle {
            return Err(local("a client sends one Request, before anything else"));
        }
        if request.host.is_empty() || !is_field_value(request.host.as_bytes()) {
            return Err(local("Request::host must be a non-empty header value"));
        }
        if !is_request_target(request.target) {
            return Err(local(
                "Request::target must be a request target without spaces",
            ));
        }
        // The names go straight into the handshake: they are read only once
        // the request is sent, and a failed send leaves the phase `Idle`.
        let names = &mut self.negotiated.names;
        names.clear();
        for protocol in request.subprotocols {
            if !is_token(protocol) {
                return Err(local("a subprotocol must be an HTTP token"));
            }
            if !push_name(names, 0, protocol) {
                return Err(local(
                    "the subprotocols offered exceed SUBPROTOCOL_CAPACITY",
                ));
            }
        }
        let protocols_end = names.len();
        for raw in request.extensions {
            if !is_field_value(raw.as_bytes()) {
                return Err(local(
                    "Request::extensions holds a malformed extension offer",
                ));
            }
            for offer in parse_extensions(raw) {
                let offer = offer
                    .map_err(|_| local("Request::extensions holds a malformed extension offer"))?;
                if !push_name(names, protocols_end, offer.name)
                    || names.len() - protocols_end > RAW_OFFER_CAPACITY
                {
                    return Err(local(
                        "the extensions offered exceed RAW_OFFER_CAPACITY, or share \
                         SUBPROTOCOL_CAPACITY with the subprotocols",
                    ));
                }
            }
        }
        check_headers(request.extra_headers)?;
        let head = RequestHead {
            host: request.host,
            target: request.target,
            subprotocols: request.subprotocols,
            raw_extensions: request.extensions,
            extra_headers: request.extra_headers,
            extensions: &self.extensions,
        };
        // Count with a placeholder key, so no randomness is drawn for a
        // request that does not fit.
        let mut counter = Writer::counting();
        write_request(&mut counter, &head, &[b'A'; 24])
            .map_err(|_| local("an extension failed to write its offer"))?;
        let required = counter.len();
        if required > out.len() {
            return Err(BufferTooSmall { required }.into());
        }
        let Some(rng) = self.side.rng() else {
            return Err(local("only a client sends a Request"));
        };
        let key = generate_nonce(rng);
        let mut writer = Writer::new(out);
        write_request(&mut writer, &head, &key)
            .map_err(|_| local("an extension failed to write its offer"))?;
        let written = writer.len();
        self.negotiated.accept = Some(generate_accept_token(&key));
        // At most SUBPROTOCOL_CAPACITY.
        self.negotiated.protocols_end = u16::try_from(protocols_end).unwrap_or(u16::MAX);
        self.negotiated.chosen = None;
        self.phase = Phase::AwaitingResponse;
        Ok(written)
    }

    /// Client: parse the response head at the front of `buf`.
    pub(super) fn receive_response<'a>(&'a mut self, buf: &'a [u8]) -> Received<'a> {
        let head_limit = self.config.head_limit();
        let window = buf.get(..head_limit).unwrap_or(buf);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let headers = headers
            .get_mut(..self.config.header_limit())
            .unwrap_or_default();
        let mut response = httparse::Response::new(headers);
        let head_len = match response.parse(window) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if window.len() < head_limit => {
                return Received {
                    consumed: 0,
                    event: Ok(None),
                }
            }
            Ok(httparse::Status::Partial) => {
                return self.fail(RemoteProtocolError::protocol(
                    "the response head exceeds the size limit",
                ))
            }
            Err(httparse::Error::TooManyHeaders) => {
                return self.fail(RemoteProtocolError::protocol(
                    "the response has too many headers",
                ))
            }
            Err(_) => return self.fail(RemoteProtocolError::protocol("malformed HTTP response")),
        };
        let status = response.code.unwrap_or(0);
        let version = response.version.unwrap_or(0);
        let head = window.get(..head_len).unwrap_or(window);
        let source = Source::Parsed { head };
        let scan = HeadScan::of(source);
        // RFC 6455 §4.1: "If the status code received from the server is not
        // 101, the client handles the response per HTTP procedures."
        if status != 101 {
            let body = (status >= 200).then(|| BodyDecoder::for_response(status, &scan));
            return self.refusal(status, body, head_len, head);
        }
        if version != 1 {
            return self.fail(RemoteProtocolError::protocol(
                "101 Switching Protocols needs HTTP/1.1",
            ));
        }
        if let Err(err) = check_response(&scan, source, &mut self.extensions, &mut self.negotiated)
        {
            return self.fail(err);
        }
        self.phase = Phase::Open;
        let this: &'a Self = self;
        let accept = AcceptConnection {
            subprotocol: this.negotiated.subprotocol(),
            extensions: Tokens::field(source, Names::Extensions),
            extra_headers: Headers::except(source, Names::ResponseFields),
        };
        Received {
            consumed: head_len,
            event: Ok(Some(Event::AcceptConnection(accept))),
        }
    }

    /// Client: a response other than 101. An informational status ends the
    /// handshake without a body, as in the Python library; any other has a
    /// body, possibly empty, delivered as `RejectData` events.
    fn refusal<'a>(
        &'a mut self,
        status: u16,
        body: Option<Result<BodyDecoder, RemoteProtocolError>>,
        head_len: usize,
        head: &'a [u8],
    ) -> Received<'a> {
        self.phase = match body {
            Some(Ok(decoder)) => Phase::ReceivingBody(decoder),
            Some(Err(err)) => return self.fail(err),
            None => Phase::Closed,
        };
        let source = Source::Parsed { head };
        let reject = RejectConnection {
            status_code: status,
            headers: Headers::except(source, Names::Nothing),
            has_body: body.is_some(),
        };
        Received {
            consumed: head_len,
            event: Ok(Some(Event::RejectConnection(reject))),
        }
    }
}

/// Checks a 101 response (RFC 6455 §4.1, the client's checks 1 to 6) and
/// finalizes the extensions the server accepted.
fn check_response<E: ExtensionSet + ?Sized>(
    scan: &HeadScan<'_>,
    source: Source<'_>,
    extensions: &mut E,
    negotiated: &mut Negotiated,
) -> Result<(), RemoteProtocolError> {
    let fail = RemoteProtocolError::protocol;
    if scan.extensions_not_utf8 {
        return Err(fail("Sec-WebSocket-Extensions is not UTF-8"));
    }
    if !scan.upgrade {
        return Err(fail("the response has no `Upgrade: websocket` header"));
    }
    if !scan.connection {
        return Err(fail(
            "the response's Connection header lacks the `Upgrade` token",
        ));
    }
    if scan.accepts != 1 {
        return Err(fail("the response needs exactly one Sec-WebSocket-Accept"));
    }
    if negotiated.accept.as_ref().map(|a| &a[..]) != Some(scan.accept) {
        return Err(fail("Sec-WebSocket-Accept does not match the key sent"));
    }
    let chosen = match scan.protocols {
        0 => None,
        1 => Some(negotiated.find_protocol(scan.protocol).ok_or(fail(
            "the server chose a subprotocol the client did not offer",
        ))?),
        _ => {
            return Err(fail(
                "the response has several Sec-WebSocket-Protocol headers",
            ))
        }
    };
    // Element by element: each is a list of one for the parser.
    let answers = Tokens::field(source, Names::Extensions);
    let raw_offers = negotiated.raw_offers();
    finalize_extensions(answers, extensions, |name| {
        list(raw_offers).any(|offered| offered == name)
    })?;
    negotiated.chosen = chosen;
    Ok(())
}
