//! Close status codes (RFC 6455 §7.4) as an open newtype.
//!
//! Unknown codes survive a round trip: [`CloseCode`] wraps any `u16`, with
//! named constants for the registered ones and predicates that say which codes
//! may appear on the wire.

use core::fmt;

/// A WebSocket close status code (RFC 6455 §7.4), the `CloseReason` of the
/// Python library.
///
/// ```
/// use wsproto_core::CloseCode;
/// assert_eq!(CloseCode::NORMAL_CLOSURE.as_u16(), 1000);
/// assert!(CloseCode::from(4000).is_valid_on_wire());
/// assert!(!CloseCode::NO_STATUS_RCVD.is_valid_on_wire());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL_CLOSURE: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer violated the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: the endpoint received a type of data it cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no status code was present in the close frame. Never sent.
    pub const NO_STATUS_RCVD: Self = Self(1005);
    /// 1006: the connection closed without a close frame. Never sent.
    pub const ABNORMAL_CLOSURE: Self = Self(1006);
    /// 1007: message data was not consistent with its type (invalid UTF-8).
    pub const INVALID_FRAME_PAYLOAD_DATA: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected the server to negotiate an extension.
    pub const MANDATORY_EXT: Self = Self(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway received an invalid response (IANA registry).
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: the TLS handshake failed. Never sent.
    pub const TLS_HANDSHAKE_FAILED: Self = Self(1015);

    /// The numeric code.
    #[must_use]
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether this code may appear in a close frame on the wire
    /// (RFC 6455 §7.4.1, §7.4.2 and the IANA registry).
    ///
    /// Rejected: codes below 1000, 1004 (reserved), 1005, 1006 and 1015
    /// (local-only), the unassigned 1016–2999, and 5000 and above.
    #[must_use]
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// Whether this code only describes a local condition and must never be
    /// sent in a close frame (1005, 1006, 1015).
    #[must_use]
    pub const fn is_local_only(self) -> bool {
        matches!(self.0, 1005 | 1006 | 1015)
    }

    /// The registered name of the code, if it has one.
    #[must_use]
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1000 => "NORMAL_CLOSURE",
            1001 => "GOING_AWAY",
            1002 => "PROTOCOL_ERROR",
            1003 => "UNSUPPORTED_DATA",
            1005 => "NO_STATUS_RCVD",
            1006 => "ABNORMAL_CLOSURE",
            1007 => "INVALID_FRAME_PAYLOAD_DATA",
            1008 => "POLICY_VIOLATION",
            1009 => "MESSAGE_TOO_BIG",
            1010 => "MANDATORY_EXT",
            1011 => "INTERNAL_ERROR",
            1012 => "SERVICE_RESTART",
            1013 => "TRY_AGAIN_LATER",
            1014 => "BAD_GATEWAY",
            1015 => "TLS_HANDSHAKE_FAILED",
            _ => return None,
        })
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "CloseCode::{name}({})", self.0),
            None => write!(f, "CloseCode({})", self.0),
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for CloseCode {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "CloseCode({=u16})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_follows_rfc6455_7_4() {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(code).is_valid_on_wire(), "{code}");
        }
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        ] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
        for code in [3000u16, 3999, 4000, 4999] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
    }

    #[test]
    fn unknown_codes_survive() {
        let code = CloseCode::from(4321);
        assert_eq!(u16::from(code), 4321);
        assert_eq!(code.name(), None);
        assert_eq!(CloseCode::from(1009), CloseCode::MESSAGE_TOO_BIG);
    }
}
