//! Incremental UTF-8 validation across frame and buffer boundaries.
//!
//! A text message arrives in pieces that may split a code point anywhere.
//! [`Utf8Validator`] keeps the (at most three) bytes of a split code point,
//! so nothing is lost, and reports invalid input as soon as no continuation
//! could make it valid, even in the middle of a frame (Autobahn 6.4.x).

/// Invalid UTF-8 was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

/// What [`Utf8Validator::complete`] made of the carried bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The carried code point is complete; `used` bytes of the input went
    /// into it. Take it with [`Utf8Validator::take_char`].
    Char {
        /// Input bytes used.
        used: usize,
    },
    /// All of the input was used and the code point is still incomplete.
    Pending,
}

/// Validates a stream of UTF-8 given in arbitrary pieces.
///
/// ```
/// use wsproto_core::utf8::{Completion, Utf8Validator};
/// let mut v = Utf8Validator::new();
/// // "h€" split inside the euro sign (E2 82 AC).
/// assert_eq!(v.validate(b"h\xE2\x82"), Ok("h"));
/// assert_eq!(v.complete(b"\xACllo"), Ok(Completion::Char { used: 1 }));
/// assert_eq!(v.take_char(), "€");
/// assert!(v.validate(b"\xFF").is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    carry: [u8; 4],
    len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a text.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            carry: [0; 4],
            len: 0,
        }
    }

    /// Whether a split code point is waiting for its remaining bytes.
    #[must_use]
    pub const fn has_pending(&self) -> bool {
        self.len != 0
    }

    /// Validate `input`, which must start on a character boundary (no
    /// pending bytes, unless `input` is empty), in one pass. Returns the
    /// prefix made of whole characters; the rest (a split code point of at
    /// most three bytes) is kept, and the caller treats all of `input` as
    /// used.
    pub fn validate<'b>(&mut self, input: &'b [u8]) -> Result<&'b str, InvalidUtf8> {
        if input.is_empty() {
            return Ok("");
        }
        debug_assert!(!self.has_pending());
        let cut = incomplete_tail_start(input);
        let (head, tail) = input.split_at(cut);
        // The incomplete tail was cut off, so any error here is certain.
        let text = simdutf8::compat::from_utf8(head).map_err(|_| InvalidUtf8)?;
        self.carry_tail(tail)?;
        Ok(text)
    }

    /// Keep `tail` (at most three bytes), the start of a code point, or fail
    /// if no continuation could make it valid.
    fn carry_tail(&mut self, tail: &[u8]) -> Result<(), InvalidUtf8> {
        if tail.is_empty() {
            return Ok(());
        }
        if !is_char_prefix(tail) {
            return Err(InvalidUtf8);
        }
        self.carry[..tail.len()].copy_from_slice(tail);
        self.len = tail.len() as u8;
        Ok(())
    }

    /// Continue a pending code point with the front of `input`. Without a
    /// pending code point this uses nothing and reports `Pending`.
    pub fn complete(&mut self, input: &[u8]) -> Result<Completion, InvalidUtf8> {
        let len = usize::from(self.len);
        if len == 0 {
            return Ok(Completion::Pending);
        }
        let width = match self.carry[0] {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return Err(InvalidUtf8),
        };
        let used = (width - len).min(input.len());
        self.carry[len..len + used].copy_from_slice(&input[..used]);
        self.len = (len + used) as u8;
        match core::str::from_utf8(&self.carry[..len + used]) {
            Ok(_) => Ok(Completion::Char { used }),
            Err(err) if err.error_len().is_none() => Ok(Completion::Pending),
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// The code point finished by [`complete`](Self::complete); the
    /// validator is then back on a character boundary.
    pub fn take_char(&mut self) -> &str {
        let len = usize::from(self.len);
        self.len = 0;
        core::str::from_utf8(&self.carry[..len]).unwrap_or_default()
    }

    /// Check that the text ended on a character boundary, and start over.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let pending = self.has_pending();
        self.len = 0;
        if pending {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }
}

/// Whether `tail` is the start of a code point that more bytes could
/// complete (and not yet a whole one).
pub(crate) fn is_char_prefix(tail: &[u8]) -> bool {
    matches!(core::str::from_utf8(tail), Err(err) if err.error_len().is_none() && err.valid_up_to() == 0)
}

/// Where a code point cut off by the end of `input` begins (`input.len()`
/// when the last character is complete or the input is already invalid).
pub(crate) fn incomplete_tail_start(input: &[u8]) -> usize {
    let len = input.len();
    for back in 1..=len.min(3) {
        let byte = input[len - back];
        if byte & 0xC0 != 0x80 {
            let width = match byte {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            return if back < width { len - back } else { len };
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `pieces` as a connection would and collect the text.
    fn feed(pieces: &[&[u8]]) -> Result<heapless::String<64>, InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut out = heapless::String::new();
        for piece in pieces {
            let mut piece = *piece;
            while v.has_pending() && !piece.is_empty() {
                match v.complete(piece)? {
                    Completion::Char { used } => {
                        out.push_str(v.take_char()).unwrap();
                        piece = &piece[used..];
                    }
                    Completion::Pending => piece = &[],
                }
            }
            out.push_str(v.validate(piece)?).unwrap();
        }
        v.finish()?;
        Ok(out)
    }

    #[test]
    fn every_split_of_valid_text_is_accepted() {
        let text = "aé€😀z\u{10FFFF}";
        let bytes = text.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let got = feed(&[&bytes[..i], &bytes[i..j], &bytes[j..]]).unwrap();
                assert_eq!(got.as_str(), text, "{i} {j}");
            }
        }
        // One byte at a time.
        let pieces: heapless::Vec<&[u8], 32> = bytes.chunks(1).collect();
        assert_eq!(feed(&pieces).unwrap().as_str(), text);
    }

    #[test]
    fn invalid_input_fails_as_soon_as_certain() {
        let mut v = Utf8Validator::new();
        // 0xF4 0x90 is above U+10FFFF: certain after the second byte.
        assert_eq!(v.validate(b"ok\xF4"), Ok("ok"));
        assert_eq!(v.complete(b"\x90"), Err(InvalidUtf8));
        for bad in [
            &b"\xC0\x80"[..],
            b"\xED\xA0\x80",
            b"\xFF",
            b"\x80",
            b"\xE0\x80",
        ] {
            let mut v = Utf8Validator::new();
            assert_eq!(v.validate(bad), Err(InvalidUtf8), "{bad:?}");
        }
        // A truncated code point at the end is invalid.
        assert_eq!(feed(&[b"\xE2\x82"]), Err(InvalidUtf8));
    }
}
