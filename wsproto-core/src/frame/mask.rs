//! Masking (RFC 6455 §5.3): XOR a payload with a 4-byte key, in place.
//!
//! `offset` is the position in the payload where `buf` starts, so a payload
//! can be unmasked in pieces as it arrives: byte `i` of `buf` is XORed with
//! `key[(offset + i) % 4]`.
//!
//! [`apply_mask`] picks the fastest implementation compiled in; the safe
//! [`apply_mask_words`] is used when `--cfg wsproto_disable_simd` is set or
//! under Miri.
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
    dispatch(buf, key, offset);
}

/// The bytewise reference implementation: one XOR per byte.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[offset.wrapping_add(i) & 3];
    }
}

/// A safe implementation that XORs eight bytes at a time, in blocks that the
/// compiler turns into vector instructions where the target has them.
pub fn apply_mask_words(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate_key(key, offset);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for chunk in block.chunks_exact_mut(8) {
            xor_word(chunk, word);
        }
    }
    let mut chunks = blocks.into_remainder().chunks_exact_mut(8);
    for chunk in &mut chunks {
        xor_word(chunk, word);
    }
    // Every block and chunk above is a multiple of 4 bytes long, so the tail
    // starts at key position 0 of the rotated key.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

/// The key as seen from payload position `offset`: element 0 masks the first
/// byte of the buffer.
#[inline]
fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let s = offset & 3;
    [key[s], key[(s + 1) & 3], key[(s + 2) & 3], key[(s + 3) & 3]]
}

/// XOR an 8-byte chunk with `word`.
#[inline(always)]
fn xor_word(chunk: &mut [u8], word: u64) {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(chunk);
    chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
}

/// `key` (already rotated) repeated to fill `N` bytes.
#[allow(dead_code)]
#[inline(always)]
fn repeat_key<const N: usize>(key: [u8; 4]) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = key[i & 3];
    }
    out
}

#[cfg(all(target_arch = "x86_64", not(miri), not(wsproto_disable_simd)))]
#[inline]
fn dispatch(buf: &mut [u8], key: [u8; 4], offset: usize) {
    #[cfg(any(target_feature = "avx2", feature = "std"))]
    {
        if x86::has_avx2() {
            x86::avx2(buf, key, offset);
            return;
        }
    }
    x86::sse2(buf, key, offset);
}

#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    not(miri),
    not(wsproto_disable_simd)
))]
#[inline]
fn dispatch(buf: &mut [u8], key: [u8; 4], offset: usize) {
    wasm::simd128(buf, key, offset);
}

#[cfg(not(all(
    any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    ),
    not(miri),
    not(wsproto_disable_simd)
)))]
#[inline]
fn dispatch(buf: &mut [u8], key: [u8; 4], offset: usize) {
    apply_mask_words(buf, key, offset);
}

/// The SIMD kernels, reachable for tests and benchmarks.
///
/// Each getter returns the kernel when it is compiled into this build and the
/// running CPU supports it, and `None` otherwise. Every kernel returned is
/// safe to call and masks exactly like [`apply_mask_bytewise`].
#[doc(hidden)]
pub mod kernels {
    /// The signature every masking implementation shares.
    pub type Kernel = fn(&mut [u8], [u8; 4], usize);

    /// The x86_64 SSE2 kernel (16-byte vectors).
    pub fn sse2() -> Option<Kernel> {
        #[cfg(all(target_arch = "x86_64", not(wsproto_disable_simd)))]
        {
            Some(super::x86::sse2)
        }
        #[cfg(not(all(target_arch = "x86_64", not(wsproto_disable_simd))))]
        {
            None
        }
    }

    /// The x86_64 AVX2 kernel (32-byte vectors), if the CPU has AVX2.
    pub fn avx2() -> Option<Kernel> {
        #[cfg(all(
            target_arch = "x86_64",
            not(wsproto_disable_simd),
            any(target_feature = "avx2", feature = "std")
        ))]
        {
            if super::x86::has_avx2() {
                return Some(super::x86::avx2);
            }
        }
        None
    }

    /// The wasm32 `simd128` kernel (16-byte vectors).
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

#[cfg(all(target_arch = "x86_64", not(wsproto_disable_simd)))]
mod x86 {
    use core::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_storeu_si128, _mm_xor_si128,
    };

    use super::{apply_mask_words, repeat_key, rotate_key};

    /// SSE2 is part of the x86_64 baseline, so this needs no detection.
    pub(super) fn sse2(buf: &mut [u8], key: [u8; 4], offset: usize) {
        let key = rotate_key(key, offset);
        let pattern: [u8; 16] = repeat_key(key);
        // SAFETY: `pattern` is 16 readable bytes; `_mm_loadu_si128` accepts
        // any alignment; SSE2 is enabled on every x86_64 target.
        let k = unsafe { _mm_loadu_si128(pattern.as_ptr().cast::<__m128i>()) };
        let mut blocks = buf.chunks_exact_mut(64);
        for block in &mut blocks {
            debug_assert_eq!(block.len(), 64);
            let p = block.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `chunks_exact_mut(64)` yields exactly 64 bytes, so the
            // four 16-byte vectors at `p..p + 4` lie inside `block`, which is
            // borrowed mutably here; the unaligned load/store intrinsics
            // accept any alignment.
            unsafe {
                let a = _mm_loadu_si128(p);
                let b = _mm_loadu_si128(p.add(1));
                let c = _mm_loadu_si128(p.add(2));
                let d = _mm_loadu_si128(p.add(3));
                _mm_storeu_si128(p, _mm_xor_si128(a, k));
                _mm_storeu_si128(p.add(1), _mm_xor_si128(b, k));
                _mm_storeu_si128(p.add(2), _mm_xor_si128(c, k));
                _mm_storeu_si128(p.add(3), _mm_xor_si128(d, k));
            }
        }
        let mut vectors = blocks.into_remainder().chunks_exact_mut(16);
        for vector in &mut vectors {
            debug_assert_eq!(vector.len(), 16);
            let p = vector.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `chunks_exact_mut(16)` yields exactly 16 bytes at `p`;
            // the unaligned intrinsics accept any alignment.
            unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), k)) };
        }
        // Everything before the tail is a multiple of 4 bytes.
        apply_mask_words(vectors.into_remainder(), key, 0);
    }

    /// Whether the running CPU has AVX2.
    #[cfg(any(target_feature = "avx2", feature = "std"))]
    #[inline]
    pub(super) fn has_avx2() -> bool {
        #[cfg(target_feature = "avx2")]
        {
            true
        }
        #[cfg(not(target_feature = "avx2"))]
        {
            std::is_x86_feature_detected!("avx2")
        }
    }

    /// The AVX2 kernel; falls back to SSE2 on a CPU without AVX2.
    #[cfg(any(target_feature = "avx2", feature = "std"))]
    pub(super) fn avx2(buf: &mut [u8], key: [u8; 4], offset: usize) {
        if has_avx2() {
            debug_assert!(has_avx2());
            // SAFETY: `has_avx2()` was checked on the line above, which is
            // the only requirement of the `avx2` target feature.
            unsafe { avx2_impl(buf, key, offset) }
        } else {
            sse2(buf, key, offset);
        }
    }

    /// # Safety
    ///
    /// The CPU must support AVX2.
    #[cfg(any(target_feature = "avx2", feature = "std"))]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2_impl(buf: &mut [u8], key: [u8; 4], offset: usize) {
        use core::arch::x86_64::{
            __m256i, _mm256_loadu_si256, _mm256_storeu_si256, _mm256_xor_si256,
        };

        let key = rotate_key(key, offset);
        let pattern: [u8; 32] = repeat_key(key);
        // SAFETY: `pattern` is 32 readable bytes; `_mm256_loadu_si256`
        // accepts any alignment; the caller guarantees AVX2.
        let k = unsafe { _mm256_loadu_si256(pattern.as_ptr().cast::<__m256i>()) };
        let mut blocks = buf.chunks_exact_mut(128);
        for block in &mut blocks {
            debug_assert_eq!(block.len(), 128);
            let p = block.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `chunks_exact_mut(128)` yields exactly 128 bytes, so the
            // four 32-byte vectors at `p..p + 4` lie inside `block`; the
            // unaligned intrinsics accept any alignment; the caller
            // guarantees AVX2.
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
            // SAFETY: `chunks_exact_mut(32)` yields exactly 32 bytes at `p`;
            // the unaligned intrinsics accept any alignment; the caller
            // guarantees AVX2.
            unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), k)) };
        }
        // Everything before the tail is a multiple of 4 bytes.
        apply_mask_words(vectors.into_remainder(), key, 0);
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

    /// `simd128` is enabled for the whole build, so this needs no detection.
    pub(super) fn simd128(buf: &mut [u8], key: [u8; 4], offset: usize) {
        let key = rotate_key(key, offset);
        let k = u32x4_splat(u32::from_ne_bytes(key));
        let mut blocks = buf.chunks_exact_mut(64);
        for block in &mut blocks {
            debug_assert_eq!(block.len(), 64);
            let p = block.as_mut_ptr().cast::<v128>();
            // SAFETY: `chunks_exact_mut(64)` yields exactly 64 bytes, so the
            // four 16-byte vectors at `p..p + 4` lie inside `block`;
            // `v128_load`/`v128_store` accept any alignment.
            unsafe {
                let a = v128_load(p);
                let b = v128_load(p.add(1));
                let c = v128_load(p.add(2));
                let d = v128_load(p.add(3));
                v128_store(p, v128_xor(a, k));
                v128_store(p.add(1), v128_xor(b, k));
                v128_store(p.add(2), v128_xor(c, k));
                v128_store(p.add(3), v128_xor(d, k));
            }
        }
        let mut vectors = blocks.into_remainder().chunks_exact_mut(16);
        for vector in &mut vectors {
            debug_assert_eq!(vector.len(), 16);
            let p = vector.as_mut_ptr().cast::<v128>();
            // SAFETY: `chunks_exact_mut(16)` yields exactly 16 bytes at `p`;
            // `v128_load`/`v128_store` accept any alignment.
            unsafe { v128_store(p, v128_xor(v128_load(p), k)) };
        }
        // Everything before the tail is a multiple of 4 bytes.
        apply_mask_words(vectors.into_remainder(), key, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::kernels::{self, Kernel};
    use super::{apply_mask, apply_mask_bytewise, apply_mask_words};

    const MAX_LEN: usize = if cfg!(miri) { 70 } else { 300 };
    const MAX_ALIGN: usize = 7;
    const BUF: usize = 300 + MAX_ALIGN;
    const KEY: [u8; 4] = [0x9e, 0x37, 0x79, 0xb9];

    /// Offsets covering every key phase, plus ones near `usize::MAX`.
    const OFFSETS: [usize; 11] = [
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
    ];

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
        let fixed: [(&'static str, Option<Kernel>); 5] = [
            ("words", Some(apply_mask_words as Kernel)),
            ("apply_mask", Some(apply_mask as Kernel)),
            ("sse2", kernels::sse2()),
            ("avx2", kernels::avx2()),
            ("simd128", kernels::simd128()),
        ];
        fixed
            .into_iter()
            .filter_map(|(name, kernel)| kernel.map(|k| (name, k)))
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
    fn matches_bytewise() {
        let input = data();
        for (name, kernel) in implementations() {
            for len in 0..=MAX_LEN {
                for offset in OFFSETS {
                    for align in 0..=MAX_ALIGN {
                        let mut expected = input;
                        apply_mask_bytewise(&mut expected[align..align + len], KEY, offset);
                        let mut actual = input;
                        kernel(&mut actual[align..align + len], KEY, offset);
                        assert!(
                            expected == actual,
                            "{name}: len {len}, offset {offset}, align {align}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn bytewise_follows_the_definition() {
        let input = data();
        for offset in OFFSETS {
            let mut buf = input;
            apply_mask_bytewise(&mut buf, KEY, offset);
            for (i, (&masked, &plain)) in buf.iter().zip(input.iter()).enumerate() {
                let phase = ((offset as u128 + i as u128) % 4) as usize;
                assert_eq!(masked, plain ^ KEY[phase]);
            }
        }
    }

    #[test]
    fn masking_twice_restores() {
        let input = data();
        for (name, kernel) in implementations() {
            for len in 0..=MAX_LEN {
                for offset in OFFSETS {
                    let mut buf = input;
                    kernel(&mut buf[..len], KEY, offset);
                    if len >= 4 {
                        assert!(buf[..len] != input[..len], "{name}: len {len} unchanged");
                    }
                    kernel(&mut buf[..len], KEY, offset);
                    assert!(buf == input, "{name}: len {len}, offset {offset}");
                }
            }
        }
    }

    #[test]
    fn split_equals_whole() {
        let input = data();
        let len = MAX_LEN;
        for (name, kernel) in implementations() {
            for offset in OFFSETS {
                let mut whole = input;
                kernel(&mut whole[..len], KEY, offset);
                for split in 0..=len {
                    let mut parts = input;
                    let (head, tail) = parts[..len].split_at_mut(split);
                    kernel(head, KEY, offset);
                    kernel(tail, KEY, offset.wrapping_add(split));
                    assert!(parts == whole, "{name}: split {split}, offset {offset}");
                }
            }
        }
    }
}
