//! Transcript tests of `WSConnection`, both roles: the peer's bytes are fed
//! whole, then split at every byte boundary (feed the prefix, drain the
//! events, feed the rest, drain again), and every run must give the same
//! merged event sequence, the same final state and the same replies.
//!
//! Large transcripts are split at every boundary near the edges of the
//! peer's frames (where headers and handshake heads are) and at a stride
//! inside long payloads, to keep the suite fast in debug builds.

use wsproto_std::events::{
    AcceptConnection, BytesMessage, CloseConnection, Event, Ping, Pong, RejectConnection,
    RejectData, Request, TextMessage,
};
use wsproto_std::wsproto_core::error::ErrorHint;
use wsproto_std::wsproto_core::handshake::UpgradeError;
use wsproto_std::{ConnectionState, ConnectionType, Settings, WSConnection};

const PROTOCOLS: [&str; 2] = ["chat.v2", "chat.v1"];

// ------------------------------------------------------------------ harness

/// An owned, comparable copy of an event; data chunks are merged per message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Request {
        target: String,
        subprotocols: Vec<String>,
    },
    Accept {
        subprotocol: Option<String>,
    },
    Reject {
        status: u16,
        has_body: bool,
    },
    /// Body bytes, and whether the body finished.
    RejectData(Vec<u8>, bool),
    /// Text, and whether the message finished.
    Text(String, bool),
    Bytes(Vec<u8>, bool),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// Code, reason, and the state right after the event.
    Close(u16, String, ConnectionState),
    /// The peer's violation (`Err` from `events()`).
    Error(ErrorHint),
}

fn own(event: &Event, state: ConnectionState) -> Ev {
    match event {
        Event::Request(r) => Ev::Request {
            target: r.target.clone(),
            subprotocols: r.subprotocols.clone(),
        },
        Event::AcceptConnection(a) => Ev::Accept {
            subprotocol: a.subprotocol.clone(),
        },
        Event::RejectConnection(r) => Ev::Reject {
            status: r.status_code,
            has_body: r.has_body,
        },
        Event::RejectData(d) => Ev::RejectData(d.data.to_vec(), d.body_finished),
        Event::TextMessage(m) => Ev::Text(m.data.to_string(), m.message_finished),
        Event::BytesMessage(m) => Ev::Bytes(m.data.to_vec(), m.message_finished),
        Event::Ping(p) => Ev::Ping(p.payload.to_vec()),
        Event::Pong(p) => Ev::Pong(p.payload.to_vec()),
        Event::CloseConnection(c) => Ev::Close(c.code.as_u16(), c.reason.clone(), state),
        other => panic!("unknown event {other:?}"),
    }
}

/// Merge consecutive chunks of one message (or of one refusal body).
fn merge(events: Vec<Ev>) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    for ev in events {
        match (out.last_mut(), ev) {
            (Some(Ev::Text(acc, done @ false)), Ev::Text(more, finished)) => {
                acc.push_str(&more);
                *done = finished;
            }
            (Some(Ev::Bytes(acc, done @ false)), Ev::Bytes(more, finished)) => {
                acc.extend_from_slice(&more);
                *done = finished;
            }
            (Some(Ev::RejectData(acc, done @ false)), Ev::RejectData(more, finished)) => {
                acc.extend_from_slice(&more);
                *done = finished;
            }
            (_, ev) => out.push(ev),
        }
    }
    out
}

/// What the connection under test does when an event arrives; bytes it
/// sends go to the `Vec`.
type React = fn(&mut WSConnection, &Event, &mut Vec<u8>);

/// One transcript: the connection under test (already past anything it
/// sends first) and the peer's bytes, in the pieces the peer produced them.
struct Case {
    conn: WSConnection,
    pieces: Vec<Vec<u8>>,
    /// Whether the peer closes the transport after its bytes.
    eof: bool,
    react: React,
    /// Bytes the connection under test already sent (a client's request).
    sent: Vec<u8>,
}

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Ev>,
    sent: Vec<u8>,
    state: ConnectionState,
    deflate: bool,
    subprotocol: Option<String>,
}

/// Drain the events, reacting to each; stop at the first error after
/// sending its hint (as the docs of `events` say).
fn drain(
    conn: &mut WSConnection,
    react: React,
    log: &mut Vec<Ev>,
    sent: &mut Vec<u8>,
    failed: &mut bool,
) {
    if *failed {
        return;
    }
    for _ in 0..100_000 {
        let Some(item) = conn.events().next() else {
            return;
        };
        match item {
            Ok(event) => {
                log.push(own(&event, conn.state()));
                react(conn, &event, sent);
            }
            Err(err) => {
                log.push(Ev::Error(err.hint()));
                *failed = true;
                // A client failing its handshake has nothing to send.
                let _ = conn.send_core(&err.event_hint(), sent);
                return;
            }
        }
    }
    panic!("more than 100000 events from one drain");
}

fn feed(
    conn: &mut WSConnection,
    bytes: &[u8],
    react: React,
    log: &mut Vec<Ev>,
    sent: &mut Vec<u8>,
    failed: &mut bool,
) {
    if bytes.is_empty() || *failed {
        return;
    }
    assert_ne!(
        conn.state(),
        ConnectionState::Closed,
        "the transcript feeds bytes after the connection closed"
    );
    // Feed no more than the connection takes before its events are taken,
    // as the docs of `receive_space` ask.
    let mut rest = bytes;
    while !rest.is_empty() && !*failed && conn.state() != ConnectionState::Closed {
        let n = rest.len().min(conn.receive_space());
        assert!(n > 0, "no room for input once every event was taken");
        conn.receive_data(Some(&rest[..n])).expect("receive_data");
        rest = &rest[n..];
        drain(conn, react, log, sent, failed);
    }
}

/// Run a case with the peer's bytes split at `cut`.
fn run(case: Case, cut: usize) -> Outcome {
    let Case {
        mut conn,
        pieces,
        eof,
        react,
        mut sent,
    } = case;
    let wire = pieces.concat();
    let mut log = Vec::new();
    let mut failed = false;
    feed(
        &mut conn,
        &wire[..cut],
        react,
        &mut log,
        &mut sent,
        &mut failed,
    );
    feed(
        &mut conn,
        &wire[cut..],
        react,
        &mut log,
        &mut sent,
        &mut failed,
    );
    if eof {
        conn.receive_data(None).expect("receive_data(None)");
        drain(&mut conn, react, &mut log, &mut sent, &mut failed);
    }
    Outcome {
        events: merge(log),
        sent,
        state: conn.state(),
        deflate: conn.deflate_enabled(),
        subprotocol: conn.subprotocol().map(str::to_owned),
    }
}

/// Where to split the peer's bytes.
#[derive(Clone, Copy)]
enum Cuts {
    /// At every byte boundary.
    All,
    /// At every boundary within `radius` bytes of a piece boundary, and
    /// every `stride` bytes elsewhere.
    Near { radius: usize, stride: usize },
}

fn cut_points(pieces: &[Vec<u8>], cuts: Cuts) -> Vec<usize> {
    let len: usize = pieces.iter().map(Vec::len).sum();
    match cuts {
        Cuts::All => (0..=len).collect(),
        Cuts::Near { radius, stride } => {
            let mut edges = vec![0];
            for piece in pieces {
                edges.push(edges.last().unwrap() + piece.len());
            }
            (0..=len)
                .filter(|&cut| {
                    cut % stride == 0 || edges.iter().any(|&e| cut.abs_diff(e) <= radius)
                })
                .collect()
        }
    }
}

/// The events with an unfinished message right before an error removed:
/// how much of a failing frame is delivered before the bad byte depends on
/// where the input was split (data is handed out as it arrives).
fn before_error(events: &[Ev]) -> Vec<Ev> {
    let mut out = events.to_vec();
    if let [.., data, Ev::Error(_)] = events {
        if matches!(data, Ev::Text(_, false) | Ev::Bytes(_, false)) {
            out.remove(out.len() - 2);
        }
    }
    out
}

/// `sent` with the value of `Sec-WebSocket-Accept` blanked out.
fn without_accept_token(sent: &[u8]) -> Vec<u8> {
    const NAME: &[u8] = b"Sec-WebSocket-Accept: ";
    let Some(at) = sent.windows(NAME.len()).position(|w| w == NAME) else {
        return sent.to_vec();
    };
    let start = at + NAME.len();
    let end = start + sent[start..].iter().position(|&b| b == b'\r').unwrap_or(0);
    [&sent[..start], b"*", &sent[end..]].concat()
}

/// Run the transcript made by `make` whole and at every split; return the
/// outcome of feeding everything in one call.
fn transcript(make: impl Fn() -> Case, cuts: Cuts) -> Outcome {
    let first = make();
    let client = first.conn.connection_type() == ConnectionType::Client;
    let len: usize = first.pieces.iter().map(Vec::len).sum();
    let points = cut_points(&first.pieces, cuts);
    let whole = run(first, len);
    for cut in points {
        let case = make();
        assert_eq!(
            case.pieces.iter().map(Vec::len).sum::<usize>(),
            len,
            "the peer's bytes changed length"
        );
        let split = run(case, cut);
        assert_eq!(
            before_error(&split.events),
            before_error(&whole.events),
            "split at byte {cut} of {len}"
        );
        assert_eq!(split.state, whole.state, "split at byte {cut}");
        assert_eq!(split.deflate, whole.deflate, "split at byte {cut}");
        assert_eq!(split.subprotocol, whole.subprotocol, "split at byte {cut}");
        if client {
            // Masking keys and the nonce are random; the lengths are not.
            assert_eq!(split.sent.len(), whole.sent.len(), "split at byte {cut}");
        } else {
            // A peer's request may hold another random key.
            assert_eq!(
                without_accept_token(&split.sent),
                without_accept_token(&whole.sent),
                "split at byte {cut}"
            );
        }
    }
    whole
}

// ---------------------------------------------------------------- builders

fn settings(deflate: bool) -> Settings {
    let mut settings = Settings::default();
    if !deflate {
        settings.permessage_deflate = None;
    }
    settings
}

fn auto_settings() -> Settings {
    let mut settings = Settings::default();
    settings.auto_reply = true;
    settings
}

fn request() -> Request {
    Request::new("example.com", "/chat").with_subprotocols(PROTOCOLS)
}

fn pick(offered: &[String]) -> Option<String> {
    PROTOCOLS
        .iter()
        .find(|p| offered.iter().any(|o| o == *p))
        .map(|p| (*p).to_owned())
}

fn accept_request(conn: &mut WSConnection, request: &Request, out: &mut Vec<u8>) {
    let accept = AcceptConnection {
        subprotocol: pick(&request.subprotocols),
        ..AcceptConnection::default()
    };
    conn.send_into(accept, out).expect("accept");
}

/// Accept requests (picking `chat.v2`), answer pings and close frames.
fn server_react(conn: &mut WSConnection, event: &Event, out: &mut Vec<u8>) {
    match event {
        Event::Request(request) => accept_request(conn, request, out),
        Event::Ping(ping) if conn.state() == ConnectionState::Open => {
            conn.send_into(ping.response(), out).expect("pong");
        }
        Event::CloseConnection(close) if conn.state() == ConnectionState::RemoteClosing => {
            conn.send_into(close.response(), out).expect("close reply");
        }
        _ => {}
    }
}

/// Answer pings and close frames.
fn peer_react(conn: &mut WSConnection, event: &Event, out: &mut Vec<u8>) {
    match event {
        Event::Ping(ping) if conn.state() == ConnectionState::Open => {
            conn.send_into(ping.response(), out).expect("pong");
        }
        Event::CloseConnection(close) if conn.state() == ConnectionState::RemoteClosing => {
            conn.send_into(close.response(), out).expect("close reply");
        }
        _ => {}
    }
}

/// Accept the request, then start the closing handshake ourselves.
fn server_accept_then_close(conn: &mut WSConnection, event: &Event, out: &mut Vec<u8>) {
    if let Event::Request(request) = event {
        accept_request(conn, request, out);
        conn.send_into(CloseConnection::with_reason(4001, "going"), out)
            .expect("close");
        assert_eq!(conn.state(), ConnectionState::LocalClosing);
    }
}

/// Start the closing handshake as soon as the handshake succeeds.
fn client_close_after_accept(conn: &mut WSConnection, event: &Event, out: &mut Vec<u8>) {
    if let Event::AcceptConnection(_) = event {
        conn.send_into(CloseConnection::with_reason(1000, "bye"), out)
            .expect("close");
        assert_eq!(conn.state(), ConnectionState::LocalClosing);
    }
}

/// Accept the request only; with `auto_reply` the connection answers the rest.
fn accept_only(conn: &mut WSConnection, event: &Event, out: &mut Vec<u8>) {
    if let Event::Request(request) = event {
        accept_request(conn, request, out);
    }
}

fn ignore(_: &mut WSConnection, _: &Event, _: &mut Vec<u8>) {}

/// Drain a helper connection (not under test), which must not fail.
fn events_of(conn: &mut WSConnection) -> Vec<Event> {
    let mut out = Vec::new();
    for item in conn.events().take(10_000) {
        out.push(item.expect("helper connection failed"));
    }
    out
}

/// A client and a server of the given settings with a finished handshake;
/// returns them with the request and the response bytes.
fn open_pair(client: Settings, server: Settings) -> (WSConnection, WSConnection, Vec<u8>, Vec<u8>) {
    let mut c = WSConnection::with_settings(ConnectionType::Client, client);
    let mut s = WSConnection::with_settings(ConnectionType::Server, server);
    let req = c.send(request()).unwrap();
    s.receive_data(Some(&req)).unwrap();
    let mut resp = Vec::new();
    for event in events_of(&mut s) {
        if let Event::Request(r) = event {
            accept_request(&mut s, &r, &mut resp);
        }
    }
    c.receive_data(Some(&resp)).unwrap();
    let events = events_of(&mut c);
    assert!(
        matches!(events.as_slice(), [Event::AcceptConnection(_)]),
        "{events:?}"
    );
    (c, s, req, resp)
}

/// A client under test that sent its request, and the server answering it
/// (accepting with `chat.v2`); returns the server and its response.
fn client_under_test(
    client: Settings,
    server: Settings,
) -> (WSConnection, Vec<u8>, WSConnection, Vec<u8>) {
    let mut c = WSConnection::with_settings(ConnectionType::Client, client);
    let req = c.send(request()).unwrap();
    let mut s = WSConnection::with_settings(ConnectionType::Server, server);
    s.receive_data(Some(&req)).unwrap();
    let mut resp = Vec::new();
    for event in events_of(&mut s) {
        if let Event::Request(r) = event {
            accept_request(&mut s, &r, &mut resp);
        }
    }
    (c, req, s, resp)
}

fn text(data: &str) -> TextMessage {
    TextMessage::new(data.to_owned())
}

fn text_part(data: &str, message_finished: bool) -> TextMessage {
    TextMessage {
        data: data.to_owned().into(),
        frame_finished: true,
        message_finished,
    }
}

fn bytes_part(data: &[u8], message_finished: bool) -> BytesMessage {
    BytesMessage {
        data: data.to_vec().into(),
        frame_finished: true,
        message_finished,
    }
}

/// Pseudo-random bytes that do not compress.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

/// A frame from a client, masked with a fixed key, built by hand.
fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![b0];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// A frame from a server (unmasked), built by hand.
fn unmasked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

fn request_ev() -> Ev {
    Ev::Request {
        target: "/chat".into(),
        subprotocols: PROTOCOLS.iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn accept_ev() -> Ev {
    Ev::Accept {
        subprotocol: Some("chat.v2".into()),
    }
}

/// Feed `bytes` to a helper connection and return its events, owned.
fn decode(conn: &mut WSConnection, bytes: &[u8]) -> Vec<Ev> {
    conn.receive_data(Some(bytes)).unwrap();
    let mut log = Vec::new();
    let mut sent = Vec::new();
    let mut failed = false;
    drain(conn, ignore, &mut log, &mut sent, &mut failed);
    merge(log)
}

// ------------------------------------------------------------ server role

/// The conversation a client has with the server under test: request,
/// messages (fragmented, with a ping between fragments), a pong, and a
/// close from the client.
fn server_conversation_pieces(deflate: bool) -> Vec<Vec<u8>> {
    let (mut peer, _, req, _) = open_pair(Settings::default(), settings(deflate));
    let mut pieces = vec![req];
    let mut send = |event: Event| pieces.push(peer.send(event).unwrap());
    send(text("Hello, wörld").into());
    send(BytesMessage::new(vec![0u8, 1, 2, 255]).into());
    send(text_part("Hé", false).into());
    send(Ping::new(&b"ping!"[..]).into());
    send(text_part("llo €", false).into());
    send(text_part("😀!", true).into());
    send(bytes_part(&[1, 2], false).into());
    send(bytes_part(&[3], true).into());
    send(text("").into());
    send(Pong::new(&b"pong"[..]).into());
    send(CloseConnection::with_reason(1000, "bye").into());
    pieces
}

/// The peer's bytes are made once: a client's request holds a random key.
fn server_case(deflate: bool, pieces: &[Vec<u8>], eof: bool, react: React) -> Case {
    Case {
        conn: WSConnection::with_settings(ConnectionType::Server, settings(deflate)),
        pieces: pieces.to_vec(),
        eof,
        react,
        sent: Vec::new(),
    }
}

fn server_conversation_events() -> Vec<Ev> {
    vec![
        request_ev(),
        Ev::Text("Hello, wörld".into(), true),
        Ev::Bytes(vec![0, 1, 2, 255], true),
        Ev::Text("Hé".into(), false),
        Ev::Ping(b"ping!".to_vec()),
        Ev::Text("llo €😀!".into(), true),
        Ev::Bytes(vec![1, 2, 3], true),
        Ev::Text(String::new(), true),
        Ev::Pong(b"pong".to_vec()),
        Ev::Close(1000, "bye".into(), ConnectionState::RemoteClosing),
    ]
}

/// What the server under test sent after its 101, as a client that
/// negotiated the same sees it.
fn client_view_of(sent: &[u8], deflate: bool) -> Vec<Ev> {
    let head_end = sent.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = std::str::from_utf8(&sent[..head_end]).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Protocol: chat.v2\r\n"),
        "{head}"
    );
    assert_eq!(head.contains("permessage-deflate"), deflate, "{head}");
    // The accept token belongs to another client: decode only the frames,
    // with a client that negotiated the same.
    let (mut client, _, _, _) = open_pair(Settings::default(), settings(deflate));
    decode(&mut client, &sent[head_end..])
}

#[test]
fn server_conversation_with_deflate() {
    let pieces = server_conversation_pieces(true);
    let outcome = transcript(|| server_case(true, &pieces, true, server_react), Cuts::All);
    assert_eq!(outcome.events, server_conversation_events());
    assert_eq!(outcome.state, ConnectionState::Closed);
    assert!(outcome.deflate);
    assert_eq!(outcome.subprotocol.as_deref(), Some("chat.v2"));
    assert_eq!(
        client_view_of(&outcome.sent, true),
        vec![
            Ev::Pong(b"ping!".to_vec()),
            Ev::Close(1000, "bye".into(), ConnectionState::RemoteClosing)
        ]
    );
}

#[test]
fn server_conversation_without_deflate() {
    let pieces = server_conversation_pieces(false);
    let outcome = transcript(
        || server_case(false, &pieces, true, server_react),
        Cuts::All,
    );
    assert_eq!(outcome.events, server_conversation_events());
    assert_eq!(outcome.state, ConnectionState::Closed);
    assert!(!outcome.deflate);
    assert_eq!(
        client_view_of(&outcome.sent, false),
        vec![
            Ev::Pong(b"ping!".to_vec()),
            Ev::Close(1000, "bye".into(), ConnectionState::RemoteClosing)
        ]
    );
}

/// A client that offers no subprotocol and no extension: neither is agreed.
#[test]
fn server_without_offers() {
    let make = || {
        let mut client_settings = Settings::default();
        client_settings.permessage_deflate = None;
        let mut client = WSConnection::with_settings(ConnectionType::Client, client_settings);
        let req = client.send(Request::new("example.com", "/")).unwrap();
        Case {
            conn: WSConnection::new(ConnectionType::Server),
            pieces: vec![req, masked(0x81, b"plain")],
            eof: false,
            react: server_react,
            sent: Vec::new(),
        }
    };
    let outcome = transcript(make, Cuts::All);
    assert_eq!(
        outcome.events,
        vec![
            Ev::Request {
                target: "/".into(),
                subprotocols: vec![]
            },
            Ev::Text("plain".into(), true)
        ]
    );
    assert!(!outcome.deflate);
    assert_eq!(outcome.subprotocol, None);
    assert_eq!(outcome.state, ConnectionState::Open);
}

fn large_server_pieces(deflate: bool) -> Vec<Vec<u8>> {
    let (mut peer, _, req, _) = open_pair(Settings::default(), settings(deflate));
    let mut pieces = vec![req];
    pieces.extend(large_frames(&mut peer));
    pieces.push(
        peer.send(CloseConnection::with_reason(1001, "away"))
            .unwrap(),
    );
    pieces
}

/// Large messages, each sent by `conn`: 70 000 bytes of noise (a 64-bit
/// length), 30 000 bytes of text, and a message of 3 fragments (the last
/// with a 64-bit length).
fn large_frames(conn: &mut WSConnection) -> Vec<Vec<u8>> {
    vec![
        conn.send(BytesMessage::new(noise(70_000, 1))).unwrap(),
        conn.send(text(&"añb€😀".repeat(2_000))).unwrap(),
        conn.send(bytes_part(&noise(20_000, 2), false)).unwrap(),
        conn.send(bytes_part(&noise(300, 3), false)).unwrap(),
        conn.send(bytes_part(&noise(66_000, 4), true)).unwrap(),
    ]
}

fn large_events() -> Vec<Ev> {
    let mut fragmented = noise(20_000, 2);
    fragmented.extend(noise(300, 3));
    fragmented.extend(noise(66_000, 4));
    vec![
        Ev::Bytes(noise(70_000, 1), true),
        Ev::Text("añb€😀".repeat(2_000), true),
        Ev::Bytes(fragmented, true),
    ]
}

#[test]
fn server_large_messages() {
    for deflate in [false, true] {
        let pieces = large_server_pieces(deflate);
        let outcome = transcript(
            || server_case(deflate, &pieces, true, server_react),
            Cuts::Near {
                radius: 16,
                stride: 2_999,
            },
        );
        let mut expected = vec![request_ev()];
        expected.extend(large_events());
        expected.push(Ev::Close(
            1001,
            "away".into(),
            ConnectionState::RemoteClosing,
        ));
        assert_eq!(outcome.events, expected, "deflate {deflate}");
        assert_eq!(outcome.state, ConnectionState::Closed);
    }
}

/// The server starts the closing handshake; messages still arrive in
/// `LocalClosing`, and the peer's close moves to `Closed`.
#[test]
fn server_initiates_close() {
    let make = || {
        let (mut peer, _, req, _) = open_pair(Settings::default(), Settings::default());
        let pieces = vec![
            req,
            peer.send(text("late message")).unwrap(),
            peer.send(CloseConnection::with_reason(4001, "going"))
                .unwrap(),
        ];
        Case {
            conn: WSConnection::new(ConnectionType::Server),
            pieces,
            eof: true,
            react: server_accept_then_close,
            sent: Vec::new(),
        }
    };
    let outcome = transcript(make, Cuts::All);
    assert_eq!(
        outcome.events,
        vec![
            request_ev(),
            Ev::Text("late message".into(), true),
            Ev::Close(4001, "going".into(), ConnectionState::Closed),
        ]
    );
    assert_eq!(outcome.state, ConnectionState::Closed);
    let view = client_view_of(&outcome.sent, true);
    assert_eq!(
        view,
        vec![Ev::Close(
            4001,
            "going".into(),
            ConnectionState::RemoteClosing
        )]
    );
}

/// The transport ends in the middle of a frame: the partial payload, then
/// `CloseConnection` 1006 and `Closed`.
#[test]
fn server_receives_end_of_stream() {
    let make = || {
        let (mut peer, _, req, _) = open_pair(Settings::default(), settings(false));
        let frame = peer.send(BytesMessage::new(vec![9u8; 10])).unwrap();
        let pieces = vec![
            req,
            peer.send(text("hi")).unwrap(),
            frame[..frame.len() - 4].to_vec(),
        ];
        Case {
            conn: WSConnection::with_settings(ConnectionType::Server, settings(false)),
            pieces,
            eof: true,
            react: server_react,
            sent: Vec::new(),
        }
    };
    let outcome = transcript(make, Cuts::All);
    assert_eq!(
        outcome.events,
        vec![
            request_ev(),
            Ev::Text("hi".into(), true),
            Ev::Bytes(vec![9; 6], false),
            Ev::Close(1006, String::new(), ConnectionState::Closed),
        ]
    );
    assert_eq!(outcome.state, ConnectionState::Closed);

    // With deflate, between messages.
    let make = || {
        let (mut peer, _, req, _) = open_pair(Settings::default(), Settings::default());
        let pieces = vec![req, peer.send(text("compressed")).unwrap()];
        Case {
            conn: WSConnection::new(ConnectionType::Server),
            pieces,
            eof: true,
            react: server_react,
            sent: Vec::new(),
        }
    };
    let outcome = transcript(make, Cuts::All);
    assert_eq!(
        outcome.events,
        vec![
            request_ev(),
            Ev::Text("compressed".into(), true),
            Ev::Close(1006, String::new(), ConnectionState::Closed),
        ]
    );
    // Nothing may be sent on a closed connection.
    let mut conn = WSConnection::new(ConnectionType::Server);
    conn.receive_data(None).unwrap();
    assert!(conn.events().next().is_none(), "no request, no event");
}

/// A violation by the client: `Err` with the close code, whose hint sent
/// with `send_core` is the close frame; nothing is parsed after it.
#[test]
fn server_protocol_errors() {
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked frame", unmasked(0x81, b"hi"), 1002),
        ("reserved opcode", masked(0x83, b""), 1002),
        ("RSV2", masked(0xA1, b"x"), 1002),
        ("fragmented ping", masked(0x09, b""), 1002),
        ("ping of 126 bytes", masked(0x89, &[0; 126]), 1002),
        ("continuation without start", masked(0x80, b"x"), 1002),
        (
            "text inside a fragmented message",
            [masked(0x01, b"a"), masked(0x81, b"b")].concat(),
            1002,
        ),
        ("invalid UTF-8", masked(0x81, b"ok\xff"), 1007),
        (
            "invalid UTF-8 split across fragments",
            [masked(0x01, b"\xe2\x82"), masked(0x80, b"\x28")].concat(),
            1007,
        ),
        ("1-byte close", masked(0x88, &[3]), 1002),
        ("close code 999", masked(0x88, &999u16.to_be_bytes()), 1002),
        (
            "close reason not UTF-8",
            masked(0x88, b"\x03\xe8\xc3"),
            1007,
        ),
    ];
    for (name, bad, code) in cases {
        let make = || {
            let mut client = WSConnection::with_settings(ConnectionType::Client, settings(false));
            let req = client.send(request()).unwrap();
            Case {
                conn: WSConnection::new(ConnectionType::Server),
                pieces: vec![
                    req,
                    masked(0x81, b"ok"),
                    bad.clone(),
                    masked(0x81, b"ignored"),
                ],
                eof: false,
                react: server_react,
                sent: Vec::new(),
            }
        };
        let outcome = transcript(make, Cuts::All);
        let mut expected = vec![request_ev(), Ev::Text("ok".into(), true)];
        // A complete first fragment is delivered before the violation.
        match name {
            "text inside a fragmented message" => expected.push(Ev::Text("a".into(), false)),
            "invalid UTF-8 split across fragments" => expected.push(Ev::Text("".into(), false)),
            _ => {}
        }
        expected.push(Ev::Error(ErrorHint::Close(code.into())));
        assert_eq!(outcome.events, expected, "{name}");
        // Failed: closed, although the hint went out.
        assert_eq!(outcome.state, ConnectionState::Closed, "{name}");
        // The server sent the 101 and then the hint: a close frame with the code.
        let view = client_view_of(&outcome.sent, false);
        assert!(
            matches!(view.as_slice(), [Ev::Close(c, _, ConnectionState::RemoteClosing)] if *c == code),
            "{name}: {view:?}"
        );
    }
}

/// A malformed request: `Err` whose hint is an HTTP refusal.
#[test]
fn server_rejects_bad_request() {
    let make = || {
        Case {
        conn: WSConnection::new(ConnectionType::Server),
        pieces: vec![b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec()],
        eof: false,
        react: server_react,
        sent: Vec::new(),
    }
    };
    let outcome = transcript(make, Cuts::All);
    assert_eq!(outcome.events, vec![Ev::Error(ErrorHint::Reject(400))]);
    assert!(
        outcome.sent.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        String::from_utf8_lossy(&outcome.sent)
    );
}

/// The server refuses the handshake, with a body; the client reads it.
#[test]
fn server_rejects_with_body() {
    fn reject(conn: &mut WSConnection, event: &Event, out: &mut Vec<u8>) {
        if let Event::Request(_) = event {
            let refusal = RejectConnection {
                status_code: 403,
                headers: vec![("Content-Type".into(), b"text/plain".to_vec())],
                has_body: true,
            };
            conn.send_into(refusal, out).unwrap();
            assert_eq!(conn.state(), ConnectionState::Rejecting);
            for (chunk, last) in [(&b"not "[..], false), (b"allowed", false), (b"", true)] {
                let data = RejectData {
                    data: chunk.to_vec().into(),
                    body_finished: last,
                };
                conn.send_into(data, out).unwrap();
            }
            assert_eq!(conn.state(), ConnectionState::Closed);
        }
    }
    let make = || {
        let mut client = WSConnection::new(ConnectionType::Client);
        let req = client.send(request()).unwrap();
        Case {
            conn: WSConnection::new(ConnectionType::Server),
            pieces: vec![req],
            eof: false,
            react: reject,
            sent: Vec::new(),
        }
    };
    let outcome = transcript(make, Cuts::All);
    assert_eq!(outcome.events, vec![request_ev()]);
    assert_eq!(outcome.state, ConnectionState::Closed);
    // The client side of this refusal.
    let mut client = WSConnection::new(ConnectionType::Client);
    let _ = client.send(request()).unwrap();
    assert_eq!(
        decode(&mut client, &outcome.sent),
        vec![
            Ev::Reject {
                status: 403,
                has_body: true
            },
            Ev::RejectData(b"not allowed".to_vec(), true)
        ]
    );
    assert_eq!(client.state(), ConnectionState::Closed);
}

/// `auto_reply`: pongs and the close reply are queued and drained with
/// `bytes_to_send`.
#[test]
fn server_auto_reply() {
    let make = || {
        let (mut peer, _, req, _) = open_pair(Settings::default(), auto_settings());
        let pieces = vec![
            req,
            peer.send(Ping::new(&b"p1"[..])).unwrap(),
            peer.send(text("x")).unwrap(),
            peer.send(Ping::new(&b"p2"[..])).unwrap(),
            peer.send(CloseConnection::with_reason(1000, "done"))
                .unwrap(),
        ];
        Case {
            conn: WSConnection::with_settings(ConnectionType::Server, auto_settings()),
            pieces,
            eof: false,
            react: accept_only,
            sent: Vec::new(),
        }
    };
    let whole = transcript(make, Cuts::All);
    assert_eq!(
        whole.events,
        vec![
            request_ev(),
            Ev::Ping(b"p1".to_vec()),
            Ev::Text("x".into(), true),
            Ev::Ping(b"p2".to_vec()),
            // The close reply went out automatically.
            Ev::Close(1000, "done".into(), ConnectionState::Closed),
        ]
    );
    // The outbox, drained in pieces, at every split.
    let case = make();
    let total = case.pieces.iter().map(Vec::len).sum();
    for cut in 0..=total {
        let case = make();
        let wire = case.pieces.concat();
        let mut conn = case.conn;
        let mut log = Vec::new();
        let mut sent = Vec::new();
        let mut failed = false;
        feed(
            &mut conn,
            &wire[..cut],
            accept_only,
            &mut log,
            &mut sent,
            &mut failed,
        );
        let mut replies = conn.bytes_to_send(Some(3));
        assert!(replies.len() <= 3);
        feed(
            &mut conn,
            &wire[cut..],
            accept_only,
            &mut log,
            &mut sent,
            &mut failed,
        );
        replies.extend(conn.bytes_to_send(Some(1)));
        replies.extend(conn.bytes_to_send(None));
        assert!(conn.bytes_to_send(None).is_empty());
        let (mut peer_view, _, _, _) = open_pair(Settings::default(), Settings::default());
        assert_eq!(
            decode(&mut peer_view, &replies),
            vec![
                Ev::Pong(b"p1".to_vec()),
                Ev::Pong(b"p2".to_vec()),
                Ev::Close(1000, "done".into(), ConnectionState::RemoteClosing),
            ],
            "cut {cut}"
        );
        assert_eq!(conn.state(), ConnectionState::Closed);
    }
}

/// Without `auto_reply` nothing is queued.
#[test]
fn no_auto_reply_by_default() {
    let (mut client, mut server, _, _) = open_pair(Settings::default(), Settings::default());
    let ping = client.send(Ping::new(&b"x"[..])).unwrap();
    server.receive_data(Some(&ping)).unwrap();
    assert_eq!(events_of(&mut server).len(), 1);
    assert!(server.bytes_to_send(None).is_empty());
}

const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

/// A request parsed by someone else; the frames follow.
#[test]
fn server_initiate_upgrade_connection() {
    let headers: Vec<(&str, &[u8])> = vec![
        ("Host", b"example.com"),
        ("Upgrade", b"websocket"),
        ("Connection", b"keep-alive, Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", b"13"),
        ("Sec-WebSocket-Protocol", b"chat.v2, chat.v1"),
    ];
    let make = || {
        let mut conn = WSConnection::new(ConnectionType::Server);
        conn.initiate_upgrade_connection(&headers, "/chat").unwrap();
        Case {
            conn,
            pieces: vec![
                masked(0x81, b"after upgrade"),
                masked(0x89, b"?"),
                masked(0x88, b"\x03\xe8"),
            ],
            eof: true,
            react: server_react,
            sent: Vec::new(),
        }
    };
    let outcome = transcript(make, Cuts::All);
    assert_eq!(
        outcome.events,
        vec![
            request_ev(),
            Ev::Text("after upgrade".into(), true),
            Ev::Ping(b"?".to_vec()),
            Ev::Close(1000, String::new(), ConnectionState::RemoteClosing),
        ]
    );
    assert!(!outcome.deflate, "no extension was offered");
    let head = String::from_utf8_lossy(&outcome.sent);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    // RFC 6455 §1.3's example key and accept token.
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Sec-WebSocket-Protocol: chat.v2\r\n"),
        "{head}"
    );
    // After the head: a pong and the close reply, unmasked.
    let head_end = outcome
        .sent
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap()
        + 4;
    assert_eq!(
        &outcome.sent[head_end..],
        &[0x8A, 0x01, b'?', 0x88, 0x02, 0x03, 0xE8]
    );

    // With permessage-deflate offered, it is negotiated.
    let mut with_ext = headers.clone();
    with_ext.push((
        "Sec-WebSocket-Extensions",
        b"permessage-deflate; client_max_window_bits",
    ));
    let mut conn = WSConnection::new(ConnectionType::Server);
    conn.initiate_upgrade_connection(&with_ext, "/chat")
        .unwrap();
    let mut sent = Vec::new();
    match conn.events().next() {
        Some(Ok(Event::Request(r))) => accept_request(&mut conn, &r, &mut sent),
        other => panic!("{other:?}"),
    }
    assert!(conn.deflate_enabled());
    assert!(String::from_utf8_lossy(&sent).contains("permessage-deflate"));

    // A bad upgrade: the error carries the refusal to send.
    let mut conn = WSConnection::new(ConnectionType::Server);
    let missing_key: Vec<(&str, &[u8])> = headers
        .iter()
        .copied()
        .filter(|(n, _)| *n != "Sec-WebSocket-Key")
        .collect();
    match conn.initiate_upgrade_connection(&missing_key, "/chat") {
        Err(UpgradeError::Remote(err)) => {
            assert_eq!(err.hint(), ErrorHint::Reject(400));
            let mut out = Vec::new();
            conn.send_core(&err.event_hint(), &mut out).unwrap();
            assert!(out.starts_with(b"HTTP/1.1 400 "));
        }
        other => panic!("{other:?}"),
    }
    // Only a server waiting for a request may upgrade one.
    let mut client = WSConnection::new(ConnectionType::Client);
    assert!(matches!(
        client.initiate_upgrade_connection(&headers, "/chat"),
        Err(UpgradeError::Local(_))
    ));
}

// ------------------------------------------------------------ client role

/// The client under test sent its request; the server accepts and talks.
fn client_conversation(deflate: bool) -> Case {
    let (conn, req, mut server, resp) = client_under_test(settings(deflate), Settings::default());
    let mut pieces = vec![resp];
    let mut send = |event: Event| pieces.push(server.send(event).unwrap());
    send(text("Hello").into());
    send(BytesMessage::new(vec![7u8; 300]).into());
    send(bytes_part(b"frag", false).into());
    send(Ping::new(&b"between"[..]).into());
    send(bytes_part(b"mented", true).into());
    send(text_part("ü", false).into());
    send(text_part("", false).into());
    send(text_part("ber", true).into());
    send(Ping::new(&b"are you there"[..]).into());
    send(Pong::new(&b""[..]).into());
    send(CloseConnection::with_reason(1001, "server going away").into());
    Case {
        conn,
        pieces,
        eof: true,
        react: peer_react,
        sent: req,
    }
}

fn client_conversation_events() -> Vec<Ev> {
    vec![
        accept_ev(),
        Ev::Text("Hello".into(), true),
        Ev::Bytes(vec![7; 300], true),
        Ev::Bytes(b"frag".to_vec(), false),
        Ev::Ping(b"between".to_vec()),
        Ev::Bytes(b"mented".to_vec(), true),
        Ev::Text("über".into(), true),
        Ev::Ping(b"are you there".to_vec()),
        Ev::Pong(vec![]),
        Ev::Close(
            1001,
            "server going away".into(),
            ConnectionState::RemoteClosing,
        ),
    ]
}

#[test]
fn client_conversation_with_deflate() {
    let outcome = transcript(|| client_conversation(true), Cuts::All);
    assert_eq!(outcome.events, client_conversation_events());
    assert!(outcome.deflate);
    assert_eq!(outcome.subprotocol.as_deref(), Some("chat.v2"));
    assert_eq!(outcome.state, ConnectionState::Closed);
}

#[test]
fn client_conversation_without_deflate() {
    let outcome = transcript(|| client_conversation(false), Cuts::All);
    assert_eq!(outcome.events, client_conversation_events());
    assert!(!outcome.deflate);
    assert_eq!(outcome.state, ConnectionState::Closed);
    // The server may also refuse deflate that the client offers.
    let (client, _, _, _) = open_pair(Settings::default(), settings(false));
    assert!(!client.deflate_enabled());
}

/// The replies of the client under test reach the server: pongs and the
/// close reply, masked.
#[test]
fn client_replies_are_masked_and_decode() {
    let case = client_conversation(true);
    let request_len = case.sent.len();
    let outcome = run(case, 0);
    let replies = &outcome.sent[request_len..];
    // Every frame a client sends is masked.
    assert_eq!(replies[1] & 0x80, 0x80);
    // Decode with a server that agreed to the same (the replies are control
    // frames, which are never compressed).
    let (_, mut server, _, _) = open_pair(Settings::default(), Settings::default());
    assert_eq!(
        decode(&mut server, replies),
        vec![
            Ev::Pong(b"between".to_vec()),
            Ev::Pong(b"are you there".to_vec()),
            Ev::Close(
                1001,
                "server going away".into(),
                ConnectionState::RemoteClosing
            ),
        ]
    );
}

#[test]
fn client_large_messages() {
    for deflate in [false, true] {
        // The frames after the 101 do not depend on the client's key.
        let (_, mut server, _, _) = open_pair(settings(deflate), Settings::default());
        let frames = large_frames(&mut server);
        let make = || {
            let (conn, req, _, resp) = client_under_test(settings(deflate), Settings::default());
            let mut pieces = vec![resp];
            pieces.extend(frames.iter().cloned());
            Case {
                conn,
                pieces,
                eof: true,
                react: peer_react,
                sent: req,
            }
        };
        let outcome = transcript(
            make,
            Cuts::Near {
                radius: 16,
                stride: 2_999,
            },
        );
        let mut expected = vec![accept_ev()];
        expected.extend(large_events());
        expected.push(Ev::Close(1006, String::new(), ConnectionState::Closed));
        assert_eq!(outcome.events, expected, "deflate {deflate}");
    }
}

/// The client starts the closing handshake right after the 101; a message
/// in flight still arrives, then the server's close ends it.
#[test]
fn client_initiates_close() {
    let make = || {
        let (conn, req, mut server, resp) =
            client_under_test(Settings::default(), Settings::default());
        let pieces = vec![
            resp,
            server.send(text("in flight")).unwrap(),
            server
                .send(CloseConnection::with_reason(1000, "bye"))
                .unwrap(),
        ];
        Case {
            conn,
            pieces,
            eof: true,
            react: client_close_after_accept,
            sent: req,
        }
    };
    let outcome = transcript(make, Cuts::All);
    assert_eq!(
        outcome.events,
        vec![
            accept_ev(),
            Ev::Text("in flight".into(), true),
            Ev::Close(1000, "bye".into(), ConnectionState::Closed),
        ]
    );
    assert_eq!(outcome.state, ConnectionState::Closed);
}

#[test]
fn client_receives_end_of_stream() {
    let make = || {
        let (conn, req, mut server, resp) =
            client_under_test(Settings::default(), Settings::default());
        let pieces = vec![resp, server.send(text("last words")).unwrap()];
        Case {
            conn,
            pieces,
            eof: true,
            react: peer_react,
            sent: req,
        }
    };
    let outcome = transcript(make, Cuts::All);
    assert_eq!(
        outcome.events,
        vec![
            accept_ev(),
            Ev::Text("last words".into(), true),
            Ev::Close(1006, String::new(), ConnectionState::Closed),
        ]
    );
    // The stream ends before the response: the handshake fails.
    let mut conn = WSConnection::new(ConnectionType::Client);
    let _ = conn.send(request()).unwrap();
    conn.receive_data(Some(b"HTTP/1.1 101 Switching")).unwrap();
    conn.receive_data(None).unwrap();
    let item = conn.events().next();
    assert!(
        matches!(&item, Some(Err(err)) if err.close_code() == Some(1002.into())),
        "{item:?}"
    );
    assert_eq!(conn.state(), ConnectionState::Closed);
}

/// A masked frame from the server: `Err` 1002; the hint goes out as a
/// masked close frame.
#[test]
fn client_protocol_error() {
    let make = || {
        let (conn, req, _, resp) = client_under_test(settings(false), Settings::default());
        Case {
            conn,
            pieces: vec![
                resp,
                unmasked(0x81, b"fine"),
                masked(0x81, b"masked"),
                unmasked(0x81, b"never"),
            ],
            eof: false,
            react: peer_react,
            sent: req,
        }
    };
    let case = make();
    let request_len = case.sent.len();
    drop(case);
    let outcome = transcript(make, Cuts::All);
    assert_eq!(
        outcome.events,
        vec![
            accept_ev(),
            Ev::Text("fine".into(), true),
            Ev::Error(ErrorHint::Close(1002.into())),
        ]
    );
    assert_eq!(outcome.state, ConnectionState::Closed);
    let hint = &outcome.sent[request_len..];
    assert_eq!(hint[0], 0x88, "a close frame");
    assert_eq!(hint[1] & 0x80, 0x80, "masked");
    let (_, mut server, _, _) = open_pair(settings(false), settings(false));
    let view = decode(&mut server, hint);
    assert!(
        matches!(
            view.as_slice(),
            [Ev::Close(1002, _, ConnectionState::RemoteClosing)]
        ),
        "{view:?}"
    );
}

/// A bad 101 (wrong accept token): the handshake fails with 1002 and the
/// client has nothing to send.
#[test]
fn client_rejects_bad_accept() {
    let make = || {
        let mut conn = WSConnection::new(ConnectionType::Client);
        let req = conn.send(request()).unwrap();
        Case {
            conn,
            pieces: vec![b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".to_vec()],
            eof: false,
            react: peer_react,
            sent: req,
        }
    };
    let case = make();
    let request_len = case.sent.len();
    drop(case);
    let outcome = transcript(make, Cuts::All);
    assert_eq!(
        outcome.events,
        vec![Ev::Error(ErrorHint::Close(1002.into()))]
    );
    assert_eq!(
        outcome.sent.len(),
        request_len,
        "nothing sent after the request"
    );
}

fn rejection_case(response: &'static [u8], eof: bool) -> impl Fn() -> Case {
    move || {
        let mut conn = WSConnection::new(ConnectionType::Client);
        let req = conn.send(request()).unwrap();
        Case {
            conn,
            pieces: vec![response.to_vec()],
            eof,
            react: peer_react,
            sent: req,
        }
    }
}

#[test]
fn client_sees_rejection_without_body() {
    let outcome = transcript(
        rejection_case(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        Cuts::All,
    );
    // As in Python: a final response always has a body, maybe empty.
    assert_eq!(
        outcome.events,
        vec![
            Ev::Reject {
                status: 403,
                has_body: true
            },
            Ev::RejectData(vec![], true)
        ]
    );
    assert_eq!(outcome.state, ConnectionState::Closed);
    // The same from our own server.
    let mut client = WSConnection::new(ConnectionType::Client);
    let req = client.send(request()).unwrap();
    let mut server = WSConnection::new(ConnectionType::Server);
    server.receive_data(Some(&req)).unwrap();
    assert_eq!(events_of(&mut server).len(), 1);
    let refusal = server.send(RejectConnection::default()).unwrap();
    assert_eq!(server.state(), ConnectionState::Closed);
    assert_eq!(
        decode(&mut client, &refusal),
        vec![
            Ev::Reject {
                status: 400,
                has_body: true
            },
            Ev::RejectData(vec![], true)
        ]
    );
}

#[test]
fn client_sees_rejection_with_content_length_body() {
    let outcome = transcript(
        rejection_case(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\nWWW-Authenticate: Basic\r\n\r\nlog in first",
            false,
        ),
        Cuts::All,
    );
    assert_eq!(
        outcome.events,
        vec![
            Ev::Reject {
                status: 401,
                has_body: true
            },
            Ev::RejectData(b"log in first".to_vec(), true)
        ]
    );
    assert_eq!(outcome.state, ConnectionState::Closed);
}

#[test]
fn client_sees_rejection_with_chunked_body() {
    let outcome = transcript(
        rejection_case(
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\nA\r\nworld, 10!\r\n0\r\nX-Trailer: yes\r\n\r\n",
            false,
        ),
        Cuts::All,
    );
    assert_eq!(
        outcome.events,
        vec![
            Ev::Reject {
                status: 400,
                has_body: true
            },
            Ev::RejectData(b"hello world, 10!".to_vec(), true)
        ]
    );
    assert_eq!(outcome.state, ConnectionState::Closed);
}

/// A body that ends when the server closes the stream: the last chunk
/// comes with `receive_data(None)`.
#[test]
fn client_sees_rejection_with_close_delimited_body() {
    let outcome = transcript(
        rejection_case(
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\ncome back later\r\n(really)",
            true,
        ),
        Cuts::All,
    );
    assert_eq!(
        outcome.events,
        vec![
            Ev::Reject {
                status: 503,
                has_body: true
            },
            Ev::RejectData(b"come back later\r\n(really)".to_vec(), true)
        ]
    );
    assert_eq!(outcome.state, ConnectionState::Closed);
    // Without the end of the stream, the body is not finished.
    let outcome = run(
        rejection_case(b"HTTP/1.1 503 Service Unavailable\r\n\r\npartial", false)(),
        10,
    );
    assert_eq!(
        outcome.events,
        vec![
            Ev::Reject {
                status: 503,
                has_body: true
            },
            Ev::RejectData(b"partial".to_vec(), false)
        ]
    );
    assert_eq!(outcome.state, ConnectionState::Rejecting);
}

/// The 101 and the first frames arrive in one `receive_data` call.
#[test]
fn client_pipelined_frames_after_101() {
    let mut case = client_conversation(true);
    let wire = case.pieces.concat();
    case.conn.receive_data(Some(&wire)).unwrap();
    let mut log = Vec::new();
    let mut sent = Vec::new();
    let mut failed = false;
    drain(&mut case.conn, peer_react, &mut log, &mut sent, &mut failed);
    assert_eq!(merge(log), client_conversation_events());
}

/// The request and the first frames arrive in one call, before the server
/// accepted: the frames wait in the buffer until the accept.
#[test]
fn server_pipelined_frames_after_request() {
    let mut case = server_case(true, &server_conversation_pieces(true), true, server_react);
    let wire = case.pieces.concat();
    case.conn.receive_data(Some(&wire)).unwrap();
    let first = case.conn.events().next();
    assert!(matches!(first, Some(Ok(Event::Request(_)))), "{first:?}");
    // Nothing is parsed before the server answers.
    assert!(case.conn.events().next().is_none());
    assert_eq!(case.conn.state(), ConnectionState::Connecting);
    let mut sent = Vec::new();
    accept_request(&mut case.conn, &request(), &mut sent);
    let mut log = vec![request_ev()];
    let mut failed = false;
    drain(
        &mut case.conn,
        server_react,
        &mut log,
        &mut sent,
        &mut failed,
    );
    assert_eq!(merge(log), server_conversation_events());
}

#[test]
fn client_auto_reply() {
    let (mut conn, req, mut server, resp) = client_under_test(auto_settings(), Settings::default());
    drop(req);
    let mut wire = resp;
    wire.extend(server.send(Ping::new(&b"auto"[..])).unwrap());
    wire.extend(
        server
            .send(CloseConnection::with_reason(3000, "x"))
            .unwrap(),
    );
    let events = decode(&mut conn, &wire);
    assert_eq!(
        events,
        vec![
            accept_ev(),
            Ev::Ping(b"auto".to_vec()),
            Ev::Close(3000, "x".into(), ConnectionState::Closed)
        ]
    );
    let replies = conn.bytes_to_send(None);
    assert_eq!(replies[1] & 0x80, 0x80, "masked");
    assert_eq!(
        decode(&mut server, &replies),
        vec![
            Ev::Pong(b"auto".to_vec()),
            Ev::Close(3000, "x".into(), ConnectionState::Closed)
        ]
    );
}

/// Sending in the wrong state is a `LocalProtocolError`.
#[test]
fn sends_checked_against_state() {
    let mut client = WSConnection::new(ConnectionType::Client);
    assert!(client.send(text("too early")).is_err());
    let (mut client, mut server, _, _) = open_pair(Settings::default(), Settings::default());
    let close = client.send(CloseConnection::new(1000)).unwrap();
    assert!(client.send(text("after close")).is_err());
    assert!(client.send(Ping::new(&b""[..])).is_err());
    server.receive_data(Some(&close)).unwrap();
    assert_eq!(events_of(&mut server).len(), 1);
    assert_eq!(server.state(), ConnectionState::RemoteClosing);
    assert!(server.send(text("no")).is_err());
    let reply = server.send(CloseConnection::new(1000)).unwrap();
    assert_eq!(server.state(), ConnectionState::Closed);
    assert!(server.send(CloseConnection::new(1000)).is_err());
    client.receive_data(Some(&reply)).unwrap();
    assert_eq!(events_of(&mut client).len(), 1);
    assert_eq!(client.state(), ConnectionState::Closed);
    assert!(client.receive_data(Some(b"x")).is_err());
}

// -------------------------------------------------------------- zero copy

/// Pointer range of a payload.
fn range(data: &[u8]) -> std::ops::Range<usize> {
    let start = data.as_ptr() as usize;
    start..start + data.len()
}

/// Builds a frame from its first byte and payload.
type FrameFn = fn(u8, &[u8]) -> Vec<u8>;

/// Without deflate, received payloads are slices of the receive buffer:
/// three frames fed in one call give three payloads laid out exactly as on
/// the wire, each a frame header apart, within a span no larger than the
/// input.
#[test]
fn received_payloads_share_the_receive_buffer() {
    for role in [ConnectionType::Client, ConnectionType::Server] {
        let (mut client, mut server, _, _) = open_pair(settings(false), settings(false));
        let (conn, frame): (&mut WSConnection, FrameFn) = match role {
            ConnectionType::Client => (&mut client, unmasked),
            ConnectionType::Server => (&mut server, masked),
        };
        let first = noise(1_000, 7);
        let second = noise(20, 9);
        let third = noise(300, 8);
        let frames = [
            frame(0x82, &first),
            frame(0x82, &second),
            frame(0x82, &third),
        ];
        let wire = frames.concat();
        conn.receive_data(Some(&wire)).unwrap();
        let mut payloads: Vec<bytes::Bytes> = Vec::new();
        for item in conn.events().take(3) {
            match item.unwrap() {
                Event::BytesMessage(m) => {
                    assert!(m.message_finished);
                    payloads.push(m.data);
                }
                Event::TextMessage(m) => {
                    assert!(m.message_finished);
                    payloads.push(m.data.into_bytes());
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(payloads[0], first);
        assert_eq!(payloads[1], second);
        assert_eq!(payloads[2], third);
        let ranges: Vec<_> = payloads.iter().map(|p| range(p)).collect();
        // The large payloads are split off the buffer; the small one in
        // between was copied, so that it pins no receive buffer.
        let between = frames[1].len() + frames[2].len() - payloads[2].len();
        assert_eq!(
            ranges[2].start,
            ranges[0].end + between,
            "{role:?}: payload 2 does not follow payload 0 in the buffer"
        );
        assert!(
            ranges[1].end <= ranges[0].start || ranges[1].start >= ranges[2].end,
            "{role:?}: the small payload shares the receive buffer"
        );
        let span = ranges[2].end - ranges[0].start;
        assert!(span <= wire.len(), "{role:?}: span {span} > {}", wire.len());
        // The payloads live as long as their `Bytes`, whatever the
        // connection does next.
        drop(client);
        drop(server);
        assert_eq!(payloads[0], first);
    }
}

/// A single frame that arrives in pieces is handed out as it arrives: a
/// chunk per `receive_data`, not buffered until the frame is whole.
#[test]
fn a_split_frame_is_delivered_as_it_arrives() {
    let (_, mut server, _, _) = open_pair(settings(false), settings(false));
    let payload = noise(4_000, 9);
    let wire = masked(0x82, &payload);
    let (a, b) = wire.split_at(1_500);
    server.receive_data(Some(a)).unwrap();
    let first = match server.events().next() {
        Some(Ok(Event::BytesMessage(m))) => m,
        other => panic!("{other:?}"),
    };
    assert!(!first.frame_finished);
    server.receive_data(Some(b)).unwrap();
    let second = match server.events().next() {
        Some(Ok(Event::BytesMessage(m))) => m,
        other => panic!("{other:?}"),
    };
    assert!(second.message_finished);
    assert_eq!([&first.data[..], &second.data[..]].concat(), payload);
    assert_eq!(
        first.data.len(),
        1_500 - 8,
        "all payload bytes of the first piece"
    );
    assert_eq!(second.data.len(), b.len());
}

/// Receiving a large compressed frame costs about the same whether it is
/// masked (from a client) or not (from a server): the receiver unmasks at
/// most one chunk's worth of input per call, so a frame of `n` bytes costs
/// O(n) XOR work, not O(n² / chunk).
#[test]
fn masked_compressed_frame_costs_as_much_as_an_unmasked_one() {
    let data = noise(2_000_000, 11);
    // The whole frame is fed at once: allow that much unread input.
    let mut settings = Settings::default();
    settings.max_unread = 4 << 20;
    let (mut client, mut server, _, _) = open_pair(settings.clone(), settings);
    let to_server = client.send(BytesMessage::new(data.clone())).unwrap();
    let to_client = server.send(BytesMessage::new(data.clone())).unwrap();
    let time = |conn: &mut WSConnection, wire: &[u8]| {
        let start = std::time::Instant::now();
        conn.receive_data(Some(wire)).unwrap();
        let mut received = 0;
        for item in conn.events().take(100_000) {
            if let Event::BytesMessage(m) = item.unwrap() {
                received += m.data.len();
            }
        }
        assert_eq!(received, data.len());
        start.elapsed()
    };
    let unmasked = time(&mut client, &to_client);
    let masked = time(&mut server, &to_server);
    assert!(
        masked <= unmasked * 10 + std::time::Duration::from_millis(500),
        "masked {masked:?}, unmasked {unmasked:?}"
    );
}

/// `auto_reply` sends nothing the state forbids: no pong after our own
/// close frame, and no second close frame when the peer answers ours.
#[test]
fn auto_reply_after_our_close() {
    let pieces = {
        let (mut peer, _, req, _) = open_pair(Settings::default(), auto_settings());
        vec![
            req,
            peer.send(Ping::new(&b"late ping"[..])).unwrap(),
            peer.send(CloseConnection::with_reason(4001, "going"))
                .unwrap(),
        ]
    };
    let make = || Case {
        conn: WSConnection::with_settings(ConnectionType::Server, auto_settings()),
        pieces: pieces.clone(),
        eof: false,
        react: server_accept_then_close,
        sent: Vec::new(),
    };
    let case = make();
    let wire = case.pieces.concat();
    for cut in 0..=wire.len() {
        let case = make();
        let mut conn = case.conn;
        let mut log = Vec::new();
        let mut sent = Vec::new();
        let mut failed = false;
        feed(
            &mut conn,
            &wire[..cut],
            case.react,
            &mut log,
            &mut sent,
            &mut failed,
        );
        feed(
            &mut conn,
            &wire[cut..],
            case.react,
            &mut log,
            &mut sent,
            &mut failed,
        );
        assert_eq!(
            merge(log),
            vec![
                request_ev(),
                Ev::Ping(b"late ping".to_vec()),
                Ev::Close(4001, "going".into(), ConnectionState::Closed),
            ],
            "cut {cut}"
        );
        assert!(
            conn.bytes_to_send(None).is_empty(),
            "cut {cut}: replies queued"
        );
    }
}

/// After the peer's violation the error comes once and the events end, as
/// Python's generator does; the state is `Closed`, the close frame the
/// error calls for may still go out once, and data may not.
#[test]
fn a_protocol_error_is_yielded_once() {
    let (_, mut server, _, _) = open_pair(settings(false), settings(false));
    server
        .receive_data(Some(
            &[masked(0x81, b"ok"), unmasked(0x81, b"bad")].concat(),
        ))
        .unwrap();
    let events: Vec<_> = server.events().collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(&events[0], Ok(Event::TextMessage(m)) if &*m.data == "ok"));
    let Err(err) = &events[1] else {
        panic!("{events:?}")
    };
    assert!(server.next_event().is_none());
    assert!(server.events().next().is_none());
    assert_eq!(server.state(), ConnectionState::Closed);
    assert!(server.send(TextMessage::new("more")).is_err());
    let mut hint = Vec::new();
    server.send_core(&err.event_hint(), &mut hint).unwrap();
    assert_eq!(&hint[..2], &[0x88, 2 + err.message().len() as u8]);
    assert!(server.send_core(&err.event_hint(), &mut hint).is_err());
    assert!(server.receive_data(Some(b"x")).is_err());
}

/// A `Request` that already names permessage-deflate among its extensions,
/// sent by a client that offers it itself, offers it once (Python's wsproto
/// sends each extension once).
#[test]
fn an_extension_named_twice_is_offered_once() {
    let mut client = WSConnection::new(ConnectionType::Client);
    let mut request = Request::new("example.com", "/");
    request.extensions = vec!["permessage-deflate".into()];
    let head = String::from_utf8(client.send(request).unwrap()).unwrap();
    let offers = head
        .lines()
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with("sec-websocket-extensions:")
        })
        .flat_map(|l| l.split_once(':').map(|x| x.1.to_owned()))
        .flat_map(|v| {
            v.split(',')
                .map(|o| o.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|o| o.split(';').next().map(str::trim) == Some("permessage-deflate"))
        .count();
    assert_eq!(offers, 1, "{head}");
}
