//! Masking (RFC 6455 §5.3): XOR a payload with a 4-byte key, in place or
//! while copying it.
//!
//! `offset` is the position in the payload where `buf` starts, so a payload
//! can be unmasked in pieces as it arrives: byte `i` of `buf` is XORed with
//! `key[(offset + i) % 4]`.
//!
//! [`apply_mask`] uses a SIMD kernel for long buffers where one is compiled
//! in, and the safe [`apply_mask_words`] otherwise, always under Miri or with
//! `--cfg wsproto_disable_simd`. [`copy_masked`] does the same while copying
//! a payload into an output buffer, in one pass (read, XOR, write), with
//! [`copy_masked_words`] as its safe fallback. The kernels:
//!
//! - x86_64 AVX2, detected at run time with the `std` feature or chosen at
//!   compile time with `target_feature = "avx2"`;
//! - wasm32 `simd128`, when the build enables that target feature.
//!
//! No SSE2 kernel: it measured 43.7/34.7/32.8 GB/s at 4 KiB/64 KiB/1 MiB
//! against 44.2/34.1/33.2 GB/s for the word loop, which LLVM compiles to the
//! same 16-byte SSE2 loads, XORs and stores.
//! No NEON kernel: without aarch64 hardware it could not be shown to beat the
//! word loop, which LLVM compiles to 16-byte NEON loads, XORs and stores.
#![allow(unsafe_code)]

/// XOR `buf` in place with `key`, starting at byte `offset` of the payload.
///
/// ```
/// use wsproto_core::frame::mask::apply_mask;
/// let mut data = *b"Hello";
/// apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    #[cfg(all(
        target_arch = "x86_64",
        not(wsproto_disable_simd),
        not(miri),
        any(target_feature = "avx2", feature = "std")
    ))]
    if buf.len() >= x86::AVX2_MIN_LEN {
        x86::avx2(buf, key, offset);
        return;
    }
    #[cfg(all(
        target_arch = "wasm32",
        target_feature = "simd128",
        not(wsproto_disable_simd),
        not(miri)
    ))]
    if buf.len() >= wasm::SIMD128_MIN_LEN {
        wasm::simd128(buf, key, offset);
        return;
    }
    apply_mask_words(buf, key, offset);
}

/// Copy `src` into the front of `dst`, XORed with `key` from byte `offset`
/// of the payload, in one pass (read, XOR, write): the same bytes as a copy
/// followed by [`apply_mask`], without reading the destination back.
///
/// # Panics
///
/// If `dst` is shorter than `src`.
///
/// ```
/// use wsproto_core::frame::mask::copy_masked;
/// let mut out = [0u8; 5];
/// copy_masked(&mut out, b"Hello", [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(out, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// ```
#[inline]
pub fn copy_masked(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
    #[cfg(all(
        target_arch = "x86_64",
        not(wsproto_disable_simd),
        not(miri),
        any(target_feature = "avx2", feature = "std")
    ))]
    if src.len() >= x86::AVX2_COPY_MIN_LEN {
        x86::avx2_copy(dst, src, key, offset);
        return;
    }
    copy_masked_words(dst, src, key, offset);
}

/// Messages up to this long are copied and masked by
/// [`copy_masked_short`].
#[cfg(target_pointer_width = "64")]
pub(crate) const SHORT_MESSAGE: usize = 125;

/// [`copy_masked`] of a short payload from key offset 0, inlined: sixteen
/// bytes at a time, then the last sixteen (or eight, or four) again from
/// where they start, without the setup of the block loop or the SIMD
/// dispatch, which cost more than the work below 128 bytes. The bytes the
/// last step writes twice get the same value both times: each is computed
/// from `src`, with the key turned to its position.
///
/// # Panics
///
/// If `dst` is shorter than `src`.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
pub(crate) fn copy_masked_short(dst: &mut [u8], src: &[u8], key: [u8; 4]) {
    let len = src.len();
    let dst = &mut dst[..len];
    if len >= 16 {
        let word = key_word(key, 0);
        let mut at = 0;
        while at + 16 <= len {
            copy_masked_16(dst, src, at, word);
            at += 16;
        }
        if at < len {
            let last = len - 16;
            copy_masked_16(dst, src, last, key_word(key, last));
        }
    } else if len >= 8 {
        let last = len - 8;
        dst[..8].copy_from_slice(&(load_word(&src[..8]) ^ key_word(key, 0)).to_ne_bytes());
        let tail = load_word(&src[last..]) ^ key_word(key, last);
        dst[last..].copy_from_slice(&tail.to_ne_bytes());
    } else if len >= 4 {
        let last = len - 4;
        let head = load_u32(&src[..4]) ^ u32::from_ne_bytes(key);
        dst[..4].copy_from_slice(&head.to_ne_bytes());
        let tail = load_u32(&src[last..]) ^ u32::from_ne_bytes(rotate_key(key, last));
        dst[last..].copy_from_slice(&tail.to_ne_bytes());
    } else {
        for ((d, s), k) in dst.iter_mut().zip(src).zip(key) {
            *d = s ^ k;
        }
    }
}

/// Sixteen bytes of [`copy_masked_short`] at `at`, with `word` the key as
/// seen from `at`: two words the compiler joins into one vector operation.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
fn copy_masked_16(dst: &mut [u8], src: &[u8], at: usize, word: u64) {
    let (src, dst) = (&src[at..at + 16], &mut dst[at..at + 16]);
    let low = load_word(&src[..8]) ^ word;
    let high = load_word(&src[8..]) ^ word;
    dst[..8].copy_from_slice(&low.to_ne_bytes());
    dst[8..].copy_from_slice(&high.to_ne_bytes());
}

/// Four bytes as a `u32`, in memory order.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
fn load_u32(chunk: &[u8]) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(chunk);
    u32::from_ne_bytes(bytes)
}

/// The bytewise reference of [`copy_masked`]: one XOR per byte.
///
/// # Panics
///
/// If `dst` is shorter than `src`.
pub fn copy_masked_bytewise(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
    let dst = &mut dst[..src.len()];
    for (i, (d, s)) in dst.iter_mut().zip(src).enumerate() {
        *d = s ^ key[offset.wrapping_add(i) & 3];
    }
}

/// A safe [`copy_masked`] that XORs eight bytes at a time; the compiler
/// turns the loops into vector instructions where the target has them.
///
/// # Panics
///
/// If `dst` is shorter than `src`.
#[inline]
pub fn copy_masked_words(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
    let dst = &mut dst[..src.len()];
    let word = key_word(key, offset);
    #[cfg(all(not(target_arch = "wasm32"), target_pointer_width = "64"))]
    let (dst, src) = copy_masked_blocks(dst, src, word);
    let mut dst_chunks = dst.chunks_exact_mut(8);
    let mut src_chunks = src.chunks_exact(8);
    for (d, s) in (&mut dst_chunks).zip(&mut src_chunks) {
        d.copy_from_slice(&(load_word(s) ^ word).to_ne_bytes());
    }
    // Both tails start a multiple of 8 bytes in, where the key lines up with
    // the start of `word`.
    let tail = dst_chunks.into_remainder().iter_mut();
    for ((d, s), k) in tail.zip(src_chunks.remainder()).zip(word.to_ne_bytes()) {
        *d = s ^ k;
    }
}

/// The bytewise reference implementation: one XOR per byte.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[offset.wrapping_add(i) & 3];
    }
}

/// A safe implementation that XORs eight bytes at a time; the compiler turns
/// the loops into vector instructions where the target has them.
pub fn apply_mask_words(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let word = key_word(key, offset);
    // wasm32 engines run the plain loop below faster than the 64-byte blocks
    // (measured in V8: 15 against 11 GB/s at 4 KiB); other 32-bit targets,
    // such as Cortex-M, have no registers wide enough for the blocks to pay
    // for their code.
    #[cfg(all(not(target_arch = "wasm32"), target_pointer_width = "64"))]
    let buf = mask_blocks(buf, word);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let masked = load_word(chunk) ^ word;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    // The tail starts a multiple of 8 bytes in, where the key lines up with
    // the start of `word`.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(word.to_ne_bytes()) {
        *byte ^= k;
    }
}

/// XOR the whole 64-byte blocks of `buf` with `word` and return the rest.
#[cfg(all(not(target_arch = "wasm32"), target_pointer_width = "64"))]
#[inline(always)]
fn mask_blocks(buf: &mut [u8], word: u64) -> &mut [u8] {
    let mut blocks = buf.chunks_exact_mut(64);
    for block in &mut blocks {
        // Load all eight words before storing any, so the block becomes a
        // few wide loads, XORs and stores (four 16-byte ones on x86_64 and
        // aarch64).
        let mut words = [0u64; 8];
        for (w, chunk) in words.iter_mut().zip(block.chunks_exact(8)) {
            *w = load_word(chunk) ^ word;
        }
        for (w, chunk) in words.iter().zip(block.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
    }
    blocks.into_remainder()
}

/// Copy the whole 64-byte blocks of `src` into `dst` (of the same length),
/// XORed with `word`, and return the rest of both.
#[cfg(all(not(target_arch = "wasm32"), target_pointer_width = "64"))]
#[inline(always)]
fn copy_masked_blocks<'d, 's>(
    dst: &'d mut [u8],
    src: &'s [u8],
    word: u64,
) -> (&'d mut [u8], &'s [u8]) {
    let mut dst_blocks = dst.chunks_exact_mut(64);
    let mut src_blocks = src.chunks_exact(64);
    for (d, s) in (&mut dst_blocks).zip(&mut src_blocks) {
        // As in `mask_blocks`: all loads first, so the block becomes a few
        // wide loads, XORs and stores.
        let mut words = [0u64; 8];
        for (w, chunk) in words.iter_mut().zip(s.chunks_exact(8)) {
            *w = load_word(chunk) ^ word;
        }
        for (w, chunk) in words.iter().zip(d.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
    }
    (dst_blocks.into_remainder(), src_blocks.remainder())
}

/// An 8-byte chunk as a native-endian word.
#[inline(always)]
fn load_word(chunk: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(chunk);
    u64::from_ne_bytes(bytes)
}

/// The key as seen from payload position `offset`: byte 0 of the result
/// masks the first byte of the buffer.
#[inline(always)]
fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let shift = ((offset & 3) * 8) as u32;
    let word = u32::from_ne_bytes(key);
    let rotated = if cfg!(target_endian = "little") {
        word.rotate_right(shift)
    } else {
        word.rotate_left(shift)
    };
    rotated.to_ne_bytes()
}

/// The rotated key twice over, as the native-endian word that masks eight
/// bytes starting at payload position `offset`.
#[inline(always)]
fn key_word(key: [u8; 4], offset: usize) -> u64 {
    let half = u64::from(u32::from_ne_bytes(rotate_key(key, offset)));
    half | (half << 32)
}

pub(crate) mod text;

/// The SIMD kernels, reachable for tests and benchmarks.
///
/// Each getter returns its kernel when it is compiled into this build and the
/// running CPU supports it, and `None` otherwise. A kernel returned is safe
/// to call with any buffer and offset, and masks exactly like
/// [`apply_mask_bytewise`].
#[doc(hidden)]
pub mod kernels {
    /// The signature every masking implementation shares.
    pub type Kernel = fn(&mut [u8], [u8; 4], usize);

    /// The x86_64 AVX2 kernel (32-byte vectors), if the CPU has AVX2.
    pub fn avx2() -> Option<Kernel> {
        #[cfg(all(
            target_arch = "x86_64",
            not(wsproto_disable_simd),
            any(target_feature = "avx2", feature = "std")
        ))]
        if super::x86::has_avx2() {
            return Some(super::x86::avx2);
        }
        None
    }

    /// The signature every copying implementation shares: `(dst, src, key,
    /// offset)`, as [`copy_masked`](super::copy_masked).
    pub type CopyKernel = fn(&mut [u8], &[u8], [u8; 4], usize);

    /// The x86_64 AVX2 copying kernel, if the CPU has AVX2.
    pub fn avx2_copy() -> Option<CopyKernel> {
        #[cfg(all(
            target_arch = "x86_64",
            not(wsproto_disable_simd),
            any(target_feature = "avx2", feature = "std")
        ))]
        if super::x86::has_avx2() {
            return Some(super::x86::avx2_copy);
        }
        None
    }

    /// The wasm32 `simd128` kernel (16-byte vectors), if the build enables
    /// `simd128`.
    pub fn simd128() -> Option<Kernel> {
        #[cfg(all(
            target_arch = "wasm32",
            target_feature = "simd128",
            not(wsproto_disable_simd)
        ))]
        {
            Some(super::wasm::simd128)
        }
        #[cfg(not(all(
            target_arch = "wasm32",
            target_feature = "simd128",
            not(wsproto_disable_simd)
        )))]
        {
            None
        }
    }
}

#[cfg(all(
    target_arch = "x86_64",
    not(wsproto_disable_simd),
    any(target_feature = "avx2", feature = "std")
))]
mod x86 {
    use core::arch::x86_64::{
        __m256i, _mm256_alignr_epi8, _mm256_and_si256, _mm256_cmpgt_epi8, _mm256_loadu_si256,
        _mm256_movemask_epi8, _mm256_or_si256, _mm256_permute2x128_si256, _mm256_set1_epi32,
        _mm256_set1_epi8, _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_srli_epi16,
        _mm256_storeu_si256, _mm256_subs_epu8, _mm256_testz_si256, _mm256_xor_si256,
    };

    use super::{apply_mask_words, copy_masked_words, rotate_key};

    /// From this length on the AVX2 kernel is faster than the word loop.
    pub(super) const AVX2_MIN_LEN: usize = 256;

    /// From this length on the AVX2 copying kernel is faster than the word
    /// loop.
    pub(super) const AVX2_COPY_MIN_LEN: usize = 128;

    /// Whether the running CPU has AVX2.
    #[inline]
    pub(crate) fn has_avx2() -> bool {
        #[cfg(target_feature = "avx2")]
        {
            true
        }
        #[cfg(not(target_feature = "avx2"))]
        {
            std::is_x86_feature_detected!("avx2")
        }
    }

    /// The AVX2 kernel; runs the word loop on a CPU without AVX2.
    pub(super) fn avx2(buf: &mut [u8], key: [u8; 4], offset: usize) {
        if has_avx2() {
            debug_assert!(has_avx2());
            // SAFETY: `has_avx2()` was checked on the line above, and AVX2
            // is the only requirement of `avx2_unchecked`.
            unsafe { avx2_unchecked(buf, key, offset) }
        } else {
            apply_mask_words(buf, key, offset);
        }
    }

    /// # Safety
    ///
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn avx2_unchecked(buf: &mut [u8], key: [u8; 4], offset: usize) {
        let key = rotate_key(key, offset);
        let pattern = [u32::from_ne_bytes(key); 8];
        // SAFETY: `pattern` is 32 readable bytes; `_mm256_loadu_si256`
        // accepts any alignment; the caller guarantees AVX2.
        let k = unsafe { _mm256_loadu_si256(pattern.as_ptr().cast::<__m256i>()) };
        let mut blocks = buf.chunks_exact_mut(128);
        for block in &mut blocks {
            debug_assert_eq!(block.len(), 128);
            let p = block.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `chunks_exact_mut(128)` yields exactly 128 bytes, so the
            // four 32-byte vectors at `p..p + 4` lie inside `block`, which is
            // borrowed mutably here; the unaligned load/store intrinsics
            // accept any alignment; the caller guarantees AVX2.
            unsafe {
                let a = _mm256_loadu_si256(p);
                let b = _mm256_loadu_si256(p.add(1));
                let c = _mm256_loadu_si256(p.add(2));
                let d = _mm256_loadu_si256(p.add(3));
                _mm256_storeu_si256(p, _mm256_xor_si256(a, k));
                _mm256_storeu_si256(p.add(1), _mm256_xor_si256(b, k));
                _mm256_storeu_si256(p.add(2), _mm256_xor_si256(c, k));
                _mm256_storeu_si256(p.add(3), _mm256_xor_si256(d, k));
            }
        }
        let mut vectors = blocks.into_remainder().chunks_exact_mut(32);
        for vector in &mut vectors {
            debug_assert_eq!(vector.len(), 32);
            let p = vector.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `chunks_exact_mut(32)` yields exactly 32 bytes at `p`,
            // borrowed mutably here; the unaligned intrinsics accept any
            // alignment; the caller guarantees AVX2.
            unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), k)) };
        }
        // Everything before the tail is a multiple of 4 bytes long, so the
        // rotated key applies from its position 0.
        apply_mask_words(vectors.into_remainder(), key, 0);
    }

    /// The AVX2 copying kernel; runs the word loop on a CPU without AVX2.
    pub(super) fn avx2_copy(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
        let dst = &mut dst[..src.len()];
        if has_avx2() {
            debug_assert!(has_avx2());
            // SAFETY: `has_avx2()` was checked on the line above, and `dst`
            // was cut to the length of `src` before it: those are the
            // requirements of `avx2_copy_unchecked`.
            unsafe { avx2_copy_unchecked(dst, src, key, offset) }
        } else {
            copy_masked_words(dst, src, key, offset);
        }
    }

    /// # Safety
    ///
    /// The CPU must support AVX2, and `dst` must be as long as `src`.
    #[target_feature(enable = "avx2")]
    unsafe fn avx2_copy_unchecked(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
        debug_assert_eq!(dst.len(), src.len());
        let key = rotate_key(key, offset);
        let pattern = [u32::from_ne_bytes(key); 8];
        // SAFETY: `pattern` is 32 readable bytes; `_mm256_loadu_si256`
        // accepts any alignment; the caller guarantees AVX2.
        let k = unsafe { _mm256_loadu_si256(pattern.as_ptr().cast::<__m256i>()) };
        // Equal lengths give both the same number of blocks and equally long
        // remainders.
        let mut dst_blocks = dst.chunks_exact_mut(128);
        let mut src_blocks = src.chunks_exact(128);
        for (d, s) in (&mut dst_blocks).zip(&mut src_blocks) {
            debug_assert!(d.len() == 128 && s.len() == 128);
            let d = d.as_mut_ptr().cast::<__m256i>();
            let s = s.as_ptr().cast::<__m256i>();
            // SAFETY: both `chunks_exact` iterators yield exactly 128 bytes,
            // so the four 32-byte vectors at `s..s + 4` lie inside the
            // source block and those at `d..d + 4` inside the destination
            // block, which is borrowed mutably here and cannot overlap the
            // shared `src`; the unaligned load/store intrinsics accept any
            // alignment; the caller guarantees AVX2.
            unsafe {
                let a = _mm256_loadu_si256(s);
                let b = _mm256_loadu_si256(s.add(1));
                let c = _mm256_loadu_si256(s.add(2));
                let e = _mm256_loadu_si256(s.add(3));
                _mm256_storeu_si256(d, _mm256_xor_si256(a, k));
                _mm256_storeu_si256(d.add(1), _mm256_xor_si256(b, k));
                _mm256_storeu_si256(d.add(2), _mm256_xor_si256(c, k));
                _mm256_storeu_si256(d.add(3), _mm256_xor_si256(e, k));
            }
        }
        let mut dst_vectors = dst_blocks.into_remainder().chunks_exact_mut(32);
        let mut src_vectors = src_blocks.remainder().chunks_exact(32);
        for (d, s) in (&mut dst_vectors).zip(&mut src_vectors) {
            debug_assert!(d.len() == 32 && s.len() == 32);
            let d = d.as_mut_ptr().cast::<__m256i>();
            let s = s.as_ptr().cast::<__m256i>();
            // SAFETY: both `chunks_exact` iterators yield exactly 32 bytes,
            // so the vector at `s` lies inside the source chunk and the one
            // at `d` inside the destination chunk, borrowed mutably here;
            // the unaligned intrinsics accept any alignment; the caller
            // guarantees AVX2.
            unsafe { _mm256_storeu_si256(d, _mm256_xor_si256(_mm256_loadu_si256(s), k)) };
        }
        // Everything before the tails is a multiple of 4 bytes long, so the
        // rotated key applies from its position 0.
        copy_masked_words(
            dst_vectors.into_remainder(),
            src_vectors.remainder(),
            key,
            0,
        );
    }

    /// The fused kernel leaves inputs shorter than this to the caller.
    pub(crate) const UTF8_MIN_LEN: usize = 128;

    /// Unmask `buf[from..]` with `key` (when the frame is masked; byte `i`
    /// of it is at payload position `offset + i`) and validate `buf` as
    /// UTF-8 in the same pass, 32 bytes at a time, from the front to at
    /// least 32 bytes before the end.
    ///
    /// `buf[..from]` must be unmasked already and `buf` must start a code
    /// point. Returns how far it went, `n`, a multiple of 32: `buf[..n]` is
    /// unmasked, and every byte of it is where UTF-8 allows after the bytes
    /// before it, though the last code point may be unfinished (or, in its
    /// last three bytes, a byte that no UTF-8 has, which only the next byte
    /// reveals). `Some(0)` when it did nothing: no AVX2, `from` 32 or more,
    /// or `buf` shorter than [`UTF8_MIN_LEN`]. `None` when `buf` is not
    /// UTF-8.
    pub(crate) fn avx2_unmask_utf8(
        buf: &mut [u8],
        from: usize,
        key: Option<[u8; 4]>,
        offset: usize,
    ) -> Option<usize> {
        if from >= 32 || buf.len() < UTF8_MIN_LEN || !has_avx2() {
            return Some(0);
        }
        debug_assert!(has_avx2());
        // SAFETY: `has_avx2()` was checked above, and AVX2 is the only
        // requirement of `avx2_unmask_utf8_unchecked`.
        unsafe { avx2_unmask_utf8_unchecked(buf, from, key, offset) }
    }

    /// The error classes of a byte and the byte before it, one bit each:
    /// (bit, high nibbles of the byte before, its low nibbles, high nibbles
    /// of the byte), each as a set of nibble values. A pair is an error
    /// when all three of its nibbles are in the sets of one class; the
    /// three lookup tables below are the unions of these sets per nibble,
    /// so that AND-ing the three lookups leaves exactly the bits of the
    /// classes the pair is in (Keiser and Lemire, "Validating UTF-8 in less
    /// than one instruction per byte", 2021). Bit 0x80, a continuation byte
    /// after a continuation byte, is an error unless the byte two or three
    /// back starts a three- or four-byte code point, which the kernel
    /// checks apart.
    const CLASSES: [(u8, u16, u16, u16); 9] = [
        // A lead byte, then no continuation byte.
        (
            0x01,
            nibbles(0xC, 0xF),
            ALL,
            nibbles(0x0, 0x7) | nibbles(0xC, 0xF),
        ),
        // An ASCII byte, then a continuation byte.
        (0x02, nibbles(0x0, 0x7), ALL, nibbles(0x8, 0xB)),
        // E0 80..9F: an overlong three-byte form.
        (
            0x04,
            nibbles(0xE, 0xE),
            nibbles(0x0, 0x0),
            nibbles(0x8, 0x9),
        ),
        // F4 90..BF and F5..FF 90..BF: above U+10FFFF.
        (
            0x08,
            nibbles(0xF, 0xF),
            nibbles(0x4, 0xF),
            nibbles(0x9, 0xB),
        ),
        // ED A0..BF: a surrogate.
        (
            0x10,
            nibbles(0xE, 0xE),
            nibbles(0xD, 0xD),
            nibbles(0xA, 0xB),
        ),
        // C0 or C1, then a continuation byte: an overlong two-byte form.
        (
            0x20,
            nibbles(0xC, 0xC),
            nibbles(0x0, 0x1),
            nibbles(0x8, 0xB),
        ),
        // F0 80..8F: an overlong four-byte form.
        (
            0x40,
            nibbles(0xF, 0xF),
            nibbles(0x0, 0x0),
            nibbles(0x8, 0x8),
        ),
        // F5..FF 80..8F: above U+10FFFF (the same bit: same other sets).
        (
            0x40,
            nibbles(0xF, 0xF),
            nibbles(0x5, 0xF),
            nibbles(0x8, 0x8),
        ),
        // A continuation byte after a continuation byte.
        (0x80, nibbles(0x8, 0xB), ALL, nibbles(0x8, 0xB)),
    ];

    const ALL: u16 = 0xFFFF;

    /// The nibble values `low..=high` as a set.
    const fn nibbles(low: u8, high: u8) -> u16 {
        let mut set = 0;
        let mut n = low;
        while n <= high {
            set |= 1 << n;
            n += 1;
        }
        set
    }

    /// The lookup table of one of the three nibbles (`which`: 0 for the
    /// high nibble of the byte before, 1 for its low nibble, 2 for the high
    /// nibble of the byte), in both 128-bit lanes.
    const fn class_table(which: usize) -> [u8; 32] {
        let mut table = [0u8; 32];
        let mut i = 0;
        while i < CLASSES.len() {
            let (bit, a, b, c) = CLASSES[i];
            let set = match which {
                0 => a,
                1 => b,
                _ => c,
            };
            let mut n = 0;
            while n < 16 {
                if set & (1 << n) != 0 {
                    table[n] |= bit;
                    table[n + 16] |= bit;
                }
                n += 1;
            }
            i += 1;
        }
        table
    }

    static BEFORE_HIGH: [u8; 32] = class_table(0);
    static BEFORE_LOW: [u8; 32] = class_table(1);
    static BYTE_HIGH: [u8; 32] = class_table(2);

    /// Subtracted (saturating) from the last vector before an ASCII one:
    /// anything left means a code point that the ASCII bytes cut short (a
    /// lead byte in the last byte, a three- or four-byte lead in the one
    /// before, a four-byte lead in the one before that).
    static UNFINISHED: [u8; 32] = {
        let mut max = [0xFF; 32];
        max[29] = 0xF0 - 1;
        max[30] = 0xE0 - 1;
        max[31] = 0xC0 - 1;
        max
    };

    /// Lane indices 0 to 31.
    static LANES: [u8; 32] = {
        let mut lanes = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            lanes[i] = i as u8;
            i += 1;
        }
        lanes
    };

    /// Load one of the tables above.
    #[target_feature(enable = "avx2")]
    fn load_table(table: &[u8; 32]) -> __m256i {
        // SAFETY: `table` is 32 readable bytes; `_mm256_loadu_si256`
        // accepts any alignment; AVX2 is enabled for this function.
        unsafe { _mm256_loadu_si256(table.as_ptr().cast::<__m256i>()) }
    }

    /// The error bits of the 32 bytes of `input`, given the 32 bytes before
    /// them, `prev`: nonzero where a byte cannot follow the bytes before it.
    #[target_feature(enable = "avx2")]
    fn utf8_errors(input: __m256i, prev: __m256i, tables: &[__m256i; 3]) -> __m256i {
        // The bytes one, two and three places back: the high lane of
        // `prev` and the low lane of `input`, shifted into place lane by
        // lane.
        let joint = _mm256_permute2x128_si256::<0x21>(prev, input);
        let prev1 = _mm256_alignr_epi8::<15>(input, joint);
        let prev2 = _mm256_alignr_epi8::<14>(input, joint);
        let prev3 = _mm256_alignr_epi8::<13>(input, joint);
        let low = _mm256_set1_epi8(0x0F);
        let high_nibbles = |v: __m256i| _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
        let special = _mm256_and_si256(
            _mm256_and_si256(
                _mm256_shuffle_epi8(tables[0], high_nibbles(prev1)),
                _mm256_shuffle_epi8(tables[1], _mm256_and_si256(prev1, low)),
            ),
            _mm256_shuffle_epi8(tables[2], high_nibbles(input)),
        );
        // Bit 0x80 where the byte two back is E0 or above, or the byte
        // three back F0 or above: this byte must continue a code point.
        let third = _mm256_subs_epu8(prev2, _mm256_set1_epi8((0xE0 - 0x80) as i8));
        let fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8((0xF0 - 0x80) as i8));
        let must_continue = _mm256_and_si256(
            _mm256_or_si256(third, fourth),
            _mm256_set1_epi8(0x80u8 as i8),
        );
        _mm256_xor_si256(must_continue, special)
    }

    /// # Safety
    ///
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn avx2_unmask_utf8_unchecked(
        buf: &mut [u8],
        from: usize,
        key: Option<[u8; 4]>,
        offset: usize,
    ) -> Option<usize> {
        let tables = [
            load_table(&BEFORE_HIGH),
            load_table(&BEFORE_LOW),
            load_table(&BYTE_HIGH),
        ];
        let unfinished = load_table(&UNFINISHED);
        // The key from byte 0 of `buf`, whose payload position is
        // `offset - from`; zero where nothing is to be unmasked.
        let (key, mut first) = match key {
            Some(key) => {
                let word = u32::from_ne_bytes(rotate_key(key, offset.wrapping_sub(from)));
                let key = _mm256_set1_epi32(word as i32);
                // Lanes `from..32` of the first vector are masked; `from`
                // is below 32.
                let masked =
                    _mm256_cmpgt_epi8(load_table(&LANES), _mm256_set1_epi8(from as i8 - 1));
                (key, _mm256_and_si256(key, masked))
            }
            None => (_mm256_setzero_si256(), _mm256_setzero_si256()),
        };
        let unmask = key_is_set(key);
        let mut prev = _mm256_setzero_si256();
        let mut errors = _mm256_setzero_si256();
        // Whole pairs of vectors, leaving at least one vector's worth.
        let pairs = buf.len().saturating_sub(32) / 64;
        for pair in buf.chunks_exact_mut(64).take(pairs) {
            debug_assert_eq!(pair.len(), 64);
            let p = pair.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `chunks_exact_mut(64)` yields exactly 64 bytes, so the
            // two vectors at `p` and `p + 1` lie inside `pair`, borrowed
            // mutably here; the unaligned intrinsics accept any alignment;
            // the caller guarantees AVX2.
            let (mut a, mut b) = unsafe { (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))) };
            if unmask {
                a = _mm256_xor_si256(a, first);
                b = _mm256_xor_si256(b, key);
                first = key;
                // SAFETY: as for the loads above.
                unsafe {
                    _mm256_storeu_si256(p, a);
                    _mm256_storeu_si256(p.add(1), b);
                }
            }
            let found = if _mm256_movemask_epi8(_mm256_or_si256(a, b)) == 0 {
                // ASCII: only a code point left unfinished before it.
                _mm256_subs_epu8(prev, unfinished)
            } else {
                _mm256_or_si256(utf8_errors(a, prev, &tables), utf8_errors(b, a, &tables))
            };
            errors = _mm256_or_si256(errors, found);
            prev = b;
        }
        (_mm256_testz_si256(errors, errors) == 1).then_some(pairs * 64)
    }

    /// Whether a key vector is nonzero (a zero key leaves bytes as they are).
    #[target_feature(enable = "avx2")]
    fn key_is_set(key: __m256i) -> bool {
        _mm256_testz_si256(key, key) == 0
    }
}

#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    not(wsproto_disable_simd)
))]
mod wasm {
    use core::arch::wasm32::{u32x4_splat, v128, v128_load, v128_store, v128_xor};

    use super::{apply_mask_words, rotate_key};

    /// From this length on the `simd128` kernel is at least as fast as the
    /// word loop.
    pub(super) const SIMD128_MIN_LEN: usize = 256;

    /// `simd128` is enabled for the whole build, so this needs no detection.
    pub(super) fn simd128(buf: &mut [u8], key: [u8; 4], offset: usize) {
        let key = rotate_key(key, offset);
        let k = u32x4_splat(u32::from_ne_bytes(key));
        let mut vectors = buf.chunks_exact_mut(16);
        for vector in &mut vectors {
            debug_assert_eq!(vector.len(), 16);
            let p = vector.as_mut_ptr().cast::<v128>();
            // SAFETY: `chunks_exact_mut(16)` yields exactly 16 bytes at `p`,
            // borrowed mutably here; `v128_load` and `v128_store` accept any
            // alignment.
            unsafe { v128_store(p, v128_xor(v128_load(p), k)) };
        }
        // Everything before the tail is a multiple of 4 bytes long, so the
        // rotated key applies from its position 0.
        apply_mask_words(vectors.into_remainder(), key, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::kernels::{self, CopyKernel, Kernel};
    use super::{
        apply_mask, apply_mask_bytewise, apply_mask_words, copy_masked, copy_masked_bytewise,
        copy_masked_words,
    };
    #[cfg(target_pointer_width = "64")]
    use super::{copy_masked_short, SHORT_MESSAGE};

    /// Every length up to this one is tested.
    const MAX_LEN: usize = if cfg!(miri) { 40 } else { 300 };
    /// Longer lengths, around the point where `apply_mask` switches to a
    /// kernel and past every kernel's block size.
    const LONG_LENS: &[usize] = if cfg!(miri) {
        &[291]
    } else {
        &[511, 512, 513, 517, 640, 767, 1024, 1031, 1279, 2047, 2048]
    };
    /// The buffer split at every point, long enough to reach every kernel.
    const SPLIT_LEN: usize = if cfg!(miri) { 100 } else { 1031 };
    const MAX_ALIGN: usize = 7;
    /// Room for the longest length at the largest alignment, plus bytes
    /// after it that must stay untouched.
    const BUF: usize = 2048 + MAX_ALIGN + 8;
    const KEY: [u8; 4] = [0x9e, 0x37, 0x79, 0xb9];

    /// Offsets covering every key phase twice, plus ones near `usize::MAX`
    /// where `offset + i` would overflow.
    const OFFSETS: &[usize] = if cfg!(miri) {
        &[0, 1, 2, 3, usize::MAX - 2]
    } else {
        &[
            0,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            usize::MAX - 2,
            usize::MAX - 1,
            usize::MAX,
        ]
    };

    /// Pseudo-random bytes (xorshift32), so no lane of a kernel can pass by
    /// accident.
    fn data() -> [u8; BUF] {
        let mut out = [0u8; BUF];
        let mut state: u32 = 0x1234_5678;
        for byte in out.iter_mut() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *byte = (state >> 24) as u8;
        }
        out
    }

    fn implementations() -> impl Iterator<Item = (&'static str, Kernel)> {
        let all: [(&'static str, Option<Kernel>); 4] = [
            // Under Miri only the kernels with `unsafe` code where there
            // are any: the word loop is safe (and runs in their tails).
            (
                "words",
                (!cfg!(miri) || (kernels::avx2().is_none() && kernels::simd128().is_none()))
                    .then_some(apply_mask_words as Kernel),
            ),
            // Under Miri `apply_mask` is the word loop; testing it twice
            // there would only double the run time.
            ("apply_mask", (!cfg!(miri)).then_some(apply_mask as Kernel)),
            ("avx2", kernels::avx2()),
            ("simd128", kernels::simd128()),
        ];
        all.into_iter()
            .filter_map(|(name, kernel)| kernel.map(|k| (name, k)))
    }

    fn copy_implementations() -> impl Iterator<Item = (&'static str, CopyKernel)> {
        let all: [(&'static str, Option<CopyKernel>); 3] = [
            // Under Miri only the kernels with `unsafe` code, as above.
            (
                "copy words",
                (!cfg!(miri) || kernels::avx2_copy().is_none())
                    .then_some(copy_masked_words as CopyKernel),
            ),
            // Under Miri `copy_masked` is the word loop.
            (
                "copy_masked",
                (!cfg!(miri)).then_some(copy_masked as CopyKernel),
            ),
            ("avx2 copy", kernels::avx2_copy()),
        ];
        all.into_iter()
            .filter_map(|(name, kernel)| kernel.map(|k| (name, k)))
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    #[cfg_attr(miri, ignore = "no unsafe code")]
    fn copy_masked_short_matches_bytewise() {
        let input = data();
        for len in 0..=SHORT_MESSAGE {
            for align in 0..8 {
                let src = &input[align..align + len];
                let mut expected = [0xAAu8; SHORT_MESSAGE + 8];
                let mut actual = expected;
                copy_masked_bytewise(&mut expected, src, KEY, 0);
                copy_masked_short(&mut actual[..len + 3], src, KEY);
                assert!(expected == actual, "len {len}, align {align}");
            }
        }
    }

    #[test]
    fn hello_vector() {
        // RFC 6455 §5.7: a masked "Hello".
        for (name, kernel) in implementations() {
            let mut data = *b"Hello";
            kernel(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
            assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58], "{name}");
        }
    }

    #[test]
    fn bytewise_follows_the_definition() {
        let input = data();
        let len = if cfg!(miri) { 64 } else { BUF };
        for &offset in OFFSETS {
            let mut buf = input;
            apply_mask_bytewise(&mut buf[..len], KEY, offset);
            for (i, (&masked, &plain)) in buf[..len].iter().zip(input.iter()).enumerate() {
                let phase = ((offset as u128 + i as u128) % 4) as usize;
                assert_eq!(masked, plain ^ KEY[phase]);
            }
        }
    }

    #[test]
    fn matches_bytewise() {
        let input = data();
        let mut expected = [0u8; BUF];
        let mut actual = [0u8; BUF];
        for len in (0..=MAX_LEN).chain(LONG_LENS.iter().copied()) {
            for &offset in OFFSETS {
                for align in 0..=MAX_ALIGN {
                    // The slice under test, with the `align` bytes before it
                    // and 8 bytes after it, which must not change.
                    let used = align + len + 8;
                    expected[..used].copy_from_slice(&input[..used]);
                    apply_mask_bytewise(&mut expected[align..align + len], KEY, offset);
                    for (name, kernel) in implementations() {
                        actual[..used].copy_from_slice(&input[..used]);
                        kernel(&mut actual[align..align + len], KEY, offset);
                        assert!(
                            expected[..used] == actual[..used],
                            "{name}: len {len}, offset {offset}, align {align}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn masking_twice_restores() {
        let input = data();
        let mut buf = [0u8; BUF];
        for (name, kernel) in implementations() {
            for len in (0..=MAX_LEN).chain(LONG_LENS.iter().copied()) {
                for &offset in OFFSETS {
                    buf[..len].copy_from_slice(&input[..len]);
                    kernel(&mut buf[..len], KEY, offset);
                    if len >= 4 {
                        assert!(buf[..len] != input[..len], "{name}: len {len} unchanged");
                    }
                    kernel(&mut buf[..len], KEY, offset);
                    assert!(
                        buf[..len] == input[..len],
                        "{name}: len {len}, offset {offset}"
                    );
                }
            }
        }
    }

    #[test]
    fn split_equals_whole() {
        let input = data();
        let len = SPLIT_LEN;
        let mut whole = [0u8; BUF];
        let mut parts = [0u8; BUF];
        for (name, kernel) in implementations() {
            for &offset in OFFSETS {
                whole[..len].copy_from_slice(&input[..len]);
                kernel(&mut whole[..len], KEY, offset);
                for split in 0..=len {
                    parts[..len].copy_from_slice(&input[..len]);
                    let (head, tail) = parts[..len].split_at_mut(split);
                    kernel(head, KEY, offset);
                    kernel(tail, KEY, offset.wrapping_add(split));
                    assert!(
                        parts[..len] == whole[..len],
                        "{name}: split {split}, offset {offset}"
                    );
                }
            }
        }
    }

    #[test]
    fn copy_hello_vector() {
        for (name, kernel) in copy_implementations() {
            let mut out = [0u8; 5];
            kernel(&mut out, b"Hello", [0x37, 0xfa, 0x21, 0x3d], 0);
            assert_eq!(out, [0x7f, 0x9f, 0x4d, 0x51, 0x58], "{name}");
        }
    }

    #[test]
    fn copy_bytewise_is_copy_then_mask() {
        let input = data();
        let len = if cfg!(miri) { 64 } else { BUF };
        for &offset in OFFSETS {
            let mut expected = input;
            apply_mask_bytewise(&mut expected[..len], KEY, offset);
            let mut actual = [0u8; BUF];
            copy_masked_bytewise(&mut actual, &input[..len], KEY, offset);
            assert!(actual[..len] == expected[..len], "offset {offset}");
        }
    }

    /// Every length, key offset, and alignment of source and destination
    /// (independently, so their distance varies too), against the bytewise
    /// reference; the destination bytes around the copy must not change.
    #[test]
    fn copy_matches_bytewise() {
        let input = data();
        let aligns: &[usize] = if cfg!(miri) {
            &[0, 3]
        } else {
            &[0, 1, 3, 4, 7]
        };
        let mut expected = [0u8; BUF];
        let mut actual = [0u8; BUF];
        for len in (0..=MAX_LEN).chain(LONG_LENS.iter().copied()) {
            for &offset in OFFSETS {
                for &src_align in aligns {
                    let src = &input[src_align..src_align + len];
                    for dst_align in 0..=MAX_ALIGN {
                        // The destination starts `dst_align` bytes in and
                        // holds 8 bytes more than `src`.
                        let used = dst_align + len + 8;
                        expected[..used].fill(0xa5);
                        copy_masked_bytewise(&mut expected[dst_align..used], src, KEY, offset);
                        for (name, kernel) in copy_implementations() {
                            actual[..used].fill(0xa5);
                            kernel(&mut actual[dst_align..used], src, KEY, offset);
                            assert!(
                                expected[..used] == actual[..used],
                                "{name}: len {len}, offset {offset}, \
                                 src align {src_align}, dst align {dst_align}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn copy_split_equals_whole() {
        let input = data();
        let len = SPLIT_LEN;
        let mut whole = [0u8; BUF];
        let mut parts = [0u8; BUF];
        for (name, kernel) in copy_implementations() {
            for &offset in OFFSETS {
                kernel(&mut whole[..len], &input[..len], KEY, offset);
                for split in 0..=len {
                    parts[..len].fill(0);
                    let (head, tail) = parts[..len].split_at_mut(split);
                    kernel(head, &input[..split], KEY, offset);
                    kernel(tail, &input[split..len], KEY, offset.wrapping_add(split));
                    assert!(
                        parts[..len] == whole[..len],
                        "{name}: split {split}, offset {offset}"
                    );
                }
            }
        }
    }

    #[test]
    fn copy_into_a_short_buffer_panics() {
        for (name, kernel) in copy_implementations() {
            for len in [5, 300] {
                let src = [1u8; 300];
                let mut dst = [0u8; 300];
                let result = std::panic::catch_unwind(move || {
                    kernel(&mut dst[..len - 1], &src[..len], KEY, 0);
                });
                assert!(result.is_err(), "{name}: len {len}");
            }
        }
    }
}
