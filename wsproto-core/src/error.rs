//! Errors: [`LocalProtocolError`] for misuse by the caller,
//! [`RemoteProtocolError`] for violations by the peer, and
//! [`BufferTooSmall`] for output that does not fit.
//!
//! Each error names the broken rule with a `&'static str`, so no error
//! allocates. Without the `error-text` feature (on by default) the text is
//! left out and [`message`](RemoteProtocolError::message) is empty; errors
//! keep their kind and their close code or HTTP status. A [`RemoteProtocolError`] also says what to send in reply: its
//! [`event_hint`](RemoteProtocolError::event_hint) is a close frame with the
//! right code once the connection is open, or an HTTP rejection during the
//! opening handshake.

use core::fmt;

use crate::close::CloseCode;
use crate::event::{CloseConnection, Event, RejectConnection};
use crate::fields::{Header, Headers};

/// The caller asked for something the protocol forbids in the current state,
/// such as sending a message after a close frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalProtocolError {
    message: Text,
}

/// The text of an error, or nothing without the `error-text` feature.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Text {
    #[cfg(feature = "error-text")]
    message: &'static str,
}

impl Text {
    const fn new(message: &'static str) -> Self {
        #[cfg(not(feature = "error-text"))]
        let _ = message;
        Self {
            #[cfg(feature = "error-text")]
            message,
        }
    }

    const fn as_str(self) -> &'static str {
        #[cfg(feature = "error-text")]
        {
            self.message
        }
        #[cfg(not(feature = "error-text"))]
        {
            ""
        }
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl LocalProtocolError {
    /// An error naming the rule that was broken.
    #[must_use]
    pub const fn new(message: &'static str) -> Self {
        Self {
            message: Text::new(message),
        }
    }

    /// What was wrong (empty without the `error-text` feature).
    #[must_use]
    pub const fn message(&self) -> &'static str {
        self.message.as_str()
    }
}

impl fmt::Display for LocalProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if cfg!(feature = "error-text") {
            f.write_str(self.message())
        } else {
            f.write_str("local protocol error")
        }
    }
}

impl core::error::Error for LocalProtocolError {}

/// What to answer a peer that broke the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorHint {
    /// Send a close frame with this code (the connection was open).
    Close(CloseCode),
    /// Refuse the opening handshake with this HTTP status. A 426 carries
    /// `Sec-WebSocket-Version: 13` (RFC 6455 §4.4).
    Reject(u16),
}

/// The peer broke the protocol. The connection cannot continue: send the
/// [`event_hint`](Self::event_hint) if the transport is still writable, then
/// close it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteProtocolError {
    message: Text,
    hint: ErrorHint,
}

static VERSION_HEADER: [Header<'static>; 1] = [Header {
    name: "Sec-WebSocket-Version",
    value: b"13",
}];

impl RemoteProtocolError {
    /// A violation after the handshake, answered by a close frame with `code`.
    #[must_use]
    pub const fn close(code: CloseCode, message: &'static str) -> Self {
        Self {
            message: Text::new(message),
            hint: ErrorHint::Close(code),
        }
    }

    /// A violation of RFC 6455 §5 (close code 1002).
    #[must_use]
    pub const fn protocol(message: &'static str) -> Self {
        Self::close(CloseCode::PROTOCOL_ERROR, message)
    }

    /// Invalid UTF-8 in a text message or close reason (close code 1007).
    #[must_use]
    pub const fn invalid_utf8(message: &'static str) -> Self {
        Self::close(CloseCode::INVALID_FRAME_PAYLOAD_DATA, message)
    }

    /// A frame or message over a configured limit (close code 1009).
    #[must_use]
    pub const fn too_big(message: &'static str) -> Self {
        Self::close(CloseCode::MESSAGE_TOO_BIG, message)
    }

    /// A bad opening handshake, answered with an HTTP `status`.
    #[must_use]
    pub const fn reject(status: u16, message: &'static str) -> Self {
        Self {
            message: Text::new(message),
            hint: ErrorHint::Reject(status),
        }
    }

    /// What was wrong (empty without the `error-text` feature).
    #[must_use]
    pub const fn message(&self) -> &'static str {
        self.message.as_str()
    }

    /// The reply the error calls for.
    #[must_use]
    pub const fn hint(&self) -> ErrorHint {
        self.hint
    }

    /// The close code to send, when the connection was open.
    #[must_use]
    pub const fn close_code(&self) -> Option<CloseCode> {
        match self.hint {
            ErrorHint::Close(code) => Some(code),
            ErrorHint::Reject(_) => None,
        }
    }

    /// The event to send in reply, as in the Python library: a
    /// `CloseConnection` with the close code and the message as the reason,
    /// or a `RejectConnection` without a body.
    ///
    /// ```
    /// use wsproto_core::{CloseCode, Event, RemoteProtocolError};
    /// let err = RemoteProtocolError::protocol("reserved opcode");
    /// match err.event_hint() {
    ///     Event::CloseConnection(close) => assert_eq!(close.code, CloseCode::PROTOCOL_ERROR),
    ///     other => panic!("unexpected {other:?}"),
    /// }
    /// ```
    #[must_use]
    pub fn event_hint(&self) -> Event<'static> {
        match self.hint {
            ErrorHint::Close(code) => Event::CloseConnection(CloseConnection {
                code,
                reason: self.message(),
            }),
            ErrorHint::Reject(status_code) => Event::RejectConnection(RejectConnection {
                status_code,
                headers: if status_code == 426 {
                    Headers::new(&VERSION_HEADER)
                } else {
                    Headers::EMPTY
                },
                has_body: false,
            }),
        }
    }
}

impl fmt::Display for RemoteProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = if cfg!(feature = "error-text") {
            self.message()
        } else {
            "protocol violation"
        };
        match self.hint {
            ErrorHint::Close(code) => write!(f, "{message} (close code {code})"),
            ErrorHint::Reject(status) => write!(f, "{message} (HTTP {status})"),
        }
    }
}

impl core::error::Error for RemoteProtocolError {}

/// The output buffer was too small; nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferTooSmall {
    /// The number of bytes the output needs.
    pub required: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "output buffer too small: {} bytes required",
            self.required
        )
    }
}

impl core::error::Error for BufferTooSmall {}

/// Why a send into a caller buffer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SendError {
    /// The event cannot be sent in the current state.
    Local(LocalProtocolError),
    /// The output buffer is too small; nothing was written and the connection
    /// state did not change.
    BufferTooSmall(BufferTooSmall),
}

impl From<LocalProtocolError> for SendError {
    fn from(err: LocalProtocolError) -> Self {
        Self::Local(err)
    }
}

impl From<BufferTooSmall> for SendError {
    fn from(err: BufferTooSmall) -> Self {
        Self::BufferTooSmall(err)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(err) => err.fmt(f),
            Self::BufferTooSmall(err) => err.fmt(f),
        }
    }
}

impl core::error::Error for SendError {}

#[cfg(feature = "defmt")]
impl defmt::Format for LocalProtocolError {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "LocalProtocolError({=str})", self.message())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for RemoteProtocolError {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "RemoteProtocolError({=str})", self.message())
    }
}
