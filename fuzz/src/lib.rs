//! Oracles shared by the fuzz targets.

#![forbid(unsafe_code)]
use wsproto_core::event::{ConnectionEvent, Event};
use wsproto_core::{Config, Connection, RandomSource};

/// An owned, chunking-independent view of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    /// A text message (or its unfinished part) and whether it finished.
    Text(String, bool),
    /// A binary message (or its unfinished part) and whether it finished.
    Bytes(Vec<u8>, bool),
    /// A ping.
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// A close frame.
    Close(u16, String),
    /// A protocol error and its close code.
    Error(u16),
}

fn push(events: &mut Vec<Ev>, event: &ConnectionEvent<'_>) {
    // Text is validated by SIMD kernels chosen at run time: check what they
    // accepted against `core`'s validator.
    if let ConnectionEvent::TextMessage(m) = event {
        assert!(
            core::str::from_utf8(m.data.as_bytes()).is_ok(),
            "a text event that is not UTF-8"
        );
    }
    let merged = match (events.last_mut(), event) {
        (Some(Ev::Text(acc, false)), ConnectionEvent::TextMessage(m)) => {
            acc.push_str(m.data);
            Some(m.message_finished)
        }
        (Some(Ev::Bytes(acc, false)), ConnectionEvent::BytesMessage(m)) => {
            acc.extend_from_slice(m.data);
            Some(m.message_finished)
        }
        _ => None,
    };
    match (merged, events.last_mut()) {
        (Some(done), Some(Ev::Text(_, finished) | Ev::Bytes(_, finished))) => *finished = done,
        _ => events.push(match event {
            ConnectionEvent::TextMessage(m) => Ev::Text(m.data.to_owned(), m.message_finished),
            ConnectionEvent::BytesMessage(m) => Ev::Bytes(m.data.to_vec(), m.message_finished),
            ConnectionEvent::Ping(p) => Ev::Ping(p.payload.to_vec()),
            ConnectionEvent::Pong(p) => Ev::Pong(p.payload.to_vec()),
            ConnectionEvent::CloseConnection(c) => Ev::Close(c.code.as_u16(), c.reason.to_owned()),
            other => panic!("an event this harness does not know: {other:?}"),
        }),
    }
}

/// Feed `input` to `conn` in pieces whose lengths come from `lengths`
/// (cycled), through a buffer of `capacity` bytes, honouring the consumed
/// count exactly as documented. Returns the merged events.
///
/// Decompressed data goes into `out_len` bytes of output space. Every event
/// must lie where `Received` says: at the end of the consumed bytes, or at
/// the front of the output space.
pub fn feed<R: RandomSource>(
    conn: &mut Connection<R>,
    input: &[u8],
    lengths: &[usize],
    capacity: usize,
    out_len: usize,
) -> Vec<Ev> {
    let mut events = Vec::new();
    let mut buf = vec![0u8; capacity];
    let mut out = vec![0u8; out_len];
    let (mut filled, mut fed, mut turn) = (0usize, 0usize, 0usize);
    loop {
        let want = lengths
            .get(turn % lengths.len().max(1))
            .copied()
            .unwrap_or(usize::MAX)
            .max(1);
        turn += 1;
        let n = want.min(capacity - filled).min(input.len() - fed);
        buf[filled..filled + n].copy_from_slice(&input[fed..fed + n]);
        filled += n;
        fed += n;
        loop {
            let (buf_start, out_start) = (buf.as_ptr(), out.as_ptr());
            let received = conn.receive_into(&mut buf[..filled], &mut out);
            let consumed = received.consumed;
            assert!(consumed <= filled, "consumed more than given");
            let progressed = match received.event {
                Ok(Some(event)) => {
                    let data = payload(&event);
                    let expected = if received.decompressed {
                        out_start
                    } else {
                        buf_start.wrapping_add(consumed - data.len())
                    };
                    assert!(
                        data.is_empty() || data.as_ptr() == expected,
                        "event data misplaced"
                    );
                    push(&mut events, &event);
                    true
                }
                Ok(None) => {
                    if let wsproto_core::Needed::Input(n) = received.needed {
                        assert!(n > filled - consumed, "asked for input it already had");
                    }
                    false
                }
                Err(err) => {
                    let code = err.close_code().map_or(0, |c| c.as_u16());
                    assert!(code != 0, "connection error without a close code");
                    events.push(Ev::Error(code));
                    return events;
                }
            };
            buf.copy_within(consumed..filled, 0);
            filled -= consumed;
            if !progressed {
                break;
            }
        }
        if fed == input.len() {
            return events;
        }
        assert!(filled < capacity, "a full buffer made no progress");
    }
}

/// The bytes an event hands out.
fn payload<'a>(event: &ConnectionEvent<'a>) -> &'a [u8] {
    match event {
        ConnectionEvent::TextMessage(m) => m.data.as_bytes(),
        ConnectionEvent::BytesMessage(m) => m.data,
        ConnectionEvent::Ping(p) => p.payload,
        ConnectionEvent::Pong(p) => p.payload,
        ConnectionEvent::CloseConnection(c) => c.reason.as_bytes(),
        _ => &[],
    }
}

/// Drop the unfinished message right before an error: how much of it was
/// delivered before the violation depends on how the input was split.
pub fn normalize(mut events: Vec<Ev>) -> Vec<Ev> {
    if matches!(events.last(), Some(Ev::Error(_))) {
        let err = events.pop();
        if matches!(
            events.last(),
            Some(Ev::Text(_, false) | Ev::Bytes(_, false))
        ) {
            events.pop();
        }
        events.extend(err);
    }
    events
}

/// A connection for the role and limits chosen by `selector`.
pub fn connection(selector: u8) -> Connection<impl FnMut(&mut [u8])> {
    let config = Config::default()
        .max_frame_size(if selector & 2 != 0 { 300 } else { 1 << 20 })
        .max_message_size(if selector & 4 != 0 { 500 } else { 1 << 20 });
    let role = if selector & 1 != 0 {
        wsproto_core::Role::Server
    } else {
        wsproto_core::Role::Client
    };
    let conn = Connection::new(role, config, |dest: &mut [u8]| dest.fill(0x5A));
    if selector & 8 != 0 {
        let params = wsproto_core::extension::deflate::DeflateParams {
            client_no_context_takeover: selector & 16 != 0,
            server_no_context_takeover: selector & 16 != 0,
            ..Default::default()
        };
        conn.with_deflate(params)
    } else {
        conn
    }
}

/// The output space for decompressed data chosen by `selector`.
pub fn output_len(selector: u8) -> usize {
    if selector & 32 != 0 {
        16
    } else {
        4096
    }
}

/// A chunking-independent description of a handshake event or error.
fn describe(event: &Event<'_>, out: &mut Vec<String>) {
    match event {
        Event::Request(r) => out.push(format!(
            "request {} {} {:?} {:?} {:?}",
            r.host,
            r.target,
            r.subprotocols.iter().collect::<Vec<_>>(),
            r.extensions.iter().collect::<Vec<_>>(),
            r.extra_headers
                .iter()
                .map(|h| (h.name, h.value))
                .collect::<Vec<_>>(),
        )),
        Event::AcceptConnection(a) => out.push(format!(
            "accept {:?} {:?} {:?}",
            a.subprotocol,
            a.extensions.iter().collect::<Vec<_>>(),
            a.extra_headers
                .iter()
                .map(|h| (h.name, h.value))
                .collect::<Vec<_>>(),
        )),
        Event::RejectConnection(r) => out.push(format!("reject {} {}", r.status_code, r.has_body)),
        Event::RejectData(d) => {
            // Body chunks depend on how the input was split: merge them.
            let hex: String = d.data.iter().map(|b| format!("{b:02x}")).collect();
            match out.last_mut() {
                Some(last) if last.starts_with("body ") && !last.ends_with(" end") => {
                    last.push_str(&hex);
                }
                _ => out.push(format!("body {hex}")),
            }
            if d.body_finished {
                if let Some(last) = out.last_mut() {
                    last.push_str(" end");
                }
            }
        }
        other => out.push(format!("{other:?}")),
    }
}

/// Feed `input` to a handshake in pieces (lengths cycled) through a buffer
/// of `capacity` bytes; returns the events, the error, and the bytes used.
pub fn feed_handshake<S, E>(
    hs: &mut wsproto_core::handshake::Handshake<S, E>,
    input: &[u8],
    lengths: &[usize],
    capacity: usize,
) -> (Vec<String>, usize)
where
    S: wsproto_core::handshake::Side,
    E: wsproto_core::handshake::ExtensionSet,
{
    let mut events = Vec::new();
    let mut buf = vec![0u8; capacity];
    let (mut filled, mut fed, mut turn, mut used) = (0usize, 0usize, 0usize, 0usize);
    loop {
        let want = lengths
            .get(turn % lengths.len().max(1))
            .copied()
            .unwrap_or(usize::MAX)
            .max(1);
        turn += 1;
        let n = want.min(capacity - filled).min(input.len() - fed);
        buf[filled..filled + n].copy_from_slice(&input[fed..fed + n]);
        filled += n;
        fed += n;
        loop {
            // A client reads a refusal body with `receive_body`.
            let rejecting = hs.role() == wsproto_core::Role::Client
                && hs.state() == wsproto_core::ConnectionState::Rejecting;
            let received = if rejecting {
                hs.receive_body(&mut buf[..filled])
            } else {
                hs.receive(&mut buf[..filled])
            };
            let consumed = received.consumed;
            assert!(consumed <= filled, "consumed more than given");
            let progressed = match received.event {
                Ok(Some(event)) => {
                    describe(&event, &mut events);
                    true
                }
                Ok(None) => consumed > 0,
                Err(err) => {
                    // How far parsing got before the violation depends on
                    // the pieces; only the verdict is compared.
                    events.push(format!("error {:?}", err.hint()));
                    return (events, 0);
                }
            };
            used += consumed;
            buf.copy_within(consumed..filled, 0);
            filled -= consumed;
            if !progressed || hs.state() == wsproto_core::ConnectionState::Open {
                break;
            }
        }
        if fed == input.len() || hs.state() == wsproto_core::ConnectionState::Open {
            if let Ok(Some(event)) = hs.receive_eof() {
                describe(&event, &mut events);
            }
            return (events, used);
        }
        if filled == capacity {
            // The head did not fit: the handshake's own limit must have
            // failed it before the buffer filled.
            events.push("buffer full".into());
            return (events, used);
        }
    }
}
