//! The error type of the async adapter.

use std::fmt;
use std::io;

use crate::{LocalProtocolError, RemoteProtocolError};

/// What went wrong on a [`WebSocketStream`](super::WebSocketStream) or in
/// its handshake.
///
/// ```
/// use wsproto_std::stream::Error;
///
/// let err = Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
/// assert!(err.to_string().starts_with("I/O error"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The closing handshake is over: nothing more can be sent.
    ConnectionClosed,
    /// A message was sent after our close frame.
    AlreadyClosed,
    /// The transport failed.
    Io(io::Error),
    /// The peer broke the protocol; the close frame (or HTTP refusal) it
    /// calls for was sent, and the stream ends.
    Protocol(RemoteProtocolError),
    /// The connection cannot send this now (caller misuse).
    Local(LocalProtocolError),
    /// The opening handshake was refused with this HTTP status (by the
    /// server, or by our [`accept_request`](super::accept_request)).
    Rejected(u16),
    /// The peer closed the transport without a close frame.
    AbnormalClosure,
    /// The peer let a deadline pass: the opening handshake was not done
    /// within [`handshake_timeout`](super::WebSocketConfig::handshake_timeout),
    /// no pong came within the [`keepalive`](super::WebSocketConfig::keepalive)
    /// timeout, or our close frame was not answered in time. The stream
    /// ends; drop it to close the transport. (tokio-tungstenite has no
    /// timers; its users see a timeout of their own `tokio::time::timeout`
    /// here.)
    Timeout,
    /// A payload is not UTF-8 ([`Message::to_text`](super::Message::to_text)).
    Utf8(std::str::Utf8Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectionClosed => f.write_str("the connection is closed"),
            Self::AlreadyClosed => f.write_str("a close frame was already sent"),
            Self::Io(err) => write!(f, "I/O error: {err}"),
            Self::Protocol(err) => write!(f, "the peer broke the protocol: {err}"),
            Self::Local(err) => write!(f, "cannot send: {err}"),
            Self::Rejected(status) => {
                write!(f, "the server refused the handshake with status {status}")
            }
            Self::AbnormalClosure => {
                f.write_str("the peer closed the transport without a close frame")
            }
            Self::Timeout => f.write_str("the peer did not answer in time"),
            Self::Utf8(err) => write!(f, "not UTF-8: {err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(err) => Some(err),
            Self::Protocol(err) => Some(err),
            Self::Local(err) => Some(err),
            Self::Utf8(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

impl From<RemoteProtocolError> for Error {
    fn from(err: RemoteProtocolError) -> Self {
        Self::Protocol(err)
    }
}

impl From<LocalProtocolError> for Error {
    fn from(err: LocalProtocolError) -> Self {
        Self::Local(err)
    }
}
