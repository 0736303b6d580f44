//! The frame layer of RFC 6455 §5: opcodes, RSV bits, the frame header, and
//! close-frame payloads.
//!
//! [`FrameHeader::parse`] reads a header from the front of a byte slice;
//! incomplete input is [`Status::Incomplete`], not an error.
//! [`FrameHeader::encode`] writes one into a caller buffer and reports the
//! size it needs when the buffer is short. The rules that depend on the
//! connection (masking direction, negotiated RSV bits) are checked by
//! [`FrameHeader::validate`].

pub mod mask;
pub(crate) mod payload;

use core::fmt;

use crate::close::CloseCode;
use crate::error::{BufferTooSmall, RemoteProtocolError};

/// The largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest close reason that fits a control frame after the 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// A frame opcode (RFC 6455 §5.2): four bits, including the reserved values,
/// which survive parsing so the connection can reject them with a reason.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Opcode(u8);

impl Opcode {
    /// 0x0: continues a fragmented message.
    pub const CONTINUATION: Self = Self(0x0);
    /// 0x1: the first frame of a text message.
    pub const TEXT: Self = Self(0x1);
    /// 0x2: the first frame of a binary message.
    pub const BINARY: Self = Self(0x2);
    /// 0x8: connection close.
    pub const CLOSE: Self = Self(0x8);
    /// 0x9: ping.
    pub const PING: Self = Self(0x9);
    /// 0xA: pong.
    pub const PONG: Self = Self(0xA);

    /// The opcode in the low four bits of `bits`.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 0x0F)
    }

    /// The four-bit value.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether this is a control opcode (0x8 to 0xF).
    #[must_use]
    pub const fn is_control(self) -> bool {
        self.0 & 0x8 != 0
    }

    /// Whether the opcode is reserved for future use (0x3–0x7, 0xB–0xF).
    #[must_use]
    pub const fn is_reserved(self) -> bool {
        matches!(self.0, 0x3..=0x7 | 0xB..=0xF)
    }
}

impl fmt::Debug for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0x0 => "CONTINUATION",
            0x1 => "TEXT",
            0x2 => "BINARY",
            0x8 => "CLOSE",
            0x9 => "PING",
            0xA => "PONG",
            other => return write!(f, "Opcode({other:#x})"),
        };
        f.write_str(name)
    }
}

/// The three reserved bits of a frame header (RFC 6455 §5.2), as the bits
/// `0b100` (RSV1), `0b010` (RSV2) and `0b001` (RSV3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RsvBits(u8);

impl RsvBits {
    /// No bit set.
    pub const NONE: Self = Self(0);
    /// RSV1, used by permessage-deflate to mark a compressed message.
    pub const RSV1: Self = Self(0b100);
    /// RSV2.
    pub const RSV2: Self = Self(0b010);
    /// RSV3.
    pub const RSV3: Self = Self(0b001);

    /// The bits in the low three bits of `bits`.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 0b111)
    }

    /// The three bits.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether RSV1 is set.
    #[must_use]
    pub const fn rsv1(self) -> bool {
        self.0 & 0b100 != 0
    }

    /// Whether every bit set here is also set in `allowed`.
    #[must_use]
    pub const fn is_subset_of(self, allowed: Self) -> bool {
        self.0 & !allowed.0 == 0
    }

    /// The union of two sets of bits.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl fmt::Debug for RsvBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsvBits({:#05b})", self.0)
    }
}

/// The result of parsing from input that may be incomplete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status<T> {
    /// Parsed; the value and the number of bytes it used.
    Complete(T),
    /// More input is needed.
    Incomplete,
}

/// A frame header (RFC 6455 §5.2).
///
/// ```
/// use wsproto_core::frame::{FrameHeader, Opcode, Status};
/// // RFC 6455 §5.7: a single-frame masked text message "Hello".
/// let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// let Status::Complete((header, len)) = FrameHeader::parse(&wire).unwrap() else { panic!() };
/// assert_eq!(len, 6);
/// assert_eq!(header.opcode, Opcode::TEXT);
/// assert_eq!(header.payload_len, 5);
/// assert_eq!(header.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameHeader {
    /// Whether this is the final frame of a message.
    pub fin: bool,
    /// The reserved bits.
    pub rsv: RsvBits,
    /// The opcode.
    pub opcode: Opcode,
    /// The masking key, present on frames sent by clients.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// The longest encoded header: 2 bytes, an 8-byte length and a mask.
    pub const MAX_LEN: usize = 14;

    /// A header for an unmasked frame.
    #[must_use]
    pub const fn new(fin: bool, opcode: Opcode, payload_len: u64) -> Self {
        Self {
            fin,
            rsv: RsvBits::NONE,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Parse a header from the front of `input`.
    ///
    /// Checks the rules that hold for every frame: the length uses the
    /// minimal encoding and a 64-bit length has its most significant bit
    /// clear (§5.2). The rules that depend on the connection are in
    /// [`validate`](Self::validate).
    pub fn parse(input: &[u8]) -> Result<Status<(Self, usize)>, RemoteProtocolError> {
        let [b0, b1, ..] = *input else {
            return Ok(Status::Incomplete);
        };
        let masked = b1 & 0x80 != 0;
        let (payload_len, len_bytes) = match b1 & 0x7F {
            126 => {
                let Some(&[hi, lo]) = input
                    .get(2..4)
                    .map(<&[u8; 2]>::try_from)
                    .and_then(Result::ok)
                else {
                    return Ok(Status::Incomplete);
                };
                let len = u64::from(u16::from_be_bytes([hi, lo]));
                if len < 126 {
                    return Err(RemoteProtocolError::protocol(
                        "payload length not minimally encoded (16-bit length under 126)",
                    ));
                }
                (len, 2)
            }
            127 => {
                let Some(bytes) = input.get(2..10).and_then(|s| <[u8; 8]>::try_from(s).ok()) else {
                    return Ok(Status::Incomplete);
                };
                let len = u64::from_be_bytes(bytes);
                if len >> 63 != 0 {
                    return Err(RemoteProtocolError::protocol(
                        "64-bit payload length with the most significant bit set",
                    ));
                }
                if len <= u64::from(u16::MAX) {
                    return Err(RemoteProtocolError::protocol(
                        "payload length not minimally encoded (64-bit length under 65536)",
                    ));
                }
                (len, 8)
            }
            short => (u64::from(short), 0),
        };
        let mut len = 2 + len_bytes;
        let mask = if masked {
            let Some(key) = input
                .get(len..len + 4)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
            else {
                return Ok(Status::Incomplete);
            };
            len += 4;
            Some(key)
        } else {
            None
        };
        let header = Self {
            fin: b0 & 0x80 != 0,
            rsv: RsvBits::from_bits(b0 >> 4),
            opcode: Opcode::from_bits(b0),
            mask,
            payload_len,
        };
        Ok(Status::Complete((header, len)))
    }

    /// Check the rules of RFC 6455 §5 that depend on the connection.
    ///
    /// `expect_masked` is true on a server (client frames MUST be masked,
    /// §5.1) and false on a client (server frames MUST NOT be). `allowed_rsv`
    /// holds the RSV bits a negotiated extension defines (§5.2).
    pub fn validate(
        &self,
        expect_masked: bool,
        allowed_rsv: RsvBits,
    ) -> Result<(), RemoteProtocolError> {
        if self.opcode.is_reserved() {
            return Err(RemoteProtocolError::protocol("reserved opcode"));
        }
        if self.opcode.is_control() {
            if !self.fin {
                return Err(RemoteProtocolError::protocol("fragmented control frame"));
            }
            if self.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(RemoteProtocolError::protocol(
                    "control frame payload longer than 125 bytes",
                ));
            }
        }
        if !self.rsv.is_subset_of(allowed_rsv) {
            return Err(RemoteProtocolError::protocol(
                "reserved bit set without a negotiated extension",
            ));
        }
        match (expect_masked, self.mask.is_some()) {
            (true, false) => Err(RemoteProtocolError::protocol(
                "unmasked frame from a client",
            )),
            (false, true) => Err(RemoteProtocolError::protocol("masked frame from a server")),
            _ => Ok(()),
        }
    }

    /// The number of bytes [`encode`](Self::encode) writes.
    #[must_use]
    pub const fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Write the header into the front of `out` and return its length.
    ///
    /// A short `out` is left untouched and the error gives the size needed.
    ///
    /// ```
    /// use wsproto_core::frame::{FrameHeader, Opcode};
    /// let mut out = [0u8; 14];
    /// let n = FrameHeader::new(true, Opcode::TEXT, 5).encode(&mut out).unwrap();
    /// assert_eq!(&out[..n], &[0x81, 0x05]);
    /// ```
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let required = self.encoded_len();
        let Some(out) = out.get_mut(..required) else {
            return Err(BufferTooSmall { required });
        };
        let key_at = self.encode_before_key(out);
        if let (Some(key), Some(wire_key)) = (self.mask, out.get_mut(key_at..)) {
            wire_key.copy_from_slice(&key);
        }
        Ok(required)
    }

    /// Write the header into `out`, which is
    /// [`encoded_len`](Self::encoded_len) bytes long, except the masking
    /// key, and return where the key goes. The connection writes the key
    /// itself, straight from its random source.
    #[inline]
    pub(crate) fn encode_before_key(&self, out: &mut [u8]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | (self.rsv.bits() << 4) | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = 2;
        match self.payload_len {
            len @ 0..=125 => out[1] = mask_bit | len as u8,
            len @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                pos = 4;
            }
            len => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                pos = 10;
            }
        }
        pos
    }
}

/// Parse the payload of a close frame (RFC 6455 §5.5.1, §7.4).
///
/// An empty payload means no status code: it is reported as 1005
/// ([`CloseCode::NO_STATUS_RCVD`]). A 1-byte payload, a code that may not be
/// on the wire (1002), and a reason that is not UTF-8 (1007) are errors.
pub fn parse_close_payload(payload: &[u8]) -> Result<(CloseCode, &str), RemoteProtocolError> {
    match payload {
        [] => Ok((CloseCode::NO_STATUS_RCVD, "")),
        [_] => Err(RemoteProtocolError::protocol(
            "close frame with a 1-byte payload",
        )),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(RemoteProtocolError::protocol(
                    "close code that may not be sent on the wire",
                ));
            }
            let reason = core::str::from_utf8(reason)
                .map_err(|_| RemoteProtocolError::invalid_utf8("close reason is not UTF-8"))?;
            Ok((code, reason))
        }
    }
}

/// The close payload to send for `code` and `reason`, as the Python library
/// does: 1005 sends an empty payload; the other local-only codes (1006,
/// 1015) become 1000; the reason is cut to 123 bytes on a character boundary.
///
/// Returns the code to put on the wire (`None` for an empty payload) and the
/// reason that fits.
#[must_use]
pub fn close_payload_parts(code: CloseCode, reason: &str) -> (Option<CloseCode>, &str) {
    if code == CloseCode::NO_STATUS_RCVD {
        return (None, "");
    }
    let code = if code.is_local_only() {
        CloseCode::NORMAL_CLOSURE
    } else {
        code
    };
    (Some(code), truncate_utf8(reason, MAX_CLOSE_REASON))
}

/// The longest prefix of `text` that has at most `max` bytes and ends on a
/// character boundary.
#[must_use]
pub(crate) fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(input: &[u8]) -> (FrameHeader, usize) {
        match FrameHeader::parse(input) {
            Ok(Status::Complete(parsed)) => parsed,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// RFC 6455 §5.7 example frames, decoded and re-encoded byte for byte.
    #[test]
    #[allow(clippy::type_complexity)]
    fn rfc6455_5_7_headers_round_trip() {
        let cases: [(&[u8], bool, Opcode, Option<[u8; 4]>, u64); 7] = [
            (&[0x81, 0x05], true, Opcode::TEXT, None, 5),
            (
                &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d],
                true,
                Opcode::TEXT,
                Some([0x37, 0xfa, 0x21, 0x3d]),
                5,
            ),
            (&[0x01, 0x03], false, Opcode::TEXT, None, 3),
            (&[0x80, 0x02], true, Opcode::CONTINUATION, None, 2),
            (&[0x89, 0x05], true, Opcode::PING, None, 5),
            (
                &[0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d],
                true,
                Opcode::PONG,
                Some([0x37, 0xfa, 0x21, 0x3d]),
                5,
            ),
            (&[0x82, 0x7E, 0x01, 0x00], true, Opcode::BINARY, None, 256),
        ];
        for (wire, fin, opcode, mask, len) in cases {
            let (header, used) = parse_ok(wire);
            assert_eq!(used, wire.len());
            assert_eq!(
                (header.fin, header.opcode, header.mask, header.payload_len),
                (fin, opcode, mask, len)
            );
            let mut out = [0u8; FrameHeader::MAX_LEN];
            let n = header.encode(&mut out).unwrap();
            assert_eq!(&out[..n], wire);
        }
        // 64 KiB binary message in a single unmasked frame.
        let wire = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        let (header, used) = parse_ok(&wire);
        assert_eq!((used, header.payload_len), (10, 65536));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let wire = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..wire.len() {
            assert_eq!(
                FrameHeader::parse(&wire[..cut]),
                Ok(Status::Incomplete),
                "{cut}"
            );
        }
        assert_eq!(parse_ok(&wire).1, 14);
    }

    #[test]
    fn non_minimal_lengths_fail_with_1002() {
        for wire in [
            &[0x82u8, 0x7E, 0x00, 0x7D][..],
            &[0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
        ] {
            let err = FrameHeader::parse(wire).unwrap_err();
            assert_eq!(err.close_code(), Some(CloseCode::PROTOCOL_ERROR));
        }
        let wire = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::parse(&wire).unwrap_err().close_code(),
            Some(CloseCode::PROTOCOL_ERROR)
        );
    }

    #[test]
    fn validation_rules_give_1002() {
        let masked = Some([1, 2, 3, 4]);
        let base = FrameHeader {
            mask: masked,
            ..FrameHeader::new(true, Opcode::TEXT, 3)
        };
        assert!(base.validate(true, RsvBits::NONE).is_ok());
        let bad = [
            FrameHeader {
                opcode: Opcode::from_bits(3),
                ..base
            },
            FrameHeader {
                opcode: Opcode::from_bits(0xB),
                ..base
            },
            FrameHeader {
                opcode: Opcode::PING,
                fin: false,
                ..base
            },
            FrameHeader {
                opcode: Opcode::CLOSE,
                payload_len: 126,
                ..base
            },
            FrameHeader {
                rsv: RsvBits::RSV2,
                ..base
            },
            FrameHeader { mask: None, ..base },
        ];
        for header in bad {
            let err = header.validate(true, RsvBits::NONE).unwrap_err();
            assert_eq!(
                err.close_code(),
                Some(CloseCode::PROTOCOL_ERROR),
                "{header:?}"
            );
        }
        assert!(base.validate(false, RsvBits::NONE).is_err());
        let compressed = FrameHeader {
            rsv: RsvBits::RSV1,
            ..base
        };
        assert!(compressed.validate(true, RsvBits::NONE).is_err());
        assert!(compressed.validate(true, RsvBits::RSV1).is_ok());
    }

    #[test]
    fn short_output_reports_required_size() {
        let header = FrameHeader {
            mask: Some([0; 4]),
            ..FrameHeader::new(true, Opcode::BINARY, 70_000)
        };
        let mut out = [0xAAu8; 13];
        assert_eq!(
            header.encode(&mut out),
            Err(BufferTooSmall { required: 14 })
        );
        assert_eq!(out, [0xAA; 13]);
    }

    #[test]
    fn close_payload_rules() {
        assert_eq!(
            parse_close_payload(&[]),
            Ok((CloseCode::NO_STATUS_RCVD, ""))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xE8, b'o', b'k']),
            Ok((CloseCode::NORMAL_CLOSURE, "ok"))
        );
        assert_eq!(
            parse_close_payload(&[0x03]).unwrap_err().close_code(),
            Some(CloseCode::PROTOCOL_ERROR)
        );
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            let err = parse_close_payload(&code.to_be_bytes()).unwrap_err();
            assert_eq!(err.close_code(), Some(CloseCode::PROTOCOL_ERROR), "{code}");
        }
        let err = parse_close_payload(&[0x03, 0xE8, 0xFF]).unwrap_err();
        assert_eq!(
            err.close_code(),
            Some(CloseCode::INVALID_FRAME_PAYLOAD_DATA)
        );
    }

    #[test]
    fn close_reason_truncates_on_char_boundary() {
        let reason = "é".repeat(100); // 200 bytes
        let (code, cut) = close_payload_parts(CloseCode::GOING_AWAY, &reason);
        assert_eq!(code, Some(CloseCode::GOING_AWAY));
        assert_eq!(cut.len(), 122);
        assert_eq!(
            close_payload_parts(CloseCode::NO_STATUS_RCVD, "x"),
            (None, "")
        );
        assert_eq!(
            close_payload_parts(CloseCode::ABNORMAL_CLOSURE, "x").0,
            Some(CloseCode::NORMAL_CLOSURE)
        );
    }
}
