use std::boxed::Box;
use std::string::String;
use std::vec::Vec;

use spin::Mutex;
use wsproto_core::event::{
    AcceptConnection, BytesMessage, CloseConnection, ConnectionEvent, Event, Ping,
    RejectConnection, TextMessage,
};
use wsproto_core::handshake::{Handshake, HandshakeConfig};
use wsproto_core::{CloseCode, Config, Connection, ConnectionState};

use super::*;

/// Events with their data, code and finished flag.
type Seen = Vec<(EventKind, Vec<u8>, u16, bool)>;

/// An endpoint and its own random pool.
fn endpoint() -> (Box<Endpoint>, &'static Mutex<Pool>) {
    let pool: &'static Mutex<Pool> = Box::leak(Box::new(Mutex::new(Pool::new())));
    (Box::new(Endpoint::new()), pool)
}

fn refill(pool: &Mutex<Pool>) {
    let mut pool = pool.lock();
    for (i, b) in pool.area().iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    pool.added(RANDOM_CAPACITY);
}

fn write_send(e: &mut Endpoint, data: &[u8]) {
    e.send_area()[..data.len()].copy_from_slice(data);
}

/// Feed `bytes` through the input area in pieces of at most `step` bytes,
/// collecting every event with its data, code and finished flag.
fn feed_all(e: &mut Endpoint, mut bytes: &[u8], step: usize) -> Seen {
    let mut events = Vec::new();
    while !bytes.is_empty() {
        let space = e.input_space();
        let n = space.len().min(bytes.len()).min(step);
        space[..n].copy_from_slice(&bytes[..n]);
        assert_eq!(e.feed(n), n);
        bytes = &bytes[n..];
        loop {
            match e.poll() {
                Ok(Some(kind)) => {
                    events.push((kind, e.event().to_vec(), e.event_code(), e.event_finished()));
                }
                Ok(None) => break,
                // Nothing is read after a refusal.
                Err(Error::State) if e.state() == ConnectionState::Closed => return events,
                Err(err) => panic!("{err:?}"),
            }
        }
    }
    events
}

/// The chunks of data events joined into messages.
fn messages(events: &[(EventKind, Vec<u8>, u16, bool)]) -> Vec<(EventKind, Vec<u8>)> {
    let mut out: Vec<(EventKind, Vec<u8>)> = Vec::new();
    let mut open = false;
    for (kind, data, _, finished) in events {
        match out.last_mut() {
            Some(last) if open && last.0 == *kind => last.1.extend_from_slice(data),
            _ => out.push((*kind, data.clone())),
        }
        open = !finished;
    }
    out
}

/// A server handshake that accepted the endpoint's request; the endpoint's
/// output is taken.
fn accept(e: &mut Endpoint, pool: &'static Mutex<Pool>, after: &[u8]) -> (Connection, Seen) {
    refill(pool);
    let host = b"example.com";
    let target = b"/chat";
    write_send(e, &[&host[..], &target[..]].concat());
    let n = e.connect(pool, host.len(), target.len()).unwrap();
    assert_eq!(e.state(), ConnectionState::Connecting);
    let mut request = e.output().to_vec();
    assert_eq!(request.len(), n);
    e.clear_output();
    let mut server = Handshake::server(HandshakeConfig::default());
    match server.receive(&mut request).event {
        Ok(Some(Event::Request(r))) => assert_eq!((r.host, r.target), ("example.com", "/chat")),
        other => panic!("{other:?}"),
    }
    let mut response = server
        .send_vec(&AcceptConnection::default().into())
        .unwrap();
    response.extend_from_slice(after);
    let connection = server.into_connection().unwrap().connection;
    let events = feed_all(e, &response, 7);
    (connection, events)
}

#[test]
fn handshake_then_messages_both_ways() {
    let (mut e, pool) = endpoint();
    let mut server = Connection::server(Config::default());
    let pipelined = server.send_vec(&TextMessage::new("héllo").into()).unwrap();
    let (mut server, events) = accept(&mut e, pool, &pipelined);
    assert_eq!(
        messages(&events),
        [
            (EventKind::Accept, Vec::new()),
            (EventKind::Text, "héllo".into())
        ]
    );
    assert!(events.iter().all(|ev| std::str::from_utf8(&ev.1).is_ok()));
    assert_eq!(e.state(), ConnectionState::Open);

    // A ping is answered in the output area.
    let ping = server.send_vec(&Ping { payload: b"p" }.into()).unwrap();
    let events = feed_all(&mut e, &ping, 100);
    assert_eq!(events, [(EventKind::Ping, b"p".to_vec(), 0, true)]);
    let mut pong = e.output().to_vec();
    e.clear_output();
    assert!(
        matches!(server.receive(&mut pong).event, Ok(Some(ConnectionEvent::Pong(p))) if p.payload == b"p")
    );

    // A binary message larger than the buffers arrives in chunks.
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let wire = server.send_vec(&BytesMessage::new(&big).into()).unwrap();
    let events = feed_all(&mut e, &wire, 5000);
    let data: Vec<u8> = events.iter().flat_map(|ev| ev.1.clone()).collect();
    assert_eq!(data, big);
    assert!(events.iter().all(|ev| ev.0 == EventKind::Binary));
    assert!(events.last().unwrap().3);
    assert!(events.len() > 2);

    // The client sends a fragmented text message and a ping.
    write_send(&mut e, "ünï".as_bytes());
    e.send_text("ü".len(), false).unwrap();
    let mut wire = e.output().to_vec();
    e.clear_output();
    write_send(&mut e, "nï".as_bytes());
    e.send_text("nï".len(), true).unwrap();
    write_send(&mut e, b"x");
    e.send_ping(1).unwrap();
    wire.extend_from_slice(e.output());
    e.clear_output();
    let mut text = String::new();
    let mut rest = &mut wire[..];
    let mut saw_ping = false;
    loop {
        let r = server.receive(rest);
        let consumed = r.consumed;
        match r.event.unwrap() {
            Some(ConnectionEvent::TextMessage(m)) => text.push_str(m.data),
            Some(ConnectionEvent::Ping(p)) => saw_ping = p.payload == b"x",
            Some(other) => panic!("{other:?}"),
            None => break,
        }
        rest = &mut rest[consumed..];
    }
    assert_eq!(text, "ünï");
    assert!(saw_ping);

    // Bad UTF-8 and oversized lengths are refused.
    write_send(&mut e, &[0xff]);
    assert_eq!(e.send_text(1, true), Err(Error::Argument));
    assert_eq!(e.send_binary(SEND_CAPACITY + 1, true), Err(Error::Argument));

    // The closing handshake, started by the client.
    write_send(&mut e, b"bye");
    e.send_close(1000, 3).unwrap();
    assert_eq!(e.state(), ConnectionState::LocalClosing);
    let mut close = e.output().to_vec();
    e.clear_output();
    let reply = match server.receive(&mut close).event {
        Ok(Some(event @ ConnectionEvent::CloseConnection(_))) => server.reply_to(&event).unwrap(),
        other => panic!("{other:?}"),
    };
    let reply = server.send_vec(&reply).unwrap();
    let events = feed_all(&mut e, &reply, 100);
    assert_eq!(events, [(EventKind::Close, b"bye".to_vec(), 1000, true)]);
    assert_eq!(e.state(), ConnectionState::Closed);
    assert_eq!(e.eof(), Ok(None));
}

#[test]
fn server_close_is_answered() {
    let (mut e, pool) = endpoint();
    let mut server = Connection::server(Config::default());
    let close = server
        .send_vec(&CloseConnection::new(CloseCode::GOING_AWAY).into())
        .unwrap();
    let (mut server, events) = accept(&mut e, pool, &close);
    assert_eq!(events[1], (EventKind::Close, Vec::new(), 1001, true));
    let mut reply = e.output().to_vec();
    assert!(matches!(
        server.receive(&mut reply).event,
        Ok(Some(ConnectionEvent::CloseConnection(c))) if c.code == CloseCode::GOING_AWAY
    ));
    assert_eq!(e.state(), ConnectionState::Closed);
}

#[test]
fn needs_randomness_and_room() {
    let (mut e, pool) = endpoint();
    assert_eq!(e.poll(), Err(Error::State));
    write_send(&mut e, b"h/");
    assert_eq!(e.connect(pool, 1, 1), Err(Error::Random));
    assert_eq!(e.connect(pool, SEND_CAPACITY, 1), Err(Error::Argument));
    let (_server, _) = accept(&mut e, pool, &[]);
    pool.lock().added(3);
    write_send(&mut e, b"x");
    assert_eq!(e.send_binary(1, true), Err(Error::Random));
    assert_eq!(e.poll(), Err(Error::Random));
    refill(pool);
    assert_eq!(e.poll(), Ok(None));
    e.send_binary(SEND_CAPACITY, true).unwrap();
    // Room is left for a reply, until a ping takes it.
    assert_eq!(e.poll(), Ok(None));
    e.send_ping(125).unwrap();
    assert_eq!(e.poll(), Err(Error::OutputFull));
    assert_eq!(e.send_binary(SEND_CAPACITY, true), Err(Error::OutputFull));
    e.clear_output();
    assert_eq!(e.poll(), Ok(None));
}

#[test]
fn refusal_and_violations() {
    let (mut e, pool) = endpoint();
    refill(pool);
    write_send(&mut e, b"h/");
    e.connect(pool, 1, 1).unwrap();
    let mut server = Handshake::server(HandshakeConfig::default());
    let mut request = e.output().to_vec();
    let _ = server.receive(&mut request);
    let refusal = RejectConnection {
        status_code: 403,
        ..RejectConnection::default()
    };
    let response = server.send_vec(&refusal.into()).unwrap();
    let events = feed_all(&mut e, &response, 1000);
    assert_eq!(events[0].0, EventKind::Reject);
    assert_eq!(events[0].2, 403);
    assert_eq!(e.state(), ConnectionState::Closed);

    // A masked frame from the server is a violation: 1002, answered.
    let (mut e, pool) = endpoint();
    let (_server, _) = accept(&mut e, pool, &[]);
    let input = e.input_space();
    input[..7].copy_from_slice(&[0x81, 0x81, 1, 2, 3, 4, b'a' ^ 1]);
    e.feed(7);
    assert_eq!(e.poll(), Err(Error::Protocol));
    assert_eq!(e.event_code(), 1002);
    assert!(!e.output().is_empty());
    assert_eq!(e.poll(), Err(Error::Protocol));
}

#[test]
fn eof_during_and_after_the_handshake() {
    let (mut e, pool) = endpoint();
    assert_eq!(e.eof(), Err(Error::State));
    refill(pool);
    write_send(&mut e, b"h/");
    e.connect(pool, 1, 1).unwrap();
    assert_eq!(e.eof(), Err(Error::Protocol));
    assert_eq!(e.event_code(), 1006);

    let (mut e, pool) = endpoint();
    let (_server, _) = accept(&mut e, pool, &[]);
    assert_eq!(e.eof(), Ok(Some(EventKind::Close)));
    assert_eq!(e.event_code(), 1006);
    assert_eq!(e.state(), ConnectionState::Closed);
}

#[test]
fn pool_takes_from_the_end_and_wipes() {
    let mut pool = Pool::new();
    pool.area()[..6].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
    pool.added(6);
    let mut key = [0u8; 4];
    assert!(pool.take(&mut key));
    assert_eq!(key, [3, 4, 5, 6]);
    assert_eq!(pool.available(), 2);
    assert!(!pool.take(&mut key));
    assert_eq!(pool.area()[..6], [1, 2, 0, 0, 0, 0]);
}
