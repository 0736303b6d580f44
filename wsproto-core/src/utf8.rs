//! UTF-8 across chunk boundaries: where a code point cut off by the end of a
//! chunk begins, and whether such a tail can still become valid.
//!
//! A text message arrives in pieces that may split a code point anywhere.
//! The receive side validates each chunk up to the cut in one pass, keeps
//! the tail for the next chunk, and fails as soon as no continuation could
//! make the tail valid (Autobahn 6.4.x).

use crate::error::RemoteProtocolError;

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

/// The error for text that is not valid UTF-8 (close code 1007).
pub(crate) fn invalid_text() -> RemoteProtocolError {
    RemoteProtocolError::invalid_utf8("text message is not valid UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validate `pieces` as the receive side does: each piece with the
    /// tail of the last in front, up to its own cut.
    fn feed(pieces: &[&[u8]]) -> Option<heapless::String<64>> {
        let mut out = heapless::String::new();
        let mut carry: heapless::Vec<u8, 8> = heapless::Vec::new();
        for piece in pieces {
            let mut chunk: heapless::Vec<u8, 64> = heapless::Vec::new();
            chunk.extend_from_slice(&carry).ok()?;
            chunk.extend_from_slice(piece).ok()?;
            let cut = incomplete_tail_start(&chunk);
            let tail = &chunk[cut..];
            if !tail.is_empty() && !is_char_prefix(tail) {
                return None;
            }
            out.push_str(core::str::from_utf8(&chunk[..cut]).ok()?)
                .ok()?;
            carry.clear();
            carry.extend_from_slice(tail).ok()?;
        }
        carry.is_empty().then_some(out)
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
        let pieces: heapless::Vec<&[u8], 32> = bytes.chunks(1).collect();
        assert_eq!(feed(&pieces).unwrap().as_str(), text);
    }

    #[test]
    fn invalid_input_fails_as_soon_as_certain() {
        // 0xF4 0x90 is above U+10FFFF: certain after the second byte.
        assert!(is_char_prefix(b"\xF4"));
        assert!(!is_char_prefix(b"\xF4\x90"));
        for bad in [
            &b"\xC0\x80"[..],
            b"\xED\xA0\x80",
            b"\xFF",
            b"\x80",
            b"\xE0\x80",
        ] {
            assert_eq!(feed(&[bad]), None, "{bad:?}");
        }
        // A truncated code point at the end is invalid.
        assert_eq!(feed(&[b"\xE2\x82"]), None);
    }
}
