//! permessage-deflate through the connection: RFC 7692 §7.2.3 frames,
//! round trips in both roles, limits and memory.
#![cfg(feature = "deflate")]

mod common;

use common::{counter_rng, feed, feed_out, frame, merge, Ev};
use wsproto_core::event::{BytesMessage, ConnectionEvent, Event, TextMessage};
use wsproto_core::extension::deflate::DeflateParams;
use wsproto_core::{Config, Connection};

fn client(config: Config, params: DeflateParams) -> Connection<impl FnMut(&mut [u8])> {
    Connection::client(config, counter_rng()).with_deflate(params)
}

fn server(config: Config, params: DeflateParams) -> Connection {
    Connection::server(config).with_deflate(params)
}

/// RFC 7692 §7.2.3.1 and §7.2.3.2: "Hello" compressed, twice with a shared
/// context, and §7.2.3.1's fragmented form; every split of the input.
#[test]
fn rfc7692_examples_through_a_client() {
    let mut wire = vec![0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    wire.extend([0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
    wire.extend([
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ]);
    // §7.2.3.3: a stored block.
    wire.extend([
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ]);
    let expected = vec![Ev::Text("Hello".into(), true, true); 4];
    for cut in 0..=wire.len() {
        for chunk in [16usize, 4, 1 << 14] {
            let config = Config::default();
            let mut conn = client(config, DeflateParams::default());
            let events = feed_out(&mut conn, &wire, &[cut], 64, chunk);
            assert_eq!(merge(&events), expected, "cut {cut} chunk {chunk}");
        }
    }
}

#[test]
fn rfc7692_hello_is_sent_byte_for_byte() {
    let mut server = server(Config::default(), DeflateParams::default());
    let mut out = [0u8; 128];
    let n = server
        .send(&TextMessage::new("Hello").into(), &mut out)
        .unwrap();
    assert_eq!(
        &out[..n],
        &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    );
    // With context takeover the second "Hello" refers to the first.
    let n = server
        .send(&TextMessage::new("Hello").into(), &mut out)
        .unwrap();
    assert_eq!(&out[..n], &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
}

fn corpus() -> Vec<Event<'static>> {
    let text: &'static str = Box::leak(
        "{\"name\": \"wsproto\", \"ünïcode\": \"€😀\", \"values\": [1, 2, 3]}\n"
            .repeat(3000)
            .into_boxed_str(),
    );
    let bytes: &'static [u8] = Box::leak(
        (0..200_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let cut = |mut i: usize| {
        while !text.is_char_boundary(i) {
            i += 1;
        }
        i
    };
    let (a, b, c) = (cut(1000), cut(1001), cut(5000));
    vec![
        TextMessage::new("").into(),
        TextMessage::new("Hello").into(),
        TextMessage::new(text).into(),
        BytesMessage::new(bytes).into(),
        BytesMessage::new(&bytes[..1]).into(),
        TextMessage {
            data: &text[..a],
            frame_finished: true,
            message_finished: false,
        }
        .into(),
        TextMessage {
            data: &text[a..b],
            frame_finished: true,
            message_finished: false,
        }
        .into(),
        TextMessage::new(&text[b..c]).into(),
    ]
}

fn expected(events: &[Event<'_>]) -> Vec<Ev> {
    let mut out = Vec::new();
    for event in events {
        out.push(match event {
            Event::TextMessage(m) => Ev::Text(m.data.into(), true, m.message_finished),
            Event::BytesMessage(m) => Ev::Bytes(m.data.to_vec(), true, m.message_finished),
            _ => unreachable!(),
        });
    }
    merge(&out)
}

#[test]
fn round_trips_in_both_roles_and_context_modes() {
    let events = corpus();
    let want = expected(&events);
    for (client_nct, server_nct, bits, level) in [
        (false, false, 15, 6),
        (true, true, 15, 1),
        (true, false, 9, 1),
        (false, true, 8, 9),
    ] {
        let params = DeflateParams {
            client_no_context_takeover: client_nct,
            server_no_context_takeover: server_nct,
            client_max_window_bits: bits,
            server_max_window_bits: bits,
            compress: true,
            compression_level: level,
        };
        let config = Config::default();
        let mut c = client(config, params);
        let mut s = server(config, params);
        let mut to_server = Vec::new();
        let mut to_client = Vec::new();
        for event in &events {
            c.send_into(event, &mut to_server).unwrap();
            s.send_into(event, &mut to_client).unwrap();
        }
        // Compression happened: the repetitive text shrank.
        assert!(to_server.len() < 200_000 + 190_000, "{}", to_server.len());
        assert_eq!(
            merge(&feed_out(&mut s, &to_server, &[], 4096, 1000)),
            want,
            "{params:?}"
        );
        assert_eq!(
            merge(&feed_out(&mut c, &to_client, &[7, 100, 5000], 333, 1000)),
            want,
            "{params:?}"
        );
    }
}

#[test]
fn decompress_only_sends_plain_frames() {
    let params = DeflateParams {
        compress: false,
        ..DeflateParams::default()
    };
    let mut s = server(Config::default(), params);
    let mut out = [0u8; 64];
    let n = s.send(&TextMessage::new("Hello").into(), &mut out).unwrap();
    assert_eq!(&out[..n], b"\x81\x05Hello");
    // It still inflates.
    let mut c = client(Config::default(), DeflateParams::default());
    let events = feed(
        &mut c,
        &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        &[],
        64,
    );
    assert_eq!(events, vec![Ev::Text("Hello".into(), true, true)]);
}

#[test]
fn rsv1_rules() {
    let key = Some([1, 2, 3, 4]);
    let cases = [
        (
            "RSV1 on a continuation frame",
            [
                frame(false, 4, 1, key, b"\xf2"),
                frame(true, 4, 0, key, b"\x00"),
            ]
            .concat(),
        ),
        ("RSV1 on a ping", frame(true, 4, 9, key, b"")),
        ("RSV2 with deflate", frame(true, 2, 1, key, b"")),
    ];
    for (name, wire) in cases {
        let mut s = server(Config::default(), DeflateParams::default());
        let events = feed(&mut s, &wire, &[], 64);
        assert_eq!(events.last(), Some(&Ev::Error(1002)), "{name}: {events:?}");
    }
    // Corrupt compressed data.
    let mut s = server(Config::default(), DeflateParams::default());
    let events = feed(
        &mut s,
        &frame(true, 4, 2, key, &[0xff, 0xff, 0xff]),
        &[],
        64,
    );
    assert_eq!(events.last(), Some(&Ev::Error(1007)));
    // Compressed text that is not UTF-8.
    let mut c = Connection::server(Config::default()).with_deflate(DeflateParams::default());
    let mut compressed = Vec::new();
    c.send_into(&BytesMessage::new(b"ok\xff").into(), &mut compressed)
        .unwrap();
    compressed[0] = 0xc1; // as text
    let mut s = client(Config::default(), DeflateParams::default());
    assert_eq!(
        feed(&mut s, &compressed, &[], 64).last(),
        Some(&Ev::Error(1007))
    );
}

#[test]
fn a_deflate_bomb_stops_at_the_limit() {
    // 64 MiB of zeros compresses to about 64 KiB; the limit is 1 MiB.
    let zeros = vec![0u8; 64 << 20];
    let mut sender = Connection::server(Config::default()).with_deflate(DeflateParams::default());
    let mut wire = Vec::new();
    sender
        .send_into(&BytesMessage::new(&zeros).into(), &mut wire)
        .unwrap();
    assert!(wire.len() < 200 << 10, "bomb is {} bytes", wire.len());
    let config = Config::default().max_message_size(1 << 20);
    let mut c = client(config, DeflateParams::default());
    let mut buf = wire.clone();
    let mut pos = 0;
    let mut delivered = 0usize;
    let mut max_heap = 0;
    let mut out = vec![0u8; 16 << 10];
    loop {
        let r = c.receive_into(&mut buf[pos..], &mut out);
        pos += r.consumed;
        match r.event {
            Ok(Some(ConnectionEvent::BytesMessage(m))) => delivered += m.data.len(),
            Err(err) => {
                assert_eq!(
                    err.close_code(),
                    Some(wsproto_core::CloseCode::MESSAGE_TOO_BIG)
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
        max_heap = max_heap.max(c.deflate_heap_size());
    }
    assert!(delivered <= 1 << 20, "{delivered}");
    // Decompressor state, never the message.
    assert!(max_heap < 128 << 10, "heap {max_heap}");
}

#[test]
fn idle_connections_hold_no_deflate_memory_without_context_takeover() {
    let params = DeflateParams {
        client_no_context_takeover: true,
        server_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let mut c = client(Config::default(), params);
    let mut s = server(Config::default(), params);
    assert_eq!(c.deflate_heap_size(), 0);
    let mut wire = Vec::new();
    c.send_into(&TextMessage::new(&"idle ".repeat(1000)).into(), &mut wire)
        .unwrap();
    assert_eq!(c.deflate_heap_size(), 0, "client after sending");
    let events = feed(&mut s, &wire, &[], 1024);
    assert_eq!(
        merge(&events),
        vec![Ev::Text("idle ".repeat(1000), true, true)]
    );
    assert_eq!(s.deflate_heap_size(), 0, "server after receiving");

    // With context takeover the state stays.
    let mut s = server(Config::default(), DeflateParams::default());
    let mut c = client(Config::default(), DeflateParams::default());
    let mut wire = Vec::new();
    c.send_into(&TextMessage::new("kept").into(), &mut wire)
        .unwrap();
    let _ = feed(&mut s, &wire, &[], 1024);
    assert!(s.deflate_heap_size() > 0);
    assert!(c.deflate_heap_size() > 0);
}

/// Found by the receive fuzz target: with a 16-byte inflate chunk, input
/// that produced no output yet made the connection ask for more bytes while
/// the rest of the frame was already in the buffer, so the violation later
/// in it went unseen when the input arrived at once.
#[test]
fn input_without_output_yet_does_not_stall() {
    let wire = [
        0xc1, 0x15, 0x3d, 0xf2, 0x00, 0x02, 0x11, 0x09, 0xf2, 0x01, 0xd5, 0x00, 0xc4, 0x23, 0x00,
        0xf2, 0x24, 0xff, 0xff, 0xff, 0xff,
    ];
    let config = Config::default();
    let whole = feed_out(
        &mut client(config, DeflateParams::default()),
        &wire,
        &[],
        1024,
        16,
    );
    assert_eq!(whole.last(), Some(&Ev::Error(1007)), "{whole:?}");
    for cut in 0..=wire.len() {
        let split = feed_out(
            &mut client(config, DeflateParams::default()),
            &wire,
            &[cut],
            1024,
            16,
        );
        assert_eq!(split.last(), whole.last(), "cut {cut}");
    }
}

/// Found by the receive fuzz target: a compressed message that passes the
/// size limit and later holds invalid DEFLATE data must report the limit
/// first however the input is split, since that comes first in the stream.
#[test]
fn violations_are_reported_in_stream_order() {
    let wire = [
        193, 196, 163, 0, 2, 16, 0, 0, 0, 0, 0, 59, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 53, 64, 193, 31, 242, 151, 255, 255,
    ];
    let config = Config::default().max_message_size(500);
    let whole = feed(
        &mut server(config, DeflateParams::default()),
        &wire,
        &[],
        1024,
    );
    assert!(
        matches!(whole.last(), Some(Ev::Error(1007 | 1009))),
        "{whole:?}"
    );
    for cut in 0..=wire.len() {
        let split = feed(
            &mut server(config, DeflateParams::default()),
            &wire,
            &[cut],
            1024,
        );
        assert_eq!(split.last(), whole.last(), "cut {cut}");
    }
    let bytewise: Vec<usize> = (1..wire.len()).collect();
    let split = feed(
        &mut server(config, DeflateParams::default()),
        &wire,
        &bytewise,
        1024,
    );
    assert_eq!(split.last(), whole.last());
}

/// Found by the receive fuzz target: invalid DEFLATE data in a non-final
/// frame, after some output, is reported before a violation in the next
/// frame's header.
#[test]
fn corrupt_data_is_reported_before_the_next_frame() {
    let wire = [
        65, 13, 242, 17, 20, 5, 117, 117, 46, 0, 0, 4, 0, 1, 3, 0, 129, 5, 72, 0, 27, 0, 0, 1, 199,
        0, 129, 5, 72, 0, 27, 0, 0,
    ];
    let params = DeflateParams {
        client_no_context_takeover: true,
        server_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let config = Config::default();
    let whole = feed_out(&mut client(config, params), &wire, &[], 1024, 16);
    assert_eq!(whole.last(), Some(&Ev::Error(1007)), "{whole:?}");
    for cut in 0..=wire.len() {
        let split = feed_out(&mut client(config, params), &wire, &[cut], 1024, 16);
        assert_eq!(split.last(), whole.last(), "cut {cut}: {split:?}");
    }
}

/// Found by the receive fuzz target: invalid data found after output that is
/// still held back (nothing to hand out yet) is reported at once, not after
/// more input.
#[test]
fn a_pending_error_does_not_wait_for_more_input() {
    let wire = [193, 43, 58, 11, 0, 17, 0, 37, 0];
    let config = Config::default();
    let whole = feed_out(
        &mut client(config, DeflateParams::default()),
        &wire,
        &[],
        1024,
        16,
    );
    assert_eq!(whole.last(), Some(&Ev::Error(1007)), "{whole:?}");
    for cut in 0..=wire.len() {
        let split = feed_out(
            &mut client(config, DeflateParams::default()),
            &wire,
            &[cut],
            1024,
            16,
        );
        assert_eq!(split.last(), whole.last(), "cut {cut}: {split:?}");
    }
}

/// Found by the receive fuzz target: a back-reference to before the start
/// of the DEFLATE stream is invalid data (1007), however the input is split,
/// never a read of zeroed or stale window bytes.
#[test]
fn a_distance_before_the_stream_start_fails() {
    let wire = [
        193, 71, 242, 72, 197, 164, 201, 72, 197, 164, 201, 7, 249, 99, 99, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 41, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 193, 38, 242, 242, 0, 0, 0, 0, 0, 17, 250, 13, 248, 0,
    ];
    let params = DeflateParams {
        client_no_context_takeover: true,
        server_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let config = Config::default().max_message_size(500);
    let whole = feed_out(&mut client(config, params), &wire, &[], 1024, 16);
    assert_eq!(whole.last(), Some(&Ev::Error(1007)), "{whole:?}");
    for cut in 0..=wire.len() {
        let split = feed_out(&mut client(config, params), &wire, &[cut], 1024, 16);
        assert_eq!(split.last(), whole.last(), "cut {cut}: {split:?}");
    }
    // RFC 7692 §7.2.3.2's second message alone refers to a first one that
    // this stream never had.
    let lone = [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00];
    let events = feed_out(
        &mut client(Config::default(), DeflateParams::default()),
        &lone,
        &[],
        64,
        16,
    );
    assert_eq!(events.last(), Some(&Ev::Error(1007)), "{events:?}");
}

/// A compressed message that inflates to exactly the output space lent is
/// one event that finishes the message, not a full chunk and then an empty
/// one (Python's wsproto yields one message too).
#[test]
fn a_message_that_fills_the_output_exactly_is_one_event() {
    let text = "é".repeat(500);
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    for (event, len) in [
        (Event::from(TextMessage::new(&text)), text.len()),
        (BytesMessage::new(&bytes).into(), bytes.len()),
    ] {
        for fragmented in [false, true] {
            let mut sender = server(Config::default(), DeflateParams::default());
            let mut wire = Vec::new();
            if fragmented {
                let (a, b) = match event {
                    Event::TextMessage(m) => (
                        Event::from(TextMessage {
                            data: &m.data[..100],
                            frame_finished: true,
                            message_finished: false,
                        }),
                        Event::from(TextMessage {
                            data: &m.data[100..],
                            frame_finished: true,
                            message_finished: true,
                        }),
                    ),
                    Event::BytesMessage(m) => (
                        BytesMessage {
                            data: &m.data[..100],
                            frame_finished: true,
                            message_finished: false,
                        }
                        .into(),
                        BytesMessage {
                            data: &m.data[100..],
                            frame_finished: true,
                            message_finished: true,
                        }
                        .into(),
                    ),
                    _ => unreachable!(),
                };
                sender.send_into(&a, &mut wire).unwrap();
                sender.send_into(&b, &mut wire).unwrap();
            } else {
                sender.send_into(&event, &mut wire).unwrap();
            }
            let events = feed_out(
                &mut client(Config::default(), DeflateParams::default()),
                &wire,
                &[],
                4096,
                len,
            );
            let finished: Vec<bool> = events
                .iter()
                .filter_map(|e| match e {
                    Ev::Text(t, _, m) if !t.is_empty() || *m => Some(*m),
                    Ev::Bytes(b, _, m) if !b.is_empty() || *m => Some(*m),
                    _ => None,
                })
                .collect();
            assert_eq!(merge(&events).len(), 1, "{fragmented}");
            assert!(
                events.iter().all(|e| match e {
                    Ev::Text(t, _, _) => !t.is_empty(),
                    Ev::Bytes(b, _, _) => !b.is_empty(),
                    _ => true,
                }) || fragmented,
                "an empty chunk: {events:?}"
            );
            assert_eq!(finished.last(), Some(&true));
            if !fragmented {
                assert_eq!(events.len(), 1, "{events:?}");
            }
        }
    }
}
