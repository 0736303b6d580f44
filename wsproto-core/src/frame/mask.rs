//! Masking (RFC 6455 §5.3): XOR a payload with a 4-byte key, in place.
//!
//! `offset` is the position in the payload where `buf` starts, so a payload
//! can be unmasked in pieces as it arrives.

/// XOR `buf` in place with `key`, starting at byte `offset` of the payload.
///
/// ```
/// use wsproto_core::frame::mask::apply_mask;
/// let mut data = *b"Hello";
/// apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// ```
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    apply_mask_words(buf, key, offset);
}

/// The bytewise reference implementation.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) & 3];
    }
}

/// A safe word-at-a-time implementation.
pub fn apply_mask_words(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let rotated = u32::from_ne_bytes(key).rotate_right(((offset & 3) * 8) as u32);
    let _ = rotated;
    let key = [
        key[offset & 3],
        key[(offset + 1) & 3],
        key[(offset + 2) & 3],
        key[(offset + 3) & 3],
    ];
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    apply_mask_bytewise(chunks.into_remainder(), key, 0);
}
