//! Owned events, as in Python's `wsproto.events`.
//!
//! Received payloads are [`Bytes`] that share the receive buffer: a frame's
//! payload is split off, not copied. Text is a [`ByteString`], a `Bytes`
//! known to hold UTF-8.

use bytes::Bytes;
use bytestring::ByteString;
use wsproto_core::event as core_event;
use wsproto_core::handshake::{Headers, Tokens};
use wsproto_core::CloseCode;

/// An HTTP header: name and raw value.
pub type Header = (String, Vec<u8>);

/// Everything that can happen on a WebSocket connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A client asks to open a connection.
    Request(Request),
    /// The server accepted the opening handshake.
    AcceptConnection(AcceptConnection),
    /// The server refused the opening handshake.
    RejectConnection(RejectConnection),
    /// Part of the body of a refusal.
    RejectData(RejectData),
    /// A close frame, or the end of the transport (code 1006).
    CloseConnection(CloseConnection),
    /// A chunk of a text message.
    TextMessage(TextMessage),
    /// A chunk of a binary message.
    BytesMessage(BytesMessage),
    /// A ping; answer it with [`Ping::response`].
    Ping(Ping),
    /// A pong.
    Pong(Pong),
}

/// The opening request of a client (RFC 6455 §4.1).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Request {
    /// The `Host` header.
    pub host: String,
    /// The request target, such as `/chat`.
    pub target: String,
    /// Subprotocols offered, most preferred first.
    pub subprotocols: Vec<String>,
    /// Extension offers beyond those of the connection's own extensions
    /// (permessage-deflate is offered by the connection itself).
    pub extensions: Vec<String>,
    /// Other headers.
    pub extra_headers: Vec<Header>,
}

impl Request {
    /// A request for `target` on `host`.
    #[must_use]
    pub fn new(host: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            target: target.into(),
            ..Self::default()
        }
    }

    /// Offer these subprotocols, most preferred first.
    #[must_use]
    pub fn with_subprotocols<S: Into<String>>(
        mut self,
        subprotocols: impl IntoIterator<Item = S>,
    ) -> Self {
        self.subprotocols = subprotocols.into_iter().map(Into::into).collect();
        self
    }
}

/// The server's acceptance of the opening handshake.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AcceptConnection {
    /// The subprotocol chosen from the client's offer.
    pub subprotocol: Option<String>,
    /// Extension answers beyond those the connection negotiated itself.
    pub extensions: Vec<String>,
    /// Other headers.
    pub extra_headers: Vec<Header>,
}

/// A refusal of the opening handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectConnection {
    /// The HTTP status code.
    pub status_code: u16,
    /// Response headers.
    pub headers: Vec<Header>,
    /// Whether [`RejectData`] events follow.
    pub has_body: bool,
}

impl Default for RejectConnection {
    fn default() -> Self {
        Self {
            status_code: 400,
            headers: Vec::new(),
            has_body: false,
        }
    }
}

/// A chunk of the body of a refusal.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RejectData {
    /// The bytes of this chunk.
    pub data: Bytes,
    /// Whether this is the last chunk.
    pub body_finished: bool,
}

/// A close frame, or the end of the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseConnection {
    /// The status code (1005 when the frame had none, 1006 when the
    /// transport ended without a close frame).
    pub code: CloseCode,
    /// The reason.
    pub reason: String,
}

impl CloseConnection {
    /// A close event with a code and no reason.
    #[must_use]
    pub fn new(code: impl Into<CloseCode>) -> Self {
        Self {
            code: code.into(),
            reason: String::new(),
        }
    }

    /// A close event with a code and a reason.
    #[must_use]
    pub fn with_reason(code: impl Into<CloseCode>, reason: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            reason: reason.into(),
        }
    }

    /// The close frame that completes the closing handshake.
    #[must_use]
    pub fn response(&self) -> CloseConnection {
        self.clone()
    }
}

/// A chunk of a text message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextMessage {
    /// The text of this chunk.
    pub data: ByteString,
    /// Whether this chunk ends a frame.
    pub frame_finished: bool,
    /// Whether this chunk ends the message.
    pub message_finished: bool,
}

impl TextMessage {
    /// A whole text message.
    #[must_use]
    pub fn new(data: impl Into<ByteString>) -> Self {
        Self {
            data: data.into(),
            frame_finished: true,
            message_finished: true,
        }
    }
}

/// A chunk of a binary message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BytesMessage {
    /// The bytes of this chunk.
    pub data: Bytes,
    /// Whether this chunk ends a frame.
    pub frame_finished: bool,
    /// Whether this chunk ends the message.
    pub message_finished: bool,
}

impl BytesMessage {
    /// A whole binary message.
    #[must_use]
    pub fn new(data: impl Into<Bytes>) -> Self {
        Self {
            data: data.into(),
            frame_finished: true,
            message_finished: true,
        }
    }
}

/// A ping.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ping {
    /// Application data, at most 125 bytes.
    pub payload: Bytes,
}

impl Ping {
    /// A ping with `payload`.
    #[must_use]
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            payload: payload.into(),
        }
    }

    /// The pong that answers this ping.
    #[must_use]
    pub fn response(&self) -> Pong {
        Pong {
            payload: self.payload.clone(),
        }
    }
}

/// A pong.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Pong {
    /// Application data, at most 125 bytes.
    pub payload: Bytes,
}

impl Pong {
    /// A pong with `payload`.
    #[must_use]
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            payload: payload.into(),
        }
    }
}

macro_rules! event_from {
    ($($variant:ident),*) => {$(
        impl From<$variant> for Event {
            fn from(event: $variant) -> Self {
                Self::$variant(event)
            }
        }
    )*};
}

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

pub(crate) fn owned_headers(headers: Headers<'_>) -> Vec<Header> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

pub(crate) fn owned_tokens(tokens: Tokens<'_>) -> Vec<String> {
    tokens.iter().map(str::to_owned).collect()
}

/// Borrowed views of owned lists, kept alive while a core event is sent.
#[derive(Default)]
pub(crate) struct Scratch<'a> {
    subprotocols: Vec<&'a str>,
    extensions: Vec<&'a str>,
    headers: Vec<core_event::Header<'a>>,
}

fn core_headers(headers: &[Header]) -> Vec<core_event::Header<'_>> {
    headers
        .iter()
        .map(|(name, value)| core_event::Header::new(name, value))
        .collect()
}

impl Event {
    /// Fill `scratch` with the borrowed lists this event needs.
    pub(crate) fn scratch(&self) -> Scratch<'_> {
        match self {
            Event::Request(r) => Scratch {
                subprotocols: r.subprotocols.iter().map(String::as_str).collect(),
                extensions: r.extensions.iter().map(String::as_str).collect(),
                headers: core_headers(&r.extra_headers),
            },
            Event::AcceptConnection(a) => Scratch {
                subprotocols: Vec::new(),
                extensions: a.extensions.iter().map(String::as_str).collect(),
                headers: core_headers(&a.extra_headers),
            },
            Event::RejectConnection(r) => Scratch {
                headers: core_headers(&r.headers),
                ..Scratch::default()
            },
            _ => Scratch::default(),
        }
    }

    /// The core event borrowing this one (and `scratch`).
    pub(crate) fn as_core<'a>(&'a self, scratch: &'a Scratch<'a>) -> core_event::Event<'a> {
        match self {
            Event::Request(r) => core_event::Event::Request(core_event::Request {
                host: &r.host,
                target: &r.target,
                subprotocols: Tokens::new(&scratch.subprotocols),
                extensions: Tokens::new(&scratch.extensions),
                extra_headers: Headers::new(&scratch.headers),
            }),
            Event::AcceptConnection(a) => {
                core_event::Event::AcceptConnection(core_event::AcceptConnection {
                    subprotocol: a.subprotocol.as_deref(),
                    extensions: Tokens::new(&scratch.extensions),
                    extra_headers: Headers::new(&scratch.headers),
                })
            }
            Event::RejectConnection(r) => {
                core_event::Event::RejectConnection(core_event::RejectConnection {
                    status_code: r.status_code,
                    headers: Headers::new(&scratch.headers),
                    has_body: r.has_body,
                })
            }
            Event::RejectData(d) => core_event::Event::RejectData(core_event::RejectData {
                data: &d.data,
                body_finished: d.body_finished,
            }),
            Event::CloseConnection(c) => {
                core_event::Event::CloseConnection(core_event::CloseConnection {
                    code: c.code,
                    reason: &c.reason,
                })
            }
            Event::TextMessage(m) => core_event::Event::TextMessage(core_event::TextMessage {
                data: &m.data,
                frame_finished: m.frame_finished,
                message_finished: m.message_finished,
            }),
            Event::BytesMessage(m) => core_event::Event::BytesMessage(core_event::BytesMessage {
                data: &m.data,
                frame_finished: m.frame_finished,
                message_finished: m.message_finished,
            }),
            Event::Ping(p) => core_event::Event::Ping(core_event::Ping {
                payload: &p.payload,
            }),
            Event::Pong(p) => core_event::Event::Pong(core_event::Pong {
                payload: &p.payload,
            }),
        }
    }
}
