//! Unmasking and UTF-8 validation of text in one pass.
//!
//! Unmasking a large text payload and then validating it reads every byte
//! twice from wherever the payload lies (L2 or memory for large frames).
//! Here each block is unmasked and then validated while it is still in the
//! L1 cache. A block boundary may split a code point: each block is
//! validated up to the code point it cuts off, which is validated with the
//! next block.
//!
//! On x86-64 with AVX2, a kernel of the mask module (`x86::avx2_unmask_utf8`)
//! does both in the same loop, vector by vector, up to one vector before the
//! end; the blocks finish from the last code point it saw.

use super::apply_mask;
use crate::utf8::incomplete_tail_start;

/// Bytes unmasked and then validated at a time: small enough that a block
/// stays in a 32 KiB L1 data cache between the two steps, large enough that
/// the validator's per-call cost is small beside the work. Under Miri
/// blocks are small, so that its tests cross many boundaries quickly.
#[cfg(target_pointer_width = "64")]
const BLOCK: usize = if cfg!(miri) { 96 } else { 8 << 10 };

/// Unmask `chunk[from..]` with `key` (when the frame is masked; byte `i` of
/// it is at payload position `offset + i`) and validate `chunk` as UTF-8,
/// in one pass.
///
/// `chunk[..from]` must already be unmasked: the start of a code point
/// carried from the previous chunk. Returns the text of `chunk` up to where
/// a code point cut off by its end begins (all of it when the last
/// character is whole) and the cut-off bytes after it (unmasked too), or
/// `None` when the bytes before that point are not UTF-8.
#[cfg(target_pointer_width = "64")]
pub(crate) fn unmask_utf8(
    chunk: &mut [u8],
    from: usize,
    key: Option<[u8; 4]>,
    offset: usize,
) -> Option<(&str, &[u8])> {
    let len = chunk.len();
    // `chunk[..valid]` is valid UTF-8; `chunk[masked..]` is still masked.
    let mut valid = 0;
    let mut masked = from.min(len);
    #[cfg(all(
        target_arch = "x86_64",
        not(wsproto_disable_simd),
        not(miri),
        any(target_feature = "avx2", feature = "std")
    ))]
    if let n @ 1.. = super::x86::avx2_unmask_utf8(chunk, from, key, offset)? {
        valid = resume_after_kernel(chunk.get(..n)?);
        masked = n;
    }
    loop {
        let end = len.min(masked + BLOCK);
        if let Some(key) = key {
            let at = offset.wrapping_add(masked - from);
            apply_mask(chunk.get_mut(masked..end)?, key, at);
        }
        masked = end;
        let piece = chunk.get(valid..end)?;
        let cut = valid + incomplete_tail_start(piece);
        if !is_utf8(chunk.get(valid..cut)?) {
            return None;
        }
        valid = cut;
        if end == len {
            break;
        }
    }
    let chunk: &[u8] = chunk;
    let (text, tail) = chunk.split_at_checked(valid)?;
    // SAFETY: `text` is `chunk[..valid]`, the concatenation of the ranges
    // that were validated one after the other, each starting where the
    // last ended (the first at 0): the kernel's, up to the last code point
    // it can vouch for (`resume_after_kernel`), then the ranges
    // `chunk[v..cut]` that the loop accepted by `is_utf8` as whole UTF-8; a
    // concatenation of UTF-8 strings is UTF-8. Nothing writes to
    // `chunk[..valid]` after its range is validated: the masking only ever
    // touches `chunk[masked..]`, and `valid <= masked`.
    Some((unsafe { core::str::from_utf8_unchecked(text) }, tail))
}

/// Where validation goes on after the fused kernel accepted `done`: at the
/// last of its last three bytes that is not a continuation byte, or at its
/// end when all three are (the end of a four-byte code point).
///
/// The kernel checks every byte against the bytes before it, which makes
/// everything before such a byte whole UTF-8; the byte itself may start a
/// code point that `done` cuts off, or be one that no UTF-8 has (such as
/// 0xFF), which only the byte after it would reveal.
#[cfg(all(
    target_arch = "x86_64",
    not(wsproto_disable_simd),
    not(miri),
    any(target_feature = "avx2", feature = "std")
))]
fn resume_after_kernel(done: &[u8]) -> usize {
    let len = done.len();
    (len.saturating_sub(3)..len)
        .rev()
        .find(|&i| done.get(i).is_some_and(|&b| b & 0xC0 != 0x80))
        .unwrap_or(len)
}

/// Unmask `chunk[from..]` with `key` (when the frame is masked; byte `i` of
/// it is at payload position `offset + i`) and validate `chunk` as UTF-8,
/// in one pass.
///
/// `chunk[..from]` must already be unmasked: the start of a code point
/// carried from the previous chunk. Returns the text of `chunk` up to where
/// a code point cut off by its end begins (all of it when the last
/// character is whole) and the cut-off bytes after it (unmasked too), or
/// `None` when the bytes before that point are not UTF-8.
#[cfg(not(target_pointer_width = "64"))]
pub(crate) fn unmask_utf8(
    chunk: &mut [u8],
    from: usize,
    key: Option<[u8; 4]>,
    offset: usize,
) -> Option<(&str, &[u8])> {
    // Without 64-bit registers, no cache worth blocking for: two passes,
    // in the least code.
    if let Some(key) = key {
        apply_mask(chunk.get_mut(from..)?, key, offset);
    }
    let chunk: &[u8] = chunk;
    let (text, tail) = chunk.split_at_checked(incomplete_tail_start(chunk))?;
    Some((simdutf8::compat::from_utf8(text).ok()?, tail))
}

/// Unmask `payload`, a whole frame's, with `key` (when the frame is masked)
/// and return it as text, or `None` when it is not UTF-8.
#[cfg(target_pointer_width = "64")]
#[inline]
pub(crate) fn unmask_whole_utf8(payload: &mut [u8], key: Option<[u8; 4]>) -> Option<&str> {
    if payload.len() > WHOLE_BY_BLOCKS {
        return match unmask_utf8(payload, 0, key, 0)? {
            (text, []) => Some(text),
            _ => None,
        };
    }
    if let Some(key) = key {
        apply_mask(payload, key, 0);
    }
    let payload: &[u8] = payload;
    if !is_utf8(payload) {
        return None;
    }
    // SAFETY: `is_utf8` accepted all of `payload` as UTF-8.
    Some(unsafe { core::str::from_utf8_unchecked(payload) })
}

/// Whole payloads longer than this go through [`unmask_utf8`]: from the
/// fused kernel's minimum where there is one, else above one block.
#[cfg(all(
    target_arch = "x86_64",
    not(wsproto_disable_simd),
    not(miri),
    any(target_feature = "avx2", feature = "std")
))]
const WHOLE_BY_BLOCKS: usize = super::x86::UTF8_MIN_LEN - 1;
#[cfg(all(
    target_pointer_width = "64",
    not(all(
        target_arch = "x86_64",
        not(wsproto_disable_simd),
        not(miri),
        any(target_feature = "avx2", feature = "std")
    ))
))]
const WHOLE_BY_BLOCKS: usize = BLOCK;

/// Whether `bytes` is UTF-8: short inputs through [`is_utf8_short`], long
/// ones through `simdutf8`.
#[cfg(target_pointer_width = "64")]
#[inline]
fn is_utf8(bytes: &[u8]) -> bool {
    if bytes.len() < SHORT {
        return is_utf8_short(bytes);
    }
    simdutf8::basic::from_utf8(bytes).is_ok()
}

/// Below this length text goes through the table-driven automaton: SIMD
/// validators work on 64-byte blocks and hand shorter input to the
/// branchy scalar validator of `core`, which mispredicts on text that mixes
/// one- to four-byte characters.
#[cfg(target_pointer_width = "64")]
const SHORT: usize = 64;

/// Whether `bytes` is UTF-8, by a deterministic automaton over the
/// well-formed byte sequences of the Unicode Standard (Table 3-7): one
/// table lookup, shift and mask per byte, no branch on the data.
///
/// The 64-bit build only: its 2 KiB table would not fit a firmware budget.
#[cfg(target_pointer_width = "64")]
#[inline]
pub(crate) fn is_utf8_short(bytes: &[u8]) -> bool {
    let mut state = 0u64;
    for &byte in bytes {
        state = (UTF8_DFA[usize::from(byte)] >> state) & 63;
    }
    state == 0
}

/// The automaton's states: the number of the state times 6 is its bit
/// offset in a table row. `ACCEPT` is 0 (between characters).
#[cfg(target_pointer_width = "64")]
const fn utf8_next(state: u32, byte: u8) -> u32 {
    const ACCEPT: u32 = 0;
    const REJECT: u32 = 1;
    const ONE_MORE: u32 = 2;
    const TWO_MORE: u32 = 3;
    const AFTER_E0: u32 = 4;
    const AFTER_ED: u32 = 5;
    const THREE_MORE: u32 = 6;
    const AFTER_F0: u32 = 7;
    const AFTER_F4: u32 = 8;
    match (state, byte) {
        (ACCEPT, 0x00..=0x7F) => ACCEPT,
        (ACCEPT, 0xC2..=0xDF) => ONE_MORE,
        (ACCEPT, 0xE0) => AFTER_E0,
        (ACCEPT, 0xE1..=0xEC | 0xEE..=0xEF) => TWO_MORE,
        (ACCEPT, 0xED) => AFTER_ED,
        (ACCEPT, 0xF0) => AFTER_F0,
        (ACCEPT, 0xF1..=0xF3) => THREE_MORE,
        (ACCEPT, 0xF4) => AFTER_F4,
        (ONE_MORE, 0x80..=0xBF) => ACCEPT,
        (TWO_MORE, 0x80..=0xBF) | (AFTER_E0, 0xA0..=0xBF) | (AFTER_ED, 0x80..=0x9F) => ONE_MORE,
        (THREE_MORE, 0x80..=0xBF) | (AFTER_F0, 0x90..=0xBF) | (AFTER_F4, 0x80..=0x8F) => TWO_MORE,
        _ => REJECT,
    }
}

/// Row `byte` packs, for each of the nine states, the bit offset (state
/// times 6) of the state that `byte` leads to, at the state's own offset.
#[cfg(target_pointer_width = "64")]
static UTF8_DFA: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut row = 0u64;
        let mut state = 0;
        while state < 9 {
            let next = utf8_next(state, byte as u8) as u64;
            row |= (next * 6) << (state * 6);
            state += 1;
        }
        table[byte] = row;
        byte += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::mask::apply_mask_bytewise;

    /// Text with one-, two-, three- and four-byte characters, long enough to
    /// span blocks.
    #[cfg(target_pointer_width = "64")]
    fn sample() -> std::vec::Vec<u8> {
        let unit = "aé€😀 Grüße — Привет 世界 ";
        let len = 5 * BLOCK + 77;
        let mut out = std::vec::Vec::with_capacity(len + 16);
        while out.len() < len {
            out.extend_from_slice(unit.as_bytes());
        }
        out
    }

    /// The two-pass reference: unmask everything, then validate up to the
    /// cut.
    fn reference(
        chunk: &[u8],
        from: usize,
        key: [u8; 4],
        offset: usize,
    ) -> (std::vec::Vec<u8>, Option<usize>) {
        let mut copy = chunk.to_vec();
        apply_mask_bytewise(&mut copy[from..], key, offset);
        let cut = incomplete_tail_start(&copy);
        let valid = core::str::from_utf8(&copy[..cut]).is_ok().then_some(cut);
        (copy, valid)
    }

    fn check(plain: &[u8], from: usize, key: [u8; 4], offset: usize) {
        let mut chunk = plain.to_vec();
        apply_mask_bytewise(&mut chunk[from..], key, offset);
        let (unmasked, expected) = reference(&chunk, from, key, offset);
        let got = unmask_utf8(&mut chunk, from, Some(key), offset).map(|(text, _)| text.len());
        assert_eq!(
            got,
            expected,
            "len {} from {from} offset {offset}",
            plain.len()
        );
        if got.is_some() {
            assert_eq!(chunk, unmasked);
        }
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn valid_text_at_every_block_split() {
        let text = sample();
        let key = [0x37, 0xfa, 0x21, 0x3d];
        // Every way the first block boundary can cut a character, with
        // and without carried bytes in front, at every key offset.
        let offsets: &[usize] = if cfg!(miri) {
            &[1, usize::MAX]
        } else {
            &[0, 1, 2, 3, usize::MAX]
        };
        for shift in 0..8 {
            for from in [0, 1, 3] {
                let plain = &text[shift..];
                for &offset in offsets {
                    check(plain, from.min(plain.len()), key, offset);
                }
            }
        }
        // Ends that cut a character: the text up to it comes back.
        for cut in 1..4 {
            let plain = &text[..text.len() - cut];
            check(plain, 0, key, 0);
        }
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn invalid_bytes_anywhere_are_found() {
        let text = sample();
        let key = [1, 2, 3, 4];
        let places = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, text.len() - 5];
        for at in places {
            for bad in [&b"\xff"[..], b"\xc0\x80", b"\xed\xa0\x80", b"\x80"] {
                let mut plain = text.clone();
                plain[at..at + bad.len()].copy_from_slice(bad);
                check(&plain, 0, key, 2);
            }
        }
    }

    /// Every byte value that starts or ends a range of the automaton.
    #[cfg(target_pointer_width = "64")]
    const EDGES: [u8; 22] = [
        0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1,
        0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF4, 0xF5,
    ];

    #[test]
    #[cfg(target_pointer_width = "64")]
    #[cfg_attr(miri, ignore = "no unsafe code; millions of cases")]
    fn automaton_matches_core_on_every_short_sequence() {
        let same = |bytes: &[u8]| {
            assert_eq!(
                is_utf8_short(bytes),
                core::str::from_utf8(bytes).is_ok(),
                "{bytes:02x?}"
            );
        };
        // Every sequence of up to three bytes, and every four-byte
        // sequence of range edges: the automaton's decisions depend only on
        // which range each byte is in.
        for a in 0..=255u8 {
            same(&[a]);
            for b in 0..=255u8 {
                same(&[a, b]);
                for c in 0..=255u8 {
                    same(&[a, b, c]);
                }
            }
        }
        for a in EDGES.iter().chain(&[0xF3, 0xF1, 0xFF]) {
            for b in EDGES {
                for c in EDGES {
                    for d in EDGES {
                        same(&[*a, b, c, d]);
                        same(&[0x61, *a, b, c, d]);
                    }
                }
            }
        }
    }

    /// Byte pairs and triples of range edges written over valid text at
    /// every place where the fused kernel's vectors and their 128-bit
    /// lanes meet, and near the end where it hands over: the same result
    /// as the two-pass reference, carried bytes or not.
    #[test]
    #[cfg(target_pointer_width = "64")]
    #[cfg_attr(miri, ignore = "the kernel is not used under Miri")]
    fn edge_bytes_across_vector_and_lane_joins() {
        let sample = sample();
        // Text with characters of every width, and ASCII, whose vectors
        // take the kernel's ASCII path.
        for text in [&sample[..200], &[b'a'; 200][..]] {
            edge_bytes_over(text);
        }
    }

    #[cfg(target_pointer_width = "64")]
    fn edge_bytes_over(text: &[u8]) {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut places: std::vec::Vec<usize> = std::vec![0, 1, 2, 3];
        for join in [16, 32, 48, 64, 96, 128, 160] {
            places.extend(join - 4..join + 2);
        }
        places.extend(text.len() - 4..text.len());
        for &at in &places {
            for a in EDGES.iter().chain(&[0xFF, 0xF8]) {
                for b in EDGES {
                    for c in [None, Some(0x80), Some(0xBF), Some(0x41), Some(0xC3)] {
                        let mut plain = text.to_vec();
                        let bad: &[u8] = &[*a, b, c.unwrap_or(b'x')];
                        let n = if c.is_some() { 3 } else { 2 };
                        let end = (at + n).min(plain.len());
                        plain[at..end].copy_from_slice(&bad[..end - at]);
                        check(&plain, 0, key, 1);
                        if at >= 2 {
                            check(&plain, 2, key, 3);
                        }
                    }
                }
            }
        }
    }

    /// The fused kernel itself (also under Miri, with AVX2 enabled at
    /// compile time): how far it goes, what it unmasks, what it refuses.
    #[test]
    #[cfg(all(
        target_arch = "x86_64",
        not(wsproto_disable_simd),
        any(target_feature = "avx2", feature = "std")
    ))]
    fn fused_kernel_goes_to_its_last_vector() {
        use super::super::x86::avx2_unmask_utf8;
        let text = sample();
        let mut end = 170;
        while core::str::from_utf8(&text[..end]).is_err() {
            end -= 1;
        }
        let plain = &text[..end];
        let key = [0x37, 0xfa, 0x21, 0x3d];
        // Five whole vectors: the kernel takes four, leaving the last and
        // the rest.
        let n = (end / 32 - 1) * 32;
        for from in [0, 3] {
            let mut chunk = plain.to_vec();
            apply_mask_bytewise(&mut chunk[from..], key, 1);
            let done = avx2_unmask_utf8(&mut chunk, from, Some(key), 1);
            if !super::super::x86::has_avx2() {
                assert_eq!(done, Some(0));
                return;
            }
            assert_eq!(done, Some(n));
            assert_eq!(chunk[..n], plain[..n]);
            assert_eq!(chunk[n..], {
                let mut rest = plain[n..].to_vec();
                apply_mask_bytewise(&mut rest, key, 1 + n - from);
                rest
            });
        }
        for at in [0, 15, 16, 31, 32, 100, n - 2] {
            let mut chunk = plain.to_vec();
            chunk[at] = 0xFF;
            assert_eq!(avx2_unmask_utf8(&mut chunk, 0, None, 0), None, "at {at}");
        }
        // Too short, or too many carried bytes: nothing done.
        let mut short = plain[..100].to_vec();
        assert_eq!(avx2_unmask_utf8(&mut short, 0, None, 0), Some(0));
        let mut chunk = plain.to_vec();
        assert_eq!(avx2_unmask_utf8(&mut chunk, 32, Some(key), 0), Some(0));
        assert_eq!(chunk, plain);
    }

    /// Valid text of every length around the kernel's minimum and vector
    /// size, cut anywhere, with and without carried bytes.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn valid_text_of_every_length() {
        let text = sample();
        let key = [9, 8, 7, 6];
        let lens = if cfg!(miri) { 120..136 } else { 0..400 };
        for len in lens {
            for from in [0, 1, 3] {
                let plain = &text[..len];
                check(plain, from.min(len), key, 2);
            }
        }
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn whole_payloads_short_and_long() {
        let text = sample();
        for len in [
            0,
            1,
            15,
            16,
            63,
            64,
            65,
            200,
            BLOCK,
            BLOCK + 1,
            text.len() - 3,
        ] {
            let mut end = len;
            while core::str::from_utf8(&text[..end]).is_err() {
                end -= 1;
            }
            let plain = &text[..end];
            let key = [9, 8, 7, 6];
            let mut chunk = plain.to_vec();
            apply_mask_bytewise(&mut chunk, key, 0);
            assert_eq!(
                unmask_whole_utf8(&mut chunk, Some(key)),
                core::str::from_utf8(plain).ok()
            );
            // Cut in the middle of a character: not text.
            if end > 1 && plain[end - 1] >= 0x80 {
                let mut chunk = plain[..end - 1].to_vec();
                assert_eq!(unmask_whole_utf8(&mut chunk, None), None);
            }
        }
    }

    #[test]
    fn unmasked_frames_and_short_chunks() {
        for plain in [&b""[..], b"a", b"\xe2\x82", "h\u{e9}".as_bytes()] {
            let mut chunk = plain.to_vec();
            let expected = incomplete_tail_start(plain);
            let got =
                unmask_utf8(&mut chunk, 0, None, 0).map(|(text, tail)| (text.len(), tail.len()));
            assert_eq!(got, Some((expected, plain.len() - expected)));
            assert_eq!(chunk, plain);
        }
    }
}
