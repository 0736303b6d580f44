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

pub mod events;
mod rng;

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use wsproto_core::event as core_event;
use wsproto_core::extension::deflate::PerMessageDeflate;
use wsproto_core::handshake::{Client, Handshake, HandshakeConfig, Server, UpgradeError};
use wsproto_core::NoRandom;

pub use rng::OsRng;
pub use wsproto_core;
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
    pub permessage_deflate: Option<PerMessageDeflate>,
    /// Answer pings and the peer's close frame automatically, queueing the
    /// replies for [`WSConnection::bytes_to_send`] (the behaviour of the
    /// Python library's 0.x API). Off by default.
    pub auto_reply: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            handshake: HandshakeConfig::default(),
            permessage_deflate: Some(PerMessageDeflate::new()),
            auto_reply: false,
        }
    }
}

type ClientHandshake = Handshake<Client<OsRng>, Option<PerMessageDeflate>>;
type ServerHandshake = Handshake<Server, Option<PerMessageDeflate>>;

// The connection variants are the long-lived ones and stay inline; the
// handshakes are boxed and dropped after the upgrade.
#[allow(clippy::large_enum_variant)]
enum Phase {
    ClientHandshake(Box<ClientHandshake>),
    ServerHandshake(Box<ServerHandshake>),
    Client(wsproto_core::Connection<OsRng>),
    Server(wsproto_core::Connection<NoRandom>),
}

/// A WebSocket connection with owned events: feed it bytes with
/// [`receive_data`](Self::receive_data), take [`events`](Self::events), and
/// write out what [`send`](Self::send) returns.
///
/// The handshake runs first (a client starts it by sending a
/// [`Request`](events::Request)); then messages flow. Received payloads share
/// the receive buffer rather than being copied.
pub struct WSConnection {
    kind: ConnectionType,
    auto_reply: bool,
    phase: Phase,
    /// Received bytes not yet consumed.
    rx: BytesMut,
    /// The peer closed the transport.
    eof: bool,
    /// Events produced outside of parsing (an upgrade parsed elsewhere).
    queue: VecDeque<Event>,
    /// Automatic replies.
    outbox: Vec<u8>,
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

/// Where a received payload ended up.
enum Payload {
    /// At this range of the consumed bytes: split off, not copied.
    Shared(std::ops::Range<usize>),
    /// Outside the receive buffer (decompressed data, a carried code point).
    Owned(Bytes),
}

/// An event converted while the core event still borrows the buffer.
enum Staged {
    Event(Event),
    Text(Payload, bool, bool),
    Bytes(Payload, bool, bool),
    Ping(Payload),
    Pong(Payload),
    RejectData(Payload, bool),
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
        let phase = match kind {
            ConnectionType::Client => Phase::ClientHandshake(Box::new(
                Handshake::client(settings.handshake, OsRng::new())
                    .with_extensions(settings.permessage_deflate),
            )),
            ConnectionType::Server => Phase::ServerHandshake(Box::new(
                Handshake::server(settings.handshake).with_extensions(settings.permessage_deflate),
            )),
        };
        Self {
            kind,
            auto_reply: settings.auto_reply,
            phase,
            rx: BytesMut::new(),
            eof: false,
            queue: VecDeque::new(),
            outbox: Vec::new(),
            subprotocol: None,
        }
    }

    /// Which end this is.
    #[must_use]
    pub fn connection_type(&self) -> ConnectionType {
        self.kind
    }

    /// The state of the connection.
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        match &self.phase {
            Phase::ClientHandshake(hs) => hs.state(),
            Phase::ServerHandshake(hs) => hs.state(),
            Phase::Client(conn) => conn.state(),
            Phase::Server(conn) => conn.state(),
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
        match &self.phase {
            Phase::Client(conn) => conn.deflate_enabled(),
            Phase::Server(conn) => conn.deflate_enabled(),
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
            Some(bytes) => {
                self.rx.extend_from_slice(bytes);
                Ok(())
            }
        }
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
    /// [`send_core`](Self::send_core)); nothing follows it.
    ///
    /// Payloads are not copied: they share the receive buffer.
    pub fn events(&mut self) -> Events<'_> {
        Events { conn: self }
    }

    /// The next event in the bytes received so far, if a whole one is
    /// there.
    pub fn next_event(&mut self) -> Option<Result<Event, RemoteProtocolError>> {
        match self.queue.pop_front() {
            Some(event) => Some(Ok(event)),
            None => self.parse_event(),
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
        match &mut self.phase {
            Phase::ClientHandshake(hs) => hs.send_into(event, out),
            Phase::ServerHandshake(hs) => {
                hs.send_into(event, out)?;
                if hs.state() == ConnectionState::Open {
                    self.upgrade();
                }
                Ok(())
            }
            Phase::Client(conn) => conn.send_vec(event, out).map(drop),
            Phase::Server(conn) => conn.send_vec(event, out).map(drop),
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
        let Phase::ServerHandshake(hs) = &mut self.phase else {
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

    /// Take up to `amount` bytes (all with `None`) of automatic replies
    /// queued when [`Settings::auto_reply`] is on.
    pub fn bytes_to_send(&mut self, amount: Option<usize>) -> Vec<u8> {
        let n = amount.unwrap_or(usize::MAX).min(self.outbox.len());
        self.outbox.drain(..n).collect()
    }

    /// Hand the finished handshake over to a connection.
    fn upgrade(&mut self) {
        let placeholder = Phase::Server(wsproto_core::Connection::server(Config::default()));
        self.phase = match std::mem::replace(&mut self.phase, placeholder) {
            Phase::ClientHandshake(hs) => match hs.into_connection() {
                Ok(up) => {
                    self.subprotocol = up.subprotocol().map(str::to_owned);
                    let params = up.extensions.as_ref().and_then(PerMessageDeflate::params);
                    Phase::Client(match params {
                        Some(params) => up.connection.with_deflate(params),
                        None => up.connection,
                    })
                }
                Err(_) => unreachable_phase(),
            },
            Phase::ServerHandshake(hs) => match hs.into_connection() {
                Ok(up) => {
                    self.subprotocol = up.subprotocol().map(str::to_owned);
                    let params = up.extensions.as_ref().and_then(PerMessageDeflate::params);
                    Phase::Server(match params {
                        Some(params) => up.connection.with_deflate(params),
                        None => up.connection,
                    })
                }
                Err(_) => unreachable_phase(),
            },
            other => other,
        };
    }

    /// Parse the next event from the receive buffer.
    fn parse_event(&mut self) -> Option<Result<Event, RemoteProtocolError>> {
        let base = self.rx.as_ptr() as usize;
        let len = self.rx.len();
        let locate = |data: &[u8]| -> Payload {
            let start = (data.as_ptr() as usize).wrapping_sub(base);
            if start <= len && data.len() <= len - start && !data.is_empty() {
                Payload::Shared(start..start + data.len())
            } else {
                Payload::Owned(Bytes::copy_from_slice(data))
            }
        };
        let rx = &mut self.rx;
        let (received, upgraded) = match &mut self.phase {
            Phase::ClientHandshake(hs) => {
                let r = if hs.state() == ConnectionState::Rejecting {
                    staged(hs.receive_body(rx), &locate)
                } else {
                    staged(hs.receive(rx), &locate)
                };
                (r, hs.state() == ConnectionState::Open)
            }
            Phase::ServerHandshake(hs) => (staged(hs.receive(rx), &locate), false),
            Phase::Client(conn) => (staged(conn.receive(rx), &locate), false),
            Phase::Server(conn) => (staged(conn.receive(rx), &locate), false),
        };
        let (consumed, staged) = match received {
            Ok(received) => received,
            Err(err) => return Some(Err(err)),
        };
        let chunk = self.rx.split_to(consumed).freeze();
        if upgraded {
            self.upgrade();
        }
        let event = match staged {
            Some(staged) => finish(staged, &chunk),
            None => return self.end_of_input(),
        };
        if self.auto_reply {
            self.auto_reply_to(&event);
        }
        Some(Ok(event))
    }

    /// No complete event is buffered: report the end of the transport once.
    fn end_of_input(&mut self) -> Option<Result<Event, RemoteProtocolError>> {
        if !std::mem::take(&mut self.eof) {
            return None;
        }
        let end = match &mut self.phase {
            Phase::ClientHandshake(hs) => hs.receive_eof(),
            Phase::ServerHandshake(hs) => hs.receive_eof(),
            Phase::Client(conn) => Ok(conn.receive_eof()),
            Phase::Server(conn) => Ok(conn.receive_eof()),
        };
        match end {
            Ok(Some(event)) => Some(Ok(finish(
                stage(&event, &|d: &[u8]| {
                    Payload::Owned(Bytes::copy_from_slice(d))
                }),
                &Bytes::new(),
            ))),
            Ok(None) => None,
            Err(err) => Some(Err(err)),
        }
    }

    fn auto_reply_to(&mut self, event: &Event) {
        let reply = match event {
            Event::Ping(ping) => Event::Pong(ping.response()),
            Event::CloseConnection(close) if self.state() == ConnectionState::RemoteClosing => {
                Event::CloseConnection(close.response())
            }
            _ => return,
        };
        let mut outbox = std::mem::take(&mut self.outbox);
        // A reply the state forbids (a pong after our own close) is not sent.
        let _ = self.send_into(reply, &mut outbox);
        self.outbox = outbox;
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

fn unreachable_phase() -> Phase {
    // `into_connection` fails only before the handshake succeeded, and it
    // is called only after it did.
    Phase::Server(wsproto_core::Connection::server(Config::default()))
}

/// The bytes used and the staged event of one core `receive`.
fn staged(
    received: wsproto_core::Received<'_>,
    locate: &dyn Fn(&[u8]) -> Payload,
) -> Result<(usize, Option<Staged>), RemoteProtocolError> {
    let event = received.event?;
    Ok((received.consumed, event.map(|event| stage(&event, locate))))
}

/// Convert a core event, noting where its payload lies.
fn stage(event: &core_event::Event<'_>, locate: &dyn Fn(&[u8]) -> Payload) -> Staged {
    match event {
        core_event::Event::TextMessage(m) => Staged::Text(
            locate(m.data.as_bytes()),
            m.frame_finished,
            m.message_finished,
        ),
        core_event::Event::BytesMessage(m) => {
            Staged::Bytes(locate(m.data), m.frame_finished, m.message_finished)
        }
        core_event::Event::Ping(p) => Staged::Ping(locate(p.payload)),
        core_event::Event::Pong(p) => Staged::Pong(locate(p.payload)),
        core_event::Event::RejectData(d) => Staged::RejectData(locate(d.data), d.body_finished),
        core_event::Event::CloseConnection(c) => Staged::Event(Event::CloseConnection(
            events::CloseConnection::with_reason(c.code, c.reason),
        )),
        core_event::Event::Request(r) => Staged::Event(Event::Request(events::Request {
            host: r.host.to_owned(),
            target: r.target.to_owned(),
            subprotocols: owned_tokens(r.subprotocols),
            extensions: owned_tokens(r.extensions),
            extra_headers: owned_headers(r.extra_headers),
        })),
        core_event::Event::AcceptConnection(a) => {
            Staged::Event(Event::AcceptConnection(events::AcceptConnection {
                subprotocol: a.subprotocol.map(str::to_owned),
                extensions: owned_tokens(a.extensions),
                extra_headers: owned_headers(a.extra_headers),
            }))
        }
        core_event::Event::RejectConnection(r) => {
            Staged::Event(Event::RejectConnection(events::RejectConnection {
                status_code: r.status_code,
                headers: r
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.to_vec()))
                    .collect(),
                has_body: r.has_body,
            }))
        }
        other => Staged::Event(Event::CloseConnection(
            events::CloseConnection::with_reason(
                CloseCode::INTERNAL_ERROR,
                format!("unexpected event {other:?}"),
            ),
        )),
    }
}

fn payload(payload: Payload, chunk: &Bytes) -> Bytes {
    match payload {
        Payload::Shared(range) => chunk.slice(range),
        Payload::Owned(bytes) => bytes,
    }
}

/// Build the owned event, splitting payloads off the consumed bytes.
fn finish(staged: Staged, chunk: &Bytes) -> Event {
    match staged {
        Staged::Event(event) => event,
        Staged::Text(data, frame_finished, message_finished) => {
            // The core validated the text; `ByteString` checks it once more.
            let data = ByteString::try_from(payload(data, chunk)).unwrap_or_default();
            Event::TextMessage(events::TextMessage {
                data,
                frame_finished,
                message_finished,
            })
        }
        Staged::Bytes(data, frame_finished, message_finished) => {
            Event::BytesMessage(events::BytesMessage {
                data: payload(data, chunk),
                frame_finished,
                message_finished,
            })
        }
        Staged::Ping(data) => Event::Ping(events::Ping {
            payload: payload(data, chunk),
        }),
        Staged::Pong(data) => Event::Pong(events::Pong {
            payload: payload(data, chunk),
        }),
        Staged::RejectData(data, body_finished) => Event::RejectData(events::RejectData {
            data: payload(data, chunk),
            body_finished,
        }),
    }
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
