//! A test harness: drives a `Connection` over a caller buffer exactly as the
//! documented call order says, and records owned events.
#![allow(dead_code, unreachable_pub)]

use wsproto_core::event::ConnectionEvent;
use wsproto_core::frame::mask::apply_mask;
use wsproto_core::frame::{FrameHeader, Opcode};
use wsproto_core::{CloseCode, Connection, Needed, RandomSource, RemoteProtocolError};

/// An owned copy of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Text(String, bool, bool),
    Bytes(Vec<u8>, bool, bool),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
    Error(u16),
}

pub fn own(event: &ConnectionEvent<'_>) -> Ev {
    match event {
        ConnectionEvent::TextMessage(m) => {
            Ev::Text(m.data.to_owned(), m.frame_finished, m.message_finished)
        }
        ConnectionEvent::BytesMessage(m) => {
            Ev::Bytes(m.data.to_vec(), m.frame_finished, m.message_finished)
        }
        ConnectionEvent::Ping(p) => Ev::Ping(p.payload.to_vec()),
        ConnectionEvent::Pong(p) => Ev::Pong(p.payload.to_vec()),
        ConnectionEvent::CloseConnection(c) => Ev::Close(c.code.as_u16(), c.reason.to_owned()),
        other => panic!("unexpected event {other:?}"),
    }
}

/// The bytes an event hands out.
pub fn payload<'a>(event: &ConnectionEvent<'a>) -> &'a [u8] {
    match event {
        ConnectionEvent::TextMessage(m) => m.data.as_bytes(),
        ConnectionEvent::BytesMessage(m) => m.data,
        ConnectionEvent::Ping(p) => p.payload,
        ConnectionEvent::Pong(p) => p.payload,
        ConnectionEvent::CloseConnection(c) => c.reason.as_bytes(),
        _ => &[],
    }
}

fn error(err: &RemoteProtocolError) -> Ev {
    Ev::Error(err.close_code().unwrap_or(CloseCode(0)).as_u16())
}

/// Feed `input` in the pieces given by `cuts` (increasing positions) through
/// a buffer of `capacity` bytes, and return every event.
pub fn feed<R: RandomSource>(
    conn: &mut Connection<R>,
    input: &[u8],
    cuts: &[usize],
    capacity: usize,
) -> Vec<Ev> {
    feed_out(conn, input, cuts, capacity, 16 << 10)
}

/// [`feed`], lending `out_len` bytes of output space for inflated data.
pub fn feed_out<R: RandomSource>(
    conn: &mut Connection<R>,
    input: &[u8],
    cuts: &[usize],
    capacity: usize,
    out_len: usize,
) -> Vec<Ev> {
    let mut events = Vec::new();
    let mut buf = vec![0u8; capacity];
    let mut out = vec![0u8; out_len];
    let mut filled = 0;
    let mut fed = 0;
    let mut boundaries: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    boundaries.push(input.len());
    let mut guard = 0;
    for end in boundaries {
        while fed < end {
            guard += 1;
            assert!(guard < 10_000_000, "no progress");
            let n = (end - fed).min(capacity - filled);
            buf[filled..filled + n].copy_from_slice(&input[fed..fed + n]);
            filled += n;
            fed += n;
            loop {
                let (buf_start, out_start) = (buf.as_ptr(), out.as_ptr());
                let received = conn.receive_into(&mut buf[..filled], &mut out);
                let consumed = received.consumed;
                let outcome = match received.event {
                    Ok(Some(event)) => {
                        // The data lies where `Received` says: the end of
                        // the consumed bytes, or the front of `out`.
                        let data = payload(&event);
                        let expected = if received.decompressed {
                            out_start
                        } else {
                            buf_start.wrapping_add(consumed - data.len())
                        };
                        assert!(
                            data.is_empty() || data.as_ptr() == expected,
                            "{event:?} is not where the caller was told"
                        );
                        Some(own(&event))
                    }
                    Ok(None) => {
                        match received.needed {
                            Needed::Input(n) => assert!(
                                n <= capacity,
                                "a buffer of {capacity} bytes cannot hold the {n} needed"
                            ),
                            other => panic!("unexpected {other:?}"),
                        }
                        None
                    }
                    Err(err) => {
                        events.push(error(&err));
                        return events;
                    }
                };
                buf.copy_within(consumed..filled, 0);
                filled -= consumed;
                match outcome {
                    Some(ev) => events.push(ev),
                    None => break,
                }
            }
            assert!(
                filled < capacity || fed == input.len(),
                "buffer full without progress"
            );
        }
    }
    events
}

/// Merge data chunks so event lists from different splits compare equal.
pub fn merge(events: &[Ev]) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    for ev in events {
        match (out.last_mut(), ev) {
            (Some(Ev::Text(acc, _, false)), Ev::Text(more, _, m)) => {
                acc.push_str(more);
                let acc = std::mem::take(acc);
                *out.last_mut().unwrap() = Ev::Text(acc, *m, *m);
            }
            (Some(Ev::Bytes(acc, _, false)), Ev::Bytes(more, _, m)) => {
                acc.extend_from_slice(more);
                let acc = std::mem::take(acc);
                *out.last_mut().unwrap() = Ev::Bytes(acc, *m, *m);
            }
            _ => out.push(match ev {
                Ev::Text(t, _, m) => Ev::Text(t.clone(), *m, *m),
                Ev::Bytes(b, _, m) => Ev::Bytes(b.clone(), *m, *m),
                other => other.clone(),
            }),
        }
    }
    out
}

/// Build one frame, masked with `mask` if given.
pub fn frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut header = FrameHeader::new(fin, Opcode::from_bits(opcode), payload.len() as u64);
    header.rsv = wsproto_core::frame::RsvBits::from_bits(rsv);
    header.mask = mask;
    let mut out = vec![0u8; header.encoded_len()];
    header.encode(&mut out).unwrap();
    let mut body = payload.to_vec();
    if let Some(key) = mask {
        apply_mask(&mut body, key, 0);
    }
    out.extend_from_slice(&body);
    out
}

/// A deterministic random source for tests.
pub fn counter_rng() -> impl FnMut(&mut [u8]) {
    let mut n = 0u8;
    move |dest: &mut [u8]| {
        for b in dest {
            n = n.wrapping_mul(31).wrapping_add(17);
            *b = n;
        }
    }
}
