//! Masking throughput: the bytewise reference, the safe word loop, each SIMD
//! kernel compiled in, the dispatching `apply_mask`, and a plain in-place u64
//! XOR as the ceiling.
//!
//! Run with `--features std` so the runtime-detected kernels are included.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use wsproto_core::frame::mask::{apply_mask, apply_mask_bytewise, apply_mask_words, kernels};

const SIZES: [usize; 5] = [16, 125, 4 << 10, 64 << 10, 1 << 20];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// A misaligned start, as a payload behind a 2-, 6- or 14-byte header is.
const ALIGN: usize = 6;

/// XOR every whole 8-byte word with a constant: the speed no mask can beat.
fn u64_xor(buf: &mut [u8], key: [u8; 4], _offset: usize) {
    let k = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    for w in buf.chunks_exact_mut(8) {
        let v = u64::from_ne_bytes(w.try_into().unwrap()) ^ k;
        w.copy_from_slice(&v.to_ne_bytes());
    }
}

fn mask(c: &mut Criterion) {
    let mut candidates: Vec<(&str, kernels::Kernel)> = vec![
        ("bytewise", apply_mask_bytewise),
        ("words", apply_mask_words),
    ];
    for (name, kernel) in [("avx2", kernels::avx2())] {
        if let Some(kernel) = kernel {
            candidates.push((name, kernel));
        }
    }
    candidates.push(("apply_mask", apply_mask));
    candidates.push(("u64_xor", u64_xor));

    let mut group = c.benchmark_group("mask");
    for size in SIZES {
        let mut storage: Vec<u8> = (0..size + ALIGN).map(|i| i as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        for &(name, kernel) in &candidates {
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter(|| {
                    kernel(
                        black_box(&mut storage[ALIGN..]),
                        black_box(KEY),
                        black_box(1),
                    )
                });
            });
        }
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    mask(&mut c);
    c.final_summary();
}
