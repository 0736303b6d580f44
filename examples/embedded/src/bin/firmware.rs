//! A firmware image for a Cortex-M4F (`thumbv7em-none-eabihf`, no heap) that
//! runs both ends of a WebSocket connection against each other: the client
//! and server opening handshakes, text, binary, ping/pong and the closing
//! handshake.
//!
//! Every input (host, target, messages, random bytes, and every byte on the
//! wire between the two ends) passes through [`black_box`], as if read from a
//! peripheral, so the compiler cannot precompute any of the protocol work.
//! `scripts/firmware-size.sh` builds it and reports the size of its code.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::hint::black_box;

use cortex_m_rt::entry;
use wsproto_core::event::TextMessage;
use wsproto_core::event::{AcceptConnection, BytesMessage, CloseConnection, Ping, Request};
use wsproto_core::handshake::{Client, Handshake, HandshakeConfig, Server};
use wsproto_core::{
    CloseCode, Connection, ConnectionEvent, ConnectionState, Event, NoRandom, RandomSource,
};

static HOST: &[u8] = b"device.local";
static TARGET: &[u8] = b"/telemetry";
static TEXT: &[u8] = b"temperature=21.5C \xe2\x9c\x93";
static BINARY: &[u8] = &[0x01, 0x02, 0x03, 0x04, 0xfe, 0xff];
static PING: &[u8] = b"keepalive";

/// The size of the protocol state on this target, kept in the image for
/// `scripts/firmware-size.sh`: client and server `Handshake`, then client
/// and server `Connection`.
#[used]
static STATE_SIZES: [u32; 4] = [
    core::mem::size_of::<Handshake<Client<Trng>>>() as u32,
    core::mem::size_of::<Handshake<Server>>() as u32,
    core::mem::size_of::<Connection<Trng>>() as u32,
    core::mem::size_of::<Connection<NoRandom>>() as u32,
];

/// Bytes of each buffer: one handshake head or a few frames.
const BUF: usize = 512;

/// Bytes as if read from a peripheral: opaque to the optimizer.
fn input(bytes: &'static [u8]) -> &'static [u8] {
    black_box(bytes)
}

/// Text as if read from a peripheral.
fn input_str(bytes: &'static [u8]) -> &'static str {
    core::str::from_utf8(input(bytes)).unwrap_or("")
}

/// A hardware random number generator, as the optimizer sees one.
struct Trng;

impl RandomSource for Trng {
    fn fill(&mut self, dest: &mut [u8]) {
        for byte in dest {
            *byte = black_box(0x5a);
        }
    }
}

/// Stops the program, recording why for a debugger.
fn halt(code: u32) -> ! {
    loop {
        black_box(code);
    }
}

/// Carries `len` bytes of `from` over the "network" into `to`.
fn transmit(from: &[u8], len: usize, to: &mut [u8]) -> usize {
    let len = len.min(from.len()).min(to.len());
    to[..len].copy_from_slice(&from[..len]);
    black_box(&mut to[..len]);
    black_box(len)
}

/// What one end made of the frames it was given.
#[derive(Default)]
struct Tally {
    text: usize,
    binary: usize,
    pongs: usize,
}

/// Feeds `len` received bytes of `inbox` to `conn`, answering pings and
/// close frames into `out`; returns how many reply bytes were written. The
/// event borrows `inbox` only, so the reply goes out while it is alive.
fn pump(conn: &mut Conn, inbox: &mut [u8], len: usize, out: &mut [u8], tally: &mut Tally) -> usize {
    let mut start = 0;
    let mut written = 0;
    while start < len {
        let received = conn.receive(&mut inbox[start..len]);
        let event = match received.event {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(err) => halt(u32::from(err.close_code().map_or(0, |c| c.as_u16()))),
        };
        match &event {
            ConnectionEvent::TextMessage(m) => tally.text += m.data.len(),
            ConnectionEvent::BytesMessage(m) => tally.binary += m.data.len(),
            ConnectionEvent::Pong(_) => tally.pongs += 1,
            _ => {}
        }
        if let Some(reply) = conn.reply_to(&event) {
            written += send(conn, &reply, &mut out[written..]);
        }
        start += received.consumed;
    }
    written
}

/// Both ends use one connection type, so their code is compiled once.
type Conn = Connection<Trng>;

fn send(conn: &mut Conn, event: &Event<'_>, out: &mut [u8]) -> usize {
    match conn.send(event, out) {
        Ok(n) => n,
        Err(_) => halt(2),
    }
}

#[entry]
fn main() -> ! {
    let mut out = [0u8; BUF];
    let mut inbox = [0u8; BUF];

    // Opening handshake: the client's request, the server's 101.
    let mut client = Handshake::client(HandshakeConfig::default(), Trng);
    let mut server = Handshake::server(HandshakeConfig::default());
    let request = Request {
        host: input_str(HOST),
        target: input_str(TARGET),
        ..Request::default()
    };
    let n = client
        .send(&request.into(), &mut out)
        .unwrap_or_else(|_| halt(3));
    let len = transmit(&out, n, &mut inbox);
    let received = server.receive(&mut inbox[..len]);
    match received.event {
        Ok(Some(Event::Request(request))) => {
            black_box(request.target.len());
        }
        _ => halt(4),
    }
    let n = server
        .send(&AcceptConnection::default().into(), &mut out)
        .unwrap_or_else(|_| halt(5));
    let len = transmit(&out, n, &mut inbox);
    let received = client.receive(&mut inbox[..len]);
    if !matches!(received.event, Ok(Some(Event::AcceptConnection(_)))) {
        halt(6);
    }
    let mut client = match client.into_connection() {
        Ok(upgraded) => upgraded.connection,
        Err(_) => halt(7),
    };
    let mut server = match server.into_connection() {
        Ok(upgraded) => upgraded.connection.with_random_source(Trng),
        Err(_) => halt(8),
    };

    // Messages, both ways, and a ping answered by a pong.
    let mut client_tally = Tally::default();
    let mut server_tally = Tally::default();
    let mut n = 0;
    let text: Event<'_> = TextMessage::new(input_str(TEXT)).into();
    let binary: Event<'_> = BytesMessage::new(input(BINARY)).into();
    let ping: Event<'_> = Ping {
        payload: input(PING),
    }
    .into();
    for event in [&text, &binary, &ping] {
        n += send(&mut client, event, &mut out[n..]);
    }
    let len = transmit(&out, n, &mut inbox);
    let mut reply = [0u8; BUF];
    let mut m = pump(&mut server, &mut inbox, len, &mut reply, &mut server_tally);
    for event in [&text, &binary] {
        m += send(&mut server, event, &mut reply[m..]);
    }
    let len = transmit(&reply, m, &mut inbox);
    let _ = pump(&mut client, &mut inbox, len, &mut out, &mut client_tally);

    // The closing handshake, started by the client.
    let n = send(
        &mut client,
        &CloseConnection::new(CloseCode::NORMAL_CLOSURE).into(),
        &mut out,
    );
    let len = transmit(&out, n, &mut inbox);
    let m = pump(&mut server, &mut inbox, len, &mut reply, &mut server_tally);
    let len = transmit(&reply, m, &mut inbox);
    let _ = pump(&mut client, &mut inbox, len, &mut out, &mut client_tally);

    let closed =
        client.state() == ConnectionState::Closed && server.state() == ConnectionState::Closed;
    black_box((client_tally.text, client_tally.binary, client_tally.pongs));
    black_box((server_tally.text, server_tally.binary));
    halt(if closed { 0 } else { 1 })
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    halt(0xdead)
}
