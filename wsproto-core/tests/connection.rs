//! Transcript tests of the post-handshake connection, both roles.

mod common;

use common::{counter_rng, feed, frame, merge, Ev};
use wsproto_core::connection::MessageKind;
use wsproto_core::event::{
    BytesMessage, CloseConnection, ConnectionEvent, Event, Ping, Pong, TextMessage,
};
use wsproto_core::{
    CloseCode, Config, Connection, ConnectionState, Needed, SendError, MIN_RECEIVE_BUFFER,
};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, 0, opcode, Some(KEY), payload)
}

/// A conversation from a client: fragmented text with a ping between the
/// fragments, a binary message, a pong, an empty message, and a close.
fn client_transcript() -> (Vec<u8>, Vec<Ev>) {
    let mut wire = Vec::new();
    wire.extend(client_frame(false, 1, "Hé".as_bytes()));
    wire.extend(client_frame(true, 9, b"ping!"));
    wire.extend(client_frame(false, 0, "llo €".as_bytes()));
    wire.extend(client_frame(true, 0, "😀!".as_bytes()));
    wire.extend(client_frame(true, 2, &[0u8, 1, 2, 255]));
    wire.extend(client_frame(true, 10, b""));
    wire.extend(client_frame(true, 1, b""));
    wire.extend(client_frame(true, 8, &[0x03, 0xE8, b'b', b'y', b'e']));
    let events = vec![
        Ev::Ping(b"ping!".to_vec()),
        Ev::Text("Héllo €😀!".into(), true, true),
        Ev::Bytes(vec![0, 1, 2, 255], true, true),
        Ev::Pong(vec![]),
        Ev::Text(String::new(), true, true),
        Ev::Close(1000, "bye".into()),
    ];
    (wire, events)
}

fn reorder_ping_first(events: Vec<Ev>) -> Vec<Ev> {
    // The first text fragment arrives before the ping; after merging,
    // put the whole message where it finished to compare.
    let mut out = Vec::new();
    let mut pending = None;
    for ev in events {
        match ev {
            Ev::Text(t, _, false) => pending = Some(t),
            Ev::Text(t, f, true) if pending.is_some() => {
                out.push(Ev::Text(pending.take().unwrap() + &t, f, true));
            }
            other => out.push(other),
        }
    }
    out
}

#[test]
fn server_transcript_at_every_split() {
    let (wire, expected) = client_transcript();
    let whole = {
        let mut conn = Connection::server(Config::default());
        feed(&mut conn, &wire, &[], 4096)
    };
    assert_eq!(reorder_ping_first(merge(&whole)), expected);
    for cut in 0..=wire.len() {
        let mut conn = Connection::server(Config::default());
        let events = feed(&mut conn, &wire, &[cut], 4096);
        assert_eq!(reorder_ping_first(merge(&events)), expected, "cut at {cut}");
        assert_eq!(conn.state(), ConnectionState::RemoteClosing);
    }
    // And every pair of cuts, and one byte at a time.
    for a in (0..wire.len()).step_by(3) {
        for b in a..=wire.len() {
            let mut conn = Connection::server(Config::default());
            let events = feed(&mut conn, &wire, &[a, b], 4096);
            assert_eq!(reorder_ping_first(merge(&events)), expected, "cuts {a} {b}");
        }
    }
    let cuts: Vec<usize> = (1..wire.len()).collect();
    let mut conn = Connection::server(Config::default());
    assert_eq!(
        reorder_ping_first(merge(&feed(&mut conn, &wire, &cuts, 4096))),
        expected
    );
}

#[test]
fn client_transcript_at_every_split() {
    let mut wire = Vec::new();
    wire.extend(frame(true, 0, 1, None, "Hello".as_bytes()));
    wire.extend(frame(false, 0, 2, None, &[1, 2]));
    wire.extend(frame(true, 0, 0, None, &[3]));
    wire.extend(frame(true, 0, 9, None, b"are you there"));
    wire.extend(frame(true, 0, 8, None, &[]));
    let expected = vec![
        Ev::Text("Hello".into(), true, true),
        Ev::Bytes(vec![1, 2, 3], true, true),
        Ev::Ping(b"are you there".to_vec()),
        Ev::Close(1005, String::new()),
    ];
    for cut in 0..=wire.len() {
        let mut conn = Connection::client(Config::default(), counter_rng());
        let events = feed(&mut conn, &wire, &[cut], 4096);
        assert_eq!(merge(&events), expected, "cut at {cut}");
    }
}

/// RFC 6455 §5.7 example frames, received by the right role.
#[test]
fn rfc6455_5_7_examples_decode() {
    let cases: [(&[u8], bool, Vec<Ev>); 5] = [
        (
            &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
            false,
            vec![Ev::Text("Hello".into(), true, true)],
        ),
        (
            &[
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ],
            true,
            vec![Ev::Text("Hello".into(), true, true)],
        ),
        (
            &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f],
            false,
            vec![
                Ev::Text("Hel".into(), true, false),
                Ev::Text("lo".into(), true, true),
            ],
        ),
        (
            &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
            false,
            vec![Ev::Ping(b"Hello".to_vec())],
        ),
        (
            &[
                0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ],
            true,
            vec![Ev::Pong(b"Hello".to_vec())],
        ),
    ];
    for (wire, server, expected) in cases {
        let events = if server {
            feed(&mut Connection::server(Config::default()), wire, &[], 64)
        } else {
            feed(
                &mut Connection::client(Config::default(), counter_rng()),
                wire,
                &[],
                64,
            )
        };
        assert_eq!(events, expected, "{wire:02x?}");
    }
    // 256 bytes binary and 64 KiB binary in a single unmasked frame.
    let mut wire = vec![0x82, 0x7E, 0x01, 0x00];
    wire.extend(std::iter::repeat_n(7u8, 256));
    let events = feed(
        &mut Connection::client(Config::default(), counter_rng()),
        &wire,
        &[],
        1024,
    );
    assert_eq!(events, vec![Ev::Bytes(vec![7; 256], true, true)]);
    let mut wire = vec![0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
    wire.extend(std::iter::repeat_n(9u8, 65536));
    let events = feed(
        &mut Connection::client(Config::default(), counter_rng()),
        &wire,
        &[],
        70_000,
    );
    assert_eq!(events, vec![Ev::Bytes(vec![9; 65536], true, true)]);
}

/// RFC 6455 §5.7 example frames, encoded byte for byte.
#[test]
fn rfc6455_5_7_examples_encode() {
    let mut server = Connection::server(Config::default());
    let mut out = [0u8; 32];
    let n = server
        .send(&TextMessage::new("Hello").into(), &mut out)
        .unwrap();
    assert_eq!(&out[..n], &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    let fragment = TextMessage {
        data: "Hel",
        frame_finished: true,
        message_finished: false,
    };
    let n = server.send(&fragment.into(), &mut out).unwrap();
    assert_eq!(&out[..n], &[0x01, 0x03, 0x48, 0x65, 0x6c]);
    let n = server
        .send(&TextMessage::new("lo").into(), &mut out)
        .unwrap();
    assert_eq!(&out[..n], &[0x80, 0x02, 0x6c, 0x6f]);
    let n = server
        .send(&Ping { payload: b"Hello" }.into(), &mut out)
        .unwrap();
    assert_eq!(&out[..n], &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    let n = server
        .send(&BytesMessage::new(&[0u8; 256]).into(), &mut [0u8; 300])
        .unwrap();
    assert_eq!(n, 260);

    let mut client = Connection::client(Config::default(), |b: &mut [u8]| b.copy_from_slice(&KEY));
    let n = client
        .send(&TextMessage::new("Hello").into(), &mut out)
        .unwrap();
    assert_eq!(
        &out[..n],
        &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    );
    let n = client
        .send(&Pong { payload: b"Hello" }.into(), &mut out)
        .unwrap();
    assert_eq!(
        &out[..n],
        &[0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    );
}

fn server_error(wire: &[u8]) -> Vec<Ev> {
    feed(&mut Connection::server(Config::default()), wire, &[], 4096)
}

#[test]
fn every_receive_rule_has_its_close_code() {
    let m = Some(KEY);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("reserved opcode 3", frame(true, 0, 3, m, b""), 1002),
        ("reserved opcode 0xB", frame(true, 0, 0xB, m, b""), 1002),
        ("fragmented ping", frame(false, 0, 9, m, b""), 1002),
        (
            "control frame over 125 bytes",
            frame(true, 0, 9, m, &[0; 126]),
            1002,
        ),
        ("RSV1 without extension", frame(true, 4, 1, m, b"a"), 1002),
        ("RSV2", frame(true, 2, 2, m, b"a"), 1002),
        ("RSV3", frame(true, 1, 2, m, b"a"), 1002),
        ("unmasked client frame", frame(true, 0, 2, None, b"a"), 1002),
        (
            "continuation without start",
            frame(true, 0, 0, m, b"a"),
            1002,
        ),
        ("close with 1 byte", frame(true, 0, 8, m, &[3]), 1002),
        (
            "close code 999",
            frame(true, 0, 8, m, &999u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 1004",
            frame(true, 0, 8, m, &1004u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 1005",
            frame(true, 0, 8, m, &1005u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 1006",
            frame(true, 0, 8, m, &1006u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 1015",
            frame(true, 0, 8, m, &1015u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 1016",
            frame(true, 0, 8, m, &1016u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 2999",
            frame(true, 0, 8, m, &2999u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 5000",
            frame(true, 0, 8, m, &5000u16.to_be_bytes()),
            1002,
        ),
        (
            "close reason not UTF-8",
            frame(true, 0, 8, m, &[3, 232, 0xFF]),
            1007,
        ),
        (
            "text not UTF-8",
            frame(true, 0, 1, m, &[b'a', 0xC0, 0x80]),
            1007,
        ),
        (
            "text ends inside a code point",
            frame(true, 0, 1, m, &[0xE2, 0x82]),
            1007,
        ),
        (
            "non-minimal 16-bit length",
            vec![0x82, 0xFE, 0, 5, 0, 0, 0, 0, 1, 2, 3, 4, 5],
            1002,
        ),
        (
            "64-bit length with MSB set",
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0],
            1002,
        ),
    ];
    for (name, wire, code) in cases {
        let events = server_error(&wire);
        assert_eq!(events.last(), Some(&Ev::Error(code)), "{name}: {events:?}");
    }
    // A new data frame inside a fragmented message.
    let mut wire = frame(false, 0, 1, m, b"a");
    wire.extend(frame(true, 0, 2, m, b"b"));
    assert_eq!(server_error(&wire).last(), Some(&Ev::Error(1002)));
    // Invalid UTF-8 across fragments, detected in the fragment that breaks it.
    let mut wire = frame(false, 0, 1, m, &[0xCE]);
    wire.extend(frame(true, 0, 0, m, &[0x28]));
    assert_eq!(server_error(&wire).last(), Some(&Ev::Error(1007)));
    // A masked frame sent to a client.
    let events = feed(
        &mut Connection::client(Config::default(), counter_rng()),
        &frame(true, 0, 2, m, b"x"),
        &[],
        64,
    );
    assert_eq!(events, vec![Ev::Error(1002)]);
}

#[test]
fn invalid_text_fails_before_the_frame_ends() {
    // Autobahn 6.4.3: the invalid byte arrives, the rest of the frame has not.
    let mut payload = "κόσμε".as_bytes().to_vec();
    payload.extend([0xF4, 0x90, 0x80, 0x80]);
    payload.extend(b"edited");
    let wire = client_frame(true, 1, &payload);
    let invalid_at = 6 + "κόσμε".len() + 2; // header, valid text, two bytes of the bad code point
    let mut conn = Connection::server(Config::default());
    let events = feed(&mut conn, &wire[..invalid_at], &[], 4096);
    assert_eq!(events.last(), Some(&Ev::Error(1007)), "{events:?}");
}

#[test]
fn limits_fail_with_1009() {
    let config = Config::default().max_frame_size(10).max_message_size(15);
    let events = feed(
        &mut Connection::server(config),
        &client_frame(true, 2, &[0; 11]),
        &[],
        64,
    );
    assert_eq!(events, vec![Ev::Error(1009)]);
    let mut wire = client_frame(false, 2, &[0; 10]);
    wire.extend(client_frame(true, 0, &[0; 6]));
    let events = feed(&mut Connection::server(config), &wire, &[], 64);
    assert_eq!(
        events,
        vec![Ev::Bytes(vec![0; 10], true, false), Ev::Error(1009)]
    );
    // The error sticks.
    let mut conn = Connection::server(config);
    let _ = feed(&mut conn, &client_frame(true, 2, &[0; 11]), &[], 64);
    let mut more = client_frame(true, 2, b"x");
    let received = conn.receive(&mut more);
    assert!(received.event.is_err());
}

#[test]
fn payloads_are_slices_of_the_callers_buffer() {
    let mut wire = client_frame(true, 2, b"zero copy payload");
    wire.extend(client_frame(true, 9, b"ping"));
    wire.extend(client_frame(true, 1, "text too".as_bytes()));
    let range = wire.as_ptr_range();
    let mut conn = Connection::server(Config::default());
    let mut pos = 0;
    let mut seen = 0;
    while pos < wire.len() {
        let received = conn.receive(&mut wire[pos..]);
        let consumed = received.consumed;
        let ptr = match received.event {
            Ok(Some(ConnectionEvent::BytesMessage(m))) => m.data.as_ptr_range(),
            Ok(Some(ConnectionEvent::Ping(p))) => p.payload.as_ptr_range(),
            Ok(Some(ConnectionEvent::TextMessage(m))) => m.data.as_bytes().as_ptr_range(),
            other => panic!("unexpected {other:?}"),
        };
        assert!(
            range.start <= ptr.start && ptr.end <= range.end,
            "payload outside the buffer"
        );
        seen += 1;
        pos += consumed;
    }
    assert_eq!(seen, 3);
    // Unmasked in place: the buffer now holds the plain payload.
    assert_eq!(&wire[6..6 + 17], b"zero copy payload");
}

#[test]
fn a_small_buffer_streams_a_100_mib_message() {
    const SIZE: usize = 100 << 20;
    let config = Config::default()
        .max_frame_size(SIZE as u64)
        .max_message_size(SIZE as u64);
    let mut conn = Connection::server(config);
    // Two fragments, 60 MiB and 40 MiB, generated on the fly into a 4 KiB buffer.
    let key = KEY;
    let sizes = [60usize << 20, 40 << 20];
    let mut buf = [0u8; 4096];
    let mut received = 0usize;
    let mut checksum = 0u64;
    let mut finished = false;
    for (i, &size) in sizes.iter().enumerate() {
        let fin = i == 1;
        let header = frame(fin, 0, if i == 0 { 2 } else { 0 }, Some(key), &[]);
        let mut head = header.clone();
        // Re-encode with the right length.
        let mut h = wsproto_core::frame::FrameHeader::new(
            fin,
            wsproto_core::frame::Opcode::from_bits(if i == 0 { 2 } else { 0 }),
            size as u64,
        );
        h.mask = Some(key);
        head.resize(h.encoded_len(), 0);
        h.encode(&mut head).unwrap();
        let mut filled = 0;
        buf[..head.len()].copy_from_slice(&head);
        filled += head.len();
        let mut sent = 0usize;
        while sent < size || filled > 0 {
            let n = (size - sent).min(buf.len() - filled);
            for (j, b) in buf[filled..filled + n].iter_mut().enumerate() {
                let pos = sent + j;
                *b = (pos as u8).wrapping_mul(7) ^ key[pos & 3];
            }
            filled += n;
            sent += n;
            let r = conn.receive(&mut buf[..filled]);
            let consumed = r.consumed;
            match r.event {
                Ok(Some(ConnectionEvent::BytesMessage(m))) => {
                    for (j, &b) in m.data.iter().enumerate() {
                        let pos = received - if i == 1 { sizes[0] } else { 0 } + j;
                        assert_eq!(b, (pos as u8).wrapping_mul(7));
                        checksum = checksum.wrapping_add(u64::from(b));
                    }
                    received += m.data.len();
                    finished = m.message_finished;
                }
                other => panic!("unexpected {other:?}"),
            }
            buf.copy_within(consumed..filled, 0);
            filled -= consumed;
        }
    }
    assert!(finished);
    assert_eq!(received, SIZE);
    assert!(checksum > 0);
}

#[test]
fn close_handshake_initiated_locally() {
    let mut conn = Connection::server(Config::default());
    let mut out = [0u8; 64];
    let close = CloseConnection {
        code: CloseCode::GOING_AWAY,
        reason: "bye",
    };
    let n = conn.send(&close.into(), &mut out).unwrap();
    assert_eq!(&out[..n], &[0x88, 0x05, 0x03, 0xE9, b'b', b'y', b'e']);
    assert_eq!(conn.state(), ConnectionState::LocalClosing);
    // Messages may not follow a close frame.
    let err = conn
        .send(&TextMessage::new("late").into(), &mut out)
        .unwrap_err();
    assert!(matches!(err, SendError::Local(_)));
    // Data from the peer still arrives until its close frame.
    let mut wire = client_frame(true, 1, b"still here");
    wire.extend(client_frame(true, 8, &[0x03, 0xE9]));
    let events = feed(&mut conn, &wire, &[], 64);
    assert_eq!(
        events,
        vec![
            Ev::Text("still here".into(), true, true),
            Ev::Close(1001, String::new())
        ]
    );
    assert_eq!(conn.state(), ConnectionState::Closed);
    assert!(conn.receive_eof().is_none());
}

#[test]
fn close_handshake_initiated_by_the_peer() {
    let mut conn = Connection::client(Config::default(), counter_rng());
    let mut wire = frame(true, 0, 8, None, &[0x03, 0xE8, b'o', b'k']);
    wire.extend(frame(true, 0, 1, None, b"ignored after close"));
    let mut buf = wire.clone();
    let received = conn.receive(&mut buf);
    let consumed = received.consumed;
    // The event borrows the connection: copy what the reply needs.
    let (code, reason) = match received.event {
        Ok(Some(ConnectionEvent::CloseConnection(close))) => {
            let reply = close.response();
            (reply.code, reply.reason.to_owned())
        }
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(consumed, 6);
    assert_eq!(conn.state(), ConnectionState::RemoteClosing);
    let mut out = [0u8; 64];
    let n = conn
        .send(
            &CloseConnection {
                code,
                reason: &reason,
            }
            .into(),
            &mut out,
        )
        .unwrap();
    assert_eq!(n, 2 + 4 + 4);
    assert_eq!(conn.state(), ConnectionState::Closed);
    let mut rest = wire[consumed..].to_vec();
    let received = conn.receive(&mut rest);
    assert_eq!(received.event, Ok(None));
    assert!(matches!(
        conn.send(&Ping::default().into(), &mut out),
        Err(SendError::Local(_))
    ));
}

#[test]
fn end_of_stream_is_an_abnormal_closure() {
    let mut conn = Connection::server(Config::default());
    let event = conn.receive_eof().unwrap();
    assert_eq!(
        event,
        ConnectionEvent::CloseConnection(CloseConnection::new(CloseCode::ABNORMAL_CLOSURE))
    );
    assert_eq!(conn.state(), ConnectionState::Closed);
}

#[test]
fn send_rules() {
    let mut conn = Connection::server(Config::default());
    let mut out = [0u8; 256];
    // A short buffer reports the size and changes nothing.
    let err = conn
        .send(&BytesMessage::new(&[0; 200]).into(), &mut out[..100])
        .unwrap_err();
    assert_eq!(
        err,
        SendError::BufferTooSmall(wsproto_core::BufferTooSmall { required: 204 })
    );
    // Control payloads are limited to 125 bytes.
    assert!(conn
        .send(&Ping { payload: &[0; 126] }.into(), &mut out)
        .is_err());
    // Close codes that may not be on the wire are refused; local-only ones become 1000.
    let bad = CloseConnection {
        code: CloseCode(2000),
        reason: "",
    };
    assert!(conn.send(&bad.into(), &mut out).is_err());
    // A text fragment cannot be followed by a binary one.
    let start = TextMessage {
        data: "a",
        frame_finished: true,
        message_finished: false,
    };
    conn.send(&start.into(), &mut out).unwrap();
    assert!(conn
        .send(&BytesMessage::new(b"b").into(), &mut out)
        .is_err());
    let n = conn.send(&TextMessage::new("b").into(), &mut out).unwrap();
    assert_eq!(&out[..n], &[0x80, 0x01, b'b']);
    let n = conn
        .send(
            &CloseConnection::new(CloseCode::ABNORMAL_CLOSURE).into(),
            &mut out,
        )
        .unwrap();
    assert_eq!(&out[..n], &[0x88, 0x02, 0x03, 0xE8]);
    // 1005 sends an empty close payload.
    let mut conn = Connection::server(Config::default());
    let n = conn
        .send(
            &CloseConnection::new(CloseCode::NO_STATUS_RCVD).into(),
            &mut out,
        )
        .unwrap();
    assert_eq!(&out[..n], &[0x88, 0x00]);
}

#[cfg(feature = "alloc")]
#[test]
fn client_and_server_talk() {
    let mut client = Connection::client(Config::default(), counter_rng());
    let mut server = Connection::server(Config::default());
    let mut wire = Vec::new();
    for event in [
        Event::from(TextMessage::new("hello")),
        BytesMessage::new(&[1, 2, 3]).into(),
        Ping { payload: b"p" }.into(),
        CloseConnection {
            code: CloseCode::NORMAL_CLOSURE,
            reason: "done",
        }
        .into(),
    ] {
        client.send_into(&event, &mut wire).unwrap();
    }
    let events = feed(&mut server, &wire, &[], 128);
    assert_eq!(
        events,
        vec![
            Ev::Text("hello".into(), true, true),
            Ev::Bytes(vec![1, 2, 3], true, true),
            Ev::Ping(b"p".to_vec()),
            Ev::Close(1000, "done".into()),
        ]
    );
}

/// Python's wsproto, fed "hé€x" in pieces of 8, 2 and the rest, yields "h",
/// "é" and "€x": the bytes of a split code point wait in the caller's buffer
/// and go out with the chunk that completes them.
#[test]
fn split_code_points_go_out_with_the_chunk_that_completes_them() {
    let wire = client_frame(true, 1, "hé€x".as_bytes());
    let mut conn = Connection::server(Config::default());
    let events = feed(&mut conn, &wire, &[8, 10], 4096);
    assert_eq!(
        events,
        vec![
            Ev::Text("h".into(), false, false),
            Ev::Text("é".into(), false, false),
            Ev::Text("€x".into(), true, true),
        ]
    );
}

/// A code point split across two fragments, with a ping and a pong between
/// them, arrives whole at every split of the input, one byte at a time
/// included.
#[test]
fn a_code_point_split_across_fragments_survives_control_frames() {
    let euro = "€".as_bytes();
    let mut wire = client_frame(false, 1, &[b'a', euro[0]]);
    wire.extend(client_frame(true, 9, b"between"));
    wire.extend(client_frame(false, 0, &euro[1..2]));
    wire.extend(client_frame(true, 10, b""));
    wire.extend(client_frame(true, 0, &[euro[2], b'b']));
    wire.extend(client_frame(true, 8, &[0x03, 0xE8]));
    let expected = [
        Ev::Text("a".into(), true, false),
        Ev::Ping(b"between".to_vec()),
        Ev::Pong(vec![]),
        Ev::Text("€b".into(), true, true),
        Ev::Close(1000, String::new()),
    ];
    let cuts: Vec<usize> = (1..wire.len()).collect();
    for pieces in [&[][..], &cuts[..]] {
        let mut conn = Connection::server(Config::default());
        let events = feed(&mut conn, &wire, pieces, MIN_RECEIVE_BUFFER);
        let mut text = String::new();
        let mut others = Vec::new();
        for ev in &events {
            match ev {
                Ev::Text(t, _, _) => text.push_str(t),
                other => others.push(other.clone()),
            }
        }
        assert_eq!(text, "a€b", "{events:?}");
        assert_eq!(
            others,
            expected[1..]
                .iter()
                .filter(|e| !matches!(e, Ev::Text(..)))
                .cloned()
                .collect::<Vec<_>>()
        );
    }
    for cut in 0..=wire.len() {
        let mut conn = Connection::server(Config::default());
        let events = feed(&mut conn, &wire, &[cut], MIN_RECEIVE_BUFFER);
        assert_eq!(merge(&events).last(), expected.last(), "cut {cut}");
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                Ev::Text(t, _, _) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "a€b", "cut {cut}");
    }
}

/// A control frame is handed out only when it is whole in the buffer;
/// until then the call says how many bytes it needs.
#[test]
fn a_control_frame_waits_until_whole_and_says_what_it_needs() {
    let wire = client_frame(true, 9, &[7; 125]);
    assert_eq!(wire.len(), 131);
    let mut conn = Connection::server(Config::default());
    let mut buf = wire.clone();
    for len in 6..wire.len() {
        let received = conn.receive(&mut buf[..len]);
        assert_eq!(received.consumed, 0);
        assert_eq!(received.event, Ok(None));
        assert_eq!(received.needed, Needed::Input(131), "{len}");
    }
    let received = conn.receive(&mut buf);
    assert_eq!(received.consumed, 131);
    assert_eq!(received.needed, Needed::Nothing);
    assert!(matches!(received.event, Ok(Some(ConnectionEvent::Ping(p))) if p.payload == [7; 125]));
}

/// The reply to a ping is sent while the ping, which borrows only the
/// caller's buffer, is still alive.
#[test]
fn a_pong_is_sent_while_the_ping_is_alive() {
    let mut conn = Connection::server(Config::default());
    let mut buf = client_frame(true, 9, b"are you there");
    let mut out = [0u8; 64];
    let received = conn.receive(&mut buf);
    let Ok(Some(event)) = received.event else {
        panic!("no ping")
    };
    let reply = conn.reply_to(&event).expect("a ping calls for a pong");
    let n = conn.send(&reply, &mut out).unwrap();
    assert_eq!(&out[..n], b"\x8a\x0dare you there");
    // The ping still reads the caller's buffer.
    assert_eq!(
        event,
        ConnectionEvent::Ping(Ping {
            payload: b"are you there"
        })
    );
}

/// Codes 1005, 1006 and 1015 never go on the wire: a reason with them is
/// refused rather than dropped or sent under another code.
#[test]
fn a_close_without_a_code_on_the_wire_carries_no_reason() {
    for code in [1005, 1006, 1015] {
        let mut conn = Connection::server(Config::default());
        let close = CloseConnection {
            code: CloseCode(code),
            reason: "why",
        };
        let mut out = [0u8; 64];
        assert!(
            matches!(conn.send(&close.into(), &mut out), Err(SendError::Local(_))),
            "{code}"
        );
        assert_eq!(conn.state(), ConnectionState::Open);
        let n = conn
            .send(&CloseConnection::new(CloseCode(code)).into(), &mut out)
            .unwrap();
        // 1005 is an empty close frame; 1006 and 1015 become 1000, as in
        // Python's wsproto.
        let wire: &[u8] = if code == 1005 {
            &[0x88, 0x00]
        } else {
            &[0x88, 0x02, 0x03, 0xE8]
        };
        assert_eq!(&out[..n], wire, "{code}");
    }
}

/// Whole single-frame messages (taken in one step when the buffer holds
/// them) give the same events and errors as the same bytes fed in pieces:
/// text and binary, 7-, 16- and 64-bit lengths, text valid and broken at
/// the start, the middle and the end, and frames beside fragmented ones.
/// Fed in pieces, the valid start of broken text may go out before the
/// error; that part is left out of the comparison.
#[test]
fn whole_frames_and_pieces_agree() {
    let text = "Grüße — Привет 世界 😀 ".repeat(5000);
    // (frame, whether it is a violation)
    let mut cases: Vec<(Vec<u8>, bool)> = Vec::new();
    for len in [0, 1, 16, 125, 126, 4096, 65_535, 65_536, 100_000] {
        let mut end = len.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let body = &text.as_bytes()[..end];
        cases.push((client_frame(true, 1, body), false));
        cases.push((client_frame(true, 2, body), false));
        for at in [0, end / 2, end.saturating_sub(1)] {
            if end > 0 {
                let mut broken = body.to_vec();
                broken[at] = 0xff;
                cases.push((client_frame(true, 1, &broken), true));
            }
        }
        if end > 2 && std::str::from_utf8(&body[..end - 1]).is_err() {
            // Cut in the middle of a character at the end of the message.
            cases.push((client_frame(true, 1, &body[..end - 1]), true));
        }
    }
    let normalize = |mut events: Vec<Ev>| {
        if let Some(Ev::Error(code)) = events.last().cloned() {
            events.pop();
            if let Some(Ev::Text(_, _, false)) = events.last() {
                events.pop();
            }
            events.push(Ev::Error(code));
        }
        events
    };
    for (case, broken) in &cases {
        // Behind a whole frame, and in front of a fragmented message.
        let mut wire = client_frame(true, 2, b"first");
        wire.extend_from_slice(case);
        wire.extend(client_frame(false, 1, "ab".as_bytes()));
        wire.extend(client_frame(true, 0, "c".as_bytes()));
        let whole = feed(
            &mut Connection::server(Config::default()),
            &wire,
            &[],
            wire.len() + 1,
        );
        let cuts: Vec<usize> = (0..wire.len()).step_by(997).collect();
        let pieces = feed(
            &mut Connection::server(Config::default()),
            &wire,
            &cuts,
            4096,
        );
        let whole = normalize(merge(&whole));
        assert_eq!(
            whole,
            normalize(merge(&pieces)),
            "frame of {} bytes",
            case.len()
        );
        assert_eq!(whole[0], Ev::Bytes(b"first".to_vec(), true, true));
        if !broken {
            assert_eq!(whole.last(), Some(&Ev::Text("abc".into(), true, true)));
        }
        assert_eq!(
            matches!(whole.last(), Some(Ev::Error(1007))),
            *broken,
            "frame of {} bytes",
            case.len()
        );
    }
}

/// Whole messages sent in one step (the common case) give the frames the
/// frame encoder gives, at every length class, for both roles; a short
/// buffer is refused with the size needed and changes nothing.
#[test]
fn whole_messages_are_sent_as_the_encoder_frames_them() {
    let text = "Grüße — Привет 世界 😀 ".repeat(3000);
    for len in [
        0, 1, 15, 16, 17, 125, 126, 127, 1000, 65_535, 65_536, 70_000,
    ] {
        let mut end = len;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let body = &text[..end];
        for client in [true, false] {
            for binary in [true, false] {
                let mut conn = if client {
                    Connection::client(Config::default(), counter_rng())
                } else {
                    Connection::new(wsproto_core::Role::Server, Config::default(), counter_rng())
                };
                let mut keys = counter_rng();
                let event: Event<'_> = if binary {
                    BytesMessage::new(body.as_bytes()).into()
                } else {
                    TextMessage::new(body).into()
                };
                for round in 0..2 {
                    let key = client.then(|| {
                        let mut key = [0u8; 4];
                        keys(&mut key);
                        key
                    });
                    let opcode = if binary { 2 } else { 1 };
                    let expected = frame(true, 0, opcode, key, body.as_bytes());
                    let mut out = vec![0xEE; expected.len() + 3];
                    if round == 0 {
                        let err = conn.send(&event, &mut out[..expected.len() - 1]);
                        assert!(
                            matches!(err, Err(SendError::BufferTooSmall(b)) if b.required == expected.len()),
                            "{err:?}"
                        );
                        // No key was drawn for the refused frame.
                        if client {
                            keys = counter_rng();
                        }
                        continue;
                    }
                    let n = conn.send(&event, &mut out).unwrap();
                    assert_eq!(n, expected.len(), "len {end}");
                    assert!(
                        out[..n] == expected[..],
                        "len {end} client {client} binary {binary}"
                    );
                    assert_eq!(&out[n..], &[0xEE; 3]);
                    assert_eq!(conn.state(), ConnectionState::Open);
                }
            }
        }
    }
}

/// `send_header` writes the header the frame encoder gives, at every length
/// class, for both roles, for a message's first frame and its continuation;
/// a short buffer is refused with the size needed, draws no key and changes
/// nothing.
#[test]
fn headers_are_sent_as_the_encoder_frames_them() {
    for len in [
        0, 1, 15, 16, 17, 125, 126, 127, 1000, 65_535, 65_536, 70_000,
    ] {
        let payload = vec![0u8; len];
        for client in [true, false] {
            for kind in [MessageKind::Binary, MessageKind::Text] {
                let mut conn = if client {
                    Connection::client(Config::default(), counter_rng())
                } else {
                    Connection::new(wsproto_core::Role::Server, Config::default(), counter_rng())
                };
                let mut keys = counter_rng();
                let mut next_key = || {
                    client.then(|| {
                        let mut key = [0u8; 4];
                        keys(&mut key);
                        key
                    })
                };
                let opcode = if kind == MessageKind::Binary { 2 } else { 1 };
                let mut out = [0xEEu8; 17];
                // The first frame, refused once for want of room.
                let key = next_key();
                let expected = frame(false, 0, opcode, key, &payload);
                let header_len = expected.len() - len;
                let err = conn.send_header(kind, len, false, &mut out[..header_len - 1]);
                assert!(
                    matches!(err, Err(SendError::BufferTooSmall(b)) if b.required == header_len),
                    "{err:?}"
                );
                let start = conn.send_header(kind, len, false, &mut out).unwrap();
                assert_eq!(start.header_len, header_len, "len {len}");
                assert_eq!(start.mask, key);
                assert_eq!(out[..header_len], expected[..header_len], "len {len}");
                assert_eq!(out[header_len..], [0xEE; 17][header_len..]);
                // Another kind may not start while this message is open.
                let other = if kind == MessageKind::Binary {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                assert!(conn.send_header(other, len, true, &mut out).is_err());
                // The continuation that finishes it.
                let key = next_key();
                let expected = frame(true, 0, 0, key, &payload);
                let start = conn.send_header(kind, len, true, &mut out).unwrap();
                assert_eq!(start.mask, key);
                assert_eq!(out[..start.header_len], expected[..expected.len() - len]);
                // A new message of the other kind may start now.
                let key = next_key();
                let other_opcode = if opcode == 2 { 1 } else { 2 };
                let expected = frame(true, 0, other_opcode, key, &payload);
                let start = conn.send_header(other, len, true, &mut out).unwrap();
                assert_eq!(out[..start.header_len], expected[..expected.len() - len]);
                assert_eq!(conn.state(), ConnectionState::Open);
            }
        }
    }
}
