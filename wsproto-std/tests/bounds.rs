//! Hostile peers against `WSConnection`: every buffer a peer can fill has a
//! bound, and every wait a deadline. One test per bound: unread input (open
//! and during the handshake), the automatic-reply outbox, memory kept alive
//! by payloads the caller holds (`tests/pinning.rs`), and the timers.

mod common;

use common::{open_pair, plain};
use wsproto_std::events::{BytesMessage, Event, Ping, TextMessage};
use wsproto_std::{ConnectionState, ConnectionType, Expired, Settings, TimerConfig, WSConnection};

/// Unread input stops at the limit; taking events makes room; nothing
/// accepted is lost.
#[test]
fn unread_input_is_bounded_and_nothing_is_lost() {
    let mut settings = plain();
    settings.max_unread = 64 << 10;
    let (mut client, mut server) = open_pair(plain(), settings);
    let mut wire = Vec::new();
    let mut sent = 0usize;
    for i in 0..200u32 {
        let payload = vec![(i % 251) as u8; 1000 + i as usize];
        sent += payload.len();
        client
            .send_into(BytesMessage::new(payload), &mut wire)
            .unwrap();
    }
    // A peer writing faster than events are taken: the excess is refused.
    let mut fed = 0;
    while fed < wire.len() {
        let n = (wire.len() - fed).min(10_000);
        if server.receive_data(Some(&wire[fed..fed + n])).is_err() {
            break;
        }
        fed += n;
    }
    assert!(fed < wire.len(), "everything fit");
    assert!(server.receive_space() < 10_000);
    // Back-pressure the caller's way: read only what fits, take events.
    let mut received = 0usize;
    for _ in 0..10_000 {
        while let Some(event) = server.next_event() {
            if let Event::BytesMessage(m) = event.unwrap() {
                received += m.data.len();
            }
        }
        if fed == wire.len() {
            break;
        }
        let n = (wire.len() - fed).min(server.receive_space());
        server.receive_data(Some(&wire[fed..fed + n])).unwrap();
        fed += n;
    }
    assert_eq!(received, sent);
    // Once every event was taken, the space is back.
    assert_eq!(server.receive_space(), 64 << 10);
}

/// During the handshake the bound is the head limit: an endless head is
/// refused with 431 once 8 KiB are held.
#[test]
fn an_endless_request_head_is_bounded() {
    let mut server = WSConnection::new(ConnectionType::Server);
    let mut fed = 0usize;
    let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    assert!(server
        .receive_data(Some(b"GET / HTTP/1.1\r\nHost: h\r\n"))
        .is_ok());
    for _ in 0..1_000_000 {
        if server.receive_data(Some(line)).is_err() {
            break;
        }
        fed += line.len();
    }
    // The bound during the handshake is the head limit (8 KiB by default).
    assert!(fed <= 8 << 10, "{fed} bytes held");
    match server.next_event() {
        Some(Err(err)) => assert_eq!(err.event_hint_status(), Some(431)),
        other => panic!("{other:?}"),
    }
}

trait Status {
    fn event_hint_status(&self) -> Option<u16>;
}

impl Status for wsproto_std::RemoteProtocolError {
    fn event_hint_status(&self) -> Option<u16> {
        match self.hint() {
            wsproto_std::wsproto_core::error::ErrorHint::Reject(status) => Some(status),
            _ => None,
        }
    }
}

/// With automatic replies and a caller that never drains them, a peer
/// pinging flat out fills at most a few KiB; the pong that finally goes out
/// answers the latest ping.
#[test]
fn the_auto_reply_outbox_is_bounded_and_pongs_coalesce() {
    let mut settings = plain();
    settings.auto_reply = true;
    let (mut client, mut server) = open_pair(plain(), settings);
    let mut wire = Vec::new();
    for i in 0..100_000u32 {
        wire.clear();
        let mut payload = vec![b'p'; 121];
        payload.extend_from_slice(&i.to_be_bytes());
        client.send_into(Ping::new(payload), &mut wire).unwrap();
        server.receive_data(Some(&wire)).unwrap();
        while let Some(event) = server.next_event() {
            assert!(matches!(event.unwrap(), Event::Ping(_)));
        }
    }
    let replies = server.bytes_to_send(None);
    assert!(
        replies.len() <= (4 << 10) + 2 * 127,
        "{} bytes",
        replies.len()
    );
    // Drained, the latest ping is answered by the next drain.
    client.receive_data(Some(&replies)).unwrap();
    let mut last = None;
    while let Some(event) = client.next_event() {
        if let Event::Pong(p) = event.unwrap() {
            last = Some(p.payload);
        }
    }
    assert!(last.is_some());
    let more = server.bytes_to_send(None);
    client.receive_data(Some(&more)).unwrap();
    while let Some(event) = client.next_event() {
        if let Event::Pong(p) = event.unwrap() {
            last = Some(p.payload);
        }
    }
    assert_eq!(&last.unwrap()[121..], &99_999u32.to_be_bytes());
}

/// The handshake deadline runs from the first `handle_timeout`.
#[test]
fn the_handshake_deadline_expires() {
    let mut settings = Settings::default();
    settings.timers = TimerConfig::default().handshake_timeout(10_000);
    let mut server = WSConnection::with_settings(ConnectionType::Server, settings);
    assert_eq!(server.handle_timeout(1_000), None);
    assert_eq!(server.poll_timeout(), Some(11_000));
    server.receive_data(Some(b"GET / HTTP/1.1\r\n")).unwrap();
    assert_eq!(server.handle_timeout(5_000), None);
    assert_eq!(server.handle_timeout(11_000), Some(Expired::Handshake));
}

/// Keepalive: a ping after an idle interval, then, with no pong, the end of
/// the connection as if the transport ended (code 1006).
#[test]
fn keepalive_pings_and_gives_up_without_a_pong() {
    let mut settings = plain();
    settings.timers = TimerConfig::default().keepalive(30, Some(10));
    let (mut client, mut server) = open_pair(plain(), settings);
    assert_eq!(server.handle_timeout(0), None);
    assert_eq!(server.poll_timeout(), Some(30));
    // Input postpones the ping.
    server
        .receive_data(Some(&client.send(TextMessage::new("hi")).unwrap()))
        .unwrap();
    assert!(server.next_event().is_some());
    assert_eq!(server.handle_timeout(20), None);
    assert_eq!(server.poll_timeout(), Some(50));
    assert_eq!(server.handle_timeout(50), Some(Expired::PingDue));
    let ping = server.send(Ping::new(&b"ka"[..])).unwrap();
    // The pong answers it: alive.
    client.receive_data(Some(&ping)).unwrap();
    let Some(Ok(Event::Ping(p))) = client.next_event() else {
        panic!("no ping")
    };
    server
        .receive_data(Some(&client.send(p.response()).unwrap()))
        .unwrap();
    assert!(matches!(server.next_event(), Some(Ok(Event::Pong(_)))));
    assert_eq!(server.handle_timeout(55), None);
    assert_eq!(server.poll_timeout(), Some(85));
    // Next time no pong comes.
    assert_eq!(server.handle_timeout(85), Some(Expired::PingDue));
    assert_eq!(server.handle_timeout(95), Some(Expired::Keepalive));
    match server.next_event() {
        Some(Ok(Event::CloseConnection(c))) => assert_eq!(c.code.as_u16(), 1006),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.state(), ConnectionState::Closed);
}

/// After our close frame, the peer has the closing timeout to answer.
#[test]
fn the_closing_handshake_times_out() {
    let mut settings = plain();
    settings.timers = TimerConfig::default().close_timeout(100);
    let (_client, mut server) = open_pair(plain(), settings);
    assert_eq!(server.handle_timeout(0), None);
    assert_eq!(server.poll_timeout(), None);
    let close = wsproto_std::events::CloseConnection::new(1000);
    let _ = server.send(close).unwrap();
    assert_eq!(server.handle_timeout(10), None);
    assert_eq!(server.poll_timeout(), Some(110));
    assert_eq!(server.handle_timeout(110), Some(Expired::Close));
}
