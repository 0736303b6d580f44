//! The std layer of wsproto: [`WSConnection`], the API of Python's
//! `wsproto.WSConnection`, over the sans-I/O core in [`wsproto_core`].
//!
//! It holds no protocol logic of its own: every rule lives in the core, and
//! this layer only owns the buffers, turns events into owned values, and
//! draws randomness from the operating system.
//!
//! ```
//! use wsproto_std::events::{AcceptConnection, Event, Request, TextMessage};
//! use wsproto_std::{ConnectionType, WSConnection};
//!
//! let mut client = WSConnection::new(ConnectionType::Client);
//! let mut server = WSConnection::new(ConnectionType::Server);
//!
//! // The client asks; the server reads the request and accepts.
//! let request = client.send(Request::new("example.com", "/chat"))?;
//! server.receive_data(Some(&request))?;
//! let Some(Ok(Event::Request(req))) = server.events().next() else { panic!() };
//! assert_eq!(req.target, "/chat");
//! let accept = server.send(AcceptConnection::default())?;
//! client.receive_data(Some(&accept))?;
//! assert!(matches!(client.events().next(), Some(Ok(Event::AcceptConnection(_)))));
//!
//! // Messages flow; permessage-deflate was negotiated by default.
//! let hello = client.send(TextMessage::new("hello"))?;
//! server.receive_data(Some(&hello))?;
//! match server.events().next() {
//!     Some(Ok(Event::TextMessage(m))) => assert_eq!(&*m.data, "hello"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
pub mod events;
#[doc = include_str!("python.md")]
pub mod python {}
mod rng;
#[cfg(feature = "tokio")]
pub mod stream;

use std::cell::RefCell;
use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use wsproto_core::event as core_event;
use wsproto_core::extension::deflate::{DeflatePool, PerMessageDeflate};
use wsproto_core::handshake::{
    Client, ExtensionSet, Handshake, HandshakeConfig, Server, Side, UpgradeError,
};
use wsproto_core::Connection;

pub use rng::OsRng;
pub use wsproto_core;
use wsproto_core::timer::Timers;
pub use wsproto_core::timer::{Expired, TimerConfig};
pub use wsproto_core::{
    CloseCode, Config, ConnectionState, LocalProtocolError, RemoteProtocolError,
};

use events::{owned_headers, owned_tokens, Event};

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionType {
    /// Sends the opening request.
    Client,
    /// Accepts the opening request.
    Server,
}

/// Settings of a [`WSConnection`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Settings {
    /// Handshake limits and the connection's limits (`handshake.connection`).
    pub handshake: HandshakeConfig,
    /// permessage-deflate to offer (client) or accept when offered (server);
    /// `None` turns compression off. On by default.
    ///
    /// Where the agreement resets the compression context after each
    /// message (`*_no_context_takeover`), the connections of a thread share
    /// one compressor, decompressor and output buffer, lent for each call:
    /// such messages allocate nothing, and an idle connection holds no
    /// compression state.
    pub permessage_deflate: Option<PerMessageDeflate>,
    /// Answer pings and the peer's close frame automatically, queueing the
    /// replies for [`WSConnection::bytes_to_send`] (the behaviour of the
    /// Python library's 0.x API). Off by default.
    ///
    /// The queue is bounded: once 4 KiB of replies wait undrained, only the
    /// most recent ping is answered (RFC 6455 §5.5.3 allows it), with a pong
    /// encoded when the queue drains, so a peer that pings while the caller
    /// does not drain costs at most 4 KiB and one pending payload.
    pub auto_reply: bool,
    /// The most received bytes held unread once the connection is open
    /// (default 256 KiB, and never less than
    /// [`HandshakeConfig::max_head_size`]); during the opening handshake the
    /// bound is the head limit, [`HandshakeConfig::max_head_size`].
    /// [`receive_data`](WSConnection::receive_data) refuses more, accepting
    /// nothing, until events are taken: see
    /// [`receive_space`](WSConnection::receive_space).
    pub max_unread: usize,
    /// Handshake deadline, closing timeout and keepalive, in the ticks the
    /// caller passes to [`WSConnection::handle_timeout`]. All off by
    /// default.
    pub timers: TimerConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            handshake: HandshakeConfig::default(),
            permessage_deflate: Some(PerMessageDeflate::new()),
            auto_reply: false,
            max_unread: 256 << 10,
            timers: TimerConfig::default(),
        }
    }
}

type ClientHandshake = Handshake<Client<OsRng>, Option<PerMessageDeflate>>;
type ServerHandshake = Handshake<Server, Option<PerMessageDeflate>>;

/// Where the connection is: one of the two handshakes, then one connection
/// type for both roles.
#[allow(clippy::large_enum_variant)]
enum Stage {
    Client(Box<ClientHandshake>),
    Server(Box<ServerHandshake>),
    Open(Connection<OsRng>),
}

/// Decompressed output is written into a block of this size and split off
/// as `Bytes`; a new block is taken when less than [`MIN_OUTPUT`] is left.
const OUTPUT_BLOCK: usize = 16 << 10;
const MIN_OUTPUT: usize = 1 << 10;

/// A WebSocket connection with owned events: feed it bytes with
/// [`receive_data`](Self::receive_data), take [`events`](Self::events), and
/// write out what [`send`](Self::send) returns.
///
/// The handshake runs first (a client starts it by sending a
/// [`Request`](events::Request)); then messages flow. Received binary
/// payloads share the receive buffer (or the block they were decompressed
/// into) rather than being copied.
pub struct WSConnection {
    kind: ConnectionType,
    auto_reply: bool,
    stage: Stage,
    /// Received bytes not yet consumed.
    rx: BytesMut,
    /// Output space lent to the core for decompressed data.
    inflated: BytesMut,
    /// The peer closed the transport.
    eof: bool,
    /// The peer broke the protocol: the error was handed out, nothing
    /// follows it.
    failed: bool,
    /// Events produced outside of parsing (an upgrade parsed elsewhere).
    queue: VecDeque<Event>,
    /// Automatic replies, encoded.
    outbox: Vec<u8>,
    /// The payload of the latest ping, to answer when the outbox drains.
    pending_pong: Option<Bytes>,
    /// The limit on `rx`.
    max_unread: usize,
    timers: Timers,
    /// The first `handle_timeout` started the timers.
    timers_started: bool,
    /// The timers know the handshake finished.
    timers_open: bool,
    /// What happened since the last `handle_timeout`, for the timers.
    activity: Activity,
    subprotocol: Option<String>,
}

impl std::fmt::Debug for WSConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WSConnection")
            .field("kind", &self.kind)
            .field("state", &self.state())
            .field("buffered", &self.rx.len())
            .finish_non_exhaustive()
    }
}

/// An event converted while the core event still borrows the buffers.
enum Staged {
    /// Owned already.
    Event(Event),
    /// A payload to split off once the borrow ends: `len` bytes at the end
    /// of the consumed input, or at the front of the decompressed output.
    Payload {
        kind: PayloadKind,
        len: usize,
        decompressed: bool,
    },
}

#[derive(Clone, Copy)]
enum PayloadKind {
    Bytes {
        frame_finished: bool,
        message_finished: bool,
    },
    Ping,
    Pong,
}

/// Payloads shorter than this are copied out rather than sharing (and
/// pinning) the receive buffer.
const SHARE_FROM: usize = 256;

/// With [`Settings::auto_reply`], pongs are encoded at once while fewer
/// automatic replies than this wait in the outbox; beyond it only the latest
/// ping is answered, when the outbox drains.
const OUTBOX_SOFT_LIMIT: usize = 4 << 10;

/// Whether a payload of `len` bytes may share a block of `block` bytes: it
/// is not small, and at least a quarter of what it keeps alive, so payloads
/// kept by the caller pin at most four times their size.
fn shares_well(len: usize, block: usize) -> bool {
    len >= SHARE_FROM && len.saturating_mul(4) >= block
}

/// What happened between two `handle_timeout` calls.
#[derive(Clone, Copy, Debug, Default)]
struct Activity {
    /// Bytes came in.
    received: bool,
    /// A pong came in.
    pong: bool,
}

impl WSConnection {
    /// A connection with the default [`Settings`]: permessage-deflate
    /// offered and accepted, default limits.
    #[must_use]
    pub fn new(kind: ConnectionType) -> Self {
        Self::with_settings(kind, Settings::default())
    }

    /// A connection with `settings`.
    #[must_use]
    pub fn with_settings(kind: ConnectionType, settings: Settings) -> Self {
        let stage = match kind {
            ConnectionType::Client => Stage::Client(Box::new(
                Handshake::client(settings.handshake, OsRng::new())
                    .with_extensions(settings.permessage_deflate),
            )),
            ConnectionType::Server => Stage::Server(Box::new(
                Handshake::server(settings.handshake).with_extensions(settings.permessage_deflate),
            )),
        };
        Self {
            kind,
            auto_reply: settings.auto_reply,
            stage,
            rx: BytesMut::new(),
            inflated: BytesMut::new(),
            eof: false,
            failed: false,
            queue: VecDeque::new(),
            outbox: Vec::new(),
            pending_pong: None,
            max_unread: settings
                .max_unread
                .max(settings.handshake.max_head_size)
                .max(wsproto_core::MIN_RECEIVE_BUFFER),
            timers: Timers::new(settings.timers, 0),
            timers_started: false,
            timers_open: false,
            activity: Activity::default(),
            subprotocol: None,
        }
    }

    /// Which end this is.
    #[must_use]
    pub fn connection_type(&self) -> ConnectionType {
        self.kind
    }

    /// The state of the connection: [`Closed`](ConnectionState::Closed)
    /// once the peer broke the protocol.
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        match &self.stage {
            _ if self.failed => ConnectionState::Closed,
            Stage::Client(hs) => hs.state(),
            Stage::Server(hs) => hs.state(),
            Stage::Open(conn) => conn.state(),
        }
    }

    /// The subprotocol agreed on in the handshake.
    #[must_use]
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Whether permessage-deflate is in use.
    #[must_use]
    pub fn deflate_enabled(&self) -> bool {
        match &self.stage {
            Stage::Open(conn) => conn.deflate_enabled(),
            _ => false,
        }
    }

    /// Bytes received from the network; `None` means the peer closed the
    /// transport. Parse them with [`events`](Self::events).
    ///
    /// # Errors
    ///
    /// Feeding bytes to a closed connection.
    pub fn receive_data(&mut self, data: Option<&[u8]>) -> Result<(), LocalProtocolError> {
        match data {
            None => {
                self.eof = true;
                Ok(())
            }
            Some(_) if self.state() == ConnectionState::Closed => {
                Err(LocalProtocolError::new("connection already closed"))
            }
            Some(bytes) if bytes.len() > self.receive_space() => Err(LocalProtocolError::new(
                "too many unread bytes: take events before feeding more",
            )),
            Some(bytes) => {
                self.rx.extend_from_slice(bytes);
                self.activity.received |= !bytes.is_empty();
                Ok(())
            }
        }
    }

    /// How many more bytes [`receive_data`](Self::receive_data) accepts
    /// now (up to the head limit during the opening handshake, then up to
    /// [`Settings::max_unread`]): read at most this much from the
    /// transport. It grows as events
    /// are taken; once every event was taken, at least
    /// [`Settings::max_unread`] minus a partial frame header or control
    /// frame is free, so a reader that drains events never stalls.
    #[must_use]
    pub fn receive_space(&self) -> usize {
        // During the opening handshake nothing but a head is needed.
        let limit = match &self.stage {
            Stage::Client(hs) => hs.config().max_head_size,
            Stage::Server(hs) => hs.config().max_head_size,
            Stage::Open(_) => self.max_unread,
        };
        limit.saturating_sub(self.rx.len())
    }

    /// The earliest moment (in the caller's ticks) at which
    /// [`handle_timeout`](Self::handle_timeout) has something to report,
    /// if a timer of [`Settings::timers`] runs.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.poll_timeout()
    }

    /// Drive the timers of [`Settings::timers`] with the current time, in
    /// ticks of the caller's monotonic clock. Call it once when the
    /// connection starts (the handshake deadline counts from there), after
    /// each batch of received data and sent events, and whenever the moment
    /// of [`poll_timeout`](Self::poll_timeout) has come. Returns what
    /// expired, one thing per call:
    ///
    /// - [`Expired::Handshake`]: a server may send a 408 refusal; close the
    ///   transport;
    /// - [`Expired::PingDue`]: send a [`Ping`](events::Ping) now;
    /// - [`Expired::Keepalive`] and [`Expired::Close`]: the peer is gone or
    ///   slow to close: close the transport. The connection then ends as if
    ///   the transport had ended: [`events`](Self::events) yields a
    ///   `CloseConnection` with code 1006 unless it was closed already.
    pub fn handle_timeout(&mut self, now: u64) -> Option<Expired> {
        let activity = std::mem::take(&mut self.activity);
        if !self.timers_started {
            self.timers_started = true;
            self.timers = Timers::new(*self.timers.config(), now);
        }
        if matches!(self.stage, Stage::Open(_)) && !self.timers_open {
            self.timers_open = true;
            self.timers.handshake_done(now);
        }
        if activity.pong {
            self.timers.pong_received(now);
        }
        if activity.received {
            self.timers.received(now);
        }
        if matches!(
            self.state(),
            ConnectionState::LocalClosing
                | ConnectionState::RemoteClosing
                | ConnectionState::Closed
        ) {
            self.timers.close_started(now);
        }
        let expired = self.timers.handle_timeout(now);
        if let Some(Expired::Keepalive | Expired::Close) = expired {
            self.eof = true;
        }
        expired
    }

    /// The events in the bytes received so far, parsed as the iterator is
    /// advanced (so the state follows the events taken, as in Python). An
    /// event the iterator does not reach stays in the buffer.
    ///
    /// To send while handling events, take them one at a time with
    /// [`next_event`](Self::next_event) instead:
    /// `while let Some(event) = ws.next_event() { ... ws.send(...) ... }`.
    ///
    /// A protocol violation by the peer is an `Err` whose
    /// [`event_hint`](RemoteProtocolError::event_hint) should be sent (see
    /// [`send_core`](Self::send_core)); it comes once, and the iterator ends
    /// after it, as Python's generator does.
    ///
    /// Binary payloads are not copied: they share the receive buffer.
    pub fn events(&mut self) -> Events<'_> {
        Events { conn: self }
    }

    /// The next event in the bytes received so far, if a whole one is
    /// there. After a protocol error, `None`.
    pub fn next_event(&mut self) -> Option<Result<Event, RemoteProtocolError>> {
        match self.queue.pop_front() {
            Some(event) => Some(Ok(event)),
            None if self.failed => None,
            None => {
                self.lend_deflate_state(true);
                let next = self.parse_event();
                self.lend_deflate_state(false);
                if let Some(Err(_)) = next {
                    self.failed = true;
                }
                next
            }
        }
    }

    /// Encode `event` for the wire.
    ///
    /// # Errors
    ///
    /// The event cannot be sent in the current state.
    pub fn send(&mut self, event: impl Into<Event>) -> Result<Vec<u8>, LocalProtocolError> {
        let mut out = Vec::new();
        self.send_into(event, &mut out)?;
        Ok(out)
    }

    /// Encode `event` at the end of `out`, reusing its allocation.
    ///
    /// # Errors
    ///
    /// The event cannot be sent in the current state.
    pub fn send_into(
        &mut self,
        event: impl Into<Event>,
        out: &mut Vec<u8>,
    ) -> Result<(), LocalProtocolError> {
        let event = event.into();
        let scratch = event.scratch();
        let core = event.as_core(&scratch);
        self.send_core(&core, out)
    }

    /// Encode a core event (borrowed, no conversion) at the end of `out`;
    /// for instance a [`RemoteProtocolError::event_hint`].
    ///
    /// # Errors
    ///
    /// The event cannot be sent in the current state.
    pub fn send_core(
        &mut self,
        event: &core_event::Event<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), LocalProtocolError> {
        match &mut self.stage {
            Stage::Client(hs) => hs.send_into(event, out),
            Stage::Server(hs) => {
                hs.send_into(event, out)?;
                if hs.state() == ConnectionState::Open {
                    self.upgrade();
                }
                Ok(())
            }
            Stage::Open(conn) => {
                let pooled = lend_deflate_state(conn, true);
                let result = conn.send_into(event, out).map(drop);
                if pooled {
                    lend_deflate_state(conn, false);
                }
                result
            }
        }
    }

    /// Lend this thread's [`DEFLATE_POOL`] to an open connection that uses
    /// permessage-deflate (`lend`), or take it back.
    fn lend_deflate_state(&mut self, lend: bool) {
        if let Stage::Open(conn) = &mut self.stage {
            lend_deflate_state(conn, lend);
        }
    }

    /// For a request parsed elsewhere (by an HTTP server): validate it as an
    /// opening handshake; the [`Request`](events::Request) event follows
    /// from [`events`](Self::events).
    ///
    /// # Errors
    ///
    /// The request is not a valid upgrade (send the error's hint), or this
    /// is not a server waiting for a request.
    pub fn initiate_upgrade_connection(
        &mut self,
        headers: &[(&str, &[u8])],
        path: &str,
    ) -> Result<(), UpgradeError> {
        let Stage::Server(hs) = &mut self.stage else {
            return Err(UpgradeError::Local(LocalProtocolError::new(
                "only a server waiting for a request can upgrade one",
            )));
        };
        let headers: Vec<core_event::Header<'_>> = headers
            .iter()
            .map(|(name, value)| core_event::Header::new(name, value))
            .collect();
        let request = hs.initiate_upgrade_connection(&headers, path)?;
        self.queue.push_back(Event::Request(events::Request {
            host: request.host.to_owned(),
            target: request.target.to_owned(),
            subprotocols: owned_tokens(request.subprotocols),
            extensions: owned_tokens(request.extensions),
            extra_headers: owned_headers(request.extra_headers),
        }));
        Ok(())
    }

    /// The reply a received event calls for, if the state allows one now:
    /// the pong for a ping while the connection is open, and the close
    /// frame that completes the closing handshake after the peer's close
    /// frame; none for the `CloseConnection` that reports the end of the
    /// stream. The rule is [`Connection::reply_to`]'s.
    ///
    /// ```
    /// use wsproto_std::events::{CloseConnection, Event};
    /// use wsproto_std::{CloseCode, ConnectionType, WSConnection};
    /// let ws = WSConnection::new(ConnectionType::Server);
    /// // Before the handshake nothing is due.
    /// let close = Event::CloseConnection(CloseConnection::new(CloseCode::NORMAL_CLOSURE));
    /// assert_eq!(ws.reply_to(&close), None);
    /// ```
    #[must_use]
    pub fn reply_to(&self, event: &Event) -> Option<Event> {
        let Stage::Open(conn) = &self.stage else {
            return None;
        };
        let scratch = event.scratch();
        let event = core_event::ConnectionEvent::try_from(event.as_core(&scratch)).ok()?;
        conn.reply_to(&event).map(|reply| owned_event(&reply))
    }

    /// Take up to `amount` bytes (all with `None`) of automatic replies
    /// queued when [`Settings::auto_reply`] is on.
    pub fn bytes_to_send(&mut self, amount: Option<usize>) -> Vec<u8> {
        self.queue_pending_pong();
        let n = amount.unwrap_or(usize::MAX).min(self.outbox.len());
        self.outbox.drain(..n).collect()
    }

    /// Encode the pong for the latest ping into the outbox, once what was
    /// queued before went out (so the outbox holds at most one pong).
    fn queue_pending_pong(&mut self) {
        if !self.outbox.is_empty() {
            return;
        }
        let (Some(payload), Stage::Open(conn)) = (self.pending_pong.take(), &mut self.stage) else {
            return;
        };
        let pong = core_event::Event::Pong(core_event::Pong { payload: &payload });
        // After our own close frame no pong is due any more.
        if conn
            .reply_to(&core_event::ConnectionEvent::Ping(core_event::Ping {
                payload: &payload,
            }))
            .is_some()
        {
            let _ = conn.send_into(&pong, &mut self.outbox);
        }
    }

    /// Hand the finished handshake over to a connection.
    fn upgrade(&mut self) {
        let placeholder = Stage::Open(Connection::new(
            wsproto_core::Role::Server,
            Config::default(),
            OsRng::new(),
        ));
        // The handshake hands over a connection with the negotiated
        // extensions applied.
        let (subprotocol, connection) = match std::mem::replace(&mut self.stage, placeholder) {
            Stage::Client(hs) => match hs.into_connection() {
                Ok(up) => (up.subprotocol().map(str::to_owned), up.connection),
                Err(_) => return,
            },
            Stage::Server(hs) => match hs.into_connection() {
                Ok(up) => (
                    up.subprotocol().map(str::to_owned),
                    up.connection.with_random_source(OsRng::new()),
                ),
                Err(_) => return,
            },
            open => {
                self.stage = open;
                return;
            }
        };
        self.subprotocol = subprotocol;
        self.stage = Stage::Open(connection);
    }

    /// Parse the next event from the receive buffer.
    fn parse_event(&mut self) -> Option<Result<Event, RemoteProtocolError>> {
        let Stage::Open(conn) = &mut self.stage else {
            return self.handshake_event();
        };
        if conn.deflate_enabled() && self.inflated.len() < MIN_OUTPUT {
            self.inflated = BytesMut::zeroed(OUTPUT_BLOCK);
        }
        let received = conn.receive_into(&mut self.rx, &mut self.inflated);
        let consumed = received.consumed;
        let staged = match received.event {
            Ok(Some(event)) => {
                match (&event, self.auto_reply) {
                    (core_event::ConnectionEvent::Pong(_), _) => self.activity.pong = true,
                    (core_event::ConnectionEvent::Ping(ping), true) => {
                        if let Some(reply) = conn.reply_to(&event) {
                            if self.outbox.len() < OUTBOX_SOFT_LIMIT {
                                let _ = conn.send_into(&reply, &mut self.outbox);
                            } else {
                                // The caller is not draining: answer only
                                // the latest ping (RFC 6455 §5.5.3).
                                self.pending_pong = Some(Bytes::copy_from_slice(ping.payload));
                            }
                        }
                    }
                    (core_event::ConnectionEvent::CloseConnection(_), true) => {
                        // A pong still pending is not due any more: the
                        // close reply is what the peer waits for.
                        self.pending_pong = None;
                        if let Some(reply) = conn.reply_to(&event) {
                            let _ = conn.send_into(&reply, &mut self.outbox);
                        }
                    }
                    _ => {}
                }
                stage(&event, received.decompressed)
            }
            Ok(None) => {
                let _ = self.rx.split_to(consumed);
                return self.end_of_input();
            }
            Err(err) => return Some(Err(err)),
        };
        Some(Ok(self.finish(staged, consumed)))
    }

    /// Parse the next event of the opening handshake.
    fn handshake_event(&mut self) -> Option<Result<Event, RemoteProtocolError>> {
        let (consumed, event) = match &mut self.stage {
            Stage::Client(hs) if hs.state() == ConnectionState::Rejecting => {
                let received = hs.receive_body(&mut self.rx);
                let event = received
                    .event
                    .map(|event| event.map(|event| owned_event(&event)));
                (received.consumed, event)
            }
            Stage::Client(hs) => owned_receive(hs, &mut self.rx),
            Stage::Server(hs) => owned_receive(hs, &mut self.rx),
            Stage::Open(_) => return None,
        };
        let _ = self.rx.split_to(consumed);
        if matches!(&self.stage, Stage::Client(hs) if hs.state() == ConnectionState::Open) {
            self.upgrade();
        }
        match event {
            Ok(Some(event)) => Some(Ok(event)),
            Ok(None) => self.end_of_input(),
            Err(err) => Some(Err(err)),
        }
    }

    /// Build the owned event: its payload is the end of the consumed bytes,
    /// or the front of the decompressed output.
    fn finish(&mut self, staged: Staged, consumed: usize) -> Event {
        // What a shared payload keeps alive: the receive buffer's block.
        let pinned = self.rx.capacity();
        let chunk = self.rx.split_to(consumed);
        let (kind, payload) = match staged {
            Staged::Event(event) => return event,
            Staged::Payload {
                kind,
                len,
                decompressed,
            } => {
                // Share the buffer only with a payload large beside what it
                // keeps alive; copy the others out.
                let payload = if decompressed {
                    let data = self.inflated.split_to(len);
                    if shares_well(len, OUTPUT_BLOCK) {
                        data.freeze()
                    } else {
                        Bytes::copy_from_slice(&data)
                    }
                } else if shares_well(len, pinned) {
                    chunk.freeze().slice(consumed - len..)
                } else {
                    Bytes::copy_from_slice(&chunk[consumed - len..])
                };
                (kind, payload)
            }
        };
        match kind {
            PayloadKind::Bytes {
                frame_finished,
                message_finished,
            } => Event::BytesMessage(events::BytesMessage {
                data: payload,
                frame_finished,
                message_finished,
            }),
            PayloadKind::Ping => Event::Ping(events::Ping { payload }),
            PayloadKind::Pong => Event::Pong(events::Pong { payload }),
        }
    }

    /// No complete event is buffered: report the end of the transport once.
    fn end_of_input(&mut self) -> Option<Result<Event, RemoteProtocolError>> {
        if !std::mem::take(&mut self.eof) {
            return None;
        }
        let end = match &mut self.stage {
            Stage::Client(hs) => hs.receive_eof(),
            Stage::Server(hs) => hs.receive_eof(),
            Stage::Open(conn) => Ok(conn.receive_eof().map(core_event::Event::from)),
        };
        end.map(|event| event.map(|event| owned_event(&event)))
            .transpose()
    }
}

/// An iterator over the events received so far; see
/// [`WSConnection::events`].
#[derive(Debug)]
pub struct Events<'c> {
    conn: &'c mut WSConnection,
}

impl Iterator for Events<'_> {
    type Item = Result<Event, RemoteProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.conn.next_event()
    }
}

/// One handshake `receive`, its event owned.
fn owned_receive<S: Side, E: ExtensionSet>(
    hs: &mut Handshake<S, E>,
    rx: &mut [u8],
) -> (usize, Result<Option<Event>, RemoteProtocolError>) {
    let received = hs.receive(rx);
    let event = received
        .event
        .map(|event| event.map(|event| owned_event(&event)));
    (received.consumed, event)
}

/// Stage a connection event. Text was validated by the core: it is copied
/// into its own allocation, not checked again.
fn stage(event: &core_event::ConnectionEvent<'_>, decompressed: bool) -> Staged {
    let payload = |kind, data: &[u8]| Staged::Payload {
        kind,
        len: data.len(),
        decompressed,
    };
    match event {
        core_event::ConnectionEvent::TextMessage(m) => {
            Staged::Event(Event::TextMessage(events::TextMessage {
                data: ByteString::from(m.data.to_owned()),
                frame_finished: m.frame_finished,
                message_finished: m.message_finished,
            }))
        }
        core_event::ConnectionEvent::BytesMessage(m) => payload(
            PayloadKind::Bytes {
                frame_finished: m.frame_finished,
                message_finished: m.message_finished,
            },
            m.data,
        ),
        core_event::ConnectionEvent::Ping(p) => payload(PayloadKind::Ping, p.payload),
        core_event::ConnectionEvent::Pong(p) => payload(PayloadKind::Pong, p.payload),
        &other => Staged::Event(owned_event(&other.into())),
    }
}

/// An owned copy of a core event (payloads copied).
fn owned_event(event: &core_event::Event<'_>) -> Event {
    match event {
        core_event::Event::Request(r) => Event::Request(events::Request {
            host: r.host.to_owned(),
            target: r.target.to_owned(),
            subprotocols: owned_tokens(r.subprotocols),
            extensions: owned_tokens(r.extensions),
            extra_headers: owned_headers(r.extra_headers),
        }),
        core_event::Event::AcceptConnection(a) => {
            Event::AcceptConnection(events::AcceptConnection {
                subprotocol: a.subprotocol.map(str::to_owned),
                extensions: owned_tokens(a.extensions),
                extra_headers: owned_headers(a.extra_headers),
            })
        }
        core_event::Event::RejectConnection(r) => {
            Event::RejectConnection(events::RejectConnection {
                status_code: r.status_code,
                headers: owned_headers(r.headers),
                has_body: r.has_body,
            })
        }
        core_event::Event::RejectData(d) => Event::RejectData(events::RejectData {
            data: Bytes::copy_from_slice(d.data),
            body_finished: d.body_finished,
        }),
        core_event::Event::CloseConnection(c) => {
            Event::CloseConnection(events::CloseConnection::with_reason(c.code, c.reason))
        }
        core_event::Event::TextMessage(m) => Event::TextMessage(events::TextMessage {
            data: ByteString::from(m.data.to_owned()),
            frame_finished: m.frame_finished,
            message_finished: m.message_finished,
        }),
        core_event::Event::BytesMessage(m) => Event::BytesMessage(events::BytesMessage {
            data: Bytes::copy_from_slice(m.data),
            frame_finished: m.frame_finished,
            message_finished: m.message_finished,
        }),
        core_event::Event::Ping(p) => Event::Ping(events::Ping::new(p.payload.to_vec())),
        core_event::Event::Pong(p) => Event::Pong(events::Pong::new(p.payload.to_vec())),
        other => Event::CloseConnection(events::CloseConnection::with_reason(
            CloseCode::INTERNAL_ERROR,
            format!("unexpected event {other:?}"),
        )),
    }
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The crate README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeDoctests;

thread_local! {
    /// permessage-deflate state shared by the connections of this thread
    /// that reset it after each message (no context takeover): a
    /// compressor, a decompressor and an output buffer are lent to a
    /// connection for one call and taken back after it, so such messages
    /// allocate nothing and an idle connection holds none of it. The pool
    /// holds what one call at a time needs, once per compression setting.
    static DEFLATE_POOL: RefCell<DeflatePool> = RefCell::new(DeflatePool::new());
}

/// Lend this thread's [`DEFLATE_POOL`] to `conn` (`lend`) or take it back;
/// whether `conn` uses permessage-deflate at all.
fn lend_deflate_state(conn: &mut Connection<OsRng>, lend: bool) -> bool {
    if !conn.deflate_enabled() {
        return false;
    }
    // The pool is never borrowed across user code, so it is free here; a
    // thread being torn down has none left, and then nothing is lent.
    let _ = DEFLATE_POOL.try_with(|pool| {
        if let Ok(mut pool) = pool.try_borrow_mut() {
            if lend {
                conn.borrow_deflate_state(&mut pool);
            } else {
                conn.return_deflate_state(&mut pool);
            }
        }
    });
    true
}
