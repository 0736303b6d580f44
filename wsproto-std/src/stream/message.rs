//! The messages of the async adapter: whole messages, as tokio-tungstenite
//! hands them out.

use bytes::Bytes;
use bytestring::ByteString;

use super::Error;
use crate::events::{BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage};
use crate::CloseCode;

/// A whole WebSocket message, received from a
/// [`WebSocketStream`](super::WebSocketStream) or sent into it.
///
/// Received text and binary messages are whole (their chunks put
/// together, up to the configured maximum message size); pings are
/// answered by the adapter and also handed out; `Close` reports the peer's
/// close frame, after which the stream ends.
///
/// ```
/// use wsproto_std::stream::Message;
///
/// let text = Message::text("hello");
/// assert!(text.is_text());
/// assert_eq!(text.to_text()?, "hello");
/// assert_eq!(Message::binary(vec![1, 2, 3]).len(), 3);
/// assert_eq!(Message::from("hi"), Message::Text("hi".into()));
/// # Ok::<(), wsproto_std::stream::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message: valid UTF-8.
    Text(ByteString),
    /// A binary message.
    Binary(Bytes),
    /// A ping (at most 125 bytes). A received one is answered by the
    /// adapter; there is no need to send the pong.
    Ping(Bytes),
    /// A pong (at most 125 bytes).
    Pong(Bytes),
    /// A close frame: the code and reason, or `None` for a frame without a
    /// status code.
    Close(Option<CloseFrame>),
}

/// The code and reason of a close frame.
///
/// ```
/// use wsproto_std::stream::{CloseFrame, Message};
/// use wsproto_std::CloseCode;
///
/// let bye = Message::Close(Some(CloseFrame {
///     code: CloseCode::GOING_AWAY,
///     reason: "shutting down".into(),
/// }));
/// assert!(bye.is_close());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most 123 bytes of UTF-8.
    pub reason: String,
}

impl Message {
    /// A text message.
    ///
    /// ```
    /// # use wsproto_std::stream::Message;
    /// assert!(Message::text(String::from("hi")).is_text());
    /// ```
    #[must_use]
    pub fn text(text: impl Into<ByteString>) -> Self {
        Self::Text(text.into())
    }

    /// A binary message.
    ///
    /// ```
    /// # use wsproto_std::stream::Message;
    /// assert!(Message::binary(&b"\x00\x01"[..]).is_binary());
    /// ```
    #[must_use]
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::Binary(data.into())
    }

    /// Whether this is a text message.
    ///
    /// ```
    /// # use wsproto_std::stream::Message;
    /// assert!(!Message::binary(vec![]).is_text());
    /// ```
    #[must_use]
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// Whether this is a binary message.
    ///
    /// ```
    /// # use wsproto_std::stream::Message;
    /// assert!(!Message::text("").is_binary());
    /// ```
    #[must_use]
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }

    /// Whether this is a ping.
    ///
    /// ```
    /// # use wsproto_std::stream::Message;
    /// assert!(Message::Ping(vec![].into()).is_ping());
    /// ```
    #[must_use]
    pub fn is_ping(&self) -> bool {
        matches!(self, Self::Ping(_))
    }

    /// Whether this is a pong.
    ///
    /// ```
    /// # use wsproto_std::stream::Message;
    /// assert!(Message::Pong(vec![].into()).is_pong());
    /// ```
    #[must_use]
    pub fn is_pong(&self) -> bool {
        matches!(self, Self::Pong(_))
    }

    /// Whether this is a close frame.
    ///
    /// ```
    /// # use wsproto_std::stream::Message;
    /// assert!(Message::Close(None).is_close());
    /// ```
    #[must_use]
    pub fn is_close(&self) -> bool {
        matches!(self, Self::Close(_))
    }

    /// The length of the payload in bytes (of the reason for a close).
    ///
    /// ```
    /// # use wsproto_std::stream::Message;
    /// assert_eq!(Message::text("h\u{e9}").len(), 3);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(data) | Self::Ping(data) | Self::Pong(data) => data.len(),
            Self::Close(frame) => frame.as_ref().map_or(0, |f| f.reason.len()),
        }
    }

    /// Whether the payload is empty.
    ///
    /// ```
    /// # use wsproto_std::stream::Message;
    /// assert!(Message::text("").is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload as bytes (the reason for a close).
    ///
    /// ```
    /// # use wsproto_std::stream::Message;
    /// assert_eq!(&Message::text("abc").into_data()[..], b"abc");
    /// ```
    #[must_use]
    pub fn into_data(self) -> Bytes {
        match self {
            Self::Text(text) => text.into_bytes(),
            Self::Binary(data) | Self::Ping(data) | Self::Pong(data) => data,
            Self::Close(frame) => frame.map_or_else(Bytes::new, |f| Bytes::from(f.reason)),
        }
    }

    /// The payload as text.
    ///
    /// ```
    /// # use wsproto_std::stream::Message;
    /// assert_eq!(Message::binary(&b"ok"[..]).to_text()?, "ok");
    /// assert!(Message::binary(vec![0xff]).to_text().is_err());
    /// # Ok::<(), wsproto_std::stream::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The payload is not UTF-8.
    pub fn to_text(&self) -> Result<&str, Error> {
        match self {
            Self::Text(text) => Ok(text),
            Self::Binary(data) | Self::Ping(data) | Self::Pong(data) => {
                std::str::from_utf8(data).map_err(Error::Utf8)
            }
            Self::Close(frame) => Ok(frame.as_ref().map_or("", |f| &f.reason)),
        }
    }

    /// The event that sends this message.
    pub(crate) fn into_event(self) -> Event {
        match self {
            Self::Text(text) => TextMessage::new(text).into(),
            Self::Binary(data) => BytesMessage::new(data).into(),
            Self::Ping(data) => Ping::new(data).into(),
            Self::Pong(data) => Pong::new(data).into(),
            Self::Close(Some(frame)) => {
                CloseConnection::with_reason(frame.code, frame.reason).into()
            }
            Self::Close(None) => CloseConnection::new(CloseCode::NO_STATUS_RCVD).into(),
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Self::binary(data)
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Self::binary(data)
    }
}
