//! permessage-deflate throughput beside C zlib, in one run: compressing
//! (send) JSON-like messages of 1 KiB and 64 KiB at levels 1 and 6, with
//! and without context takeover, through a `Connection`, against zlib
//! (flate2 over the system's libz) compressing the same messages with a
//! sync flush; decompressing 64 KiB messages (receive) against zlib
//! inflating the same payloads; then the ratios from criterion's medians,
//! the compressed sizes, and the heap an idle connection holds.
//!
//! `cargo bench -p wsproto-core --bench deflate` (miniz_oxide), and with
//! `--features zlib-rs` for the zlib-rs backend. Times are the benchmark
//! thread's CPU time unless `WSPROTO_BENCH_CLOCK=wall`.

#![allow(missing_docs)] // Benchmarks are not public API.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use wsproto_core::event::{ConnectionEvent, Event, TextMessage};
use wsproto_core::extension::deflate::{DeflateParams, DeflatePool};
use wsproto_core::{Config, Connection};

// The clock and criterion's results, shared with the other benchmarks;
// this one uses none of their workloads.
#[allow(dead_code)]
mod common;
use common::ThreadCpuTime;

const BACKEND: &str = if cfg!(feature = "zlib-rs") {
    "zlib-rs"
} else {
    "miniz_oxide"
};

/// Distinct messages cycled through, so that context takeover sees what a
/// stream of different records gives, not one message repeated.
const MESSAGES: usize = 64;

const SIZES: [usize; 2] = [1 << 10, 64 << 10];
const LEVELS: [u8; 2] = [1, 6];

/// JSON-like text of `len` bytes: records with varying numbers and names.
fn json(len: usize) -> String {
    let mut out = String::with_capacity(len + 128);
    let mut i = 0u64;
    out.push('[');
    while out.len() < len {
        let x = i.wrapping_mul(2654435761) % 100_000;
        out.push_str(&format!(
            "{{\"id\":{i},\"name\":\"user{x}\",\"score\":{}.{},\"tags\":[\"a{}\",\"b\"],\"active\":{}}},",
            x % 997,
            x % 89,
            x % 13,
            x.is_multiple_of(2)
        ));
        i += 1;
    }
    out.truncate(len);
    out
}

/// `MESSAGES` consecutive pieces of one long JSON-like text.
fn messages(size: usize) -> Vec<String> {
    let text = json(size * MESSAGES);
    (0..MESSAGES)
        .map(|i| text[i * size..(i + 1) * size].to_string())
        .collect()
}

fn size_label(size: usize) -> &'static str {
    if size == 1 << 10 {
        "1KiB"
    } else {
        "64KiB"
    }
}

fn mode_label(no_context_takeover: bool) -> &'static str {
    if no_context_takeover {
        "no_context_takeover"
    } else {
        "context_takeover"
    }
}

fn params(no_context_takeover: bool, level: u8) -> DeflateParams {
    DeflateParams {
        client_no_context_takeover: no_context_takeover,
        server_no_context_takeover: no_context_takeover,
        compression_level: level,
        ..DeflateParams::default()
    }
}

/// zlib compressing raw deflate under a 32 KiB window, as permessage-deflate
/// does (its sync flush keeps the `00 00 ff ff` we drop: 4 bytes more).
fn zlib_compressor(level: u8) -> Compress {
    Compress::new_with_window_bits(Compression::new(u32::from(level)), false, 15)
}

fn zlib_compress(c: &mut Compress, reset: bool, input: &[u8], out: &mut [u8]) -> usize {
    if reset {
        c.reset();
    }
    let before = c.total_out();
    c.compress(input, out, FlushCompress::Sync).unwrap();
    assert_eq!(c.total_in() as usize % input.len(), 0, "short output");
    (c.total_out() - before) as usize
}

/// The payloads of the unmasked frames a server sent.
fn payloads(mut wire: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let (len, header) = match wire[1] & 0x7f {
            126 => (u16::from_be_bytes([wire[2], wire[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        out.push(wire[header..header + len].to_vec());
        wire = &wire[header + len..];
    }
    out
}

/// The compressed size of every message, ours and zlib's, from fresh state.
fn compressed_sizes(texts: &[String], no_context_takeover: bool, level: u8) -> (usize, usize) {
    let mut server =
        Connection::server(Config::default()).with_deflate(params(no_context_takeover, level));
    let mut wire = Vec::new();
    for text in texts {
        server
            .send_into(&TextMessage::new(text).into(), &mut wire)
            .unwrap();
    }
    let ours: usize = payloads(&wire).iter().map(Vec::len).sum();
    let mut zlib = zlib_compressor(level);
    let mut out = vec![0u8; texts[0].len() * 2 + 1024];
    let theirs: usize = texts
        .iter()
        .map(|t| zlib_compress(&mut zlib, no_context_takeover, t.as_bytes(), &mut out) - 4)
        .sum();
    (ours, theirs)
}

fn compress<M: Measurement<Value = Duration>>(c: &mut Criterion<M>) {
    for size in SIZES {
        let texts = messages(size);
        let events: Vec<Event<'_>> = texts.iter().map(|t| TextMessage::new(t).into()).collect();
        for nct in [false, true] {
            for level in LEVELS {
                let mut group =
                    c.benchmark_group(format!("deflate_compress/{}/level{level}", mode_label(nct)));
                group.throughput(Throughput::Bytes(size as u64));
                group.measurement_time(Duration::from_secs(2));
                group.warm_up_time(Duration::from_millis(500));

                // Without context takeover the connection borrows its
                // compressor from a pool, as zlib's baseline resets one.
                let mut server =
                    Connection::server(Config::default()).with_deflate(params(nct, level));
                let mut pool = DeflatePool::new();
                server.borrow_deflate_state(&mut pool);
                let mut out = vec![0u8; size * 2 + 1024];
                let mut i = 0;
                group.bench_function(format!("wsproto-core/{}", size_label(size)), |b| {
                    b.iter(|| {
                        i = (i + 1) % MESSAGES;
                        black_box(server.send(&events[i], &mut out).unwrap())
                    })
                });
                if nct {
                    // The same without a pool: a compressor allocated and
                    // freed per message.
                    let mut server =
                        Connection::server(Config::default()).with_deflate(params(nct, level));
                    group.bench_function(
                        format!("wsproto-core-unpooled/{}", size_label(size)),
                        |b| {
                            b.iter(|| {
                                i = (i + 1) % MESSAGES;
                                black_box(server.send(&events[i], &mut out).unwrap())
                            })
                        },
                    );
                }

                let mut zlib = zlib_compressor(level);
                let mut i = 0;
                group.bench_function(format!("zlib/{}", size_label(size)), |b| {
                    b.iter(|| {
                        i = (i + 1) % MESSAGES;
                        black_box(zlib_compress(&mut zlib, nct, texts[i].as_bytes(), &mut out))
                    })
                });
                group.finish();
            }
        }
    }
}

fn decompress<M: Measurement<Value = Duration>>(c: &mut Criterion<M>) {
    let size = 64 << 10;
    let texts = messages(size);
    for nct in [false, true] {
        let mut sender = Connection::server(Config::default()).with_deflate(params(nct, 6));
        let mut wire = Vec::new();
        for text in &texts {
            sender
                .send_into(&TextMessage::new(text).into(), &mut wire)
                .unwrap();
        }
        let compressed = payloads(&wire);
        let mut group = c.benchmark_group(format!("deflate_decompress/{}", mode_label(nct)));
        group.throughput(Throughput::Bytes((size * MESSAGES) as u64));
        group.measurement_time(Duration::from_secs(3));
        group.warm_up_time(Duration::from_millis(500));

        // A client receiving the stream of all messages, in 16 KiB chunks.
        let mut buf = wire.clone();
        let mut out = vec![0u8; 16 << 10];
        let mut pool = DeflatePool::new();
        group.bench_function(format!("wsproto-core/{}", size_label(size)), |b| {
            b.iter(|| {
                buf.copy_from_slice(&wire);
                let mut client = Connection::client(Config::default(), |d: &mut [u8]| d.fill(1))
                    .with_deflate(params(nct, 6));
                client.borrow_deflate_state(&mut pool);
                let mut pos = 0;
                let mut total = 0usize;
                while pos < buf.len() {
                    let r = client.receive_into(&mut buf[pos..], &mut out);
                    pos += r.consumed;
                    match r.event {
                        Ok(Some(ConnectionEvent::TextMessage(m))) => total += m.data.len(),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                assert_eq!(total, size * MESSAGES);
                client.return_deflate_state(&mut pool);
                black_box(total)
            })
        });

        // zlib inflating the same payloads, tail appended, into the same
        // 16 KiB output.
        let tailed: Vec<Vec<u8>> = compressed
            .iter()
            .map(|p| [p.as_slice(), &[0, 0, 0xff, 0xff]].concat())
            .collect();
        group.bench_function(format!("zlib/{}", size_label(size)), |b| {
            b.iter(|| {
                let mut d = Decompress::new_with_window_bits(false, 15);
                let mut total = 0usize;
                for payload in &tailed {
                    if nct {
                        d.reset(false);
                    }
                    let mut rest = &payload[..];
                    loop {
                        let (i, o) = (d.total_in(), d.total_out());
                        d.decompress(rest, &mut out, FlushDecompress::Sync).unwrap();
                        rest = &rest[(d.total_in() - i) as usize..];
                        let produced = (d.total_out() - o) as usize;
                        total += produced;
                        if rest.is_empty() && produced < out.len() {
                            break;
                        }
                    }
                }
                assert_eq!(total, size * MESSAGES);
                black_box(total)
            })
        });
        group.finish();
    }
}

/// The heap a connection keeps between messages, after one 64 KiB message
/// each way.
fn idle_heap() {
    let text = json(64 << 10);
    println!();
    println!("idle heap after one 64 KiB JSON-like message each way ({BACKEND}):");
    for (nct, bits) in [(false, 15), (false, 12), (true, 15)] {
        let params = DeflateParams {
            client_max_window_bits: bits,
            server_max_window_bits: bits,
            ..params(nct, 6)
        };
        let mut client =
            Connection::client(Config::default(), |d: &mut [u8]| d.fill(1)).with_deflate(params);
        let mut server = Connection::server(Config::default()).with_deflate(params);
        let mut wire = Vec::new();
        client
            .send_into(&TextMessage::new(&text).into(), &mut wire)
            .unwrap();
        let mut pos = 0;
        let mut out = vec![0u8; 16 << 10];
        loop {
            let r = server.receive_into(&mut wire[pos..], &mut out);
            pos += r.consumed;
            if r.event.unwrap().is_none() {
                break;
            }
        }
        let mut reply = Vec::new();
        server
            .send_into(&TextMessage::new(&text).into(), &mut reply)
            .unwrap();
        println!(
            "  {}, window bits {bits}: server {} bytes, client {} bytes",
            mode_label(nct),
            server.deflate_heap_size(),
            client.deflate_heap_size()
        );
    }
}

/// Criterion's median time of one benchmark, in nanoseconds per iteration,
/// if it was measured in this run. Criterion names a directory after the
/// group and one after the function, each with `/` replaced by `_`.
fn median_since(group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let dir = common::criterion_home()
        .join(group.replace('/', "_"))
        .join(function.replace('/', "_"));
    common::median_in(&dir, since)
}

fn print_ratios(since: SystemTime) {
    println!();
    println!("wsproto-core ({BACKEND}) against C zlib, criterion medians of this run:");
    println!(
        "{:<20} {:>6} {:>6} {:>12} {:>12} {:>7} {:>11}",
        "compress", "level", "size", "ours", "zlib", "speed", "size ratio"
    );
    for nct in [false, true] {
        for level in LEVELS {
            for size in SIZES {
                let group = format!("deflate_compress/{}/level{level}", mode_label(nct));
                let label = size_label(size);
                let (Some(ours), Some(theirs)) = (
                    median_since(&group, &format!("wsproto-core/{label}"), since),
                    median_since(&group, &format!("zlib/{label}"), since),
                ) else {
                    continue;
                };
                let (our_bytes, their_bytes) = compressed_sizes(&messages(size), nct, level);
                let unpooled =
                    median_since(&group, &format!("wsproto-core-unpooled/{label}"), since)
                        .map(|t| {
                            format!(
                                "  (no pool: {:.0} MB/s, {:.2}x)",
                                size as f64 / t * 1e3,
                                theirs / t
                            )
                        })
                        .unwrap_or_default();
                println!(
                    "{:<20} {:>6} {:>6} {:>7.0} MB/s {:>7.0} MB/s {:>6.2}x {:>11.3}{unpooled}",
                    mode_label(nct),
                    level,
                    label,
                    size as f64 / ours * 1e3,
                    size as f64 / theirs * 1e3,
                    theirs / ours,
                    our_bytes as f64 / their_bytes as f64
                );
            }
        }
    }
    println!(
        "{:<20} {:>6} {:>6} {:>12} {:>12} {:>7}",
        "decompress", "level", "size", "ours", "zlib", "speed"
    );
    for nct in [false, true] {
        let group = format!("deflate_decompress/{}", mode_label(nct));
        let (Some(ours), Some(theirs)) = (
            median_since(&group, "wsproto-core/64KiB", since),
            median_since(&group, "zlib/64KiB", since),
        ) else {
            continue;
        };
        let bytes = (MESSAGES << 16) as f64;
        println!(
            "{:<20} {:>6} {:>6} {:>7.0} MB/s {:>7.0} MB/s {:>6.2}x",
            mode_label(nct),
            6,
            "64KiB",
            bytes / ours * 1e3,
            bytes / theirs * 1e3,
            theirs / ours
        );
    }
    println!("(speed: ours over zlib's throughput; size ratio: our compressed bytes over zlib's)");
}

fn run<M: Measurement<Value = Duration>>(mut criterion: Criterion<M>) {
    let since = SystemTime::now();
    compress(&mut criterion);
    decompress(&mut criterion);
    criterion.final_summary();
    print_ratios(since);
    idle_heap();
}

fn main() {
    if std::env::var("WSPROTO_BENCH_CLOCK").as_deref() == Ok("wall") {
        run(Criterion::default().configure_from_args());
    } else {
        run(Criterion::default()
            .with_measurement(ThreadCpuTime)
            .configure_from_args());
    }
}
