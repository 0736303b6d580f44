//! Inflate: any input either decompresses or fails with 1007; the output
//! never exceeds the room given per call; feeding the input in pieces gives
//! the same bytes (and the same verdict) as feeding it at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproto_core::extension::deflate::{DeflateCodec, DeflateParams};
use wsproto_core::Role;

/// Inflate one message; `None` when the data is invalid.
fn inflate(input: &[u8], piece: usize, room: usize) -> Option<Vec<u8>> {
    let mut codec = DeflateCodec::new(DeflateParams::default(), Role::Server);
    let mut out = vec![0u8; room];
    let mut result = Vec::new();
    let mut pos = 0;
    for _ in 0..1_000_000 {
        let end = (pos + piece).min(input.len());
        let last = end == input.len();
        let step = match codec.inflate(&input[pos..end], last, &mut out) {
            Ok(step) => step,
            Err(err) => {
                assert_eq!(err.close_code().map(|c| c.as_u16()), Some(1007));
                return None;
            }
        };
        assert!(step.produced <= room && step.consumed <= end - pos);
        result.extend_from_slice(&out[..step.produced]);
        // Bounded: a bomb is cut off by the caller's limit, here 1 MiB.
        if result.len() > 1 << 20 {
            return Some(result);
        }
        pos += step.consumed;
        if step.message_done {
            assert!(last && pos == input.len());
            return Some(result);
        }
    }
    panic!("inflate made no progress");
}

fuzz_target!(|data: &[u8]| {
    let [piece, room, input @ ..] = data else {
        return;
    };
    let whole = inflate(input, input.len().max(1), 1 << 16);
    let pieces = inflate(input, usize::from(*piece).max(1), usize::from(*room).max(1));
    match (whole, pieces) {
        (Some(a), Some(b)) => {
            let n = a.len().min(b.len()).min(1 << 20);
            assert_eq!(a[..n], b[..n]);
        }
        (None, None) => {}
        (a, b) => {
            // Invalid data may only be noticed after the bytes before it came
            // out; what both produced must still agree, and the verdicts can
            // differ only when one run stopped at the 1 MiB cut-off.
            let stopped = a.as_ref().or(b.as_ref()).is_some_and(|v| v.len() > 1 << 20);
            assert!(stopped, "verdicts differ");
        }
    }
});
