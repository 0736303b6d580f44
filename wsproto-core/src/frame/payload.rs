//! Where the payload of the frame being received stands: how much is left
//! and how to unmask the next byte.

use super::mask::apply_mask;
use super::mask::text::unmask_utf8;
use super::FrameHeader;

/// The progress through one frame's payload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PayloadCursor {
    /// Payload bytes not yet taken.
    pub(crate) remaining: u64,
    /// The masking key, all zeros for an unmasked frame.
    key: [u8; 4],
    /// Whether the frame is masked.
    masked: bool,
    /// Offset into the key of the next payload byte.
    offset: u8,
    /// Whether this is the final frame of its message.
    pub(crate) fin: bool,
}

impl PayloadCursor {
    pub(crate) fn new(header: &FrameHeader) -> Self {
        Self {
            remaining: header.payload_len,
            key: header.mask.unwrap_or_default(),
            masked: header.mask.is_some(),
            offset: 0,
            fin: header.fin,
        }
    }

    /// How many of `available` bytes belong to this frame.
    pub(crate) fn take_len(&self, available: usize) -> usize {
        usize::try_from(self.remaining).map_or(available, |r| r.min(available))
    }

    /// Unmask `bytes`, the next payload bytes, in place, without advancing.
    pub(crate) fn unmask(&self, bytes: &mut [u8]) {
        if self.masked {
            apply_mask(bytes, self.key, usize::from(self.offset));
        }
    }

    /// Unmask the payload bytes `chunk[from..]`, the next ones, behind the
    /// already unmasked `chunk[..from]`, and validate `chunk` as UTF-8 in
    /// the same pass, without advancing: the text up to a code point cut
    /// off by the end and the bytes of that code point, or `None` when the
    /// text is not UTF-8.
    pub(crate) fn unmask_text<'a>(
        &self,
        chunk: &'a mut [u8],
        from: usize,
    ) -> Option<(&'a str, &'a [u8])> {
        let key = self.masked.then_some(self.key);
        unmask_utf8(chunk, from, key, usize::from(self.offset))
    }

    /// Mask again the `bytes` that follow `taken` unmasked bytes, which
    /// stay unconsumed in the caller's buffer.
    #[cfg(feature = "deflate")]
    pub(crate) fn remask_after(&self, taken: usize, bytes: &mut [u8]) {
        if self.masked {
            apply_mask(bytes, self.key, (usize::from(self.offset) + taken) & 3);
        }
    }

    /// Count `n` payload bytes as taken.
    pub(crate) fn advance(&mut self, n: usize) {
        self.remaining -= n as u64;
        self.offset = ((usize::from(self.offset) + n) & 3) as u8;
    }

    /// Whether every payload byte was taken.
    pub(crate) fn is_done(&self) -> bool {
        self.remaining == 0
    }
}
