//! The opening handshake (RFC 6455 §4) for clients and servers: the
//! `H11Handshake` of the Python library, over caller-owned buffers.
//!
//! A [`Handshake`] parses and writes HTTP/1.1 heads, checks them, negotiates
//! the subprotocol and the extensions, and ends by handing over a
//! [`Connection`] with [`Handshake::into_connection`].
//!
//! # Call order
//!
//! Client:
//!
//! 1. [`Handshake::client`] with a [`RandomSource`] for the nonce (kept for
//!    the connection's masking keys), optionally
//!    [`with_extensions`](Handshake::with_extensions);
//! 2. [`send`](Handshake::send) a [`Request`] and write the bytes out;
//! 3. feed received bytes to [`receive`](Handshake::receive) until it returns
//!    an event, discarding the bytes it reports as consumed each time:
//!    [`AcceptConnection`] (state [`Open`](ConnectionState::Open)), or
//!    [`RejectConnection`], followed by [`RejectData`] chunks of the body
//!    read with [`receive_body`](Handshake::receive_body);
//!    call [`receive_eof`](Handshake::receive_eof) when the peer closes the
//!    stream;
//! 4. [`into_connection`](Handshake::into_connection), and give the bytes
//!    left in the buffer after the consumed head to the connection.
//!
//! Server:
//!
//! 1. [`Handshake::server`], optionally with extensions;
//! 2. [`receive`](Handshake::receive) until a [`Request`] arrives (or use
//!    [`initiate_upgrade_connection`](Handshake::initiate_upgrade_connection)
//!    for a request parsed elsewhere);
//! 3. [`send`](Handshake::send) [`AcceptConnection`], or [`RejectConnection`]
//!    and, if it has a body, [`RejectData`] chunks;
//! 4. after accepting, [`into_connection`](Handshake::into_connection); bytes
//!    the client sent after its request are still in the buffer, after the
//!    consumed head.
//!
//! ```
//! use wsproto_core::event::{AcceptConnection, Event, Request};
//! use wsproto_core::handshake::{Handshake, HandshakeConfig, Tokens};
//! use wsproto_core::ConnectionState;
//!
//! let rng = |dest: &mut [u8]| dest.fill(7); // use a real generator
//! let mut client = Handshake::client(HandshakeConfig::default(), rng);
//! let mut server = Handshake::server(HandshakeConfig::default());
//!
//! let request = Request {
//!     host: "example.com",
//!     target: "/chat",
//!     subprotocols: Tokens::new(&["chat"]),
//!     ..Request::default()
//! };
//! let mut wire = [0u8; 512];
//! let n = client.send(&request.into(), &mut wire)?;
//!
//! // The server reads the request; here a frame follows it in the buffer.
//! let mut inbox = wire[..n].to_vec();
//! inbox.extend_from_slice(b"\x81\x85frame");
//! let received = server.receive(&mut inbox);
//! let consumed = received.consumed;
//! match received.event {
//!     Ok(Some(Event::Request(request))) => assert!(request.subprotocols.contains("chat")),
//!     other => panic!("{other:?}"),
//! }
//! inbox.drain(..consumed);
//! let accept = AcceptConnection { subprotocol: Some("chat"), ..AcceptConnection::default() };
//! let n = server.send(&accept.into(), &mut wire)?;
//! let upgraded = server.into_connection()?;
//! assert_eq!(upgraded.subprotocol(), Some("chat"));
//! assert_eq!(inbox, b"\x81\x85frame"); // for `upgraded.connection.receive`
//!
//! // The client reads the 101.
//! let mut inbox = wire[..n].to_vec();
//! let received = client.receive(&mut inbox);
//! assert!(matches!(received.event, Ok(Some(Event::AcceptConnection(_)))));
//! assert_eq!(received.consumed, n);
//! assert_eq!(client.state(), ConnectionState::Open);
//! let upgraded = client.into_connection()?;
//! assert_eq!(upgraded.connection.state(), ConnectionState::Open);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors and hints
//!
//! A server that receives a bad request gets a [`RemoteProtocolError`] whose
//! [`event_hint`](RemoteProtocolError::event_hint) is the refusal to send:
//! 400 for a malformed request, 426 (with `Sec-WebSocket-Version: 13`) for a
//! missing or unsupported `Sec-WebSocket-Version` (RFC 6455 §4.4), 431 for a
//! head over the size or header-count limit. The server may then send that
//! [`RejectConnection`]; nothing else.
//!
//! A client that receives a bad response has nothing to send: the WebSocket
//! connection was never established, so no close frame can go out (RFC 6455
//! §4.1, "_Fail the WebSocket Connection_"). Its errors carry close code 1002
//! ([`CloseCode::PROTOCOL_ERROR`](crate::CloseCode::PROTOCOL_ERROR)) to report
//! locally; the caller closes the transport.
//!
//! # Limits
//!
//! [`HandshakeConfig`] bounds the head size, the header count and the size of
//! a refusal body read by a client. Without a heap the handshake keeps what
//! outlives the caller's buffer in fixed storage: up to
//! [`SUBPROTOCOL_CAPACITY`] bytes of offered subprotocols (shared on a
//! client with the names of extensions offered by hand), and, for extension
//! sets that can accept offers, up to [`EXTENSIONS_CAPACITY`] bytes of
//! negotiated extensions ([`ExtensionSet::Accepted`]). Nothing of a received
//! head is kept: its headers are read again from the caller's buffer. On
//! 32-bit targets a [`Handshake`] without extensions takes at most 384 bytes
//! (checked at compile time).
//!
//! [`Connection`]: crate::Connection
//! [`RandomSource`]: crate::RandomSource
//! [`Request`]: crate::event::Request
//! [`AcceptConnection`]: crate::event::AcceptConnection
//! [`RejectConnection`]: crate::event::RejectConnection
//! [`RejectData`]: crate::event::RejectData
//! [`RemoteProtocolError`]: crate::RemoteProtocolError

mod body;
mod client;
mod extensions;
mod head;
mod server;
mod util;

use core::fmt;

pub use crate::fields::{Headers, HeadersIter, Tokens, TokensIter};
pub use extensions::{
    client_extensions_handshake, server_extensions_handshake, ExtensionSet, NoExtensions,
};
pub use util::{
    generate_accept_token, generate_nonce, split_comma_header, WEBSOCKET_GUID, WEBSOCKET_VERSION,
};

use self::body::{BodyDecoder, BodyEncoder, BodyLimits};
use crate::connection::{Config, Connection, ConnectionState, Role};
use crate::error::{LocalProtocolError, RemoteProtocolError, SendError};
use crate::event::{Event, RejectData};
use crate::fields::{Names, Source};
use crate::random::{NoRandom, RandomSource};

/// The result of one call to [`Handshake::receive`].
#[derive(Debug)]
#[must_use = "the consumed bytes must be discarded and the event handled"]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Received<'a> {
    /// How many bytes at the front of the buffer were used. Drop them once
    /// the event is handled; keep the rest at the front of the buffer.
    pub consumed: usize,
    /// The next event, `Ok(None)` when more input is needed, or the peer's
    /// violation (whose [`event_hint`](RemoteProtocolError::event_hint) is
    /// the refusal to send).
    pub event: Result<Option<Event<'a>>, RemoteProtocolError>,
}

/// The most headers a head may have, whatever the configuration says.
///
/// ```
/// use wsproto_core::handshake::{HandshakeConfig, MAX_HEADERS};
/// assert!(HandshakeConfig::default().max_headers <= MAX_HEADERS);
/// ```
pub const MAX_HEADERS: usize = 64;

/// The largest head the handshake parses, whatever the configuration says.
///
/// ```
/// use wsproto_core::handshake::{HandshakeConfig, MAX_HEAD_SIZE};
/// assert!(HandshakeConfig::default().max_head_size <= MAX_HEAD_SIZE);
/// ```
pub const MAX_HEAD_SIZE: usize = u16::MAX as usize;

/// Bytes of storage for the subprotocols a client offers (their names plus a
/// separator each). A server refuses larger offers with 431; a client cannot
/// send them. A client keeps the names of the extensions it offers by hand
/// in the same storage, after the subprotocols.
///
/// ```
/// use wsproto_core::event::Request;
/// use wsproto_core::handshake::{Handshake, HandshakeConfig, Tokens, SUBPROTOCOL_CAPACITY};
/// let long = "p".repeat(SUBPROTOCOL_CAPACITY + 1);
/// let offers = [long.as_str()];
/// let request = Request { host: "h", target: "/", subprotocols: Tokens::new(&offers), ..Request::default() };
/// let mut hs = Handshake::client(HandshakeConfig::default(), |d: &mut [u8]| d.fill(1));
/// assert!(hs.send(&request.into(), &mut [0; 1024]).is_err());
/// ```
pub const SUBPROTOCOL_CAPACITY: usize = 256;

/// Bytes of storage for the `Sec-WebSocket-Extensions` value a server sends
/// (what its extensions accepted), in the [`ExtensionSet::Accepted`] of the
/// sets this crate implements (none for [`NoExtensions`], which accepts
/// nothing). Beyond it the request is refused with 500.
///
/// ```
/// assert_eq!(wsproto_core::handshake::EXTENSIONS_CAPACITY, 256);
/// ```
pub const EXTENSIONS_CAPACITY: usize = 256;

/// The most bytes the names of the extensions a client offers by hand (in
/// [`Request::extensions`](crate::event::Request::extensions)) may take, out
/// of the [`SUBPROTOCOL_CAPACITY`] they share with the subprotocols.
///
/// ```
/// assert_eq!(wsproto_core::handshake::RAW_OFFER_CAPACITY, 128);
/// ```
pub const RAW_OFFER_CAPACITY: usize = 128;

/// Limits and settings of a [`Handshake`].
///
/// ```
/// use wsproto_core::handshake::HandshakeConfig;
/// let mut config = HandshakeConfig::default();
/// config.max_head_size = 4096;
/// assert_eq!(config.max_headers, 32);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HandshakeConfig {
    /// The configuration of the connection handed over after the handshake.
    pub connection: Config,
    /// The largest head accepted, in bytes (default 8 KiB; at most
    /// [`MAX_HEAD_SIZE`]). A head still incomplete at this size is refused:
    /// with 431 by a server, as a failed handshake by a client.
    pub max_head_size: usize,
    /// The most headers accepted in a head (default 32; at most
    /// [`MAX_HEADERS`]). More are refused like an oversized head.
    pub max_headers: usize,
    /// The largest refusal body a client reads (default 64 KiB); beyond it
    /// the handshake fails. Chunk-size lines are limited to 1 KiB.
    pub max_reject_body_size: u64,
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        Self {
            connection: Config::default(),
            max_head_size: 8 * 1024,
            max_headers: 32,
            max_reject_body_size: 64 * 1024,
        }
    }
}

impl HandshakeConfig {
    fn head_limit(&self) -> usize {
        self.max_head_size.min(MAX_HEAD_SIZE)
    }

    fn header_limit(&self) -> usize {
        self.max_headers.min(MAX_HEADERS)
    }

    fn body_limits(&self) -> BodyLimits {
        BodyLimits {
            max_body: self.max_reject_body_size,
            max_head: self.head_limit(),
            max_headers: self.header_limit(),
        }
    }
}

mod sealed {
    #[allow(unreachable_pub)]
    pub trait Sealed {}
}

/// The role of a [`Handshake`], as a type: [`Client`] (which owns the random
/// source) or [`Server`]. Sealed.
///
/// ```
/// use wsproto_core::handshake::{Handshake, Side};
/// use wsproto_core::Role;
/// fn describe<S: Side, E>(hs: &Handshake<S, E>) -> &'static str
/// where
///     E: wsproto_core::handshake::ExtensionSet,
/// {
///     match hs.role() {
///         Role::Client => "client",
///         Role::Server => "server",
///     }
/// }
/// let hs = Handshake::server(Default::default());
/// assert_eq!(describe(&hs), "server");
/// ```
pub trait Side: sealed::Sealed {
    /// The random source of the connection handed over.
    type Rng: RandomSource;

    /// The role.
    fn role(&self) -> Role;

    /// The random source, for a client.
    #[doc(hidden)]
    fn rng(&mut self) -> Option<&mut dyn RandomSource>;

    /// The connection for this role.
    #[doc(hidden)]
    fn into_connection(self, config: Config) -> Connection<Self::Rng>;
}

/// The client role: holds the random source for the nonce and, after the
/// handshake, the connection's masking keys.
///
/// ```
/// use wsproto_core::handshake::{Client, Handshake, HandshakeConfig, Side};
/// use wsproto_core::Role;
/// let hs: Handshake<Client<fn(&mut [u8])>> =
///     Handshake::client(HandshakeConfig::default(), |d: &mut [u8]| d.fill(1));
/// assert_eq!(hs.role(), Role::Client);
/// ```
pub struct Client<R>(R);

impl<R> fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Client")
    }
}

/// The server role.
///
/// ```
/// use wsproto_core::handshake::{Handshake, HandshakeConfig, Server};
/// use wsproto_core::Role;
/// let hs: Handshake<Server> = Handshake::server(HandshakeConfig::default());
/// assert_eq!(hs.role(), Role::Server);
/// ```
#[derive(Debug)]
pub struct Server(());

impl<R> sealed::Sealed for Client<R> {}
impl sealed::Sealed for Server {}

impl<R: RandomSource> Side for Client<R> {
    type Rng = R;

    fn role(&self) -> Role {
        Role::Client
    }

    fn rng(&mut self) -> Option<&mut dyn RandomSource> {
        Some(&mut self.0)
    }

    fn into_connection(self, config: Config) -> Connection<R> {
        Connection::client(config, self.0)
    }
}

impl Side for Server {
    type Rng = NoRandom;

    fn role(&self) -> Role {
        Role::Server
    }

    fn rng(&mut self) -> Option<&mut dyn RandomSource> {
        None
    }

    fn into_connection(self, config: Config) -> Connection<NoRandom> {
        Connection::server(config)
    }
}

/// The opening handshake of one connection, for a client or a server (`S` is
/// [`Client`] or [`Server`]), negotiating the extensions `E`.
///
/// See the [module documentation](self) for the call order. Events returned
/// by [`receive`](Self::receive) borrow the caller's buffer and the
/// handshake; discard the consumed bytes only once the event is handled.
/// Anything kept from a received [`Request`](crate::event::Request) for the
/// answer must not borrow it: choose the subprotocol with
/// [`Tokens::select`], which returns the server's own string.
///
/// ```
/// use wsproto_core::event::{AcceptConnection, Event};
/// use wsproto_core::handshake::{Handshake, HandshakeConfig};
///
/// let mut hs = Handshake::server(HandshakeConfig::default());
/// let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v1, v2\r\n\r\n".to_vec();
/// let received = hs.receive(&mut buf);
/// let subprotocol = match received.event? {
///     Some(Event::Request(request)) => request.subprotocols.select(&["v2", "v1"]),
///     _ => None,
/// };
/// let accept = AcceptConnection { subprotocol, ..AcceptConnection::default() };
/// let mut out = [0u8; 256];
/// let n = hs.send(&accept.into(), &mut out)?;
/// assert!(out[..n].ends_with(b"Sec-WebSocket-Protocol: v2\r\n\r\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Handshake<S = Server, E: ExtensionSet = NoExtensions> {
    side: S,
    extensions: E,
    config: HandshakeConfig,
    phase: Phase,
    negotiated: Negotiated,
    /// Server: the `Sec-WebSocket-Extensions` value to send, in storage the
    /// extension set chooses (none for [`NoExtensions`]).
    accepted_extensions: E::Accepted,
}

/// What the handshake keeps from heads that the caller's buffer no longer
/// holds.
#[derive(Clone, Debug)]
struct Negotiated {
    /// The `Sec-WebSocket-Accept` the client expects, or the server sends,
    /// once a key is known. (Nothing to zero before then: a new handshake
    /// writes only the discriminant.)
    accept: Option<[u8; 28]>,
    /// The subprotocols offered, comma-separated, then (client) the names of
    /// the extensions offered by hand, comma-separated.
    names: heapless::String<SUBPROTOCOL_CAPACITY>,
    /// Where the subprotocols end in `names`.
    protocols_end: u16,
    /// The subprotocol agreed on, as a range of `names`.
    chosen: Option<(u16, u16)>,
}

impl Negotiated {
    const fn new() -> Self {
        Self {
            accept: None,
            names: heapless::String::new(),
            protocols_end: 0,
            chosen: None,
        }
    }

    /// The subprotocols offered, comma-separated.
    fn protocols(&self) -> &str {
        self.names
            .get(..usize::from(self.protocols_end))
            .unwrap_or_default()
    }

    /// The names of the extensions offered by hand, comma-separated.
    fn raw_offers(&self) -> &str {
        let start = usize::from(self.protocols_end);
        self.names.get(start..).unwrap_or_default()
    }

    /// The range of `protocol` in the offered list.
    fn find_protocol(&self, protocol: &str) -> Option<(u16, u16)> {
        let list = self.protocols().as_bytes();
        let mut start = 0;
        while start < list.len() {
            let rest = list.get(start..).unwrap_or_default();
            let end = start + rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
            if list.get(start..end) == Some(protocol.as_bytes()) {
                return Some((u16::try_from(start).ok()?, u16::try_from(end).ok()?));
            }
            start = end + 1;
        }
        None
    }

    fn subprotocol(&self) -> Option<&str> {
        let (start, end) = self.chosen?;
        self.names.get(usize::from(start)..usize::from(end))
    }
}

/// Appends `name` to the comma-separated list in `names` that starts at
/// `list_start`; false if it does not fit. Kept out of line: it has three
/// callers.
#[inline(never)]
fn push_name<const N: usize>(
    names: &mut heapless::String<N>,
    list_start: usize,
    name: &str,
) -> bool {
    (names.len() == list_start || names.push(',').is_ok()) && names.push_str(name).is_ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Client: nothing sent yet. Server: waiting for the request.
    Idle,
    /// Client: the request is sent; waiting for the response.
    AwaitingResponse,
    /// Server: a valid request arrived; the caller accepts or refuses it.
    RequestReceived,
    /// The handshake succeeded.
    Open,
    /// Client: reading the body of a refusal.
    ReceivingBody(BodyDecoder),
    /// Server: sending the body of a refusal.
    SendingBody(BodyEncoder),
    /// The peer broke the protocol. A server may still send a refusal.
    Failed(RemoteProtocolError),
    /// The handshake ended without a connection.
    Closed,
}

impl Handshake<Server> {
    /// A server handshake, waiting for the client's request.
    ///
    /// ```
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// use wsproto_core::ConnectionState;
    /// let hs = Handshake::server(HandshakeConfig::default());
    /// assert_eq!(hs.state(), ConnectionState::Connecting);
    /// ```
    #[must_use]
    pub fn server(config: HandshakeConfig) -> Self {
        Self::new(Server(()), config)
    }
}

impl<R: RandomSource> Handshake<Client<R>> {
    /// A client handshake; `rng` makes the nonce, then the connection's
    /// masking keys, so it must be cryptographically strong (RFC 6455 §10.3).
    ///
    /// ```
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// use wsproto_core::{ConnectionState, Role};
    /// let hs = Handshake::client(HandshakeConfig::default(), |d: &mut [u8]| d.fill(0x55));
    /// assert_eq!((hs.role(), hs.state()), (Role::Client, ConnectionState::Connecting));
    /// ```
    #[must_use]
    pub fn client(config: HandshakeConfig, rng: R) -> Self {
        Self::new(Client(rng), config)
    }
}

impl<S: Side> Handshake<S> {
    fn new(side: S, config: HandshakeConfig) -> Self {
        Self {
            side,
            extensions: NoExtensions,
            config,
            phase: Phase::Idle,
            negotiated: Negotiated::new(),
            accepted_extensions: Default::default(),
        }
    }
}

impl<S: Side, E: ExtensionSet> Handshake<S, E> {
    /// The same handshake negotiating `extensions` instead. Call it before the
    /// handshake starts: a client offers them in its request, a server
    /// accepts offers with them when the request arrives.
    ///
    /// ```
    /// use wsproto_core::extension::Extension;
    /// use wsproto_core::handshake::{ExtensionSet, Handshake, HandshakeConfig};
    /// // Any `ExtensionSet`: an `Option`, an array, a slice of trait objects...
    /// let set: &mut [&mut dyn Extension] = &mut [];
    /// let hs = Handshake::server(HandshakeConfig::default()).with_extensions(set);
    /// assert!(hs.extensions().is_empty());
    /// ```
    #[must_use]
    pub fn with_extensions<E2: ExtensionSet>(self, extensions: E2) -> Handshake<S, E2> {
        Handshake {
            side: self.side,
            extensions,
            config: self.config,
            phase: self.phase,
            negotiated: self.negotiated,
            accepted_extensions: Default::default(),
        }
    }

    /// The role.
    ///
    /// ```
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// use wsproto_core::Role;
    /// assert_eq!(Handshake::server(HandshakeConfig::default()).role(), Role::Server);
    /// ```
    #[must_use]
    pub fn role(&self) -> Role {
        self.side.role()
    }

    /// The state, as in Python's `H11Handshake`: `Connecting` until the
    /// handshake succeeds (`Open`) or a refusal is sent or received
    /// (`Rejecting` while its body is under way, then `Closed`). A client
    /// whose handshake failed is `Closed`; a server that received a bad
    /// request stays `Connecting` until it sends its refusal.
    ///
    /// ```
    /// use wsproto_core::event::{Event, RejectConnection};
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// use wsproto_core::ConnectionState;
    /// let mut hs = Handshake::server(HandshakeConfig::default());
    /// let reject = RejectConnection { status_code: 403, ..RejectConnection::default() };
    /// hs.send(&reject.into(), &mut [0u8; 64])?;
    /// assert_eq!(hs.state(), ConnectionState::Closed);
    /// # Ok::<(), wsproto_core::SendError>(())
    /// ```
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        match self.phase {
            Phase::Idle | Phase::AwaitingResponse | Phase::RequestReceived => {
                ConnectionState::Connecting
            }
            Phase::Open => ConnectionState::Open,
            Phase::ReceivingBody(_) | Phase::SendingBody(_) => ConnectionState::Rejecting,
            Phase::Failed(_) if self.role() == Role::Server => ConnectionState::Connecting,
            Phase::Failed(_) | Phase::Closed => ConnectionState::Closed,
        }
    }

    /// The configuration.
    ///
    /// ```
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// let hs = Handshake::server(HandshakeConfig::default());
    /// assert_eq!(hs.config().max_head_size, 8192);
    /// ```
    #[must_use]
    pub fn config(&self) -> &HandshakeConfig {
        &self.config
    }

    /// The extensions, to see what was negotiated.
    ///
    /// ```
    /// use wsproto_core::handshake::{ExtensionSet, Handshake, HandshakeConfig};
    /// let hs = Handshake::server(HandshakeConfig::default());
    /// assert!(hs.extensions().is_empty());
    /// ```
    #[must_use]
    pub fn extensions(&self) -> &E {
        &self.extensions
    }

    /// The extensions, mutably.
    ///
    /// ```
    /// use wsproto_core::extension::Extension;
    /// use wsproto_core::handshake::{ExtensionSet, Handshake, HandshakeConfig};
    /// let none: &mut [&mut dyn Extension] = &mut [];
    /// let mut hs = Handshake::server(HandshakeConfig::default()).with_extensions(none);
    /// assert_eq!(hs.extensions_mut().len(), 0);
    /// ```
    pub fn extensions_mut(&mut self) -> &mut E {
        &mut self.extensions
    }

    /// The subprotocol agreed on, once the handshake succeeded.
    ///
    /// ```
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// assert_eq!(Handshake::server(HandshakeConfig::default()).subprotocol(), None);
    /// ```
    #[must_use]
    pub fn subprotocol(&self) -> Option<&str> {
        match self.phase {
            Phase::Open => self.negotiated.subprotocol(),
            _ => None,
        }
    }

    /// Parse the next event from the front of `buf`.
    ///
    /// Returns how many bytes at the front of `buf` were used (discard them
    /// once the event is handled) and `Ok(Some(event))`, `Ok(None)` when more
    /// bytes are needed (a partial head consumes nothing; feed it again with
    /// more bytes appended), or the peer's violation.
    ///
    /// A head is consumed up to its final empty line and no further: bytes
    /// the peer sent right after it (frames pipelined behind a 101, or behind
    /// a request) stay in `buf` for the [`Connection`]. Once the handshake is
    /// open, `receive` consumes nothing.
    ///
    /// A client reads the body of a refusal (state
    /// [`Rejecting`](ConnectionState::Rejecting) after a
    /// [`RejectConnection`](crate::event::RejectConnection) with `has_body`)
    /// with [`receive_body`](Self::receive_body), not with `receive`, which
    /// consumes nothing then: a client that never reads refusal bodies links
    /// no body decoder.
    ///
    /// ```
    /// use wsproto_core::event::Event;
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// let mut hs = Handshake::server(HandshakeConfig::default());
    /// let mut buf = b"GET /chat HTTP/1.1\r\nHost: example.com\r\n".to_vec();
    /// let r = hs.receive(&mut buf);
    /// assert_eq!((r.consumed, r.event), (0, Ok(None)));
    /// buf.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    /// let len = buf.len();
    /// let r = hs.receive(&mut buf);
    /// assert_eq!(r.consumed, len);
    /// match r.event {
    ///     Ok(Some(Event::Request(request))) => assert_eq!(request.target, "/chat"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    ///
    /// [`Connection`]: crate::Connection
    pub fn receive<'a>(&'a mut self, buf: &'a mut [u8]) -> Received<'a> {
        let buf: &'a [u8] = buf;
        match self.phase {
            Phase::Idle if self.role() == Role::Server => self.receive_request(buf),
            Phase::AwaitingResponse if self.role() == Role::Client => self.receive_response(buf),
            Phase::Failed(err) => Received {
                consumed: 0,
                event: Err(err),
            },
            _ => Received {
                consumed: 0,
                event: Ok(None),
            },
        }
    }

    /// Client: parse the next chunk of a refusal body from the front of `buf`,
    /// once [`receive`](Self::receive) returned a
    /// [`RejectConnection`](crate::event::RejectConnection) with `has_body`
    /// (state [`Rejecting`](ConnectionState::Rejecting)).
    ///
    /// Returns the bytes used and a [`RejectData`] chunk borrowing `buf`
    /// (the last one has `body_finished`, after which the state is `Closed`),
    /// `Ok(None)` when more bytes are needed, or the peer's violation. A body
    /// delimited by the end of the stream ends with
    /// [`receive_eof`](Self::receive_eof). In any other state nothing is
    /// consumed and there is no event (a failed handshake repeats its error).
    ///
    /// ```
    /// use wsproto_core::event::{Event, Request};
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// use wsproto_core::ConnectionState;
    /// let mut hs = Handshake::client(HandshakeConfig::default(), |d: &mut [u8]| d.fill(1));
    /// hs.send(&Request { host: "h", target: "/", ..Request::default() }.into(), &mut [0; 256])?;
    /// let mut buf = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno".to_vec();
    /// let r = hs.receive(&mut buf);
    /// assert!(matches!(r.event, Ok(Some(Event::RejectConnection(ref r))) if r.has_body));
    /// let consumed = r.consumed;
    /// buf.drain(..consumed);
    /// assert_eq!(hs.state(), ConnectionState::Rejecting);
    /// let r = hs.receive_body(&mut buf);
    /// assert!(matches!(r.event, Ok(Some(Event::RejectData(d))) if d.data == b"no" && d.body_finished));
    /// assert_eq!(hs.state(), ConnectionState::Closed);
    /// # Ok::<(), wsproto_core::SendError>(())
    /// ```
    pub fn receive_body<'a>(&'a mut self, buf: &'a mut [u8]) -> Received<'a> {
        let buf: &'a [u8] = buf;
        match self.phase {
            Phase::ReceivingBody(mut decoder) => {
                let (consumed, event) = decoder.decode(buf, self.config.body_limits());
                match event {
                    Err(err) => self.fail(err),
                    Ok(event) => {
                        self.phase = if decoder.is_done() {
                            Phase::Closed
                        } else {
                            Phase::ReceivingBody(decoder)
                        };
                        Received {
                            consumed,
                            event: Ok(event.map(Event::RejectData)),
                        }
                    }
                }
            }
            Phase::Failed(err) => Received {
                consumed: 0,
                event: Err(err),
            },
            _ => Received {
                consumed: 0,
                event: Ok(None),
            },
        }
    }

    /// The peer closed the stream (a read returned zero bytes).
    ///
    /// Finishes a refusal body that runs to the end of the stream with a last
    /// empty [`RejectData`]. A client still waiting for the response, or in
    /// the middle of a body framed otherwise, fails. Otherwise the handshake
    /// just ends (`Closed`); once it is open, end-of-stream is the
    /// connection's business and nothing changes here.
    ///
    /// ```
    /// use wsproto_core::event::{Event, Request};
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// let mut hs = Handshake::client(HandshakeConfig::default(), |d: &mut [u8]| d.fill(1));
    /// let request = Request { host: "example.com", target: "/", ..Request::default() };
    /// hs.send(&request.into(), &mut [0u8; 256])?;
    /// let mut buf = b"HTTP/1.1 503 Service Unavailable\r\n\r\nbusy".to_vec();
    /// let r = hs.receive(&mut buf);
    /// assert!(matches!(r.event, Ok(Some(Event::RejectConnection(_)))));
    /// let consumed = r.consumed;
    /// buf.drain(..consumed);
    /// let r = hs.receive_body(&mut buf);
    /// assert!(matches!(r.event, Ok(Some(Event::RejectData(ref d))) if d.data == b"busy"));
    /// let end = hs.receive_eof()?;
    /// assert!(matches!(end, Some(Event::RejectData(d)) if d.body_finished));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The stream ended before the handshake could finish.
    pub fn receive_eof(&mut self) -> Result<Option<Event<'static>>, RemoteProtocolError> {
        match self.phase {
            Phase::Open | Phase::Closed => Ok(None),
            Phase::Failed(err) => Err(err),
            Phase::AwaitingResponse => {
                let err =
                    RemoteProtocolError::protocol("the stream ended before the handshake response");
                self.phase = Phase::Failed(err);
                Err(err)
            }
            Phase::ReceivingBody(decoder) if decoder.framing == body::Framing::UntilClose => {
                self.phase = Phase::Closed;
                Ok(Some(Event::RejectData(RejectData {
                    data: &[],
                    body_finished: true,
                })))
            }
            Phase::ReceivingBody(_) => {
                let err = RemoteProtocolError::protocol(
                    "the stream ended in the middle of the refusal body",
                );
                self.phase = Phase::Failed(err);
                Err(err)
            }
            Phase::Idle | Phase::RequestReceived | Phase::SendingBody(_) => {
                self.phase = Phase::Closed;
                Ok(None)
            }
        }
    }

    /// Write `event` into `out` and return the number of bytes written.
    ///
    /// A client sends a [`Request`](crate::event::Request); a server sends
    /// [`AcceptConnection`](crate::event::AcceptConnection) or
    /// [`RejectConnection`](crate::event::RejectConnection), then
    /// [`RejectData`] if the refusal has a body.
    ///
    /// A refusal with `has_body: false` gets `Content-Length: 0`. With a body,
    /// a `Content-Length` among its headers frames it (the chunks must add up
    /// to it exactly); otherwise it is sent chunked, and
    /// `Transfer-Encoding: chunked` is added unless present.
    ///
    /// ```
    /// use wsproto_core::event::{Event, RejectConnection, RejectData};
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// let mut hs = Handshake::server(HandshakeConfig::default());
    /// let mut out = [0u8; 128];
    /// let reject = RejectConnection { status_code: 404, has_body: true, ..Default::default() };
    /// let n = hs.send(&reject.into(), &mut out)?;
    /// assert_eq!(&out[..n], b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n");
    /// let data = RejectData { data: b"nope", body_finished: true };
    /// let n = hs.send(&data.into(), &mut out)?;
    /// assert_eq!(&out[..n], b"4\r\nnope\r\n0\r\n\r\n");
    /// # Ok::<(), wsproto_core::SendError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`SendError::BufferTooSmall`] with the size needed if `out` is too
    /// short: nothing is written and the state does not change.
    /// [`SendError::Local`] if the event cannot be sent now, or is malformed
    /// (a header value with CR or LF, a subprotocol the client did not
    /// offer...).
    pub fn send(&mut self, event: &Event<'_>, out: &mut [u8]) -> Result<usize, SendError> {
        match (self.role(), event) {
            (Role::Client, Event::Request(request)) => self.send_request(request, out),
            (Role::Server, Event::AcceptConnection(accept)) => self.send_accept(accept, out),
            (Role::Server, Event::RejectConnection(reject)) => self.send_reject(reject, out),
            (Role::Server, Event::RejectData(data)) => self.send_reject_data(data, out),
            (Role::Client, _) => Err(LocalProtocolError::new(
                "a client handshake only sends a Request; use the connection after it",
            )
            .into()),
            (Role::Server, _) => Err(LocalProtocolError::new(
                "a server handshake only sends AcceptConnection, RejectConnection and RejectData",
            )
            .into()),
        }
    }

    /// Append the bytes of `event` to `out`.
    ///
    /// ```
    /// use wsproto_core::event::{Event, Request};
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// let mut hs = Handshake::client(HandshakeConfig::default(), |d: &mut [u8]| d.fill(1));
    /// let mut out = Vec::new();
    /// hs.send_into(&Request { host: "h", target: "/", ..Request::default() }.into(), &mut out)?;
    /// assert!(out.starts_with(b"GET / HTTP/1.1\r\nHost: h\r\n"));
    /// # Ok::<(), wsproto_core::LocalProtocolError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The event cannot be sent now; `out` is unchanged.
    #[cfg(feature = "alloc")]
    pub fn send_into(
        &mut self,
        event: &Event<'_>,
        out: &mut alloc::vec::Vec<u8>,
    ) -> Result<(), LocalProtocolError> {
        let start = out.len();
        let required = match self.send(event, &mut []) {
            Ok(_) => return Ok(()),
            Err(SendError::BufferTooSmall(short)) => short.required,
            Err(SendError::Local(err)) => return Err(err),
        };
        out.resize(start + required, 0);
        let tail = out.get_mut(start..).unwrap_or_default();
        match self.send(event, tail) {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(err) => {
                out.truncate(start);
                Err(match err {
                    SendError::Local(err) => err,
                    _ => LocalProtocolError::new("the event changed size between two writes"),
                })
            }
        }
    }

    /// The bytes of `event`, in a new vector.
    ///
    /// ```
    /// use wsproto_core::event::{Event, RejectConnection};
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// let mut hs = Handshake::server(HandshakeConfig::default());
    /// let bytes = hs.send_vec(&RejectConnection::default().into())?;
    /// assert_eq!(bytes, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    /// # Ok::<(), wsproto_core::LocalProtocolError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The event cannot be sent now.
    #[cfg(feature = "alloc")]
    pub fn send_vec(
        &mut self,
        event: &Event<'_>,
    ) -> Result<alloc::vec::Vec<u8>, LocalProtocolError> {
        let mut out = alloc::vec::Vec::new();
        self.send_into(event, &mut out)?;
        Ok(out)
    }

    /// All headers of the last head received, read from `head`: the bytes
    /// that [`receive`](Self::receive) reported as consumed when it returned
    /// the head's event (`&buf[..consumed]`), before they are discarded.
    ///
    /// The events' own header lists read the same bytes; this is the way to
    /// read them again later, for instance after the event is gone. The head
    /// is read again, nothing of it is stored: given other bytes, the list
    /// holds whatever header lines they have, or nothing.
    ///
    /// ```
    /// use wsproto_core::event::{Event, Request};
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// let mut hs = Handshake::client(HandshakeConfig::default(), |d: &mut [u8]| d.fill(1));
    /// hs.send(&Request { host: "h", target: "/", ..Request::default() }.into(), &mut [0; 256])?;
    /// let mut buf = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\n\r\n".to_vec();
    /// let consumed = hs.receive(&mut buf).consumed;
    /// assert_eq!(hs.received_headers(&buf[..consumed]).get_str("retry-after"), Some("30"));
    /// # Ok::<(), wsproto_core::SendError>(())
    /// ```
    #[must_use]
    pub fn received_headers<'b>(&'b self, head: &'b [u8]) -> Headers<'b> {
        Headers::except(Source::Parsed { head }, Names::Nothing)
    }

    /// Hand over to the post-handshake [`Connection`], once the handshake
    /// succeeded (state `Open`): a client connection keeps the random source,
    /// and the negotiated extensions are applied to it, once, through
    /// [`ExtensionSet::apply`] (permessage-deflate among them). The result
    /// also carries the extensions, negotiated, and the subprotocol.
    ///
    /// The bytes that followed the head in the caller's buffer (after the
    /// `consumed` prefix reported with the `AcceptConnection` or `Request`
    /// event) belong to the connection: pass them to
    /// [`Connection::receive`](crate::Connection::receive) first.
    ///
    /// ```
    /// use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// let hs = Handshake::server(HandshakeConfig::default());
    /// assert!(hs.into_connection().is_err()); // no request yet
    /// ```
    ///
    /// # Errors
    ///
    /// The handshake has not succeeded.
    ///
    /// [`Connection`]: crate::Connection
    pub fn into_connection(self) -> Result<Upgraded<S::Rng, E>, LocalProtocolError> {
        if self.phase != Phase::Open {
            return Err(LocalProtocolError::new(
                "the handshake has not succeeded: no connection to hand over",
            ));
        }
        // Taken apart first, so the pieces move and the whole does not.
        let Self {
            side,
            extensions,
            config,
            negotiated,
            ..
        } = self;
        Ok(Upgraded {
            connection: extensions.apply(side.into_connection(config.connection)),
            extensions,
            negotiated,
        })
    }

    /// Record a violation by the peer and report it.
    fn fail<'a>(&mut self, err: RemoteProtocolError) -> Received<'a> {
        self.phase = Phase::Failed(err);
        Received {
            consumed: 0,
            event: Err(err),
        }
    }
}

impl<S: Side, E: ExtensionSet> fmt::Debug for Handshake<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.side.role())
            .field("phase", &self.phase)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Checks headers the caller wants sent: names are tokens, values hold no CR,
/// LF or other control character that could end the header early.
fn check_headers(headers: Headers<'_>) -> Result<(), LocalProtocolError> {
    let valid = headers
        .iter()
        .all(|h| crate::extension::is_token(h.name) && util::is_field_value(h.value));
    if valid {
        Ok(())
    } else {
        Err(LocalProtocolError::new(
            "a header name is not a token, or its value holds a control character",
        ))
    }
}

/// A finished handshake: the connection, the extensions after negotiation,
/// and the subprotocol agreed on.
///
/// The connection already has the negotiated extensions applied
/// ([`ExtensionSet::apply`]): with permessage-deflate agreed, it compresses
/// and inflates without further setup.
///
/// ```
/// # use wsproto_core::event::{AcceptConnection, Event};
/// # use wsproto_core::handshake::{Handshake, HandshakeConfig};
/// # let mut hs = Handshake::server(HandshakeConfig::default());
/// # let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
/// #   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec();
/// # let _ = hs.receive(&mut buf).event?;
/// # hs.send(&AcceptConnection::default().into(), &mut [0; 256])?;
/// let upgraded = hs.into_connection()?;
/// assert_eq!(upgraded.subprotocol(), None);
/// let connection = upgraded.connection;
/// # let _ = (connection, upgraded.extensions);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct Upgraded<R, E> {
    /// The connection, open, for the handshake's role.
    pub connection: Connection<R>,
    /// The extensions, negotiated: each says whether it is
    /// [`enabled`](crate::extension::Extension::enabled).
    pub extensions: E,
    /// The subprotocols offered and the one agreed on.
    negotiated: Negotiated,
}

impl<R, E> Upgraded<R, E> {
    /// The subprotocol agreed on, if any.
    ///
    /// ```
    /// # use wsproto_core::event::{AcceptConnection, Event};
    /// # use wsproto_core::handshake::{Handshake, HandshakeConfig};
    /// # let mut hs = Handshake::server(HandshakeConfig::default());
    /// # let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    /// #   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    /// #   Sec-WebSocket-Protocol: chat\r\n\r\n".to_vec();
    /// # let _ = hs.receive(&mut buf).event?;
    /// let accept = AcceptConnection { subprotocol: Some("chat"), ..AcceptConnection::default() };
    /// hs.send(&accept.into(), &mut [0; 256])?;
    /// assert_eq!(hs.into_connection()?.subprotocol(), Some("chat"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn subprotocol(&self) -> Option<&str> {
        self.negotiated.subprotocol()
    }
}

/// Why [`Handshake::initiate_upgrade_connection`] failed.
///
/// ```
/// use wsproto_core::event::Header;
/// use wsproto_core::error::ErrorHint;
/// use wsproto_core::handshake::{Handshake, HandshakeConfig, UpgradeError};
/// let mut hs = Handshake::server(HandshakeConfig::default());
/// let err = hs.initiate_upgrade_connection(&[Header::new("Host", b"h")], "/").unwrap_err();
/// match err {
///     UpgradeError::Remote(err) => {
///         assert_eq!(err.hint(), ErrorHint::Reject(400));
///         #[cfg(feature = "error-text")]
///         assert_eq!(err.message(), "the request has no `Upgrade: websocket` header");
///     }
///     other => panic!("{other}"),
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UpgradeError {
    /// The handshake already has a request.
    Local(LocalProtocolError),
    /// The request is not a valid opening handshake; send the
    /// [`event_hint`](RemoteProtocolError::event_hint).
    Remote(RemoteProtocolError),
}

impl From<LocalProtocolError> for UpgradeError {
    fn from(err: LocalProtocolError) -> Self {
        Self::Local(err)
    }
}

impl From<RemoteProtocolError> for UpgradeError {
    fn from(err: RemoteProtocolError) -> Self {
        Self::Remote(err)
    }
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(err) => err.fmt(f),
            Self::Remote(err) => err.fmt(f),
        }
    }
}

impl core::error::Error for UpgradeError {}

// The firmware budget: a handshake without extensions fits in 384 bytes on
// 32-bit targets (checked by the thumbv7em build).
#[cfg(target_pointer_width = "32")]
const _: () = {
    assert!(
        core::mem::size_of::<Handshake<Server>>() <= 384,
        "a server Handshake exceeds 384 bytes"
    );
    assert!(
        core::mem::size_of::<Handshake<Client<NoRandom>>>() <= 384,
        "a client Handshake exceeds 384 bytes"
    );
};

#[cfg(feature = "defmt")]
impl<R> defmt::Format for Client<R> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Client");
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Server {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Server");
    }
}

#[cfg(feature = "defmt")]
impl<S: Side, E: ExtensionSet> defmt::Format for Handshake<S, E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Handshake {{ role: {}, state: {} }}",
            self.role(),
            self.state()
        );
    }
}

#[cfg(feature = "defmt")]
impl<R, E> defmt::Format for Upgraded<R, E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Upgraded {{ connection: {} }}", self.connection);
    }
}
