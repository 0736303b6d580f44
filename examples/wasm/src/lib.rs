//! A WebSocket client as a WebAssembly module: wsproto-core without `std`
//! and without a heap, behind a C ABI of functions that take and return
//! integers.
//!
//! ```sh
//! cargo build -p wsproto-example-wasm --release --target wasm32-unknown-unknown
//! ```
//!
//! builds `target/wasm32-unknown-unknown/release/wsproto_example_wasm.wasm`.
//! The host (JavaScript, say) owns the socket and the randomness; the
//! module owns one client [`Endpoint`] with fixed buffers in its linear
//! memory, and the host reads and writes those buffers at the addresses the
//! `*_area` functions of [`abi`] return. `js/echo.test.mjs` drives it
//! from Node over a real TCP connection to `echo-server`
//! (`scripts/wasm-test.sh`).
//!
//! # Call order
//!
//! 1. Randomness: write fresh random bytes (`crypto.getRandomValues`) to
//!    [`abi::wsp_random_area`] and report them with
//!    [`abi::wsp_random_added`]. The handshake nonce takes 16 bytes and
//!    each frame's masking key 4; a call that could need more than are left
//!    fails with [`Error::Random`] before it changes anything, so refill
//!    whenever [`abi::wsp_random_available`] runs low.
//! 2. Handshake: write the host, then the request target, to
//!    [`abi::wsp_send_area`] and call [`abi::wsp_connect`] with their
//!    lengths. Send the bytes of the output area ([`abi::wsp_output_area`],
//!    [`abi::wsp_output_len`]) to the server, then
//!    [`abi::wsp_output_clear`].
//! 3. Receiving: copy at most [`abi::wsp_input_space`] bytes from the socket
//!    to [`abi::wsp_input_area`], call [`abi::wsp_feed`], then call
//!    [`abi::wsp_poll`] until it returns 0. Each positive result is an
//!    [`EventKind`], whose data is in the event area
//!    ([`abi::wsp_event_area`], [`abi::wsp_event_len`]) until the next
//!    poll. A reply that is due (the pong to a ping, the close frame that
//!    answers the server's) is queued in the output area: send it after
//!    every poll. When the socket ends, call [`abi::wsp_eof`].
//! 4. Sending: write the payload to the send area, call one of the
//!    `wsp_send_*` functions with its length, and send the output area.
//!    Messages longer than the send area go out in fragments: every chunk
//!    but the last with `finished = 0` (a text chunk must be whole UTF-8).
//!
//! Functions returning `i32` return a byte count or an [`EventKind`] when
//! non-negative, and an [`Error`] when negative.
#![no_std]
#![deny(unsafe_code)]

// Host builds (tests, clippy) link std, which brings the panic handler.
#[cfg(not(target_arch = "wasm32"))]
#[allow(unused_extern_crates)]
extern crate std;

use spin::Mutex;
use wsproto_core::event::{
    BytesMessage, CloseConnection, ConnectionEvent, Event, Ping, Request, TextMessage,
};
use wsproto_core::handshake::{Client, Handshake, HandshakeConfig};
use wsproto_core::{
    CloseCode, Connection, ConnectionState, RandomSource, SendError, MIN_RECEIVE_BUFFER,
};

pub mod abi;

/// Bytes of the receive buffer. Frames of any size pass through it in
/// chunks; it only bounds the size of one event.
pub const INPUT_CAPACITY: usize = 16 * 1024;
/// Bytes of the send area: the largest payload of one `wsp_send_*` call.
pub const SEND_CAPACITY: usize = 16 * 1024;
/// Bytes of the output area: a frame of a full send area (its header takes
/// at most 14 bytes) plus a queued reply.
pub const OUTPUT_CAPACITY: usize = SEND_CAPACITY + 14 + CONTROL_FRAME;
/// Bytes of the random area.
pub const RANDOM_CAPACITY: usize = 256;

/// The largest control frame a client sends: a 2-byte header, the key, and
/// 125 bytes of payload.
const CONTROL_FRAME: usize = 2 + 4 + 125;
/// The random bytes of a nonce (RFC 6455 §4.1).
const NONCE_LEN: usize = 16;
/// The random bytes of a masking key (RFC 6455 §5.3).
const MASK_LEN: usize = 4;

const _: () = assert!(INPUT_CAPACITY >= MIN_RECEIVE_BUFFER);

/// What [`Endpoint::poll`] handed out (`wsp_poll` returns the number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum EventKind {
    /// The server accepted the handshake; messages may flow.
    Accept = 1,
    /// The server refused the handshake; the code is the HTTP status.
    Reject = 2,
    /// A chunk of a text message (whole UTF-8); `finished` marks the last.
    Text = 3,
    /// A chunk of a binary message; `finished` marks the last.
    Binary = 4,
    /// A ping; the pong is queued in the output area.
    Ping = 5,
    /// A pong.
    Pong = 6,
    /// The server's close frame (the code is its close code, the data its
    /// reason), or 1006 when the transport ended without one.
    Close = 7,
}

/// Why a call failed (the negative return values of the ABI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Error {
    /// Not possible in this state: no handshake yet, already closed, or the
    /// protocol forbids it now.
    State = -1,
    /// Too few random bytes left for a nonce or a masking key: refill.
    Random = -2,
    /// The output area has no room: send and clear it first.
    OutputFull = -3,
    /// A length beyond its area, a close code beyond 16 bits, or text that
    /// is not UTF-8.
    Argument = -4,
    /// The server broke the protocol; the close frame the violation calls
    /// for is queued if one may be sent, and the code is its close code.
    Protocol = -5,
    /// The module is in the middle of a call, or a call trapped.
    Busy = -6,
}

/// Random bytes written by the host, taken from the end as they are used.
#[derive(Debug)]
pub struct Pool {
    bytes: [u8; RANDOM_CAPACITY],
    len: usize,
}

impl Pool {
    /// An empty pool.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            bytes: [0; RANDOM_CAPACITY],
            len: 0,
        }
    }

    /// Where the host writes fresh bytes, from the front.
    pub fn area(&mut self) -> &mut [u8; RANDOM_CAPACITY] {
        &mut self.bytes
    }

    /// `n` fresh bytes were written at the front of the area: they replace
    /// whatever was left.
    pub fn added(&mut self, n: usize) {
        self.len = n.min(RANDOM_CAPACITY);
    }

    /// The random bytes left.
    #[must_use]
    pub fn available(&self) -> usize {
        self.len
    }

    /// Fill `dest` from the pool, wiping what was taken; `false`, with
    /// nothing taken, when too few bytes are left.
    fn take(&mut self, dest: &mut [u8]) -> bool {
        let Some(start) = self.len.checked_sub(dest.len()) else {
            return false;
        };
        let taken = &mut self.bytes[start..self.len];
        dest.copy_from_slice(taken);
        taken.fill(0);
        self.len = start;
        true
    }
}

impl Default for Endpoint {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}

/// The random source of the connection: draws from a shared [`Pool`].
///
/// [`Endpoint`] checks that the pool holds enough before every call that
/// may draw from it, so a dry pool is a bug, and it traps rather than mask
/// with predictable keys.
#[derive(Clone, Copy, Debug)]
pub struct PoolSource(&'static Mutex<Pool>);

impl RandomSource for PoolSource {
    fn fill(&mut self, dest: &mut [u8]) {
        let taken = self.0.try_lock().is_some_and(|mut pool| pool.take(dest));
        assert!(taken, "the random pool ran dry");
    }
}

/// Where the client is. With an explicit tag, `Idle` is all zeros, so a
/// new [`Endpoint`] in a `static` takes no room in the module.
#[repr(u8)]
// No heap to box the handshake into, and only one `Link` lives, in a static.
#[allow(clippy::large_enum_variant)]
enum Link {
    /// No handshake started.
    Idle,
    /// The request is sent; waiting for the response.
    Handshake(Handshake<Client<PoolSource>>),
    /// The handshake succeeded (the connection may since have closed).
    Open(Connection<PoolSource>),
    /// Refused, failed during the handshake, or ended before it finished.
    Closed,
}

/// What a `send_*` call frames.
#[derive(Clone, Copy, Debug)]
enum Outgoing {
    Text { finished: bool },
    Binary { finished: bool },
    Ping,
    Close(CloseCode),
}

/// What the last event handed out carries besides its data.
#[derive(Clone, Copy, Debug, Default)]
struct Last {
    len: usize,
    finished: bool,
    code: u16,
}

/// One WebSocket client over fixed buffers: the state behind the ABI.
pub struct Endpoint {
    random: Option<&'static Mutex<Pool>>,
    link: Link,
    input: [u8; INPUT_CAPACITY],
    filled: usize,
    send: [u8; SEND_CAPACITY],
    output: [u8; OUTPUT_CAPACITY],
    output_len: usize,
    event: [u8; INPUT_CAPACITY],
    last: Last,
}

impl Endpoint {
    /// A client with no handshake started. Its value is all zeros.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            random: None,
            link: Link::Idle,
            input: [0; INPUT_CAPACITY],
            filled: 0,
            send: [0; SEND_CAPACITY],
            output: [0; OUTPUT_CAPACITY],
            output_len: 0,
            event: [0; INPUT_CAPACITY],
            last: Last {
                len: 0,
                finished: false,
                code: 0,
            },
        }
    }

    /// Start over with a new handshake, drawing randomness from `random`:
    /// the host name is the first `host_len` bytes of the send area, the
    /// request target the `target_len` bytes after it. Returns the bytes
    /// queued in the output area (which is emptied first, as is the input
    /// buffer).
    ///
    /// # Errors
    ///
    /// [`Error::Argument`] for lengths beyond the send area or names that
    /// are not UTF-8, [`Error::Random`] with fewer than 16 random bytes,
    /// [`Error::State`] if the handshake refuses the request (a bad header
    /// value, say).
    pub fn connect(
        &mut self,
        random: &'static Mutex<Pool>,
        host_len: usize,
        target_len: usize,
    ) -> Result<usize, Error> {
        let end = host_len.checked_add(target_len).ok_or(Error::Argument)?;
        let names = self.send.get(..end).ok_or(Error::Argument)?;
        let (host, target) = names.split_at(host_len);
        let host = core::str::from_utf8(host).map_err(|_| Error::Argument)?;
        let target = core::str::from_utf8(target).map_err(|_| Error::Argument)?;
        self.random = Some(random);
        self.need_random(NONCE_LEN)?;
        self.link = Link::Closed;
        self.filled = 0;
        self.output_len = 0;
        self.last = Last::default();
        let mut handshake = Handshake::client(HandshakeConfig::default(), PoolSource(random));
        let request = Request {
            host,
            target,
            ..Request::default()
        };
        let n = handshake
            .send(&request.into(), &mut self.output)
            .map_err(send_error)?;
        self.output_len = n;
        self.link = Link::Handshake(handshake);
        Ok(n)
    }

    /// The free part of the receive buffer, for bytes from the socket.
    pub fn input_space(&mut self) -> &mut [u8] {
        &mut self.input[self.filled..]
    }

    /// `n` bytes were written to [`input_space`](Self::input_space); returns
    /// how many were taken (no more than there was room for).
    pub fn feed(&mut self, n: usize) -> usize {
        let n = n.min(INPUT_CAPACITY - self.filled);
        self.filled += n;
        n
    }

    /// The next event, `Ok(None)` when more input is needed. The event's
    /// data is in [`event`](Self::event) until the next call; a reply that
    /// is due is queued in the output area.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when the server broke the protocol (and on every
    /// later call), [`Error::State`] before the handshake starts or after it
    /// failed, [`Error::Random`] or [`Error::OutputFull`] when a reply
    /// might not fit: nothing is read then.
    pub fn poll(&mut self) -> Result<Option<EventKind>, Error> {
        match self.link {
            Link::Idle | Link::Closed => Err(Error::State),
            Link::Handshake(_) => self.poll_handshake(),
            Link::Open(_) => self.poll_connection(),
        }
    }

    fn poll_handshake(&mut self) -> Result<Option<EventKind>, Error> {
        let Link::Handshake(handshake) = &mut self.link else {
            return Err(Error::State);
        };
        let received = handshake.receive(&mut self.input[..self.filled]);
        let consumed = received.consumed;
        let step = match received.event {
            Ok(None) => return Ok(None),
            Ok(Some(Event::AcceptConnection(_))) => Ok(EventKind::Accept),
            Ok(Some(Event::RejectConnection(reject))) => {
                self.last.code = reject.status_code;
                Ok(EventKind::Reject)
            }
            Ok(Some(_)) => Err(Error::State),
            Err(err) => {
                self.last.code = err.close_code().map_or(0, CloseCode::as_u16);
                Err(Error::Protocol)
            }
        };
        self.discard(consumed);
        self.last.len = 0;
        self.last.finished = true;
        let link = core::mem::replace(&mut self.link, Link::Closed);
        if let (Ok(EventKind::Accept), Link::Handshake(handshake)) = (step, link) {
            let upgraded = handshake.into_connection().map_err(|_| Error::State)?;
            self.link = Link::Open(upgraded.connection);
        } else {
            // A refusal's body is not read.
            self.filled = 0;
        }
        step.map(Some)
    }

    fn poll_connection(&mut self) -> Result<Option<EventKind>, Error> {
        if OUTPUT_CAPACITY - self.output_len < CONTROL_FRAME {
            return Err(Error::OutputFull);
        }
        self.need_random(MASK_LEN)?;
        let Self {
            link: Link::Open(connection),
            input,
            filled,
            output,
            output_len,
            event: area,
            last,
            ..
        } = self
        else {
            return Err(Error::State);
        };
        let received = connection.receive(&mut input[..*filled]);
        let consumed = received.consumed;
        let out = &mut output[*output_len..];
        let result = match received.event {
            Ok(None) => Ok(None),
            Ok(Some(event)) => {
                let kind = record(&event, area, last);
                if let Some(reply) = connection.reply_to(&event) {
                    // Room and randomness were checked above.
                    *output_len += connection.send(&reply, out).map_err(send_error)?;
                }
                kind.map(Some)
            }
            Err(err) => {
                *last = Last {
                    code: err.close_code().map_or(0, CloseCode::as_u16),
                    ..Last::default()
                };
                if let Ok(n) = connection.send(&err.event_hint(), out) {
                    *output_len += n;
                }
                Err(Error::Protocol)
            }
        };
        self.discard(consumed);
        result
    }

    /// The transport ended: a [`EventKind::Close`] with code 1006 unless the
    /// closing handshake had finished (`Ok(None)` then).
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] (code 1006) during the handshake,
    /// [`Error::State`] before it.
    pub fn eof(&mut self) -> Result<Option<EventKind>, Error> {
        self.last = Last {
            finished: true,
            ..Last::default()
        };
        match &mut self.link {
            Link::Idle => Err(Error::State),
            Link::Closed => Ok(None),
            Link::Handshake(_) => {
                self.link = Link::Closed;
                self.last.code = CloseCode::ABNORMAL_CLOSURE.as_u16();
                Err(Error::Protocol)
            }
            Link::Open(connection) => Ok(connection.receive_eof().map(|event| {
                if let ConnectionEvent::CloseConnection(close) = event {
                    self.last.code = close.code.as_u16();
                }
                EventKind::Close
            })),
        }
    }

    /// The data of the last event: a message chunk, a ping or pong payload,
    /// or a close reason.
    #[must_use]
    pub fn event(&self) -> &[u8] {
        &self.event[..self.last.len]
    }

    /// Whether the last event ends its message (always true but for text
    /// and binary chunks).
    #[must_use]
    pub fn event_finished(&self) -> bool {
        self.last.finished
    }

    /// The close code of the last close event or protocol error, the HTTP
    /// status of a refusal, 0 otherwise.
    #[must_use]
    pub fn event_code(&self) -> u16 {
        self.last.code
    }

    /// Where payloads to send (and the handshake's names) are written.
    pub fn send_area(&mut self) -> &mut [u8; SEND_CAPACITY] {
        &mut self.send
    }

    /// Send the first `len` bytes of the send area as a chunk of a text
    /// message (the last one when `finished`). Returns the bytes queued.
    ///
    /// # Errors
    ///
    /// [`Error::Argument`] when the chunk is not whole UTF-8, and the
    /// errors of [`send_binary`](Self::send_binary).
    pub fn send_text(&mut self, len: usize, finished: bool) -> Result<usize, Error> {
        self.queue(Outgoing::Text { finished }, len)
    }

    /// Send the first `len` bytes of the send area as a chunk of a binary
    /// message (the last one when `finished`). Returns the bytes queued.
    ///
    /// # Errors
    ///
    /// [`Error::Argument`] for a length beyond the send area,
    /// [`Error::State`] when the connection is not open (or another kind of
    /// message is unfinished), [`Error::Random`] and [`Error::OutputFull`]
    /// as their docs say.
    pub fn send_binary(&mut self, len: usize, finished: bool) -> Result<usize, Error> {
        self.queue(Outgoing::Binary { finished }, len)
    }

    /// Send a ping with the first `len` bytes of the send area (at most
    /// 125). Returns the bytes queued.
    ///
    /// # Errors
    ///
    /// As [`send_binary`](Self::send_binary); [`Error::State`] for a
    /// payload over 125 bytes.
    pub fn send_ping(&mut self, len: usize) -> Result<usize, Error> {
        self.queue(Outgoing::Ping, len)
    }

    /// Start the closing handshake with `code` and the first `reason_len`
    /// bytes of the send area as the reason. Returns the bytes queued.
    ///
    /// # Errors
    ///
    /// As [`send_text`](Self::send_text); [`Error::State`] for a code that
    /// may not be sent.
    pub fn send_close(&mut self, code: u32, reason_len: usize) -> Result<usize, Error> {
        let code = u16::try_from(code).map_err(|_| Error::Argument)?;
        self.queue(Outgoing::Close(CloseCode(code)), reason_len)
    }

    /// The bytes waiting to go to the server.
    #[must_use]
    pub fn output(&self) -> &[u8] {
        &self.output[..self.output_len]
    }

    /// The output was sent: empty the output area.
    pub fn clear_output(&mut self) {
        self.output_len = 0;
    }

    /// The state: [`Connecting`](ConnectionState::Connecting) during the
    /// handshake, [`Closed`](ConnectionState::Closed) before it and after a
    /// refusal.
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        match &self.link {
            Link::Handshake(_) => ConnectionState::Connecting,
            Link::Open(connection) => connection.state(),
            Link::Idle | Link::Closed => ConnectionState::Closed,
        }
    }

    /// Frame `what` with the first `len` bytes of the send area into the
    /// output area.
    fn queue(&mut self, what: Outgoing, len: usize) -> Result<usize, Error> {
        self.need_random(MASK_LEN)?;
        let Self {
            link: Link::Open(connection),
            send,
            output,
            output_len,
            ..
        } = self
        else {
            return Err(Error::State);
        };
        let data = send.get(..len).ok_or(Error::Argument)?;
        let text = || core::str::from_utf8(data).map_err(|_| Error::Argument);
        let event: Event<'_> = match what {
            Outgoing::Text { finished } => TextMessage {
                data: text()?,
                frame_finished: true,
                message_finished: finished,
            }
            .into(),
            Outgoing::Binary { finished } => BytesMessage {
                data,
                frame_finished: true,
                message_finished: finished,
            }
            .into(),
            Outgoing::Ping => Ping { payload: data }.into(),
            Outgoing::Close(code) => CloseConnection {
                code,
                reason: text()?,
            }
            .into(),
        };
        let n = connection
            .send(&event, &mut output[*output_len..])
            .map_err(send_error)?;
        *output_len += n;
        Ok(n)
    }

    fn need_random(&self, n: usize) -> Result<(), Error> {
        match self.random.and_then(Mutex::try_lock) {
            Some(pool) if pool.available() >= n => Ok(()),
            _ => Err(Error::Random),
        }
    }

    /// Drop the first `consumed` bytes of the receive buffer.
    fn discard(&mut self, consumed: usize) {
        let consumed = consumed.min(self.filled);
        self.input.copy_within(consumed..self.filled, 0);
        self.filled -= consumed;
    }
}

/// Copy the data of `event` to the event area and note what else it
/// carries.
fn record(
    event: &ConnectionEvent<'_>,
    area: &mut [u8],
    last: &mut Last,
) -> Result<EventKind, Error> {
    let (kind, data, finished, code) = match event {
        ConnectionEvent::TextMessage(m) => {
            (EventKind::Text, m.data.as_bytes(), m.message_finished, 0)
        }
        ConnectionEvent::BytesMessage(m) => (EventKind::Binary, m.data, m.message_finished, 0),
        ConnectionEvent::Ping(p) => (EventKind::Ping, p.payload, true, 0),
        ConnectionEvent::Pong(p) => (EventKind::Pong, p.payload, true, 0),
        ConnectionEvent::CloseConnection(c) => {
            (EventKind::Close, c.reason.as_bytes(), true, c.code.0)
        }
        _ => return Err(Error::State),
    };
    // A chunk never exceeds the receive buffer, which the event area
    // matches.
    let len = data.len().min(area.len());
    area[..len].copy_from_slice(&data[..len]);
    *last = Last {
        len,
        finished,
        code,
    };
    Ok(kind)
}

fn send_error(err: SendError) -> Error {
    match err {
        SendError::BufferTooSmall(_) => Error::OutputFull,
        _ => Error::State,
    }
}

#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(test)]
mod tests;
