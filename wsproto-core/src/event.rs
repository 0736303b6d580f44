//! Events: what the peer did (returned by [`Connection::receive`] and the
//! handshake) and what the caller wants to do (passed to `send`).
//!
//! [`Event`] holds every kind; [`ConnectionEvent`] only the kinds an open
//! connection receives, so the result of each receive call stays small (the
//! handshake's events carry three header lists each). It converts into
//! [`Event`] with `From`.
//!
//! Events borrow their data, from the caller's receive buffer when possible,
//! so receiving a message copies nothing. Names follow the Python library's
//! `wsproto.events`.
//!
//! [`Connection::receive`]: crate::Connection::receive

use crate::close::CloseCode;
pub use crate::fields::Header;
use crate::fields::{Headers, Tokens};

/// Everything that can happen on a WebSocket connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<'a> {
    /// A client asks to open a connection (received by servers, sent by
    /// clients).
    Request(Request<'a>),
    /// The server accepted the opening handshake.
    AcceptConnection(AcceptConnection<'a>),
    /// The server refused the opening handshake; a body may follow as
    /// [`RejectData`] events.
    RejectConnection(RejectConnection<'a>),
    /// Part of the body of a refusal.
    RejectData(RejectData<'a>),
    /// A close frame: the closing handshake began, or finished.
    CloseConnection(CloseConnection<'a>),
    /// A chunk of a text message.
    TextMessage(TextMessage<'a>),
    /// A chunk of a binary message.
    BytesMessage(BytesMessage<'a>),
    /// A ping frame, to be answered with its [`response`](Ping::response).
    Ping(Ping<'a>),
    /// A pong frame.
    Pong(Pong<'a>),
}

/// What the peer did on an open connection: the events
/// [`Connection::receive`](crate::Connection::receive) returns.
///
/// The same variants as in [`Event`], less the handshake's: a quarter of
/// its size. It converts into [`Event`] with `From`, and back with
/// `TryFrom` (which hands a handshake event back unchanged).
///
/// ```
/// use wsproto_core::event::{ConnectionEvent, Event, Ping, Request};
/// let ping = ConnectionEvent::Ping(Ping { payload: b"x" });
/// let event = Event::from(ping);
/// assert_eq!(ConnectionEvent::try_from(event), Ok(ping));
/// let request = Event::Request(Request::default());
/// assert_eq!(ConnectionEvent::try_from(request.clone()), Err(request));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConnectionEvent<'a> {
    /// A close frame: the closing handshake began, or finished; or the
    /// transport ended (code 1006).
    CloseConnection(CloseConnection<'a>),
    /// A chunk of a text message.
    TextMessage(TextMessage<'a>),
    /// A chunk of a binary message.
    BytesMessage(BytesMessage<'a>),
    /// A ping frame, to be answered with its [`response`](Ping::response).
    Ping(Ping<'a>),
    /// A pong frame.
    Pong(Pong<'a>),
}

impl<'a> From<ConnectionEvent<'a>> for Event<'a> {
    fn from(event: ConnectionEvent<'a>) -> Self {
        match event {
            ConnectionEvent::CloseConnection(e) => Self::CloseConnection(e),
            ConnectionEvent::TextMessage(e) => Self::TextMessage(e),
            ConnectionEvent::BytesMessage(e) => Self::BytesMessage(e),
            ConnectionEvent::Ping(e) => Self::Ping(e),
            ConnectionEvent::Pong(e) => Self::Pong(e),
        }
    }
}

impl<'a> TryFrom<Event<'a>> for ConnectionEvent<'a> {
    /// A handshake event, handed back.
    type Error = Event<'a>;

    fn try_from(event: Event<'a>) -> Result<Self, Event<'a>> {
        Ok(match event {
            Event::CloseConnection(e) => Self::CloseConnection(e),
            Event::TextMessage(e) => Self::TextMessage(e),
            Event::BytesMessage(e) => Self::BytesMessage(e),
            Event::Ping(e) => Self::Ping(e),
            Event::Pong(e) => Self::Pong(e),
            handshake => return Err(handshake),
        })
    }
}

/// The opening request of a client (RFC 6455 §4.1).
///
/// A client sends one, built from slices ([`Tokens::new`],
/// [`Headers::new`]); a server receives one whose lists read the request head
/// in its buffer.
///
/// ```
/// use wsproto_core::event::{Header, Request};
/// use wsproto_core::handshake::{Headers, Tokens};
/// let extra = [Header::new("Origin", b"http://example.com")];
/// let request = Request {
///     host: "example.com",
///     target: "/chat",
///     subprotocols: Tokens::new(&["chat", "superchat"]),
///     extra_headers: Headers::new(&extra),
///     ..Request::default()
/// };
/// assert_eq!(request.subprotocols.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Request<'a> {
    /// The `Host` header.
    pub host: &'a str,
    /// The request target, such as `/chat?room=1`.
    pub target: &'a str,
    /// Subprotocols offered, most preferred first.
    pub subprotocols: Tokens<'a>,
    /// Extension offers, each as it appears in `Sec-WebSocket-Extensions`
    /// (parse one with [`parse_extensions`](crate::extension::parse_extensions)).
    /// When sending, these are offered verbatim after the offers of the
    /// handshake's own extensions, for extensions the caller negotiates itself.
    pub extensions: Tokens<'a>,
    /// Other headers of the request. A received request lists every header
    /// except `Host`, `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions`.
    pub extra_headers: Headers<'a>,
}

/// The server's acceptance of the opening handshake (RFC 6455 §4.2.2).
///
/// ```
/// use wsproto_core::event::AcceptConnection;
/// let accept = AcceptConnection { subprotocol: Some("chat"), ..AcceptConnection::default() };
/// assert!(accept.extensions.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AcceptConnection<'a> {
    /// The subprotocol chosen from the client's offer.
    pub subprotocol: Option<&'a str>,
    /// Extensions accepted, each as it appears in `Sec-WebSocket-Extensions`.
    /// When sending, these follow what the handshake's own extensions
    /// accepted, verbatim, for extensions the caller negotiates itself.
    pub extensions: Tokens<'a>,
    /// Other headers of the response. A received response lists every header
    /// except `Connection`, `Upgrade`, `Sec-WebSocket-Accept`,
    /// `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions`.
    pub extra_headers: Headers<'a>,
}

/// A refusal of the opening handshake with an HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RejectConnection<'a> {
    /// The HTTP status code, such as 400.
    pub status_code: u16,
    /// Response headers. A received refusal lists all of its headers.
    pub headers: Headers<'a>,
    /// Whether [`RejectData`] events carrying a body follow.
    pub has_body: bool,
}

impl Default for RejectConnection<'_> {
    fn default() -> Self {
        Self {
            status_code: 400,
            headers: Headers::EMPTY,
            has_body: false,
        }
    }
}

/// A chunk of the body of a refused handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RejectData<'a> {
    /// The bytes of this chunk.
    pub data: &'a [u8],
    /// Whether this is the last chunk of the body.
    pub body_finished: bool,
}

/// A close frame (RFC 6455 §5.5.1), or the end of the connection.
///
/// Received with code 1005 when the close frame had no status code, and with
/// 1006 when the transport ended without a close frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CloseConnection<'a> {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most 123 bytes of UTF-8 on the wire (longer reasons are
    /// truncated on a character boundary when sent).
    pub reason: &'a str,
}

impl<'a> CloseConnection<'a> {
    /// A close event with a code and no reason.
    #[must_use]
    pub const fn new(code: CloseCode) -> Self {
        Self { code, reason: "" }
    }

    /// The close frame that completes the closing handshake: the same code
    /// and reason, as RFC 6455 §5.5.1 suggests.
    #[must_use]
    pub const fn response(&self) -> CloseConnection<'a> {
        CloseConnection {
            code: self.code,
            reason: self.reason,
        }
    }
}

/// A chunk of a text message. The chunks of one message concatenate to
/// valid UTF-8; each chunk is valid UTF-8 on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TextMessage<'a> {
    /// The text of this chunk.
    pub data: &'a str,
    /// Whether this chunk ends a frame.
    pub frame_finished: bool,
    /// Whether this chunk ends the message.
    pub message_finished: bool,
}

impl<'a> TextMessage<'a> {
    /// A whole text message in one chunk.
    #[must_use]
    pub const fn new(data: &'a str) -> Self {
        Self {
            data,
            frame_finished: true,
            message_finished: true,
        }
    }
}

/// A chunk of a binary message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BytesMessage<'a> {
    /// The bytes of this chunk.
    pub data: &'a [u8],
    /// Whether this chunk ends a frame.
    pub frame_finished: bool,
    /// Whether this chunk ends the message.
    pub message_finished: bool,
}

impl<'a> BytesMessage<'a> {
    /// A whole binary message in one chunk.
    #[must_use]
    pub const fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            frame_finished: true,
            message_finished: true,
        }
    }
}

/// A ping frame (RFC 6455 §5.5.2), with at most 125 bytes of payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ping<'a> {
    /// Application data, echoed by the pong.
    pub payload: &'a [u8],
}

impl<'a> Ping<'a> {
    /// The pong that answers this ping, with the same payload (§5.5.3).
    #[must_use]
    pub const fn response(&self) -> Pong<'a> {
        Pong {
            payload: self.payload,
        }
    }
}

/// A pong frame (RFC 6455 §5.5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Pong<'a> {
    /// Application data.
    pub payload: &'a [u8],
}

macro_rules! event_from {
    ($($variant:ident),*) => {$(
        impl<'a> From<$variant<'a>> for Event<'a> {
            fn from(event: $variant<'a>) -> Self {
                Self::$variant(event)
            }
        }
    )*};
}

macro_rules! connection_event_from {
    ($($variant:ident),*) => {$(
        impl<'a> From<$variant<'a>> for ConnectionEvent<'a> {
            fn from(event: $variant<'a>) -> Self {
                Self::$variant(event)
            }
        }
    )*};
}

connection_event_from!(CloseConnection, TextMessage, BytesMessage, Ping, Pong);

event_from!(
    Request,
    AcceptConnection,
    RejectConnection,
    RejectData,
    CloseConnection,
    TextMessage,
    BytesMessage,
    Ping,
    Pong
);

// A request's lists are a slice and a byte of names each, and the other
// events fit beside the tag of its `Headers`: no event costs more than a
// request (checked on 64-bit targets, where the lists were once 40 bytes).
// A connection event is a slice and a few bytes beside it.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(core::mem::size_of::<Request<'_>>() <= 104);
    assert!(core::mem::size_of::<Event<'_>>() <= core::mem::size_of::<Request<'_>>());
    assert!(core::mem::size_of::<ConnectionEvent<'_>>() <= 32);
};
