//! A WebSocket echo endpoint for firmware: no heap, no `std`, two fixed
//! buffers, and the caller's own transport.
//!
//! [`Echo`] owns a receive buffer of `RX` bytes and a transmit buffer of
//! `TX` bytes. The firmware reads from its socket into
//! [`Echo::read_space`], reports the count to [`Echo::on_read`], and writes
//! out whatever the callback is given. Messages of any size stream through:
//! each received chunk is echoed as a frame of the same fragmented message,
//! so `RX` only bounds the chunk size, not the message size.
//!
//! It builds for `thumbv7em-none-eabihf` with
//! `cargo build -p wsproto-example-embedded --target thumbv7em-none-eabihf`.
#![no_std]
#![forbid(unsafe_code)]

use wsproto_core::connection::MessageKind;
use wsproto_core::event::{CloseConnection, Event, Pong};
use wsproto_core::frame::mask::apply_mask;
use wsproto_core::frame::FrameHeader;
use wsproto_core::{
    Config, Connection, ConnectionState, RandomSource, RemoteProtocolError, Role, SendError,
};

/// Room for a whole control frame from a client: 2 + 4 + 125 bytes.
const CONTROL_FRAME: usize = 131;

/// An echo endpoint over fixed buffers.
pub struct Echo<R, const RX: usize, const TX: usize> {
    conn: Connection<R>,
    rx: [u8; RX],
    filled: usize,
    tx: [u8; TX],
}

/// What [`Echo::on_read`] made of the bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Keep reading.
    Open,
    /// The closing handshake finished: close the transport.
    Closed,
    /// The peer broke the protocol; a close frame was written if possible.
    Failed(RemoteProtocolError),
}

impl<R: RandomSource, const RX: usize, const TX: usize> Echo<R, RX, TX> {
    /// An endpoint for `role` (a client draws masking keys from `rng`).
    ///
    /// `TX` must hold a frame of a whole receive buffer: `TX >= RX + 14`, and
    /// `RX` a whole control frame: `RX >= 131`. Both are checked at compile
    /// time.
    pub fn new(role: Role, config: Config, rng: R) -> Self {
        const {
            assert!(
                TX >= RX + FrameHeader::MAX_LEN,
                "TX must be at least RX + 14 bytes"
            );
            assert!(RX >= CONTROL_FRAME, "RX must hold a whole control frame");
        }
        Self {
            conn: Connection::new(role, config, rng),
            rx: [0; RX],
            filled: 0,
            tx: [0; TX],
        }
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.conn.state()
    }

    /// The free part of the receive buffer, to read the transport into.
    pub fn read_space(&mut self) -> &mut [u8] {
        &mut self.rx[self.filled..]
    }

    /// `n` bytes were read into [`read_space`](Self::read_space): handle
    /// every complete event, passing each reply to `write`.
    pub fn on_read(&mut self, n: usize, write: &mut impl FnMut(&[u8])) -> Progress {
        self.filled = (self.filled + n).min(RX);
        loop {
            let received = self.conn.receive(&mut self.rx[..self.filled]);
            let consumed = received.consumed;
            // Stage the reply in `tx` while the event borrows the buffers,
            // then let the connection frame it.
            let reply = match received.event {
                Ok(None) => None,
                Ok(Some(event)) => Some(stage(&event, &mut self.tx)),
                Err(err) => {
                    self.send(&err.event_hint(), write);
                    return Progress::Failed(err);
                }
            };
            self.rx.copy_within(consumed..self.filled, 0);
            self.filled -= consumed;
            match reply {
                None => break,
                Some(Reply::Data { kind, len, fin }) => self.echo_data(kind, len, fin, write),
                Some(Reply::Pong(len)) => {
                    let mut payload = [0u8; 125];
                    payload[..len].copy_from_slice(&self.tx[..len]);
                    self.send(
                        &Pong {
                            payload: &payload[..len],
                        }
                        .into(),
                        write,
                    );
                }
                Some(Reply::Close(code)) => {
                    self.send(&CloseConnection::new(code).into(), write);
                }
                Some(Reply::Nothing) => {}
            }
        }
        match self.conn.state() {
            ConnectionState::Closed => Progress::Closed,
            _ => Progress::Open,
        }
    }

    /// Frame `len` staged payload bytes in place: the header goes right in
    /// front of the payload, which is masked in place for a client.
    fn echo_data(
        &mut self,
        kind: MessageKind,
        len: usize,
        fin: bool,
        write: &mut impl FnMut(&[u8]),
    ) {
        let mut header = [0u8; FrameHeader::MAX_LEN];
        let start = match self.conn.send_header(kind, len, fin, &mut header) {
            Ok(start) => start,
            Err(_) => return,
        };
        let payload = &mut self.tx[FrameHeader::MAX_LEN..FrameHeader::MAX_LEN + len];
        if let Some(key) = start.mask {
            apply_mask(payload, key, 0);
        }
        let begin = FrameHeader::MAX_LEN - start.header_len;
        self.tx[begin..FrameHeader::MAX_LEN].copy_from_slice(&header[..start.header_len]);
        write(&self.tx[begin..FrameHeader::MAX_LEN + len]);
    }

    fn send(&mut self, event: &Event<'_>, write: &mut impl FnMut(&[u8])) {
        match self.conn.send(event, &mut self.tx) {
            Ok(n) => write(&self.tx[..n]),
            // `tx` holds any control frame; a local error means the state
            // forbids the reply (for instance a pong after our close).
            Err(SendError::BufferTooSmall(_) | SendError::Local(_)) => {}
            Err(_) => {}
        }
    }
}

/// A reply decided while the event still borrows the buffers.
enum Reply {
    Data {
        kind: MessageKind,
        len: usize,
        fin: bool,
    },
    Pong(usize),
    Close(wsproto_core::CloseCode),
    Nothing,
}

/// Copy what the reply needs into `tx` (data after the header room). A
/// chunk is never longer than the receive buffer, which `tx` exceeds by the
/// header room (checked in [`Echo::new`]).
fn stage(event: &Event<'_>, tx: &mut [u8]) -> Reply {
    match event {
        Event::TextMessage(m) => {
            tx[FrameHeader::MAX_LEN..][..m.data.len()].copy_from_slice(m.data.as_bytes());
            Reply::Data {
                kind: MessageKind::Text,
                len: m.data.len(),
                fin: m.message_finished,
            }
        }
        Event::BytesMessage(m) => {
            tx[FrameHeader::MAX_LEN..][..m.data.len()].copy_from_slice(m.data);
            Reply::Data {
                kind: MessageKind::Binary,
                len: m.data.len(),
                fin: m.message_finished,
            }
        }
        Event::Ping(p) => {
            tx[..p.payload.len()].copy_from_slice(p.payload);
            Reply::Pong(p.payload.len())
        }
        Event::CloseConnection(c) => Reply::Close(c.response().code),
        _ => Reply::Nothing,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use wsproto_core::event::{BytesMessage, TextMessage};

    #[test]
    fn echoes_through_small_buffers() {
        let mut server: Echo<_, 256, 300> =
            Echo::new(Role::Server, Config::default(), wsproto_core::NoRandom);
        let mut client = Connection::client(Config::default(), |b: &mut [u8]| b.fill(0x42));
        let mut wire = Vec::new();
        let big = [7u8; 5000];
        let events: [Event<'_>; 4] = [
            TextMessage::new("héllo").into(),
            BytesMessage::new(&big).into(),
            wsproto_core::event::Ping { payload: b"p" }.into(),
            CloseConnection::new(wsproto_core::CloseCode::NORMAL_CLOSURE).into(),
        ];
        for event in &events {
            client.send_into(event, &mut wire).unwrap();
        }
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < wire.len() {
            let space = server.read_space();
            let n = space.len().min(wire.len() - pos).min(100);
            space[..n].copy_from_slice(&wire[pos..pos + n]);
            pos += n;
            let progress = server.on_read(n, &mut |bytes: &[u8]| out.extend_from_slice(bytes));
            assert!(!matches!(progress, Progress::Failed(_)), "{progress:?}");
        }
        assert_eq!(server.state(), ConnectionState::Closed);
        // The client sees its own messages come back.
        let mut text = std::string::String::new();
        let mut bytes = 0usize;
        let mut rest = &mut out[..];
        let mut saw_pong = false;
        let mut saw_close = false;
        loop {
            let r = client.receive(rest);
            let consumed = r.consumed;
            match r.event.unwrap() {
                Some(Event::TextMessage(m)) => text.push_str(m.data),
                Some(Event::BytesMessage(m)) => bytes += m.data.len(),
                Some(Event::Pong(p)) => saw_pong = p.payload == b"p",
                Some(Event::CloseConnection(c)) => saw_close = c.code.as_u16() == 1000,
                Some(other) => panic!("unexpected {other:?}"),
                None => break,
            }
            rest = &mut rest[consumed..];
        }
        assert_eq!(text, "héllo");
        assert_eq!(bytes, big.len());
        assert!(saw_pong && saw_close);
    }
}
