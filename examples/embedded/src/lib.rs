//! A WebSocket echo endpoint for firmware: no heap, no `std`, two fixed
//! buffers, and the caller's own transport.
//!
//! [`Echo`] owns a receive buffer of `RX` bytes and a transmit buffer of
//! `TX` bytes. The firmware reads from its socket into
//! [`Echo::read_space`], reports the count to [`Echo::on_read`], and writes
//! out whatever the callback is given. Messages of any size stream through:
//! each received chunk is echoed as a frame of the same fragmented message,
//! so `RX` only bounds the chunk size, not the message size. Replies are
//! framed while the event they answer is alive, since an event borrows only
//! the receive buffer: nothing is copied aside first.
//!
//! It builds for `thumbv7em-none-eabihf` with
//! `cargo build -p wsproto-example-embedded --target thumbv7em-none-eabihf`.
#![no_std]
#![forbid(unsafe_code)]

use wsproto_core::event::{BytesMessage, ConnectionEvent, Event, TextMessage};
use wsproto_core::frame::FrameHeader;
use wsproto_core::{
    Config, Connection, ConnectionState, RandomSource, RemoteProtocolError, Role,
    MIN_RECEIVE_BUFFER,
};

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
    /// `RX` a whole control frame behind a split code point:
    /// `RX >= MIN_RECEIVE_BUFFER` (134). Both are checked at compile time.
    pub fn new(role: Role, config: Config, rng: R) -> Self {
        const {
            assert!(
                TX >= RX + FrameHeader::MAX_LEN,
                "TX must be at least RX + 14 bytes"
            );
            assert!(
                RX >= MIN_RECEIVE_BUFFER,
                "RX must hold a whole control frame"
            );
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
    /// every complete event, passing each reply to `write`. An event
    /// borrows the receive buffer only, so the echo, the pong and the close
    /// reply are framed while it is alive, straight into the transmit
    /// buffer.
    pub fn on_read(&mut self, n: usize, write: &mut impl FnMut(&[u8])) -> Progress {
        self.filled = (self.filled + n).min(RX);
        loop {
            let received = self.conn.receive(&mut self.rx[..self.filled]);
            let consumed = received.consumed;
            let event = match received.event {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(err) => {
                    send(&mut self.conn, &err.event_hint(), &mut self.tx, write);
                    return Progress::Failed(err);
                }
            };
            let echo = match event {
                // A data chunk goes back as a frame of the same message; an
                // empty chunk in the middle of one carries nothing.
                ConnectionEvent::TextMessage(ref m) if !m.data.is_empty() || m.message_finished => {
                    Some(Event::TextMessage(TextMessage {
                        frame_finished: true,
                        ..*m
                    }))
                }
                ConnectionEvent::BytesMessage(ref m)
                    if !m.data.is_empty() || m.message_finished =>
                {
                    Some(Event::BytesMessage(BytesMessage {
                        frame_finished: true,
                        ..*m
                    }))
                }
                // The pong for a ping, the close reply to a close: when due.
                ref other => self.conn.reply_to(other),
            };
            if let Some(reply) = echo {
                send(&mut self.conn, &reply, &mut self.tx, write);
            }
            self.rx.copy_within(consumed..self.filled, 0);
            self.filled -= consumed;
        }
        match self.conn.state() {
            ConnectionState::Closed => Progress::Closed,
            _ => Progress::Open,
        }
    }
}

/// Frame `event` into `tx` and write it out. `tx` holds a frame of a whole
/// receive buffer (checked in [`Echo::new`]); a local error means the state
/// forbids the reply (for instance a pong after our close), and nothing is
/// sent.
fn send<R: RandomSource>(
    conn: &mut Connection<R>,
    event: &Event<'_>,
    tx: &mut [u8],
    write: &mut impl FnMut(&[u8]),
) {
    if let Ok(n) = conn.send(event, tx) {
        write(&tx[..n]);
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
            wsproto_core::event::CloseConnection::new(wsproto_core::CloseCode::NORMAL_CLOSURE)
                .into(),
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
                Some(ConnectionEvent::TextMessage(m)) => text.push_str(m.data),
                Some(ConnectionEvent::BytesMessage(m)) => bytes += m.data.len(),
                Some(ConnectionEvent::Pong(p)) => saw_pong = p.payload == b"p",
                Some(ConnectionEvent::CloseConnection(c)) => saw_close = c.code.as_u16() == 1000,
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
