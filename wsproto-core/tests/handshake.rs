//! Transcript tests of the opening handshake, for both roles: golden bytes,
//! every split of the input, rejections with and without bodies, bytes
//! pipelined behind a head, and one test per malformed request or response.

use core::fmt;
use std::cell::Cell;

use wsproto_core::error::ErrorHint;
use wsproto_core::event::{
    AcceptConnection, ConnectionEvent, Event, Header, RejectConnection, RejectData, Request,
    TextMessage,
};
use wsproto_core::extension::{Extension, ExtensionOffer};
use wsproto_core::handshake::Received;
use wsproto_core::handshake::{
    Client, ExtensionSet, Handshake, HandshakeConfig, Headers, Side, Tokens, UpgradeError,
};
use wsproto_core::{ConnectionState, RemoteProtocolError, Role, SendError};

// ---------------------------------------------------------------------------
// Vectors

/// RFC 6455 §1.3: the sample nonce, its key and the accept token.
const SAMPLE_NONCE: &[u8; 16] = b"the sample nonce";
const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The client request of RFC 6455 §1.2, byte for byte.
const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: server.example.com\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Origin: http://example.com\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\n\
Sec-WebSocket-Version: 13\r\n\
\r\n";

/// The server response of RFC 6455 §1.2, byte for byte.
const RFC_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
Sec-WebSocket-Protocol: chat\r\n\
\r\n";

/// What our client sends for the §1.2 request (same fields, our order).
const GOLDEN_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: server.example.com\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\n\
Origin: http://example.com\r\n\
\r\n";

const ORIGIN: [Header<'static>; 1] = [Header::new("Origin", b"http://example.com")];

fn sample_rng(dest: &mut [u8]) {
    for (d, s) in dest.iter_mut().zip(SAMPLE_NONCE.iter().cycle()) {
        *d = *s;
    }
}

fn config() -> HandshakeConfig {
    HandshakeConfig::default()
}

/// A client whose nonce is the RFC sample nonce.
type TestClient = Handshake<Client<fn(&mut [u8])>>;

fn client() -> TestClient {
    Handshake::client(config(), sample_rng as fn(&mut [u8]))
}

fn rfc_request() -> Request<'static> {
    Request {
        host: "server.example.com",
        target: "/chat",
        subprotocols: Tokens::new(&["chat", "superchat"]),
        extensions: Tokens::EMPTY,
        extra_headers: Headers::new(&ORIGIN),
    }
}

/// `event` written into a fresh buffer.
fn send<S: Side, E: ExtensionSet>(hs: &mut Handshake<S, E>, event: Event<'_>) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    let n = hs.send(&event, &mut out).unwrap();
    out.truncate(n);
    out
}

// ---------------------------------------------------------------------------
// Harness

/// An owned copy of a handshake event or error.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Request {
        host: String,
        target: String,
        subprotocols: Vec<String>,
        extensions: Vec<String>,
        extra: Vec<(String, Vec<u8>)>,
    },
    Accept {
        subprotocol: Option<String>,
        extensions: Vec<String>,
        extra: Vec<(String, Vec<u8>)>,
    },
    Reject(u16, bool),
    Data(Vec<u8>, bool),
    Error(ErrorHint, &'static str),
}

fn strings(tokens: Tokens<'_>) -> Vec<String> {
    tokens.iter().map(str::to_owned).collect()
}

fn pairs(headers: Headers<'_>) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

fn own(event: &Event<'_>) -> Ev {
    match event {
        Event::Request(r) => Ev::Request {
            host: r.host.to_owned(),
            target: r.target.to_owned(),
            subprotocols: strings(r.subprotocols),
            extensions: strings(r.extensions),
            extra: pairs(r.extra_headers),
        },
        Event::AcceptConnection(a) => Ev::Accept {
            subprotocol: a.subprotocol.map(str::to_owned),
            extensions: strings(a.extensions),
            extra: pairs(a.extra_headers),
        },
        Event::RejectConnection(r) => Ev::Reject(r.status_code, r.has_body),
        Event::RejectData(d) => Ev::Data(d.data.to_vec(), d.body_finished),
        other => panic!("unexpected event {other:?}"),
    }
}

fn error(err: &RemoteProtocolError) -> Ev {
    Ev::Error(err.hint(), err.message())
}

/// Consecutive body chunks joined: how a body is split depends on the input
/// split, its bytes and its end do not.
fn merge(events: Vec<Ev>) -> Vec<Ev> {
    let mut merged: Vec<Ev> = Vec::new();
    for event in events {
        if let (Some(Ev::Data(data, false)), Ev::Data(more, finished)) = (merged.last_mut(), &event)
        {
            data.extend_from_slice(more);
            let data = std::mem::take(data);
            merged.pop();
            merged.push(Ev::Data(data, *finished));
            continue;
        }
        merged.push(event);
    }
    merged
}

/// The next event: a head through `receive`, a chunk of a refusal body
/// (client, `Rejecting`) through `receive_body`.
fn next<'a, S: Side, E: ExtensionSet>(
    hs: &'a mut Handshake<S, E>,
    buf: &'a mut [u8],
) -> Received<'a> {
    if hs.role() == Role::Client && hs.state() == ConnectionState::Rejecting {
        hs.receive_body(buf)
    } else {
        hs.receive(buf)
    }
}

/// Receives until the handshake needs more bytes, honouring the consumed
/// count; returns whether an error stopped it.
fn pump<S: Side, E: ExtensionSet>(
    hs: &mut Handshake<S, E>,
    buf: &mut Vec<u8>,
    events: &mut Vec<Ev>,
) -> bool {
    for _ in 0..10_000 {
        let received = next(hs, buf);
        let consumed = received.consumed;
        let (event, done) = match &received.event {
            Ok(Some(event)) => (Some(own(event)), false),
            Ok(None) => (None, consumed == 0),
            Err(err) => (Some(error(err)), true),
        };
        events.extend(event);
        buf.drain(..consumed);
        if done {
            return matches!(events.last(), Some(Ev::Error(..)));
        }
    }
    panic!("no progress");
}

/// Feeds `input[..split]`, then the rest, then end-of-stream if `eof`;
/// returns the events and the bytes left in the buffer.
fn drive<S: Side, E: ExtensionSet>(
    hs: &mut Handshake<S, E>,
    input: &[u8],
    split: usize,
    eof: bool,
) -> (Vec<Ev>, Vec<u8>) {
    let mut buf = input[..split].to_vec();
    let mut events = Vec::new();
    if !pump(hs, &mut buf, &mut events) {
        buf.extend_from_slice(&input[split..]);
        if !pump(hs, &mut buf, &mut events) && eof {
            match hs.receive_eof() {
                Ok(Some(event)) => events.push(own(&event)),
                Ok(None) => {}
                Err(err) => events.push(error(&err)),
            }
        }
    }
    (merge(events), buf)
}

/// Runs `input` through a fresh handshake from `make` at every split point
/// and checks that each gives `expected` and leaves `left` in the buffer.
fn every_split<S: Side, E: ExtensionSet>(
    make: impl Fn() -> Handshake<S, E>,
    input: &[u8],
    eof: bool,
    expected: &[Ev],
    left: &[u8],
) {
    for split in 0..=input.len() {
        let mut hs = make();
        let (events, rest) = drive(&mut hs, input, split, eof);
        assert_eq!(events, expected, "split at {split}");
        assert_eq!(rest, left, "split at {split}");
    }
}

/// A client that has sent the §1.2 request.
fn waiting_client() -> TestClient {
    let mut hs = client();
    send(&mut hs, rfc_request().into());
    hs
}

fn strs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn header(name: &str, value: &str) -> (String, Vec<u8>) {
    (name.to_owned(), value.as_bytes().to_vec())
}

// ---------------------------------------------------------------------------
// RFC vectors and golden bytes

#[test]
fn rfc6455_section_1_3_key_and_accept() {
    let nonce = wsproto_core::handshake::generate_nonce(&mut sample_rng);
    assert_eq!(&nonce, SAMPLE_KEY.as_bytes());
    let accept = wsproto_core::handshake::generate_accept_token(SAMPLE_KEY.as_bytes());
    assert_eq!(&accept, SAMPLE_ACCEPT.as_bytes());
}

#[test]
fn client_request_golden_bytes() {
    let mut hs = client();
    assert_eq!(send(&mut hs, rfc_request().into()), GOLDEN_REQUEST);
    assert_eq!(hs.state(), ConnectionState::Connecting);
}

#[test]
fn server_reads_the_rfc_request_and_answers_the_rfc_response() {
    let expected = Ev::Request {
        host: "server.example.com".into(),
        target: "/chat".into(),
        subprotocols: strs(&["chat", "superchat"]),
        extensions: vec![],
        extra: vec![
            header("Upgrade", "websocket"),
            header("Connection", "Upgrade"),
            header("Sec-WebSocket-Key", SAMPLE_KEY),
            header("Origin", "http://example.com"),
            header("Sec-WebSocket-Version", "13"),
        ],
    };
    every_split(
        || Handshake::server(config()),
        RFC_REQUEST,
        false,
        std::slice::from_ref(&expected),
        b"",
    );

    let mut server = Handshake::server(config());
    let (events, _) = drive(&mut server, RFC_REQUEST, RFC_REQUEST.len(), false);
    assert_eq!(events, [expected]);
    let accept = AcceptConnection {
        subprotocol: Some("chat"),
        ..AcceptConnection::default()
    };
    assert_eq!(send(&mut server, accept.into()), RFC_RESPONSE);
    assert_eq!(server.state(), ConnectionState::Open);
    assert_eq!(server.subprotocol(), Some("chat"));
}

#[test]
fn client_accepts_the_rfc_response_at_every_split() {
    let expected = [Ev::Accept {
        subprotocol: Some("chat".into()),
        extensions: vec![],
        extra: vec![],
    }];
    every_split(waiting_client, RFC_RESPONSE, false, &expected, b"");
    let mut hs = waiting_client();
    drive(&mut hs, RFC_RESPONSE, 0, false);
    assert_eq!(hs.state(), ConnectionState::Open);
    let upgraded = hs.into_connection().unwrap();
    assert_eq!(upgraded.subprotocol(), Some("chat"));
    assert_eq!(upgraded.connection.role(), wsproto_core::Role::Client);
}

#[test]
fn full_exchange_with_golden_bytes() {
    let mut client = client();
    let mut server = Handshake::server(config());
    let request = send(&mut client, rfc_request().into());
    let (events, _) = drive(&mut server, &request, 0, false);
    assert!(matches!(&events[..], [Ev::Request { .. }]));
    let response = send(
        &mut server,
        AcceptConnection {
            subprotocol: Some("superchat"),
            ..AcceptConnection::default()
        }
        .into(),
    );
    assert_eq!(
        response,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
          Sec-WebSocket-Protocol: superchat\r\n\r\n"
    );
    let (events, _) = drive(&mut client, &response, 0, false);
    assert_eq!(
        events,
        [Ev::Accept {
            subprotocol: Some("superchat".into()),
            extensions: vec![],
            extra: vec![],
        }]
    );
    assert_eq!(
        client.into_connection().unwrap().subprotocol(),
        Some("superchat")
    );
    assert_eq!(
        server.into_connection().unwrap().subprotocol(),
        Some("superchat")
    );
}

#[test]
fn server_picks_a_subprotocol_by_its_own_preference() {
    let mut server = Handshake::server(config());
    let mut buf = RFC_REQUEST.to_vec();
    let chosen = match server.receive(&mut buf).event {
        Ok(Some(Event::Request(request))) => request.subprotocols.select(&["superchat", "chat"]),
        other => panic!("{other:?}"),
    };
    assert_eq!(chosen, Some("superchat"));
    let accept = AcceptConnection {
        subprotocol: chosen,
        ..AcceptConnection::default()
    };
    send(&mut server, accept.into());
    assert_eq!(server.subprotocol(), Some("superchat"));
}

#[test]
fn no_subprotocol_when_none_is_chosen() {
    let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n\
        Connection: keep-alive, upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        Server: test\r\n\r\n";
    let expected = [Ev::Accept {
        subprotocol: None,
        extensions: vec![],
        extra: vec![header("Server", "test")],
    }];
    every_split(waiting_client, response, false, &expected, b"");
}

// ---------------------------------------------------------------------------
// Pipelined bytes

/// A masked text frame, as a client sends it.
fn masked_text(text: &[u8]) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(text.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    frame
}

#[test]
fn frames_behind_the_101_stay_for_the_connection() {
    let frame = b"\x81\x05hello";
    let mut input = RFC_RESPONSE.to_vec();
    input.extend_from_slice(frame);
    let expected = [Ev::Accept {
        subprotocol: Some("chat".into()),
        extensions: vec![],
        extra: vec![],
    }];
    every_split(waiting_client, &input, false, &expected, frame);

    let mut hs = waiting_client();
    let (_, mut rest) = drive(&mut hs, &input, 7, false);
    let mut connection = hs.into_connection().unwrap().connection;
    let received = connection.receive(&mut rest);
    assert_eq!(
        received.event,
        Ok(Some(ConnectionEvent::TextMessage(TextMessage::new(
            "hello"
        ))))
    );
}

#[test]
fn frames_behind_the_request_stay_for_the_connection() {
    let frame = masked_text(b"early");
    let mut input = RFC_REQUEST.to_vec();
    input.extend_from_slice(&frame);
    for split in 0..=input.len() {
        let mut server = Handshake::server(config());
        let (events, mut rest) = drive(&mut server, &input, split, false);
        assert!(matches!(&events[..], [Ev::Request { .. }]), "split {split}");
        assert_eq!(rest, frame, "split {split}");
        send(&mut server, AcceptConnection::default().into());
        let mut connection = server.into_connection().unwrap().connection;
        let received = connection.receive(&mut rest);
        assert_eq!(
            received.event,
            Ok(Some(ConnectionEvent::TextMessage(TextMessage::new(
                "early"
            ))))
        );
    }
}

#[test]
fn an_open_handshake_consumes_nothing() {
    let mut hs = waiting_client();
    let mut buf = RFC_RESPONSE.to_vec();
    let consumed = hs.receive(&mut buf).consumed;
    buf.drain(..consumed);
    buf.extend_from_slice(b"\x81\x00");
    let received = hs.receive(&mut buf);
    assert_eq!((received.consumed, received.event), (0, Ok(None)));
    assert_eq!(hs.receive_eof(), Ok(None));
    assert_eq!(hs.state(), ConnectionState::Open);
}

// ---------------------------------------------------------------------------
// Extensions

/// A test extension: offers `NAME; p`, accepts an offer unless it has the
/// parameter `refuse` and answers `NAME; q`, and finalizes any answer
/// without the parameter `bad`.
#[derive(Debug)]
struct Probe {
    name: &'static str,
    enabled: bool,
    seen: Cell<usize>,
}

impl Probe {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            enabled: false,
            seen: Cell::new(0),
        }
    }
}

impl Extension for Probe {
    fn name(&self) -> &str {
        self.name
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn offer(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        self.seen.set(self.seen.get() + 1);
        write!(out, "{}; p", self.name)
    }

    fn accept(
        &mut self,
        offer: &ExtensionOffer<'_>,
        out: &mut dyn fmt::Write,
    ) -> Result<bool, fmt::Error> {
        if offer.params().flatten().any(|p| p.name == "refuse") {
            return Ok(false);
        }
        self.enabled = true;
        write!(out, "{}; q", self.name)?;
        Ok(true)
    }

    fn finalize(&mut self, response: &ExtensionOffer<'_>) -> Result<(), RemoteProtocolError> {
        if response.params().flatten().any(|p| p.name == "bad") {
            return Err(RemoteProtocolError::reject(400, "bad parameter"));
        }
        self.enabled = true;
        Ok(())
    }
}

#[test]
fn extension_offer_accept_finalize() {
    let mut client = client().with_extensions(Some(Probe::new("x-test")));
    let mut server = Handshake::server(config()).with_extensions([Probe::new("x-test")]);
    let request = Request {
        host: "h",
        target: "/",
        ..Request::default()
    };
    let request = send(&mut client, request.into());
    let text = String::from_utf8(request.clone()).unwrap();
    assert!(
        text.contains("\r\nSec-WebSocket-Extensions: x-test; p\r\n"),
        "{text}"
    );

    let expected = Ev::Request {
        host: "h".into(),
        target: "/".into(),
        subprotocols: vec![],
        extensions: strs(&["x-test; p"]),
        extra: vec![
            header("Upgrade", "websocket"),
            header("Connection", "Upgrade"),
            header("Sec-WebSocket-Key", SAMPLE_KEY),
            header("Sec-WebSocket-Version", "13"),
        ],
    };
    every_split(
        || Handshake::server(config()).with_extensions([Probe::new("x-test")]),
        &request,
        false,
        std::slice::from_ref(&expected),
        b"",
    );
    drive(&mut server, &request, 0, false);
    assert!(server.extensions()[0].enabled);
    let response = send(&mut server, AcceptConnection::default().into());
    let text = String::from_utf8(response.clone()).unwrap();
    assert!(
        text.contains("\r\nSec-WebSocket-Extensions: x-test; q\r\n"),
        "{text}"
    );

    let (events, _) = drive(&mut client, &response, 0, false);
    assert_eq!(
        events,
        [Ev::Accept {
            subprotocol: None,
            extensions: strs(&["x-test; q"]),
            extra: vec![],
        }]
    );
    let upgraded = client.into_connection().unwrap();
    assert!(upgraded.extensions.as_ref().unwrap().enabled);
    assert!(server.into_connection().unwrap().extensions[0].enabled);
}

#[test]
fn extension_declined_and_raw_offers_pass_through() {
    let mut a = Probe::new("x-a");
    let mut b = Probe::new("x-b");
    {
        let set: &mut [&mut dyn Extension] = &mut [&mut a, &mut b];
        let mut client = client().with_extensions(set);
        let request = Request {
            host: "h",
            target: "/",
            extensions: Tokens::new(&["x-raw; v=\"1,2\""]),
            ..Request::default()
        };
        let request = send(&mut client, request.into());
        let text = String::from_utf8(request.clone()).unwrap();
        assert!(
            text.contains("\r\nSec-WebSocket-Extensions: x-a; p, x-b; p, x-raw; v=\"1,2\"\r\n"),
            "{text}"
        );

        // The server supports x-b only, and takes x-raw by hand.
        let mut server = Handshake::server(config()).with_extensions(Some(Probe::new("x-b")));
        let mut buf = request.clone();
        match server.receive(&mut buf).event {
            Ok(Some(Event::Request(r))) => {
                assert_eq!(
                    strings(r.extensions),
                    strs(&["x-a; p", "x-b; p", "x-raw; v=\"1,2\""])
                );
            }
            other => panic!("{other:?}"),
        }
        let accept = AcceptConnection {
            extensions: Tokens::new(&["x-raw"]),
            ..AcceptConnection::default()
        };
        let response = send(&mut server, accept.into());
        let text = String::from_utf8(response.clone()).unwrap();
        assert!(
            text.contains("\r\nSec-WebSocket-Extensions: x-b; q, x-raw\r\n"),
            "{text}"
        );

        let (events, _) = drive(&mut client, &response, 0, false);
        assert_eq!(
            events,
            [Ev::Accept {
                subprotocol: None,
                extensions: strs(&["x-b; q", "x-raw"]),
                extra: vec![],
            }]
        );
    }
    assert!(!a.enabled && b.enabled);
}

#[test]
fn server_extension_refusing_an_offer_sends_no_header() {
    let mut server = Handshake::server(config()).with_extensions(Some(Probe::new("x-test")));
    let mut request = RFC_REQUEST[..RFC_REQUEST.len() - 2].to_vec();
    request.extend_from_slice(b"Sec-WebSocket-Extensions: x-test; refuse\r\n\r\n");
    let (events, _) = drive(&mut server, &request, 0, false);
    assert!(matches!(&events[..], [Ev::Request { .. }]));
    let response = send(&mut server, AcceptConnection::default().into());
    assert!(!String::from_utf8(response).unwrap().contains("Extensions"));
    assert!(!server.extensions().as_ref().unwrap().enabled);
}

// ---------------------------------------------------------------------------
// Refusals

#[test]
fn refusal_with_content_length() {
    let mut server = Handshake::server(config());
    drive(&mut server, RFC_REQUEST, 0, false);
    let headers = [
        Header::new("Content-Type", b"text/plain"),
        Header::new("Content-Length", b"11"),
    ];
    let reject = RejectConnection {
        status_code: 403,
        headers: Headers::new(&headers),
        has_body: true,
    };
    let mut wire = send(&mut server, reject.into());
    assert_eq!(server.state(), ConnectionState::Rejecting);
    wire.extend(send(
        &mut server,
        RejectData {
            data: b"go ",
            body_finished: false,
        }
        .into(),
    ));
    wire.extend(send(
        &mut server,
        RejectData {
            data: b"away now",
            body_finished: true,
        }
        .into(),
    ));
    assert_eq!(server.state(), ConnectionState::Closed);
    assert_eq!(
        wire,
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n\
          go away now"
    );
    let expected = [
        Ev::Reject(403, true),
        Ev::Data(b"go away now".to_vec(), true),
    ];
    every_split(waiting_client, &wire, false, &expected, b"");
    let mut client = waiting_client();
    drive(&mut client, &wire, 0, false);
    assert_eq!(client.state(), ConnectionState::Closed);
}

#[test]
fn refusal_chunked() {
    let mut server = Handshake::server(config());
    drive(&mut server, RFC_REQUEST, 0, false);
    let headers = [Header::new("WWW-Authenticate", b"Basic")];
    let reject = RejectConnection {
        status_code: 401,
        headers: Headers::new(&headers),
        has_body: true,
    };
    let mut wire = send(&mut server, reject.into());
    for (data, finished) in [(&b"who "[..], false), (b"", false), (b"are you?", true)] {
        wire.extend(send(
            &mut server,
            RejectData {
                data,
                body_finished: finished,
            }
            .into(),
        ));
    }
    assert_eq!(
        wire,
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\n\
          Transfer-Encoding: chunked\r\n\r\n4\r\nwho \r\n8\r\nare you?\r\n0\r\n\r\n"
    );
    let expected = [
        Ev::Reject(401, true),
        Ev::Data(b"who are you?".to_vec(), true),
    ];
    every_split(waiting_client, &wire, false, &expected, b"");
}

#[test]
fn refusal_delimited_by_the_end_of_the_stream() {
    let wire = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nit broke";
    let expected = [Ev::Reject(500, true), Ev::Data(b"it broke".to_vec(), true)];
    every_split(waiting_client, wire, true, &expected, b"");
    // Without the end of the stream the body is not finished.
    let mut hs = waiting_client();
    let (events, _) = drive(&mut hs, wire, 0, false);
    assert_eq!(
        events,
        [Ev::Reject(500, true), Ev::Data(b"it broke".to_vec(), false)]
    );
    assert_eq!(hs.state(), ConnectionState::Rejecting);
}

#[test]
fn refusal_without_a_body() {
    let mut server = Handshake::server(config());
    drive(&mut server, RFC_REQUEST, 0, false);
    let wire = send(&mut server, RejectConnection::default().into());
    assert_eq!(
        wire,
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(server.state(), ConnectionState::Closed);
    let expected = [Ev::Reject(400, true), Ev::Data(vec![], true)];
    every_split(waiting_client, &wire, false, &expected, b"");
    // 204 and 304 have no body whatever they say; 1xx ends without one.
    let no_content = b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n";
    every_split(
        waiting_client,
        no_content,
        false,
        &[Ev::Reject(204, true), Ev::Data(vec![], true)],
        b"",
    );
    every_split(
        waiting_client,
        b"HTTP/1.1 100 Continue\r\n\r\n",
        false,
        &[Ev::Reject(100, false)],
        b"",
    );
}

#[test]
fn refusal_headers_and_zero_copy_body() {
    let mut hs = waiting_client();
    let mut buf =
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nContent-Length: 4\r\n\r\nslow"
            .to_vec();
    let range = buf.as_ptr_range();
    let received = hs.receive(&mut buf);
    let consumed = received.consumed;
    match received.event {
        Ok(Some(Event::RejectConnection(r))) => {
            assert_eq!(r.headers.get_str("retry-after"), Some("30"));
            assert_eq!(r.headers.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    let headers = hs.received_headers(&buf[..consumed]);
    assert_eq!(headers.get_str("retry-after"), Some("30"));
    assert_eq!(headers.len(), 2);
    buf.drain(..consumed);
    let range_after = buf.as_ptr_range();
    assert_eq!(range.start, range_after.start);
    // `receive` reads heads only; the body is read with `receive_body`.
    let received = hs.receive(&mut buf);
    assert_eq!((received.consumed, received.event), (0, Ok(None)));
    match hs.receive_body(&mut buf).event {
        Ok(Some(Event::RejectData(d))) => {
            assert_eq!(d.data, b"slow");
            assert!(
                range.contains(&d.data.as_ptr()),
                "the chunk borrows the buffer"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bytes_after_a_refusal_body_are_not_consumed() {
    let wire = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\nX-Trailer: 1\r\n\r\nEXTRA";
    let expected = [Ev::Reject(404, true), Ev::Data(b"no".to_vec(), true)];
    every_split(waiting_client, wire, false, &expected, b"EXTRA");
}

#[test]
fn refusal_body_errors() {
    let cases: [(&[u8], &str); 4] = [
        (
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
            "conflicting Content-Length headers in the refusal",
        ),
        (
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
            "malformed chunked refusal body",
        ),
        (
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 70000\r\n\r\nx",
            "the refusal body exceeds the size limit",
        ),
        (
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 10\r\n\r\nshort",
            "the stream ended in the middle of the refusal body",
        ),
    ];
    for (wire, message) in cases {
        let mut hs = waiting_client();
        let (events, _) = drive(&mut hs, wire, 0, true);
        assert_eq!(
            events.last(),
            Some(&Ev::Error(
                ErrorHint::Close(wsproto_core::CloseCode::PROTOCOL_ERROR),
                text(message)
            )),
            "{}",
            String::from_utf8_lossy(wire)
        );
        assert_eq!(hs.state(), ConnectionState::Closed);
    }
}

// ---------------------------------------------------------------------------
// Malformed requests: each names the refusal it must produce

/// The RFC request with `find` replaced by `replace`.
fn request_with(find: &str, replace: &str) -> Vec<u8> {
    let text = std::str::from_utf8(RFC_REQUEST).unwrap();
    assert!(text.contains(find), "{find}");
    text.replacen(find, replace, 1).into_bytes()
}

fn assert_refused(request: &[u8], status: u16, message: &str) {
    for split in [0, request.len() / 2, request.len()] {
        let mut hs = Handshake::server(config());
        let (events, _) = drive(&mut hs, request, split, false);
        assert_eq!(
            events,
            [Ev::Error(ErrorHint::Reject(status), text(leak(message)))],
            "{}",
            String::from_utf8_lossy(request)
        );
        assert_eq!(hs.state(), ConnectionState::Connecting);
    }
}

/// The text an error carries: `message`, or nothing without the
/// `error-text` feature (the kind and the code are checked either way).
fn text(message: &'static str) -> &'static str {
    if cfg!(feature = "error-text") {
        message
    } else {
        ""
    }
}

fn leak(message: &str) -> &'static str {
    Box::leak(message.to_owned().into_boxed_str())
}

#[test]
fn unsupported_version_gets_426_with_version_13() {
    let request = request_with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let message = "unsupported Sec-WebSocket-Version: this server speaks version 13";
    assert_refused(&request, 426, message);

    let mut hs = Handshake::server(config());
    let mut buf = request.clone();
    let err = hs.receive(&mut buf).event.unwrap_err();
    // The hint is the refusal to send: 426 with `Sec-WebSocket-Version: 13`.
    let wire = send(&mut hs, err.event_hint());
    assert_eq!(
        wire,
        b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\
          Content-Length: 0\r\n\r\n"
    );
    assert_eq!(hs.state(), ConnectionState::Closed);
}

#[test]
fn missing_version_gets_426() {
    let request = request_with("Sec-WebSocket-Version: 13\r\n", "");
    assert_refused(
        &request,
        426,
        "unsupported Sec-WebSocket-Version: this server speaks version 13",
    );
}

#[test]
fn bad_key_length_gets_400() {
    // 15 bytes of key material.
    let request = request_with(SAMPLE_KEY, "dGhlIHNhbXBsZSBub25j");
    assert_refused(&request, 400, "Sec-WebSocket-Key is not 16 bytes in base64");
    let request = request_with(SAMPLE_KEY, "not base64 at all!!!!!!!");
    assert_refused(&request, 400, "Sec-WebSocket-Key is not 16 bytes in base64");
    let request = request_with("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    assert_refused(
        &request,
        400,
        "the request needs exactly one Sec-WebSocket-Key",
    );
}

#[test]
fn not_get_gets_400() {
    let request = request_with("GET", "POST");
    assert_refused(&request, 400, "the opening handshake must be a GET request");
}

#[test]
fn http_1_0_gets_400() {
    let request = request_with("HTTP/1.1", "HTTP/1.0");
    assert_refused(&request, 400, "the opening handshake must use HTTP/1.1");
}

#[test]
fn no_host_gets_400() {
    let request = request_with("Host: server.example.com\r\n", "");
    assert_refused(&request, 400, "the request has no Host header");
}

#[test]
fn missing_upgrade_token_gets_400() {
    let request = request_with("Upgrade: websocket", "Upgrade: h2c");
    assert_refused(
        &request,
        400,
        "the request has no `Upgrade: websocket` header",
    );
    let request = request_with("Connection: Upgrade", "Connection: keep-alive");
    assert_refused(
        &request,
        400,
        "the request's Connection header lacks the `Upgrade` token",
    );
}

#[test]
fn token_lists_are_case_insensitive() {
    let request = request_with("Upgrade: websocket", "Upgrade: foo/1, WebSocket");
    let request = String::from_utf8(request).unwrap();
    let request = request.replacen("Connection: Upgrade", "Connection: keep-alive, UPGRADE", 1);
    let mut hs = Handshake::server(config());
    let (events, _) = drive(&mut hs, request.as_bytes(), 0, false);
    assert!(matches!(&events[..], [Ev::Request { .. }]), "{events:?}");
}

#[test]
fn request_body_gets_400() {
    let request = request_with("Origin", "Content-Length: 5\r\nOrigin");
    assert_refused(&request, 400, "an opening request has no body");
}

#[test]
fn malformed_subprotocols_and_extensions_get_400() {
    let request = request_with("chat, superchat", "chat, super chat");
    assert_refused(
        &request,
        400,
        "Sec-WebSocket-Protocol is not a list of tokens",
    );
    let request = request_with("Origin", "Sec-WebSocket-Extensions: x; =1\r\nOrigin");
    assert_refused(&request, 400, "malformed Sec-WebSocket-Extensions");
}

#[test]
fn malformed_http_gets_400() {
    assert_refused(
        b"GET /chat HTTP/1.1\r\nHost\r\n\r\n",
        400,
        "malformed HTTP request",
    );
}

#[test]
fn head_too_large_gets_431() {
    let padding = format!("X-Padding: {}\r\n", "a".repeat(9000));
    let request = request_with("Origin", &format!("{padding}Origin"));
    assert_refused(&request, 431, "the request head exceeds the size limit");
    // Incomplete at the limit is already too large.
    let mut hs = Handshake::server(config());
    let mut buf = request[..8192].to_vec();
    assert!(hs.receive(&mut buf).event.is_err());
    // Below the limit, a partial head only asks for more bytes.
    let mut hs = Handshake::server(config());
    let mut buf = request[..8191].to_vec();
    let received = hs.receive(&mut buf);
    assert_eq!((received.consumed, received.event), (0, Ok(None)));
}

#[test]
fn too_many_headers_gets_431() {
    let many: String = (0..40).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let request = request_with("Origin", &format!("{many}Origin"));
    assert_refused(&request, 431, "the request has too many headers");
    let mut config = config();
    config.max_headers = 64;
    let mut hs = Handshake::server(config);
    let (events, _) = drive(&mut hs, &request, 0, false);
    assert!(matches!(&events[..], [Ev::Request { .. }]));
}

#[test]
fn too_many_offered_subprotocols_get_431() {
    let offers: Vec<String> = (0..40).map(|i| format!("protocol-number-{i}")).collect();
    let request = request_with("chat, superchat", &offers.join(", "));
    assert_refused(
        &request,
        431,
        "the subprotocols offered exceed the handshake's storage",
    );
}

#[test]
fn after_a_bad_request_only_a_refusal_can_be_sent() {
    let request = request_with("GET", "PUT");
    let mut hs = Handshake::server(config());
    let mut buf = request.clone();
    let err = hs.receive(&mut buf).event.unwrap_err();
    // The error is reported again, and accepting is refused.
    assert_eq!(hs.receive(&mut buf).event, Err(err));
    let result = hs.send(&AcceptConnection::default().into(), &mut [0; 256]);
    assert!(matches!(result, Err(SendError::Local(_))));
    send(&mut hs, err.event_hint());
    assert_eq!(hs.state(), ConnectionState::Closed);
}

// ---------------------------------------------------------------------------
// Malformed responses: each fails the client with close code 1002

fn response_with(find: &str, replace: &str) -> Vec<u8> {
    let text = std::str::from_utf8(RFC_RESPONSE).unwrap();
    assert!(text.contains(find), "{find}");
    text.replacen(find, replace, 1).into_bytes()
}

fn assert_fails(response: &[u8], message: &str) {
    let mut hs = waiting_client();
    let (events, _) = drive(&mut hs, response, response.len() / 2, false);
    assert_eq!(
        events,
        [Ev::Error(
            ErrorHint::Close(wsproto_core::CloseCode::PROTOCOL_ERROR),
            text(leak(message))
        )],
        "{}",
        String::from_utf8_lossy(response)
    );
    assert_eq!(hs.state(), ConnectionState::Closed);
    assert!(hs.into_connection().is_err());
}

#[test]
fn wrong_accept_fails() {
    let response = response_with(SAMPLE_ACCEPT, "s3pPLMBiTxaQ9kYGzzhZRbK+xOp=");
    assert_fails(
        &response,
        "Sec-WebSocket-Accept does not match the key sent",
    );
    let response = response_with("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", "");
    assert_fails(
        &response,
        "the response needs exactly one Sec-WebSocket-Accept",
    );
}

#[test]
fn missing_upgrade_token_fails() {
    let response = response_with("Upgrade: websocket", "Upgrade: h2c");
    assert_fails(&response, "the response has no `Upgrade: websocket` header");
    let response = response_with("Connection: Upgrade", "Connection: close");
    assert_fails(
        &response,
        "the response's Connection header lacks the `Upgrade` token",
    );
}

#[test]
fn unoffered_subprotocol_fails() {
    let response = response_with("Protocol: chat", "Protocol: superchat2");
    assert_fails(
        &response,
        "the server chose a subprotocol the client did not offer",
    );
    let response = response_with("Protocol: chat", "Protocol: chat, superchat");
    assert_fails(
        &response,
        "the server chose a subprotocol the client did not offer",
    );
}

#[test]
fn unoffered_extension_fails() {
    let response = response_with(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: x-unknown\r\n\r\n",
    );
    assert_fails(
        &response,
        "the server accepted an extension the client did not offer",
    );
}

#[test]
fn extension_rejecting_the_answer_fails() {
    let mut hs = client().with_extensions(Some(Probe::new("x-test")));
    send(&mut hs, rfc_request().into());
    let response = response_with(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: x-test; bad\r\n\r\n",
    );
    let (events, _) = drive(&mut hs, &response, 0, false);
    assert_eq!(
        events,
        [Ev::Error(
            ErrorHint::Close(wsproto_core::CloseCode::PROTOCOL_ERROR),
            text("bad parameter")
        )]
    );
}

#[test]
fn http_1_0_switching_protocols_fails() {
    let response = response_with("HTTP/1.1", "HTTP/1.0");
    assert_fails(&response, "101 Switching Protocols needs HTTP/1.1");
}

#[test]
fn oversized_or_malformed_response_fails() {
    let padding = format!("X-Padding: {}\r\n", "a".repeat(9000));
    let response = response_with("\r\n\r\n", &format!("\r\n{padding}\r\n"));
    assert_fails(&response, "the response head exceeds the size limit");
    let many: String = (0..40).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let response = response_with("\r\n\r\n", &format!("\r\n{many}\r\n"));
    assert_fails(&response, "the response has too many headers");
    assert_fails(b"HTTP/1.1 abc\r\n\r\n", "malformed HTTP response");
}

#[test]
fn end_of_stream_before_the_response_fails() {
    let mut hs = waiting_client();
    let err = hs.receive_eof().unwrap_err();
    assert_eq!(
        err.message(),
        text("the stream ended before the handshake response")
    );
    assert_eq!(hs.state(), ConnectionState::Closed);
}

// ---------------------------------------------------------------------------
// Caller misuse and output buffers

#[test]
fn short_buffer_writes_nothing_and_draws_no_randomness() {
    let draws = Cell::new(0);
    let rng = |dest: &mut [u8]| {
        draws.set(draws.get() + 1);
        sample_rng(dest);
    };
    let mut hs = Handshake::client(config(), rng);
    let mut out = vec![0xaa; GOLDEN_REQUEST.len() - 1];
    let err = hs.send(&rfc_request().into(), &mut out).unwrap_err();
    assert_eq!(
        err,
        SendError::BufferTooSmall(wsproto_core::BufferTooSmall {
            required: GOLDEN_REQUEST.len()
        })
    );
    assert!(out.iter().all(|&b| b == 0xaa));
    assert_eq!(draws.get(), 0);
    assert_eq!(hs.state(), ConnectionState::Connecting);
    let mut out = vec![0; GOLDEN_REQUEST.len()];
    assert_eq!(
        hs.send(&rfc_request().into(), &mut out),
        Ok(GOLDEN_REQUEST.len())
    );
    assert_eq!(out, GOLDEN_REQUEST);
    assert_eq!(draws.get(), 1);

    // The server's answers too.
    let mut server = Handshake::server(config());
    drive(&mut server, RFC_REQUEST, 0, false);
    let accept = AcceptConnection {
        subprotocol: Some("chat"),
        ..AcceptConnection::default()
    };
    let mut out = vec![0xaa; RFC_RESPONSE.len() - 1];
    let err = server.send(&accept.clone().into(), &mut out).unwrap_err();
    assert!(matches!(err, SendError::BufferTooSmall(b) if b.required == RFC_RESPONSE.len()));
    assert!(out.iter().all(|&b| b == 0xaa));
    assert_eq!(server.state(), ConnectionState::Connecting);
    assert_eq!(send(&mut server, accept.into()), RFC_RESPONSE);
}

#[test]
fn local_errors() {
    fn local<S: Side, E: ExtensionSet>(hs: &mut Handshake<S, E>, event: Event<'_>) -> &'static str {
        match hs.send(&event, &mut [0; 1024]) {
            Err(SendError::Local(err)) => err.message(),
            other => panic!("{other:?}"),
        }
    }
    let mut c = client();
    let injected = [Header::new("X", b"a\r\nInjected: 1")];
    let bad_requests = [
        Request {
            extra_headers: Headers::new(&injected),
            ..rfc_request()
        },
        Request {
            host: "",
            ..rfc_request()
        },
        Request {
            target: "/a b",
            ..rfc_request()
        },
        Request {
            subprotocols: Tokens::new(&["not a token"]),
            ..rfc_request()
        },
        Request {
            extensions: Tokens::new(&["x; =1"]),
            ..rfc_request()
        },
    ];
    for request in bad_requests {
        local(&mut c, request.into());
        assert_eq!(c.state(), ConnectionState::Connecting);
    }
    assert_eq!(
        local(&mut c, AcceptConnection::default().into()),
        text("a client handshake only sends a Request; use the connection after it")
    );
    send(&mut c, rfc_request().into());
    assert_eq!(
        local(&mut c, rfc_request().into()),
        text("a client sends one Request, before anything else")
    );

    let mut s = Handshake::server(config());
    assert_eq!(
        local(&mut s, AcceptConnection::default().into()),
        text("AcceptConnection answers a valid request that has not been answered yet")
    );
    drive(&mut s, RFC_REQUEST, 0, false);
    let unoffered = AcceptConnection {
        subprotocol: Some("other"),
        ..AcceptConnection::default()
    };
    assert_eq!(
        local(&mut s, unoffered.into()),
        text("the client did not offer this subprotocol")
    );
    let status = RejectConnection {
        status_code: 101,
        ..RejectConnection::default()
    };
    local(&mut s, status.into());
    let both = [
        Header::new("Content-Length", b"1"),
        Header::new("Transfer-Encoding", b"chunked"),
    ];
    let reject = RejectConnection {
        status_code: 400,
        headers: Headers::new(&both),
        has_body: true,
    };
    local(&mut s, reject.into());
    let reject = RejectConnection {
        status_code: 400,
        headers: Headers::new(&both[..1]),
        has_body: true,
    };
    send(&mut s, reject.into());
    let too_long = RejectData {
        data: b"ab",
        body_finished: false,
    };
    local(&mut s, too_long.into());
    let too_short = RejectData {
        data: b"",
        body_finished: true,
    };
    local(&mut s, too_short.clone().into());
    send(
        &mut s,
        RejectData {
            data: b"a",
            body_finished: true,
        }
        .into(),
    );
    assert_eq!(s.state(), ConnectionState::Closed);
    assert_eq!(
        local(&mut s, too_short.into()),
        text("RejectData follows a RejectConnection that has a body")
    );
}

// ---------------------------------------------------------------------------
// A request parsed elsewhere

#[test]
fn initiate_upgrade_connection_checks_and_negotiates() {
    let headers = [
        Header::new("Host", b"example.com"),
        Header::new("Upgrade", b"websocket"),
        Header::new("Connection", b"Upgrade"),
        Header::new("Sec-WebSocket-Key", SAMPLE_KEY.as_bytes()),
        Header::new("Sec-WebSocket-Version", b"13"),
        Header::new("Sec-WebSocket-Extensions", b"x-test"),
        Header::new("Cookie", b"a=b"),
    ];
    let mut hs = Handshake::server(config()).with_extensions(Some(Probe::new("x-test")));
    let request = hs.initiate_upgrade_connection(&headers, "/ws").unwrap();
    assert_eq!(request.host, "example.com");
    assert_eq!(strings(request.extensions), strs(&["x-test"]));
    assert_eq!(request.extra_headers.get("cookie"), Some(&b"a=b"[..]));
    assert!(request.extra_headers.get("host").is_none());
    let response = send(&mut hs, AcceptConnection::default().into());
    let text = String::from_utf8(response).unwrap();
    assert!(text.contains(&format!("Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n")));
    assert!(text.contains("Sec-WebSocket-Extensions: x-test; q\r\n"));
    assert!(hs.into_connection().unwrap().extensions.unwrap().enabled);

    let mut hs = Handshake::server(config());
    let err = hs
        .initiate_upgrade_connection(&headers[..4], "/ws")
        .unwrap_err();
    assert!(matches!(err, UpgradeError::Remote(e) if e.hint() == ErrorHint::Reject(426)));
    assert!(matches!(
        hs.initiate_upgrade_connection(&headers, "/ws"),
        Err(UpgradeError::Local(_))
    ));
}

#[cfg(feature = "alloc")]
#[test]
fn send_into_reuses_one_code_path() {
    let mut hs = client();
    let mut out = b"prefix".to_vec();
    hs.send_into(&rfc_request().into(), &mut out).unwrap();
    assert_eq!(&out[..6], b"prefix");
    assert_eq!(&out[6..], GOLDEN_REQUEST);
    let err = hs.send_into(&rfc_request().into(), &mut out).unwrap_err();
    assert_eq!(
        err.message(),
        text("a client sends one Request, before anything else")
    );
    assert_eq!(out.len(), 6 + GOLDEN_REQUEST.len());
}

// ---------------------------------------------------------------------------
// Robustness: mutated heads never panic and never over-consume

/// xorshift64*, enough to mutate inputs reproducibly.
struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        const INTERESTING: &[u8] = b"\r\n:, ;=\"\\\t0aZ\x00\xff";
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(4) {
                0 if at < out.len() => {
                    out.remove(at);
                }
                1 => out.insert(at, INTERESTING[self.below(INTERESTING.len())]),
                2 if at < out.len() => out[at] = self.next() as u8,
                _ => {
                    let end = (at + self.below(16)).min(out.len());
                    let copy = out[at..end].to_vec();
                    let to = self.below(out.len() + 1);
                    out.splice(to..to, copy);
                }
            }
        }
        out
    }
}

/// Feeds `input` in random pieces, checking the consumed counts.
fn feed_randomly<S: Side, E: ExtensionSet>(
    hs: &mut Handshake<S, E>,
    input: &[u8],
    rng: &mut Mutator,
) {
    let mut buf = Vec::new();
    let mut fed = 0;
    while fed < input.len() {
        let n = 1 + rng.below(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        for _ in 0..1000 {
            let len = buf.len();
            let received = next(hs, &mut buf);
            let consumed = received.consumed;
            assert!(consumed <= len);
            let stop = match received.event {
                Ok(Some(_)) => false,
                Ok(None) => consumed == 0,
                Err(_) => true,
            };
            buf.drain(..consumed);
            if stop {
                break;
            }
        }
    }
    let _ = hs.receive_eof();
}

#[test]
fn mutated_heads_never_panic() {
    let mut rng = Mutator(0x5eed_1234_abcd_0001);
    let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
        2\r\nno\r\n0\r\nX: 1\r\n\r\n";
    let sized = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nabc";
    for _ in 0..3000 {
        let request = rng.mutate(RFC_REQUEST);
        let mut server = Handshake::server(config()).with_extensions(Some(Probe::new("x")));
        feed_randomly(&mut server, &request, &mut rng);
        if server.state() == ConnectionState::Connecting {
            let _ = server.send(&AcceptConnection::default().into(), &mut [0; 1024]);
        }
        for response in [RFC_RESPONSE, &chunked[..], &sized[..]] {
            let response = rng.mutate(response);
            let mut client = client().with_extensions(Some(Probe::new("x")));
            send(&mut client, rfc_request().into());
            feed_randomly(&mut client, &response, &mut rng);
        }
    }
}
